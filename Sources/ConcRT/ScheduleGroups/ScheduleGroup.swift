import ConcurrentContainers
import Synchronization
import UMS

/// A set of tasks the scheduler keeps together, with an optional CPU
/// **share** and **cap** (Distributed Fair Share Scheduling, for schedule
/// groups instead of users). [concurrency::ScheduleGroup; DFSS]
///
/// Each group has its own queue. Without shares or caps (every group
/// created with the defaults), groups are served by the scheduling
/// protocol: with `.enhanceScheduleGroupLocality` a virtual processor keeps
/// taking from the group it took from last until that group is empty; with
/// `.enhanceForwardProgress` it moves to the next group after every task.
///
/// Once any group of the scheduler has a share other than 1 or a cap,
/// every VP picks, among the groups with queued tasks that are within
/// their cap, the one with the least **pass** (time used ÷ share: stride
/// scheduling), so busy groups get VP time in proportion to their shares
/// (`ScheduleGroupRegistry.swift`, `GroupUsage.swift`).
///
/// Under `.enhanceScheduleGroupLocality`, on VPs placed on two or more
/// NUMA nodes, a group also prefers one node, its ``homeNode``: that
/// node's VPs take its tasks first and are woken for them first
/// (`GroupHome.swift`). [ConcRT: a ScheduleGroup created with a `location`]
public final class ScheduleGroup: @unchecked Sendable {
    // @unchecked Sendable: a lock-free queue; counters atomic.
    private static let nextID = Atomic<Int>(1)
    /// [ScheduleGroup::Id]
    public let id: Int
    /// Weight: busy groups get VP time in proportion to their shares.
    public let share: Int
    /// Most of the scheduler's VP time this group may use, as a fraction
    /// (0, 1] per ``GroupUsage/period``; nil: no cap. A capped group is
    /// held back even when the VPs have nothing else to do.
    public let cap: Double?
    unowned(unsafe) let scheduler: Scheduler
    /// Lock-free (ConcurrentQueue).
    private let queue = ConcurrentQueue<UInt>()
    let queued = Atomic<Int>(0)
    private let pending = Atomic<Int>(0)
    /// VP time used, for shares and caps.
    let usage: GroupUsage
    /// Dense index of the home node in ``Scheduler/nodeIdle``; -1: no
    /// node preference (no node locality).
    let homeIndex: Int

    /// The NUMA node this group prefers (a topology node id), nil when it
    /// prefers none (another scheduling protocol, or VPs on one node).
    /// [ConcRT: the group's `location`, a NUMA node]
    public var homeNode: Int? {
        homeIndex >= 0 ? scheduler.nodeIdle.map { $0.nodeIDs[homeIndex] } : nil
    }

    init(scheduler: Scheduler, share: Int, cap: Double?, home: Int = -1) {
        self.scheduler = scheduler
        self.share = share
        self.cap = cap
        homeIndex = home
        usage = GroupUsage(share: share, cap: cap, virtualProcessors: scheduler.virtualProcessorCount)
        id = ScheduleGroup.nextID.wrappingAdd(1, ordering: .relaxed).oldValue
    }

    /// Schedules a task in this group. [ScheduleGroup::ScheduleTask]
    public func scheduleTask(_ body: @escaping @Sendable () -> Void) {
        pending.wrappingAdd(1, ordering: .relaxed)
        scheduler.scheduleTask(body, group: self)
    }

    /// Tasks scheduled in this group and not finished yet.
    public var pendingTasks: Int { pending.load(ordering: .acquiring) }

    /// VP time this group's tasks have run so far: each task's CPU time
    /// (its wall time if it blocked and resumed on another pthread).
    public var timeUsed: Duration { .nanoseconds(usage.used.load(ordering: .relaxed)) }

    /// Queues `item`; true when the group had nothing queued before (it
    /// becomes active: see ``ScheduleGroupRegistry/activated(_:)``).
    func enqueue(_ item: WorkItem) -> Bool {
        let bits = UInt(bitPattern: item)
        queue.push(bits)
        return queued.wrappingAdd(1, ordering: .releasing).oldValue == 0
    }

    func dequeue() -> WorkItem? {
        if queued.load(ordering: .acquiring) == 0 { return nil }
        guard let bits = queue.tryPop() else { return nil }
        queued.wrappingSubtract(1, ordering: .relaxed)
        return UnsafeMutableRawPointer(bitPattern: bits)
    }

    func taskFinished() { pending.wrappingSubtract(1, ordering: .releasing) }
}
