import ConcRT
import CSupport

/// The queue semantics shared by ``UnboundedBuffer``, ``BoundedBuffer``,
/// the output of ``Transformer``, ``Join`` and ``TimerBlock``: messages
/// are kept in FIFO order and each is delivered to exactly one receiver or
/// linked target. [the propagation core of agents.h's source blocks]
///
/// Protocol. All state is under one lock (CSupport's `csup_lock`, the futex
/// mutex under `MigrationSafeMutex`, with no thread identity, so safe on
/// migrating contexts; acquire/release ordering; its critical sections are
/// a few loads and stores). It is used directly, inlinable, so that code
/// specialized in the client never calls a generic function unspecialized. The lock is never held while calling another block (an offer,
/// a reserve), a filter, or while parking, so a network of blocks cannot
/// deadlock on block locks, cycles included.
/// - Delivery order: a message arriving goes (1) to the oldest waiting
///   receiver (receivers wait only while the queue is empty), else (2) to
///   the queue; when links exist, one propagator at a time (`propagating`)
///   pops the head into `inFlight` and offers it to the links in link
///   order outside the lock. Accepted: delivered. Declined or postponed by
///   every link: it goes back to the head (or to a receiver that began
///   waiting meanwhile) and propagation stops until something changes
///   (a new message, a link, a consume or release: `kick`). Because only the
///   propagator moves messages to links, each link sees them in order.
/// - Reservation (``MessageOrigin``): a target that postponed takes a
///   message later with `reserve` (the head), then `consume` or `release`
///   (back to the head). While a message is reserved, propagation pauses,
///   so order is kept. The in-flight message is never reserved (its target
///   may be accepting it at that moment: it would be delivered twice);
///   such a reserve gets nothing and sets `again`, so the propagator offers
///   it once more if nobody accepts it: the asking target is not forgotten.
/// - Capacity (``BoundedBuffer``): occupancy counts the queue, the in-flight
///   and reserved message, and a slot held by the puller. An offer to a full
///   block (or one with senders already waiting: FIFO) registers its origin
///   in `postponed` and returns `.postponed`. Whenever a slot frees, one
///   puller at a time (`puller`) takes origins in order, reserves and
///   consumes a message from each, and queues it.
/// - Shutdown: refuses offers; wakes waiting receivers with "shut down"
///   (they get the queue's remaining messages first: receivers wait only
///   when it is empty) and tells every postponed origin.
/// Every receiver or sender is woken through a ``Parker`` whose `claim()`
/// makes the wake exactly-once even against its own timeout.
/// Debug builds assert the invariants: occupancy never exceeds capacity;
/// receivers wait only while the queue is empty; a consume or release
/// comes from the target holding the reservation.
public class QueueBlock<T: Sendable>: MessageSource, MessageOrigin, @unchecked Sendable {
    // @unchecked Sendable: every mutable field is in `state`, under its lock.
    @usableFromInline
    struct State {
        @usableFromInline let items: HotRing<T>
        @usableFromInline let receivers = Ring<ReceiveWaiter<T>>()
        @usableFromInline var links: [Link<T>] = []
        @usableFromInline let postponed = Ring<any MessageOrigin<T>>()
        @usableFromInline var puller = false
        @usableFromInline var pullerHolding = false
        @usableFromInline var propagating = false
        @usableFromInline var again = false
        @usableFromInline var inFlight: T?
        @usableFromInline var reserved: T?
        @usableFromInline var reservedFor: ObjectIdentifier?
        @usableFromInline var closed = false

        @inlinable init(items: HotRing<T>) { self.items = items }

        @inlinable var occupancy: Int {
            items.count + (inFlight == nil ? 0 : 1) + (reserved == nil ? 0 : 1) + (pullerHolding ? 1 : 0)
        }
    }

    /// Messages it holds at most (Int.max: unbounded).
    public let capacity: Int
    @usableFromInline let name: String
    /// The lock word and the ring header share one cache line (HotRing).
    @usableFromInline let lockWord: UnsafeMutablePointer<UInt32>
    /// Reached only inside `withLock`.
    @usableFromInline @exclusivity(unchecked) final var guarded: State

    @usableFromInline
    init(capacity: Int, name: String) {
        precondition(capacity >= 1, "Agents: a queue block needs capacity >= 1 (got \(capacity))")
        self.capacity = capacity
        self.name = name
        let ring = HotRing<T>.make()
        lockWord = ring.lockWord
        guarded = State(items: ring)
    }

    deinit { guarded.items.destroy() }

    /// Runs `body` on the state under the block's lock.
    @inlinable @inline(__always)
    final func withLock<R>(_ body: (inout State) -> R) -> R {
        csup_lock_acquire(lockWord)
        defer { csup_lock_release(lockWord) }
        // Why this is sound: `guarded` is only reached here, under the lock,
        // and `body` never re-enters the block (file doc).
        return body(&guarded)
    }

    @inlinable var selfID: ObjectIdentifier { ObjectIdentifier(self) }

    /// Number of messages queued now (not counting one being offered).
    public var count: Int { withLock { $0.items.count } }

    /// True once ``shutdown()`` ran.
    public var isShutDown: Bool { withLock { $0.closed } }

    // MARK: lock-held helpers

    /// The oldest receiver that can still be woken (a timed-out one lost its
    /// claim and is skipped).
    @inlinable static func claimReceiver(_ s: inout State) -> ReceiveWaiter<T>? {
        while let w = s.receivers.popFront() {
            if w.claim() { return w }
        }
        return nil
    }

    /// Starts the puller if a slot is free and senders wait.
    @inlinable func maybeStartPull(_ s: inout State) -> Bool {
        if s.puller || s.closed || s.postponed.isEmpty || s.occupancy >= capacity { return false }
        s.puller = true
        return true
    }

    /// Asks for propagation: true when the caller must run it.
    @inlinable static func kick(_ s: inout State) -> Bool {
        if s.links.isEmpty || s.reserved != nil || s.items.isEmpty { return false }
        if s.propagating { s.again = true; return false }
        s.propagating = true
        return true
    }

    // MARK: arrival

    /// A message arriving from a send or a linked source.
    @inlinable
    func enqueue(_ m: T, from origin: (any MessageOrigin<T>)?) -> OfferStatus {
        var waiter: ReceiveWaiter<T>?
        var startProp = false, startPull = false
        let status: OfferStatus = withLock { s in
            if s.closed { return .refused(.shutDown(name)) }
            if s.occupancy >= capacity || !s.postponed.isEmpty {
                if let origin, !s.postponed.contains(where: { $0 === origin }) {
                    s.postponed.pushBack(origin)
                    startPull = maybeStartPull(&s)
                }
                return .postponed
            }
            if let w = Self.claimReceiver(&s) {
                assert(s.items.isEmpty, "QueueBlock: a receiver waited while messages were queued")
                w.value = m
                waiter = w
                return .accepted
            }
            s.items.pushBack(m)
            assert(s.occupancy <= capacity, "QueueBlock: \(s.occupancy) messages held, capacity \(capacity)")
            startProp = Self.kick(&s)
            return .accepted
        }
        waiter?.wake()
        if startPull { runPuller() }
        if startProp { propagate() }
        return status
    }

    // MARK: propagation

    @inlinable
    func propagate() {
        while true {
            let job: (T, [Link<T>])? = withLock { s in
                s.again = false
                guard s.reserved == nil, !s.links.isEmpty, let m = s.items.popFront() else {
                    s.propagating = false
                    return nil
                }
                s.inFlight = m
                return (m, s.links)
            }
            guard let (m, links) = job else { return }
            var done = false
            var startPull = false
            for l in links where l.passes(m) {
                let st = l.target.offer(m, from: self)
                if st == .accepted {
                    withLock { s in
                        s.inFlight = nil
                        startPull = maybeStartPull(&s)
                    }
                    done = true
                }
                if done { break }
            }
            if startPull { runPuller() }
            if done { continue }
            // Nobody took it: back to a receiver (its slot frees) or the head.
            var waiter: ReceiveWaiter<T>?
            var pull = false
            let stop: Bool = withLock { s in
                s.inFlight = nil
                if let w = Self.claimReceiver(&s) {
                    w.value = m
                    waiter = w
                    pull = maybeStartPull(&s)
                    return false
                }
                s.items.pushFront(m)
                if s.again { return false }
                s.propagating = false
                return true
            }
            waiter?.wake()
            if pull { runPuller() }
            if stop { return }
        }
    }

    /// Takes postponed messages in order while slots are free.
    @inlinable
    func runPuller() {
        while true {
            let next: (any MessageOrigin<T>)? = withLock { s in
                guard !s.closed, s.occupancy < capacity, let o = s.postponed.popFront() else {
                    s.puller = false
                    return nil
                }
                s.pullerHolding = true
                return o
            }
            guard let origin = next else { return }
            let m = origin.reserve(for: selfID)
            if m != nil { origin.consume(for: selfID) }
            var waiter: ReceiveWaiter<T>?
            var startProp = false
            withLock { s in
                s.pullerHolding = false
                guard let m else { return }
                if let w = Self.claimReceiver(&s) {
                    w.value = m
                    waiter = w
                } else {
                    s.items.pushBack(m)
                    assert(s.occupancy <= capacity, "QueueBlock: puller overfilled: \(s.occupancy) > \(capacity)")
                    startProp = Self.kick(&s)
                }
            }
            waiter?.wake()
            if startProp { propagate() }
        }
    }

    // MARK: MessageOrigin

    public func reserve(for target: ObjectIdentifier) -> T? {
        withLock { s in
            if s.reserved != nil { return nil }
            if s.inFlight != nil {
                // A message is being offered right now. It cannot be taken
                // here (the target may be accepting it at this moment: it
                // would be delivered twice), and a later one would be out of
                // order. Nothing now; `again` makes the propagator offer the
                // message once more if this offer is not accepted, so the
                // asking target gets its chance.
                s.again = true
                return nil
            }
            guard let head = s.items.first else { return nil }
            if let l = s.links.first(where: { $0.id == target }), !l.passes(head) { return nil }
            _ = s.items.popFront()
            s.reserved = head
            s.reservedFor = target
            return head
        }
    }

    public func consume(for target: ObjectIdentifier) {
        var startPull = false, startProp = false
        withLock { s in
            precondition(s.reserved != nil && s.reservedFor == target, "Agents: consume without a reservation by this target")
            s.reserved = nil
            s.reservedFor = nil
            startPull = maybeStartPull(&s)
            startProp = Self.kick(&s)
        }
        if startPull { runPuller() }
        if startProp { propagate() }
    }

    public func release(for target: ObjectIdentifier) {
        var waiter: ReceiveWaiter<T>?
        var startProp = false, startPull = false
        withLock { s in
            precondition(s.reserved != nil && s.reservedFor == target, "Agents: release without a reservation by this target")
            let m = s.reserved!
            s.reserved = nil
            s.reservedFor = nil
            if let w = Self.claimReceiver(&s) {
                w.value = m
                waiter = w
                startPull = maybeStartPull(&s)
            } else {
                s.items.pushFront(m)
                startProp = Self.kick(&s)
            }
        }
        waiter?.wake()
        if startPull { runPuller() }
        if startProp { propagate() }
    }

    public func targetShutDown(_ target: ObjectIdentifier) {
        withLock { s in s.links.removeAll { $0.id == target } }
    }

    // MARK: MessageSource

    public func link(to target: any MessageTarget<T>, filter: (@Sendable (T) -> Bool)?) throws(AgentsError) {
        if ObjectIdentifier(target) == selfID { throw .selfLink }
        let startProp: Bool = withLock { s in
            if s.links.contains(where: { $0.id == ObjectIdentifier(target) }) { return false }
            s.links.append(Link(target, filter: filter))
            return Self.kick(&s)
        }
        if startProp { propagate() }
    }

    @discardableResult
    public func unlink(_ target: any MessageTarget<T>) -> Bool {
        withLock { s in
            let n = s.links.count
            s.links.removeAll { $0.id == ObjectIdentifier(target) }
            return s.links.count != n
        }
    }

    @inlinable
    public func tryReceive() -> T? {
        var startPull = false
        let m: T? = withLock { s in
            guard let m = s.items.popFront() else { return nil }
            startPull = maybeStartPull(&s)
            return m
        }
        if startPull { runPuller() }
        return m
    }

    @inlinable
    public func receive(timeout: Duration? = nil) throws(AgentsError) -> T {
        if let m = tryReceive() { return m }
        return try receiveSlow(timeout: timeout)
    }

    /// ``receive(timeout:)`` when nothing was queued.
    @inlinable
    func receiveSlow(timeout: Duration?) throws(AgentsError) -> T {
        if isShutDown { throw .shutDown(name) }
        if timeout == .zero { throw .timeout(.zero) }
        // Slow path: register a waiter (made outside the lock), re-checking.
        let w = ReceiveWaiter<T>()
        var startPull = false
        let o: ReceiveOutcome<T> = withLock { s in
            if let m = s.items.popFront() {
                startPull = maybeStartPull(&s)
                return .value(m)
            }
            if s.closed { return .closed }
            s.receivers.pushBack(w)
            return .wait
        }
        if startPull { runPuller() }
        switch o {
        case .value(let m): return m
        case .closed: throw .shutDown(name)
        case .wait: break
        }
        if let timeout {
            if w.park(timeout: timeout) == nil {
                withLock { s in s.receivers.removeAll { $0 === w } }
                throw .timeout(timeout)
            }
        } else {
            _ = w.park()
        }
        guard let m = w.value else { throw .shutDown(name) }
        return m
    }

    /// Shuts the block down: offers are refused from now on, waiting
    /// receivers and pending senders are released with
    /// ``AgentsError/shutDown(_:)``; queued messages can still be received.
    public func shutdown() {
        let (ws, os): ([ReceiveWaiter<T>], [any MessageOrigin<T>]) = withLock { s in
            if s.closed { return ([], []) }
            s.closed = true
            return (s.receivers.removeAllElements(), s.postponed.removeAllElements())
        }
        for w in ws where w.claim() { w.wake(result: 1) }
        for o in os { o.targetShutDown(selfID) }
    }
}

/// What a receive's locked re-check found.
@usableFromInline
enum ReceiveOutcome<T> { case value(T), closed, wait }
