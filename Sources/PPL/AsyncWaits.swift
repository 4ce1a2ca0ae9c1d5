import ConcRT
import Synchronization

/// Async waits on PPL work: the Swift task suspends, no thread blocks.
///
/// Cancellation: a canceled Swift task cancels the PPL work it waits
/// through where it owns that work's cancellation: awaiting a
/// ``TaskGroup`` cancels the group (its queued tasks are discarded,
/// running ones see ``isTaskCancellationRequested()``) and then waits for
/// it to finish, returning `.canceled`; awaiting a ``Future`` cannot cancel
/// it (its token belongs to whoever made it), so the wait ends at once
/// with `CancellationError` and the future runs on.
extension Future {
    /// The value, or the task's error, once the future completes.
    /// [task::get, async]
    /// - Throws: the task's error (``TaskCanceled`` for a canceled
    ///   future), or `CancellationError` when the awaiting Swift task is
    ///   canceled first.
    public var value: Value {
        get async throws {
            try Task.checkCancellation()
            let box = MigrationSafeMutex<OnceResumer<Value>?>(nil)
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (c: CheckedContinuation<Value, any Error>) in
                    let r = OnceResumer(c)
                    box.withLock { $0 = r }
                    onComplete { result in r.resume(with: result) }
                }
            } onCancel: {
                box.withLock { $0 }?.resume(with: .failure(CancellationError()))
            }
        }
    }
}

extension TaskGroup {
    /// Waits for every task without blocking a thread; the async form of
    /// ``wait()`` (same results and cancellation contract). If the awaiting
    /// Swift task is canceled, the group is canceled (``cancel()``) and the
    /// wait goes on until its running tasks finish: the result is then
    /// `.canceled`. [task_group::wait, async]
    @discardableResult
    public func waitAsync() async throws -> TaskGroupStatus {
        try await withTaskCancellationHandler {
            try await scheduler.runAsync { [self] in try wait() }
        } onCancel: {
            cancel()
        }
    }
}
