/// A scheduler's view of its Resource Manager.
extension Scheduler {
    /// The Resource Manager this scheduler shares cores through.
    public var resourceManager: ResourceManager { cores.manager }

    /// This scheduler's number in its Resource Manager's
    /// ``ResourceManager/allocations()``.
    public var resourceManagerID: Int { cores.id }

    /// Cores this scheduler's awake virtual processors hold now (a VP holds
    /// one while it runs, none while it sleeps; with an oversubscription
    /// factor `f`, a VP holds `1/f` core). [the virtual processor roots an
    /// ISchedulerProxy holds]
    public var allocatedCores: Double {
        Double(cores.held.load(ordering: .relaxed)) / Double(ResourceManager.unitsPerCore)
    }
}
