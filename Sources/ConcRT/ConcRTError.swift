/// Errors thrown by the ConcRT-style scheduler layer.
public enum ConcRTError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A policy value is out of range. [invalid_scheduler_policy_value]
    case invalidPolicy(String)
    /// The scheduler could not start (a primary thread failed to start).
    case schedulerStartFailed(String)
    /// The scheduler has been shut down. [scheduler_not_attached / invalid_operation]
    case schedulerShutDown
    /// `shutdown(timeout:)` ran out of time with tasks still pending.
    case shutdownTimedOut(pendingTasks: Int)
    /// A context was unblocked twice without blocking in between.
    /// [context_unblock_unbalanced]
    case unbalancedUnblock
    /// A context tried to unblock itself. [context_self_unblock]
    case selfUnblock
    /// `Context.block()` or `yield()` was called outside a scheduler context.
    case notOnContext
    /// `oversubscribe(false)` without a matching `oversubscribe(true)`.
    case unbalancedOversubscription
    /// ``Scheduler/installAsGlobalExecutor()`` could not install the
    /// scheduler (another one is installed, or the runtime lacks the hook).
    case globalExecutorUnavailable(String)
    /// A diagnostics request that cannot be honoured (names why).
    case diagnosticsUnavailable(String)

    public var description: String {
        switch self {
        case .invalidPolicy(let s): return "ConcRT: invalid scheduler policy: \(s)"
        case .schedulerStartFailed(let s): return "ConcRT: scheduler could not start: \(s)"
        case .schedulerShutDown: return "ConcRT: the scheduler has been shut down"
        case .shutdownTimedOut(let n): return "ConcRT: shutdown timed out with \(n) task(s) still pending"
        case .unbalancedUnblock: return "ConcRT: context unblocked twice without a block in between"
        case .selfUnblock: return "ConcRT: a context cannot unblock itself"
        case .notOnContext: return "ConcRT: not running on a scheduler context"
        case .unbalancedOversubscription: return "ConcRT: oversubscribe(false) without a matching oversubscribe(true)"
        case .globalExecutorUnavailable(let s): return "ConcRT: cannot install the global executor: \(s)"
        case .diagnosticsUnavailable(let s): return "ConcRT: \(s)"
        }
    }
}
