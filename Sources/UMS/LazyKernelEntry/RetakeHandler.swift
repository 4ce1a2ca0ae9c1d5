/// What a scheduler tells the UMS monitor about one of its primaries, so
/// that a blocking call does not hold the primary's CPU. [no Windows
/// equivalent: the Windows kernel returned the CPU to the scheduler on its
/// own; here a monitor thread does it, as Go's sysmon retakes a P]
///
/// Give one to ``UMS/enterSchedulingMode(cpu:retakeHandler:_:)``. Then
/// ``UMS/blockingCall(_:)`` on that primary's threads runs inline (a call
/// that does not block costs about two atomic operations), and a call
/// still in the kernel after the monitor's threshold is *retaken*: the
/// monitor asks this handler to carry on the CPU's scheduling on another
/// pthread, and the calling pthread, once its call returns, queues its
/// thread on its completion list and leaves scheduling mode (see
/// ``UMSPrimary/isRetaken``).
///
/// The four retake methods are called on the monitor thread, one primary
/// at a time. They must not block for long: the monitor serves every
/// primary.
///
/// With `detectUnwrappedBlocking`, a thread found asleep in the kernel in
/// code with no wrapper is not retaken but *compensated for*: the monitor
/// calls ``beginCompensation()``, and ``endCompensation()`` follows once,
/// when the thread runs again (see `LazyKernelEntry/Compensation.swift`).
public protocol UMSRetakeHandler: AnyObject, Sendable {
    /// True when handing the CPU on is worth it: the scheduler has other
    /// work this CPU could run. False keeps the call inline (it costs
    /// nothing while nothing else waits).
    func shouldRetake() -> Bool
    /// Reserves a pthread that will carry on as this CPU's primary, parked
    /// until ``startReplacement()``. False when none can be had (for
    /// example pthread_create failed): the call is then simply waited for.
    func reserveReplacement() -> Bool
    /// The retake happened: start the reserved pthread as this CPU's new
    /// primary.
    func startReplacement()
    /// The call returned before the retake: give the reserved pthread back.
    func releaseReplacement()
    /// The primary's thread sleeps in the kernel in unwrapped code and
    /// other work waits: start something that runs beside it (ConcRT: a
    /// temporary virtual processor). Returns a token for what it started
    /// (given back to ``endCompensation(_:)``), or nil when it started
    /// nothing. Called on the monitor thread. The token is kept by the
    /// primary, not the handler: one handler may serve a CPU whose primary
    /// changed (a retake) while the old primary's compensation is ending.
    func beginCompensation() -> UMSCompensationToken?
    /// Cheap and side-effect free: would a compensation be worth starting
    /// now (other work waits)? The monitor asks before it pays for a look
    /// at the thread's CPU clock and /proc state.
    func compensationWanted() -> Bool
    /// The thread runs again (or its primary leaves scheduling mode): undo
    /// the begin that returned `token`. Called once per token, on the
    /// thread itself, the monitor thread, or the primary's pthread as it
    /// leaves.
    func endCompensation(_ token: UMSCompensationToken)
}

extension UMSRetakeHandler {
    /// No compensation: an unwrapped block holds the CPU.
    public func beginCompensation() -> UMSCompensationToken? { nil }
    public func compensationWanted() -> Bool { false }
    public func endCompensation(_ token: UMSCompensationToken) {}
}

/// What a ``UMSRetakeHandler`` started for one compensation (ConcRT: the
/// temporary virtual processor).
public typealias UMSCompensationToken = AnyObject & Sendable
