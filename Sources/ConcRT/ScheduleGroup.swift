import Synchronization
import UMS

/// A set of tasks the scheduler keeps together. [concurrency::ScheduleGroup]
///
/// Each group has its own queue. With `.enhanceScheduleGroupLocality` a
/// virtual processor keeps taking from the group it took from last until
/// that group is empty; with `.enhanceForwardProgress` it moves to the next
/// group after every task.
public final class ScheduleGroup: @unchecked Sendable {
    // @unchecked Sendable: queue under its mutex; counters atomic.
    private static let nextID = Atomic<Int>(1)
    /// [ScheduleGroup::Id]
    public let id: Int
    unowned(unsafe) let scheduler: Scheduler
    private let queue = MigrationSafeMutex<Ring<UInt>>(Ring(capacity: 64))
    let queued = Atomic<Int>(0)
    private let pending = Atomic<Int>(0)

    init(scheduler: Scheduler) {
        self.scheduler = scheduler
        id = ScheduleGroup.nextID.wrappingAdd(1, ordering: .relaxed).oldValue
    }

    /// Schedules a task in this group. [ScheduleGroup::ScheduleTask]
    public func scheduleTask(_ body: @escaping @Sendable () -> Void) {
        pending.wrappingAdd(1, ordering: .relaxed)
        scheduler.scheduleTask(body, group: self)
    }

    /// Tasks scheduled in this group and not finished yet.
    public var pendingTasks: Int { pending.load(ordering: .acquiring) }

    func enqueue(_ item: WorkItem) {
        let bits = UInt(bitPattern: item)
        queue.withLock { $0.pushBack(bits) }
        queued.wrappingAdd(1, ordering: .releasing)
    }

    func dequeue() -> WorkItem? {
        if queued.load(ordering: .acquiring) == 0 { return nil }
        guard let bits = queue.withLock({ $0.popFront() }) else { return nil }
        queued.wrappingSubtract(1, ordering: .relaxed)
        return UnsafeMutableRawPointer(bitPattern: bits)
    }

    func taskFinished() { pending.wrappingSubtract(1, ordering: .releasing) }
}

/// The groups of a scheduler (a copy-on-write array under a lock; read by
/// VPs looking for queued work).
final class ScheduleGroupRegistry: @unchecked Sendable {
    // @unchecked Sendable: `groups` under the mutex; `count` atomic.
    private let groups = MigrationSafeMutex<[ScheduleGroup]>([])
    private let count = Atomic<Int>(0)
    private let queuedTotal = Atomic<Int>(0)

    func add(_ g: ScheduleGroup) {
        groups.withLock { $0.append(g) }
        count.wrappingAdd(1, ordering: .releasing)
    }

    var hasWork: Bool {
        if count.load(ordering: .acquiring) == 0 { return false }
        return groups.withLock { $0.contains { $0.queued.load(ordering: .relaxed) > 0 } }
    }

    /// Next item for `vp` by the protocol; returns it and its group id.
    func take(for vp: VirtualProcessor, protocol p: SchedulerPolicy.SchedulingProtocol) -> (WorkItem, Int)? {
        if count.load(ordering: .acquiring) == 0 { return nil }
        let snapshot = groups.withLock { $0 }
        let n = snapshot.count
        if n == 0 { return nil }
        let start: Int
        switch p {
        case .enhanceScheduleGroupLocality: start = vp.lastGroupIndex % n
        case .enhanceForwardProgress: start = (vp.lastGroupIndex + 1) % n
        }
        for k in 0..<n {
            let i = (start + k) % n
            if let item = snapshot[i].dequeue() {
                vp.lastGroupIndex = i
                return (item, snapshot[i].id)
            }
        }
        return nil
    }
}
