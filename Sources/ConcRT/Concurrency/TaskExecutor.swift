import CSupport
import Synchronization
import UMS

/// The scheduler as a Swift `TaskExecutor` (SE-0417).
/// [no ConcRT name; Swift: `TaskExecutor`, `Task(executorPreference:)`,
/// `withTaskExecutorPreference(_:operation:)`,
/// `TaskGroup.addTask(executorPreference:)`]
///
/// ```swift
/// let scheduler = try Scheduler()
/// let sum = await Task(executorPreference: scheduler) {
///     try! Blocking.sleep(.milliseconds(2))   // the VP runs other jobs meanwhile
///     return await withTaskGroup(of: Int.self) { g in
///         for i in 0..<4 { g.addTask { i } }  // children inherit the preference
///         return await g.reduce(0, +)
///     }
/// }.value
/// ```
///
/// Each job is an ordinary work item: its record pointer, tagged, goes on
/// the enqueuing context's own deque (LIFO for that VP, stealable by the
/// others) or, from outside the scheduler, on the injection queue. No heap
/// allocation per job. A job runs on a context like any task, so a
/// ``Blocking`` call, an ``Event`` wait or a lock inside it gives the
/// virtual processor back exactly as a task does.
///
/// Thread identity and task-locals across hops:
/// - Swift task-locals (`@TaskLocal`), `Task.isCancelled`,
///   `withUnsafeCurrentTask` and the current executor stay right across a
///   blocking call or cooperative wait inside a job, although the job then
///   continues on another pthread: the runtime's thread-locals move with
///   the context (`csup_swift_tls.h`).
/// - `pthread_self()`, C and Swift thread-locals, `Thread.current` are the
///   pthread's, not the task's: they can change after any `await`, any
///   ``Blocking`` call, event wait or lock. Use task-locals (across awaits)
///   or ``ContextLocal`` (within one synchronous job) instead.
/// - Inside a ``Blocking`` call's closure (run by a pooled kernel thread)
///   the task's task-locals are visible too (the slots are lent to that
///   thread for the call); ``ContextLocal`` values are not.
///
/// Shutdown: ``Scheduler/shutdown(timeout:)`` waits for every job already
/// enqueued (they count as pending tasks), including delayed ones
/// (`Task.sleep` under ``Scheduler/installAsGlobalExecutor()``). A task
/// suspended on something else is not a job and is not waited for: when it
/// resumes after the scheduler has stopped, its job goes to Swift's default
/// global concurrent executor instead (nothing is lost, but it no longer
/// runs on this scheduler). Await such tasks before shutting down.
extension Scheduler: TaskExecutor {
    /// Queues a job of a task that prefers this executor. [SE-0417 `TaskExecutor.enqueue(_:)`]
    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        if !enqueueSwiftItem(SwiftJobItem.item(unowned, tag: SwiftJobItem.taskExecutorTag)) {
            // Stopped: hand the job to Swift's default executor, still
            // preferring it (a task executor that no longer runs anything).
            globalConcurrentExecutor.enqueue(ExecutorJob(unowned))
        }
    }

    /// SE-0417 `asUnownedTaskExecutor()`.
    public func asUnownedTaskExecutor() -> UnownedTaskExecutor {
        UnownedTaskExecutor(ordinary: self)
    }

    /// Queues a tagged Swift item as a pending task, unless the scheduler
    /// has stopped (then returns false and queues nothing).
    ///
    /// Protocol with ``shutdown(timeout:)``: the item is counted in
    /// `outstanding` (seq_cst RMW) before `stopped` is read (seq_cst). The
    /// shutdown sets `stopped` before `stopping`, and a VP leaves only after
    /// it read `stopping` and then `outstanding == 0`. So either this read
    /// sees `stopped` (nothing queued), or the count was taken before
    /// any VP's final check and the VPs stay until the item has run.
    func enqueueSwiftItem(_ item: WorkItem) -> Bool {
        outstanding.wrappingAdd(1, ordering: .sequentiallyConsistent)
        if stopped.load(ordering: .sequentiallyConsistent) {
            outstanding.wrappingSubtract(1, ordering: .releasing)
            return false
        }
        if let vp = Context.currentVirtualProcessor(of: ObjectIdentifier(self)) {
            vp._withUnsafeGuaranteedRef { $0.push(item) }
        } else {
            inject(item)
        }
        return true
    }

    /// A Swift job item has run (balances ``enqueueSwiftItem(_:)``).
    @inline(__always)
    func asyncJobFinished() {
        outstanding.wrappingSubtract(1, ordering: .releasing)
    }
}
