import Synchronization
import UMS

/// Async entry points: suspend the Swift task, never block a thread of the
/// caller's executor. Each hands a small task to the scheduler, which runs
/// (or waits) on a context and resumes the continuation once.
///
/// Resume-once protocol: a `OnceResumer` holds the continuation; the
/// first of the completer and the cancellation handler to win its
/// exchange (acq_rel) resumes it, the other does nothing.
/// Resumes a checked continuation exactly once, whoever comes first
/// (a completion or a cancellation handler). Used by the async entry points
/// here and in PPL.
public final class OnceResumer<T: Sendable>: @unchecked Sendable {
    // @unchecked Sendable: `continuation` is written before publication and
    // taken by the single winner of `done`.
    private let done = Atomic<Bool>(false)
    private let continuation: CheckedContinuation<T, any Error>
    public init(_ c: CheckedContinuation<T, any Error>) { continuation = c }
    /// True for the caller that resumed.
    @discardableResult
    public func resume(with r: Result<T, any Error>) -> Bool {
        if done.exchange(true, ordering: .acquiringAndReleasing) { return false }
        continuation.resume(with: r)
        return true
    }
}

extension Scheduler {
    /// Runs `body` as a task on this scheduler and suspends the caller
    /// until it returns; rethrows its error. The async form of
    /// ``run(_:)``: no thread of the caller's executor is blocked.
    /// Cancellation of the awaiting Swift task does not stop `body` (it is
    /// queued or running as a ConcRT task, outside the Swift task, so it
    /// sees no Swift cancellation); the caller still gets its result.
    /// [no ConcRT name; Scheduler::ScheduleTask + a completion]
    public func runAsync<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
            let r = OnceResumer(c)
            scheduleTask { r.resume(with: Result { try body() }) }
        }
    }
}

extension Event {
    /// Suspends the calling Swift task until the event is signaled.
    /// [event::wait, async]
    ///
    /// A context of `scheduler` (default: ``Scheduler/current`` or
    /// ``Scheduler/default``) waits on the event and on a private cancel
    /// event; the Swift task itself only suspends. If the task is canceled
    /// first, the helper is released and `CancellationError` is thrown.
    public func wait(on scheduler: Scheduler? = nil) async throws {
        if isSet { return }
        try Task.checkCancellation()
        let s = scheduler ?? Scheduler.current ?? .default
        let cancel = Event()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                let r = OnceResumer(c)
                s.scheduleTask { [self] in
                    let which = Event.waitForMultiple([self, cancel], waitAll: false, timeout: nil)
                    r.resume(with: which == 0 ? .success(()) : .failure(CancellationError()))
                }
            }
        } onCancel: {
            cancel.set()
        }
    }
}
