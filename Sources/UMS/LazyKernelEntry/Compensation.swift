import Synchronization

/// Unwrapped-block compensation: when a primary's thread sleeps in the
/// kernel in code the runtime was not told about (a plain `read(2)`,
/// `pthread_mutex_lock`, a C library's wait), the monitor asks the
/// primary's ``UMSRetakeHandler`` to run something beside it (ConcRT starts
/// a temporary virtual processor), and ends that when the thread runs
/// again. The thread keeps its primary and everything the layer above
/// keeps per primary. [ConcRT's Context::Oversubscribe, started by the
/// monitor instead of the task; Windows UMS returned the CPU from inside
/// the kernel, which Linux cannot do]
///
/// Why not hand the primary's CPU to another pthread, as a wrapped call's
/// retake does? A wrapped call is retaken while its thread is inside
/// ``UMS/blockingCall(_:)``, where the runtime controls what it does next
/// (the leave-CAS fails and it goes through the completion list). An
/// unwrapped block ends wherever the user's code is, and the thread then
/// runs on: any runtime call it makes before noticing the retake touches
/// per-primary state the replacement now owns. Closing that window needs
/// an atomic read-modify-write (or an asymmetric fence) at every entry into
/// the runtime and every return to user code; ThreadSanitizer found the
/// window when there was only a check. Compensation moves nothing, so
/// there is no window to close.
///
/// Protocol (`UMSPrimary.compensation`, one byte per primary):
///
///     idle (0) ── monitor: handler.beginCompensation() true, then
///                 store active (release) ──▶ active (1)
///     active ──── CAS active → ending (acquire-release), by the thread at
///                 a runtime entry, the monitor when the thread runs again,
///                 or the primary leaving scheduling mode ──▶ ending (2)
///     ending ──── the CAS winner: handler.endCompensation(), then store
///                 idle (release) ──▶ idle
///
/// - Only the monitor begins, and only from idle, so begins never overlap.
/// - Exactly one ender wins the CAS per begin, so each begin is ended once.
/// - The handler's token is kept by the primary (`compensationToken`):
///   written by the monitor before the release store of `active`, read and
///   cleared by the winner after its CAS (acquire) and before the release
///   store of `idle`, which the monitor's next begin reads (acquire). The
///   handler keeps no state of its own, because one handler serves a CPU
///   whose primary can change (a wrapped call's retake, a temporary VP's
///   slot reused) while the old primary's compensation is still ending.
/// - The thread's check at a runtime entry is one relaxed load: a stale
///   `idle` only leaves the compensation to the monitor's next look.
///
/// The model is `Tests/Models/compensation.pml`.
enum Compensation {
    static let idle: UInt8 = 0
    static let active: UInt8 = 1
    static let ending: UInt8 = 2
}

extension UMSPrimary {
    /// Monitor thread: starts a compensation for this primary's blocked
    /// thread through `handler`. True when one started.
    func beginCompensation(_ handler: any UMSRetakeHandler) -> Bool {
        // Acquire: the previous end (and its clearing of the token) happened
        // before.
        guard compensation.load(ordering: .acquiring) == Compensation.idle else { return false }
        guard let token = handler.beginCompensation() else { return false }
        compensationToken = token
        compensation.store(Compensation.active, ordering: .releasing)
        return true
    }

    /// Ends this primary's compensation if one is active (any thread).
    /// True for the caller that ended it.
    @discardableResult
    func endCompensationIfActive() -> Bool {
        guard compensation.compareExchange(expected: Compensation.active, desired: Compensation.ending,
                                           ordering: .acquiringAndReleasing).exchanged else { return false }
        // Why this is sound: the token was written before the release store
        // of `active` that this CAS read; it is cleared before the release
        // store of `idle`, which the next begin reads first.
        guard let token = compensationToken else {
            preconditionFailure("UMS: a compensation was active without a token")
        }
        compensationToken = nil
        monitorEntry?.handler.endCompensation(token)
        compensation.store(Compensation.idle, ordering: .releasing)
        return true
    }

    /// True while a compensation is active or ending.
    public var isCompensating: Bool { compensation.load(ordering: .relaxed) != Compensation.idle }
}
