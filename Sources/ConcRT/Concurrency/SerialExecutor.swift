import CSupport
import Synchronization
import UMS
#if canImport(Glibc)
import Glibc
#endif

/// A Swift `SerialExecutor` (SE-0392) on a ConcRT scheduler: a queue of
/// jobs drained by one task at a time, optionally in a ``ScheduleGroup``.
/// An actor returns it from `unownedExecutor` to run its isolated code on
/// the scheduler's virtual processors.
/// [no ConcRT name; Swift: `SerialExecutor`, `Actor.unownedExecutor`,
/// `assumeIsolated`, `checkIsolated()`, `isIsolatingCurrentContext()`]
///
/// ```swift
/// actor Counter {
///     static let executor = SchedulerSerialExecutor(scheduler: .default)
///     nonisolated var unownedExecutor: UnownedSerialExecutor { Self.executor.asUnownedSerialExecutor() }
///     var n = 0
///     func bump() { n += 1 }
/// }
/// ```
///
/// Drain protocol: `state` counts jobs queued and not yet finished. An
/// enqueue pushes the job (under the queue's lock), then increments the
/// count (acq_rel); the enqueue that moves it from 0 schedules one drain
/// item. The drain pops and runs jobs, decrementing the count after each
/// (acq_rel); it stops when its decrement reaches 0 (whoever increments
/// from 0 next schedules a new drain), or after ``drainBudget`` jobs, when
/// it reschedules itself behind other work (it keeps ownership: the count
/// is not 0). So at most one drain runs at a time (jobs are serialized),
/// and no job waits without a drain scheduled. Every push precedes its
/// increment (and the lock orders pushes and pops), so whenever the
/// drainer's count says a job remains, the queue holds it: a pop never
/// finds the queue empty (asserted).
///
/// Isolation: while a drain runs jobs, its context holds this executor in
/// a ``ContextLocal``; ``checkIsolated()`` and
/// ``isIsolatingCurrentContext()`` compare against it. That value follows
/// the context across blocking (a job that blocks stays isolated when it
/// resumes on another pthread), and a nested drain of another executor on
/// the same context shadows it and restores it.
///
/// Task-locals and thread identity: as for ``Scheduler`` as a task executor
/// (task-locals follow the task; pthread identity does not).
public final class SchedulerSerialExecutor: SerialExecutor, @unchecked Sendable {
    // @unchecked Sendable: `queue` is under its lock; `state` is atomic;
    // the rest is immutable.

    /// The scheduler whose virtual processors run the jobs.
    public let scheduler: Scheduler
    /// The schedule group drains are queued in (nil: the scheduler's own
    /// queues, like ``Scheduler/scheduleTask(_:)``).
    public let group: ScheduleGroup?
    /// Jobs one drain runs before it yields to other work.
    public let drainBudget: Int
    private let queue = MigrationSafeMutex<Ring<UInt>>(Ring(capacity: 64))
    private let state = Atomic<Int>(0)

    static let current = ContextLocal<ObjectIdentifier?>(default: nil)

    /// - Parameters:
    ///   - scheduler: runs the jobs.
    ///   - group: queues the drains in this group of `scheduler` (its
    ///     scheduling protocol applies); nil for the scheduler's own queues.
    ///   - drainBudget: jobs per drain before other work gets a turn (≥ 1).
    public init(scheduler: Scheduler, group: ScheduleGroup? = nil, drainBudget: Int = 64) {
        precondition(drainBudget >= 1, "ConcRT: SchedulerSerialExecutor drainBudget must be at least 1, not \(drainBudget)")
        if let group {
            precondition(group.scheduler === scheduler,
                         "ConcRT: SchedulerSerialExecutor: schedule group \(group.id) belongs to another scheduler")
        }
        self.scheduler = scheduler
        self.group = group
        self.drainBudget = drainBudget
    }

    /// Queues a job. [SE-0392 `SerialExecutor.enqueue(_:)`]
    public func enqueue(_ job: consuming ExecutorJob) {
        let bits = unsafeBitCast(UnownedJob(job), to: UInt.self)
        queue.withLock { $0.pushBack(bits) }
        if state.wrappingAdd(1, ordering: .acquiringAndReleasing).oldValue == 0 {
            scheduleDrain()
        }
    }

    /// SE-0392 `asUnownedSerialExecutor()`.
    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    /// True when the caller runs a job of this executor (on any pthread:
    /// the check follows the context). [SE-0424 `checkIsolated()`'s
    /// non-trapping form, Swift 6.2 `isIsolatingCurrentContext()`]
    public func isIsolatingCurrentContext() -> Bool? {
        guard Context.currentInternal != nil else { return false }
        return Self.current.value == ObjectIdentifier(self)
    }

    /// Traps unless the caller runs a job of this executor; what
    /// `assumeIsolated` and `preconditionIsolated` fall back to when the
    /// runtime's own executor tracking does not match. [SE-0424 `checkIsolated()`]
    public func checkIsolated() {
        if isIsolatingCurrentContext() != true {
            preconditionFailure("ConcRT: not isolated to SchedulerSerialExecutor \(ObjectIdentifier(self)) "
                                + "(the caller is not running one of its jobs)")
        }
    }

    // MARK: Drains

    private func scheduleDrain() {
        // The +1 keeps the executor alive while the drain is queued;
        // SwiftJobItem.run takes it back.
        let raw = Unmanaged.passRetained(self).toOpaque()
        let bits = UInt(bitPattern: raw)
        precondition(bits & SwiftJobItem.tagMask == 0, "ConcRT: executor object is not 16-byte aligned")
        let item = UnsafeMutableRawPointer(bitPattern: bits | SwiftJobItem.serialDrainTag)!
        if let group {
            guard scheduler.enqueueSwiftItem(item, group: group) else { return drainStopped() }
        } else if !scheduler.enqueueSwiftItem(item) {
            drainStopped()
        }
    }

    /// The scheduler has stopped: drain on a plain pthread of its own, so
    /// no job is lost (the jobs stay serialized: this drain owns the count).
    private func drainStopped() {
        let me = Unmanaged.passUnretained(self)   // carries scheduleDrain's +1
        let body: @Sendable () -> Void = { me.takeRetainedValue().drainOffScheduler() }
        do {
            let tid = try spawnPThread(body)
            pthread_detach(tid)
        } catch {
            preconditionFailure("ConcRT: SchedulerSerialExecutor: the scheduler was shut down and no thread "
                                + "could be started to run the remaining jobs: \(error)")
        }
    }

    /// Runs up to ``drainBudget`` jobs on the calling context; reschedules
    /// itself when jobs remain.
    func drain() {
        let me = ObjectIdentifier(self)
        var ran = 0
        var more = true
        Self.current.withValue(me) {
            SwiftJobItem.withJobTracking {
                while ran < drainBudget {
                    let job = popJob()
                    job.runSynchronously(on: asUnownedSerialExecutor())
                    ran += 1
                    if state.wrappingSubtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
                        more = false
                        return
                    }
                }
            }
        }
        scheduler.asyncJobFinished()
        if more { scheduleDrain() }
    }

    /// After the scheduler stopped: drain everything on this thread.
    private func drainOffScheduler() {
        while true {
            popJob().runSynchronously(on: asUnownedSerialExecutor())
            if state.wrappingSubtract(1, ordering: .acquiringAndReleasing).newValue == 0 { return }
        }
    }

    private func popJob() -> UnownedJob {
        // The count said a job is there, and its push preceded its increment.
        guard let bits = queue.withLock({ $0.popFront() }) else {
            preconditionFailure("ConcRT: SchedulerSerialExecutor drain found an empty queue with jobs counted")
        }
        return unsafeBitCast(bits, to: UnownedJob.self)
    }
}

extension Scheduler {
    /// ``enqueueSwiftItem(_:)`` into a schedule group's queue.
    func enqueueSwiftItem(_ item: WorkItem, group: ScheduleGroup) -> Bool {
        outstanding.wrappingAdd(1, ordering: .sequentiallyConsistent)
        if stopped.load(ordering: .sequentiallyConsistent) {
            outstanding.wrappingSubtract(1, ordering: .releasing)
            return false
        }
        group.enqueue(item)
        idle.notifyWork()
        return true
    }
}
