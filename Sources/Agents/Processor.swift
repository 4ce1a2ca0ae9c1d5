import ConcRT

/// Runs a body on each accepted message, one at a time and in arrival
/// order, on a scheduler task: the light-weight task agents.h runs behind
/// `call` and `transformer`.
///
/// Protocol: the queue and the `running` flag are under one
/// `MigrationSafeMutex` (acquire/release). An arrival that finds the
/// processor idle sets `running` and schedules the drain task; the drain
/// task takes messages in batches and clears `running` under the lock when
/// it finds the queue empty, so exactly one drain task runs at a time (order
/// kept) and no arrival is left without one. After ``close()``, arrivals
/// are refused and `onDrained` runs once, when the last queued message has
/// been processed.
final class Processor<In: Sendable>: @unchecked Sendable {
    // @unchecked Sendable: mutable state is under `state`'s lock; the rest
    // is immutable.
    private struct State {
        var queue = Ring<In>()
        var running = false
        var closed = false
        var drainedReported = false
    }

    private let state = MigrationSafeMutex(State())
    private let scheduler: Scheduler
    private let body: @Sendable (In) -> Void
    private let onDrained: @Sendable () -> Void
    private let name: String

    init(scheduler: Scheduler, name: String, onDrained: @escaping @Sendable () -> Void = {},
         _ body: @escaping @Sendable (In) -> Void) {
        self.scheduler = scheduler
        self.name = name
        self.body = body
        self.onDrained = onDrained
    }

    func accept(_ m: In) -> OfferStatus {
        let (status, start): (OfferStatus, Bool) = state.withLock { s in
            if s.closed { return (.refused(.shutDown(name)), false) }
            s.queue.pushBack(m)
            if s.running { return (.accepted, false) }
            s.running = true
            return (.accepted, true)
        }
        if start { scheduler.scheduleTask { [self] in drain() } }
        return status
    }

    private func drain() {
        var batch: [In] = []
        batch.reserveCapacity(64)
        while true {
            let drained: Bool = state.withLock { s in
                while batch.count < 64, let m = s.queue.popFront() { batch.append(m) }
                if !batch.isEmpty { return false }
                s.running = false
                if s.closed && !s.drainedReported { s.drainedReported = true; return true }
                return false
            }
            if batch.isEmpty {
                if drained { onDrained() }
                return
            }
            for m in batch { body(m) }
            batch.removeAll(keepingCapacity: true)
        }
    }

    /// Refuses further messages; queued ones are still processed.
    func close() {
        let report: Bool = state.withLock { s in
            if s.closed { return false }
            s.closed = true
            if !s.running && s.queue.isEmpty && !s.drainedReported { s.drainedReported = true; return true }
            return false
        }
        if report { onDrained() }
    }

    /// True while messages are queued or being processed.
    var isBusy: Bool { state.withLock { $0.running || !$0.queue.isEmpty } }
}

/// Calls a function on every message it accepts, one at a time, in
/// arrival order, on a task of its scheduler. [concurrency::call]
/// `filter`: messages it returns false for are declined.
/// Protocol: see `Processor` (one drain task at a time).
public final class Call<T: Sendable>: MessageTarget, @unchecked Sendable {
    // @unchecked Sendable: immutable fields of Sendable types.
    private let processor: Processor<T>
    private let filter: (@Sendable (T) -> Bool)?

    public init(scheduler: Scheduler = .default, filter: (@Sendable (T) -> Bool)? = nil,
                _ body: @escaping @Sendable (T) -> Void) {
        processor = Processor(scheduler: scheduler, name: "Call", body)
        self.filter = filter
    }

    public func offer(_ message: T, from origin: (any MessageOrigin<T>)?) -> OfferStatus {
        if let filter, !filter(message) { return .declined }
        return processor.accept(message)
    }

    /// True while messages wait or are being processed.
    public var isBusy: Bool { processor.isBusy }

    /// Refuses further messages (``AgentsError/shutDown(_:)``); accepted
    /// ones are still processed.
    public func shutdown() { processor.close() }
}

/// Applies a function to every message it accepts, one at a time, in
/// arrival order, and offers the results, in the same order, from its
/// output queue (receivers and linked targets, as ``UnboundedBuffer``).
/// [concurrency::transformer]
///
/// ``shutdown()`` refuses further input; the output is shut down once the
/// accepted input has been transformed, so receivers see every result and
/// then ``AgentsError/shutDown(_:)``: end of stream flows through.
public final class Transformer<In: Sendable, Out: Sendable>: QueueBlock<Out>, MessageTarget, @unchecked Sendable {
    private var processor: Processor<In>!
    private let filter: (@Sendable (In) -> Bool)?

    public init(scheduler: Scheduler = .default, filter: (@Sendable (In) -> Bool)? = nil,
                _ transform: @escaping @Sendable (In) -> Out) {
        self.filter = filter
        super.init(capacity: .max, name: "Transformer")
        // Weak: the processor lives in this block (no cycle); results of a
        // block already released have nobody to go to.
        processor = Processor(scheduler: scheduler, name: "Transformer",
                              onDrained: { [weak self] in self?.shutdownOutput() }) { [weak self] m in
            _ = self?.enqueue(transform(m), from: nil)
        }
    }

    public func offer(_ message: In, from origin: (any MessageOrigin<In>)?) -> OfferStatus {
        if let filter, !filter(message) { return .declined }
        return processor.accept(message)
    }

    /// Refuses further input; the output shuts down after the last result.
    public override func shutdown() { processor.close() }

    private func shutdownOutput() { super.shutdown() }
}
