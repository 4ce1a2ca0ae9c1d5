import ConcRT

/// Combines one message from each of its inputs into an array (in input
/// order) and offers the arrays from its output queue (receivers and linked
/// targets, as ``UnboundedBuffer``). [concurrency::join<T, join_type>]
///
/// - `.greedy` [greedy]: each input accepts every message at once and
///   queues it; an array is made whenever every input holds one. Messages
///   of one input are used in arrival order.
/// - `.nonGreedy` [non_greedy]: inputs take nothing until every input has
///   been offered a message; then the join reserves one from each origin
///   and consumes them all, or releases them all if any is gone, so no
///   message is held by a join that cannot complete. A direct ``send(_:_:)``
///   to a non-greedy input waits until its message is used.
///
/// Protocol: state under one `MigrationSafeMutex` (acquire/release), never
/// held while calling another block. Completed arrays go to a FIFO; one
/// emitter at a time (`emitting`) moves them to the output, so arrays leave
/// in the order they were made. Non-greedy: origins that postponed are kept
/// per input (FIFO, no duplicates); one attempt at a time (`attempting`,
/// with `again` for attempts asked meanwhile) takes the first origin of
/// every input, reserves from each, and then consumes all (a complete
/// array) or releases those reserved, puts them back first in line and
/// drops the one that had nothing (it offers again when it has a message).
/// Each failed attempt drops an origin, so attempts end. A message being
/// offered is never reserved from its source (sources refuse that: see
/// ``QueueBlock``); the offer itself runs the attempt and accepts the
/// message directly when every other input can give one.
public final class Join<T: Sendable>: QueueBlock<[T]>, @unchecked Sendable {
    /// [join_type]
    public enum Kind: Sendable { case greedy, nonGreedy }

    struct JoinState {
        var queues: [Ring<T>]
        var origins: [Ring<any MessageOrigin<T>>]
        var ready = Ring<[T]>()
        var emitting = false
        var attempting = false
        var again = false
        var closed = false
    }

    public let kind: Kind
    /// The inputs, in the order their messages appear in each array. Link
    /// sources to them or send to them. Keep the join alive while they are
    /// linked (an input refers to its join unowned).
    public private(set) var inputs: [JoinInput<T>] = []
    private let js: MigrationSafeMutex<JoinState>

    /// - Throws: ``AgentsError/invalidArgument(_:)`` when `inputs` < 1.
    public init(inputs count: Int, kind: Kind = .greedy) throws(AgentsError) {
        guard count >= 1 else { throw .invalidArgument("Join needs at least one input (got \(count))") }
        self.kind = kind
        js = MigrationSafeMutex(JoinState(queues: (0..<count).map { _ in Ring<T>() },
                                          origins: (0..<count).map { _ in Ring<any MessageOrigin<T>>() }))
        super.init(capacity: .max, name: "Join")
        inputs = (0..<count).map { JoinInput(join: self, index: $0) }
    }

    func offer(input i: Int, _ m: T, from origin: (any MessageOrigin<T>)?) -> OfferStatus {
        switch kind {
        case .greedy:
            let (status, emit): (OfferStatus, Bool) = js.withLock { s in
                if s.closed { return (.refused(.shutDown(name)), false) }
                s.queues[i].pushBack(m)
                if s.queues.contains(where: { $0.isEmpty }) { return (.accepted, false) }
                var row: [T] = []
                row.reserveCapacity(s.queues.count)
                for k in s.queues.indices { row.append(s.queues[k].popFront()!) }
                s.ready.pushBack(row)
                if s.emitting { return (.accepted, false) }
                s.emitting = true
                return (.accepted, true)
            }
            if emit { emitReady() }
            return status
        case .nonGreedy:
            guard let origin else {
                return js.withLock { $0.closed } ? .refused(.shutDown(name)) : .postponed
            }
            let begin: JoinAttemptStart = js.withLock { s in
                if s.closed { return .closed }
                if !s.origins[i].contains(where: { $0 === origin }) { s.origins[i].pushBack(origin) }
                if s.attempting { s.again = true; return .busy }
                s.attempting = true
                return .run
            }
            switch begin {
            case .closed: return .refused(.shutDown(name))
            case .busy: return .postponed
            case .run: return runAttempts(offered: (i, m, origin)) ? .accepted : .postponed
            }
        }
    }

    private func emitReady() {
        while true {
            let row: [T]? = js.withLock { s in
                if let r = s.ready.popFront() { return r }
                s.emitting = false
                return nil
            }
            guard let row else { return }
            _ = enqueue(row, from: nil)
        }
    }

    /// The non-greedy attempts (the caller set `attempting`). `offered`:
    /// a message being offered right now to input `i` by `origin`; it is
    /// taken directly (accepted) if every other input can give one, since
    /// a message being offered cannot be reserved from its source. Returns
    /// whether it was. Ends with `attempting` cleared.
    private func runAttempts(offered first: (i: Int, m: T, origin: any MessageOrigin<T>)?) -> Bool {
        var offered = first
        var acceptedOffered = false
        while true {
            let picks: [(any MessageOrigin<T>)?]? = js.withLock { s in
                s.again = false
                guard !s.closed else { s.attempting = false; return nil }
                for k in s.origins.indices where k != offered?.i && s.origins[k].isEmpty {
                    s.attempting = false
                    return nil
                }
                var p: [(any MessageOrigin<T>)?] = []
                for k in s.origins.indices { p.append(k == offered?.i ? nil : s.origins[k].popFront()!) }
                return p
            }
            guard let picks else { return acceptedOffered }
            var row: [T] = []
            row.reserveCapacity(picks.count)
            var reservedCount = 0
            for (k, o) in picks.enumerated() {
                if let o {
                    guard let m = o.reserve(for: ObjectIdentifier(inputs[k])) else { break }
                    row.append(m)
                } else {
                    row.append(offered!.m)
                }
                reservedCount = k + 1
            }
            if reservedCount == picks.count {
                for (k, o) in picks.enumerated() { o?.consume(for: ObjectIdentifier(inputs[k])) }
                let emit: Bool = js.withLock { s in
                    if let (i, _, origin) = offered {
                        s.origins[i].removeAll { $0 === origin }
                    }
                    s.ready.pushBack(row)
                    if s.emitting { return false }
                    s.emitting = true
                    return true
                }
                if offered != nil { acceptedOffered = true; offered = nil }
                if emit { emitReady() }
            } else {
                // Input `reservedCount` had nothing: release the ones
                // reserved before it, put every other pick (released, or
                // not tried yet) back first in line, and drop that origin
                // only (it offers again when it has a message). Dropping an
                // untried pick would lose it: its source stopped offering
                // when it was postponed.
                let failed = reservedCount
                for k in 0..<failed { picks[k]?.release(for: ObjectIdentifier(inputs[k])) }
                js.withLock { s in
                    for k in picks.indices where k != failed {
                        if let o = picks[k], !s.origins[k].contains(where: { $0 === o }) { s.origins[k].pushFront(o) }
                    }
                }
                // The offered message stays its source's (it is not taken).
                offered = nil
            }
        }
    }

    /// Refuses further input and, once queued arrays are delivered, the
    /// output too: receivers get ``AgentsError/shutDown(_:)`` after the last
    /// array. Pending non-greedy senders are released with that error.
    public override func shutdown() {
        let origins: [[any MessageOrigin<T>]] = js.withLock { s in
            s.closed = true
            return s.origins.indices.map { s.origins[$0].removeAllElements() }
        }
        for (k, list) in origins.enumerated() {
            for o in list { o.targetShutDown(ObjectIdentifier(inputs[k])) }
        }
        super.shutdown()
    }
}

/// One input of a ``Join``. [the join's ITarget for one source]
public final class JoinInput<T: Sendable>: MessageTarget, @unchecked Sendable {
    // @unchecked Sendable: immutable; the join outlives its inputs' use.
    unowned let join: Join<T>
    /// Position of this input's message in each array.
    public let index: Int

    init(join: Join<T>, index: Int) {
        self.join = join
        self.index = index
    }

    public func offer(_ message: T, from origin: (any MessageOrigin<T>)?) -> OfferStatus {
        join.offer(input: index, message, from: origin)
    }
}

/// How a non-greedy offer found the join: shut down, an attempt already
/// running (it will see the new origin), or free to run one.
enum JoinAttemptStart { case closed, busy, run }
