import ConcRT

/// The "one current value" semantics shared by ``OverwriteBuffer``,
/// ``SingleAssignment`` and ``Choice``: a receive reads the value without
/// consuming it (waiting while there is none), and every value stored is
/// broadcast to every linked target. [the core of overwrite_buffer and
/// single_assignment]
///
/// Protocol: state under one `MigrationSafeMutex` (acquire/release), never
/// held while calling another block, a filter, or parking. Storing a value
/// takes every waiting receiver (each woken once, through its Parker's
/// claim: a timed-out one is skipped) and queues the value for broadcast;
/// one propagator at a time (`propagating`) offers queued values, in order,
/// to every link, so each link sees the values in the order they were
/// stored. A target that postponed gets the current value from `reserve`
/// (reserving copies: nothing is taken away, so consume and release do
/// nothing). A link made after a value was stored is offered that value
/// through the same queue (to it alone), so it sees values in order too.
public class ValueBlock<T: Sendable>: MessageSource, MessageOrigin, @unchecked Sendable {
    // @unchecked Sendable: mutable state is in `state`, under its lock.
    struct State {
        var value: T?
        var receivers: [ReceiveWaiter<T>] = []
        var links: [Link<T>] = []
        /// Values to broadcast, in order; a non-nil id: offer to that
        /// link only (the current value, for a link made late).
        var pending = Ring<(T, ObjectIdentifier?)>()
        var propagating = false
        var closed = false
    }

    let once: Bool
    let name: String
    private let state = MigrationSafeMutex(State())

    init(once: Bool, name: String) {
        self.once = once
        self.name = name
    }

    private var selfID: ObjectIdentifier { ObjectIdentifier(self) }

    /// True once a value is held.
    public var hasValue: Bool { state.withLock { $0.value != nil } }

    /// Stores `m` (refused once shut down, or when `once` and a value is held).
    func store(_ m: T) -> OfferStatus {
        var waiters: [ReceiveWaiter<T>] = []
        var startProp = false
        let status: OfferStatus = state.withLock { s in
            if s.closed { return .refused(.shutDown(name)) }
            if once && s.value != nil { return .refused(.alreadyAssigned) }
            s.value = m
            swap(&waiters, &s.receivers)
            if !s.links.isEmpty {
                s.pending.pushBack((m, nil))
                if !s.propagating { s.propagating = true; startProp = true }
            }
            return .accepted
        }
        for w in waiters where w.claim() {
            w.value = m
            w.wake()
        }
        if startProp { propagate() }
        return status
    }

    private func propagate() {
        while true {
            let job: ((T, ObjectIdentifier?), [Link<T>])? = state.withLock { s in
                guard let e = s.pending.popFront() else { s.propagating = false; return nil }
                return (e, s.links)
            }
            guard let ((m, only), links) = job else { return }
            for l in links where (only == nil || l.id == only) && l.passes(m) { _ = l.target.offer(m, from: self) }
        }
    }

    // MARK: MessageOrigin (copies: nothing is taken away)

    public func reserve(for target: ObjectIdentifier) -> T? { state.withLock { $0.value } }
    public func consume(for target: ObjectIdentifier) {}
    public func release(for target: ObjectIdentifier) {}
    public func targetShutDown(_ target: ObjectIdentifier) {
        state.withLock { s in s.links.removeAll { $0.id == target } }
    }

    // MARK: MessageSource

    public func link(to target: any MessageTarget<T>, filter: (@Sendable (T) -> Bool)?) throws(AgentsError) {
        if ObjectIdentifier(target) == selfID { throw .selfLink }
        let l = Link(target, filter: filter)
        // The current value goes through the broadcast queue (to this link
        // only), so a value stored meanwhile reaches it after, not before.
        let startProp: Bool = state.withLock { s in
            if s.links.contains(where: { $0.id == l.id }) { return false }
            s.links.append(l)
            guard let v = s.value else { return false }
            s.pending.pushBack((v, l.id))
            if s.propagating { return false }
            s.propagating = true
            return true
        }
        if startProp { propagate() }
    }

    @discardableResult
    public func unlink(_ target: any MessageTarget<T>) -> Bool {
        state.withLock { s in
            let n = s.links.count
            s.links.removeAll { $0.id == ObjectIdentifier(target) }
            return s.links.count != n
        }
    }

    /// The current value, if any (not consumed). [try_receive]
    public func tryReceive() -> T? { state.withLock { $0.value } }

    /// The current value, waiting for one (not consumed). [receive]
    public func receive(timeout: Duration? = nil) throws(AgentsError) -> T {
        if let v = tryReceive() { return v }
        if timeout == .zero { throw .timeout(.zero) }
        let w = ReceiveWaiter<T>()
        let o: ReceiveOutcome<T> = state.withLock { s in
            if let v = s.value { return .value(v) }
            if s.closed { return .closed }
            s.receivers.append(w)
            return .wait
        }
        switch o {
        case .value(let v): return v
        case .closed: throw .shutDown(name)
        case .wait: break
        }
        if let timeout {
            if w.park(timeout: timeout) == nil {
                state.withLock { s in s.receivers.removeAll { $0 === w } }
                throw .timeout(timeout)
            }
        } else {
            _ = w.park()
        }
        guard let v = w.value else { throw .shutDown(name) }
        return v
    }

    /// Refuses new values and releases waiting receivers with
    /// ``AgentsError/shutDown(_:)``; a value already held stays readable.
    public func shutdown() {
        let ws: [ReceiveWaiter<T>] = state.withLock { s in
            s.closed = true
            var t: [ReceiveWaiter<T>] = []
            swap(&t, &s.receivers)
            return t
        }
        for w in ws where w.claim() { w.wake(result: 1) }
    }
}

/// Holds the latest value: each new one replaces it and is broadcast to
/// every linked target; receives read it without consuming it.
/// [concurrency::overwrite_buffer]
public final class OverwriteBuffer<T: Sendable>: ValueBlock<T>, MessageTarget, @unchecked Sendable {
    public init() { super.init(once: false, name: "OverwriteBuffer") }

    public func offer(_ message: T, from origin: (any MessageOrigin<T>)?) -> OfferStatus { store(message) }
}

/// Takes the first value only and keeps it: receives read it without
/// consuming it; it is broadcast to every linked target.
/// [concurrency::single_assignment]
///
/// A second value is refused: ``send(_:_:)`` and ``asend(_:_:)`` throw
/// ``AgentsError/alreadyAssigned`` (agents.h declines it silently); a
/// linked source just sees the offer not taken.
public final class SingleAssignment<T: Sendable>: ValueBlock<T>, MessageTarget, @unchecked Sendable {
    public init() { super.init(once: true, name: "SingleAssignment") }

    public func offer(_ message: T, from origin: (any MessageOrigin<T>)?) -> OfferStatus { store(message) }

    /// Assigns the value. - Throws: ``AgentsError/alreadyAssigned``,
    /// ``AgentsError/shutDown(_:)``.
    public func assign(_ value: T) throws(AgentsError) {
        if case .refused(let e) = store(value) { throw e }
    }
}
