import ConcRT
import Synchronization

/// The origin of a pending `send`/`asend` whose offer was postponed: the
/// target later reserves and consumes the message from it (or tells it the
/// target shut down), which wakes the sender.
///
/// Protocol: `state` moves pending → reserved (reserve, CAS) → consumed
/// (consume) or back to pending (release); pending → shutDown
/// (targetShutDown, CAS). Only consume and targetShutDown finish the send,
/// each at most once (the Parker's claim makes the wake exactly-once).
/// All transitions are acquire-release, so the message the sender wrote is
/// seen by the reserving target and the sender sees the outcome.
@usableFromInline
final class SendOrigin<T: Sendable>: MessageOrigin, @unchecked Sendable {
    // @unchecked Sendable: `message` is immutable; `state` is atomic.
    static var pending: Int { 0 }
    static var reserved: Int { 1 }
    static var consumed: Int { 2 }
    static var shutDown: Int { 3 }

    let message: T
    let parker: Parker?
    let state = Atomic<Int>(0)

    @usableFromInline
    init(_ message: T, parker: Parker?) {
        self.message = message
        self.parker = parker
    }

    @usableFromInline func reserve(for target: ObjectIdentifier) -> T? {
        state.compareExchange(expected: Self.pending, desired: Self.reserved,
                              ordering: .acquiringAndReleasing).exchanged ? message : nil
    }

    @usableFromInline func consume(for target: ObjectIdentifier) {
        let (ok, seen) = state.compareExchange(expected: Self.reserved, desired: Self.consumed,
                                               ordering: .acquiringAndReleasing)
        precondition(ok, "Agents: consume without a reservation (send origin in state \(seen))")
        finish(0)
    }

    @usableFromInline func release(for target: ObjectIdentifier) {
        let (ok, seen) = state.compareExchange(expected: Self.reserved, desired: Self.pending,
                                               ordering: .acquiringAndReleasing)
        precondition(ok, "Agents: release without a reservation (send origin in state \(seen))")
    }

    @usableFromInline func targetShutDown(_ target: ObjectIdentifier) {
        if state.compareExchange(expected: Self.pending, desired: Self.shutDown,
                                 ordering: .acquiringAndReleasing).exchanged { finish(1) }
    }

    private func finish(_ code: Int) {
        if let p = parker, p.claim() { p.wake(result: code) }
    }
}

/// Sends `message` to `target` and waits until the target accepts or
/// declines it. Returns true when accepted. Waiting blocks the context, not
/// its thread (and parks a plain pthread on a futex). [send]
/// - Throws: the target's refusal: ``AgentsError/shutDown(_:)``,
///   ``AgentsError/alreadyAssigned``.
@inlinable @discardableResult
public func send<T: Sendable>(_ target: some MessageTarget<T>, _ message: T) throws(AgentsError) -> Bool {
    switch target.offer(message, from: nil) {
    case .accepted: return true
    case .declined: return false
    case .refused(let e): throw e
    case .postponed: return try sendSlow(target, message)
    }
}

/// ``send(_:_:)`` once the target postponed: offer again with an origin and wait.
@inlinable
func sendSlow<T: Sendable>(_ target: some MessageTarget<T>, _ message: T) throws(AgentsError) -> Bool {
    let p = Parker()
    let origin = SendOrigin(message, parker: p)
    switch target.offer(message, from: origin) {
    case .accepted: return true
    case .declined: return false
    case .refused(let e): throw e
    case .postponed:
        if p.park() == 0 { return true }
        throw .shutDown("the target of a pending send")
    }
}

/// Sends `message` to `target` without waiting. Returns true when the
/// target accepted it before returning; a postponed message (a full
/// ``BoundedBuffer``, a non-greedy ``Join`` input) stays registered and is
/// taken later, in order; a declined one is dropped. [asend]
/// - Throws: the target's refusal, as ``send(_:_:)``.
@inlinable @discardableResult
public func asend<T: Sendable>(_ target: some MessageTarget<T>, _ message: T) throws(AgentsError) -> Bool {
    switch target.offer(message, from: nil) {
    case .accepted: return true
    case .declined: return false
    case .refused(let e): throw e
    case .postponed: break
    }
    switch target.offer(message, from: SendOrigin(message, parker: nil)) {
    case .accepted: return true
    case .declined, .postponed: return false
    case .refused(let e): throw e
    }
}

/// Waits for a message from `source` (nil timeout: forever). [receive]
/// - Throws: ``AgentsError/timeout(_:)``, ``AgentsError/shutDown(_:)``.
@inlinable
public func receive<T: Sendable>(_ source: some MessageSource<T>, timeout: Duration? = nil) throws(AgentsError) -> T {
    try source.receive(timeout: timeout)
}

/// Takes a message from `source` if one is ready. [try_receive]
@inlinable
public func tryReceive<T: Sendable>(_ source: some MessageSource<T>) -> T? {
    source.tryReceive()
}
