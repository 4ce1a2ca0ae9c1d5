/// A schedule group's home NUMA node (issue 14, "Locality").
///
/// **When.** Only for a scheduler with `.enhanceScheduleGroupLocality`
/// whose regular VPs are placed on two or more NUMA nodes
/// (``Scheduler/nodeIdle`` is then set). Otherwise a group has no home
/// (``ScheduleGroup/homeNode`` is nil) and everything below is skipped:
/// the take, wake and sleep paths are as without this file.
///
/// **Which node.** ``Scheduler/createScheduleGroup(share:cap:node:)``
/// names it; otherwise the node of the VP running the creating context
/// (created from a context of this scheduler), else the scheduler's nodes
/// in turn (round-robin).
///
/// **Taking** (`ScheduleGroupRegistry.take`). A VP takes first from the
/// groups homed on its own node (and groups with no home), then from
/// groups homed elsewhere whose home node has **no capacity**. A node has
/// capacity while one of its VPs is *free*: from the start of its search
/// for work or of its sleep until it next runs a task or a context from
/// its run queue: `NodeIdle.free[d] > 0`. So a
/// home node whose VPs all run tasks or contexts lends the group's tasks
/// to the other nodes (work conservation), and a home node with a VP
/// looking for work or asleep keeps them. The idle check of a VP
/// (``Scheduler/hasWork(for:)``) counts only tasks it may take, so a VP
/// never spins on a task it must decline.
///
/// **Waking** (Idle/NodeIdle.swift, Idle/README.md "Node-preferring
/// groups"). A task queued to a homed group wakes nobody when a VP of the
/// home node searches, else a sleeper of the home node (a futex bitset per
/// node), else the usual one sleeper anywhere unless a VP searches. A VP
/// about to sleep that declines a homed task (its home has capacity)
/// passes a wake to that home first, so a wake that went elsewhere (a
/// completion's, a pass-on's) still reaches the home node.
///
/// **Bound.** A homed task never waits while its home node has no
/// capacity and a VP of another node is free for longer than the idle
/// protocol's watch interval (10 ms at most): that VP's next look takes it.
/// [ConcRT: `Scheduler::CreateScheduleGroup(location&)` with a NUMA-node
/// `location`; ConcRT's own locality is the scheduling ring of the
/// creating VP's node]
extension Scheduler {
    /// The topology ids of the NUMA nodes this scheduler's regular VPs are
    /// placed on (ascending); the selected CPUs' nodes when the VPs are not
    /// placed (oversubscribed).
    public var nodes: [Int] {
        if let nodeIdle { return nodeIdle.nodeIDs }
        let placed = Set(layout.slots.compactMap(\.node))
        if !placed.isEmpty { return placed.sorted() }
        return Set(layout.selectedCPUs.compactMap { layout.topology.cpu($0)?.node }).sorted()
    }

    /// Creates a schedule group that prefers NUMA node `node` (under
    /// `.enhanceScheduleGroupLocality` on two or more nodes: see
    /// ``ScheduleGroup/homeNode``; otherwise the node is checked and the
    /// group prefers none), with a CPU share and an optional cap as
    /// ``createScheduleGroup(share:cap:)``.
    /// [ConcRT: `Scheduler::CreateScheduleGroup(location& placement)` with
    /// `location` naming a NUMA node: ours takes the node id]
    /// - Parameters:
    ///   - share: weight, 1...10,000.
    ///   - cap: most of the scheduler's VP time, in (0, 1]; nil: no cap.
    ///   - node: a topology NUMA node id, one of ``nodes``.
    /// - Throws: ``ConcRTError/invalidPolicy(_:)`` naming the bad value
    ///   (a node the scheduler has no VP on, a bad share or cap).
    public func createScheduleGroup(share: Int = 1, cap: Double? = nil, node: Int) throws(ConcRTError) -> ScheduleGroup {
        let mine = nodes
        guard mine.contains(node) else {
            throw .invalidPolicy("schedule group node \(node) is not one of this scheduler's NUMA nodes \(mine)")
        }
        return try createScheduleGroup(share: share, cap: cap, home: nodeIdle?.index(ofNode: node) ?? -1)
    }

    /// The home a new group gets by default: the creating VP's node, else
    /// the next node round-robin; -1 without node locality.
    func defaultHome() -> Int {
        guard let nodeIdle else { return -1 }
        if let c = Context.currentInternal, c.scheduler === self, let vp = c.vp, vp.node >= 0 { return vp.node }
        return nodeIdle.nextRoundRobin()
    }
}

extension VirtualProcessorLayout {
    /// The NUMA nodes a scheduler with this layout and `policy` homes its
    /// schedule groups on (ascending topology ids): the nodes of the
    /// placed VPs under `.enhanceScheduleGroupLocality` when there are two
    /// or more; empty otherwise (groups then prefer no node).
    public func scheduleGroupHomeNodes(for policy: SchedulerPolicy) -> [Int] {
        guard policy.schedulingProtocol == .enhanceScheduleGroupLocality,
              slots.allSatisfy({ $0.node != nil }) else { return [] }
        let ids = Set(slots.compactMap(\.node)).sorted()
        return ids.count >= 2 ? ids : []
    }
}
