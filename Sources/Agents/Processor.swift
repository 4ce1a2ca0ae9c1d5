import ConcRT
import CSupport

/// Runs a body on each accepted message, one at a time and in arrival
/// order, on a scheduler task: the light-weight task agents.h runs behind
/// `call` and `transformer`.
///
/// Protocol: the queue and the flags are under one lock (CSupport's
/// `csup_lock`: acquire/release, no thread identity; plain fields rather
/// than a generic state struct, so that this unspecialized code looks up no
/// generic metadata per message). An arrival that finds the processor idle
/// sets `running` and schedules the drain task; the drain task takes
/// messages in batches and clears `running` under the lock when it finds
/// the queue empty, so exactly one drain task runs at a time (order kept)
/// and no arrival is left without one. After ``close()``, arrivals are
/// refused and `onDrained` runs once, when the last queued message has been
/// processed.
@usableFromInline
final class Processor<In: Sendable>: @unchecked Sendable {
    // @unchecked Sendable: the mutable fields are reached only under
    // `lockWord`; the rest is immutable.
    private let lockWord: UnsafeMutablePointer<UInt32>
    private let queue = Ring<In>()
    @exclusivity(unchecked) private var running = false
    @exclusivity(unchecked) private var closed = false
    @exclusivity(unchecked) private var drainedReported = false
    private let scheduler: Scheduler
    private let body: @Sendable (In) -> Void
    private let onDrained: @Sendable () -> Void
    private let name: String

    @usableFromInline
    init(scheduler: Scheduler, name: String, onDrained: @escaping @Sendable () -> Void = {},
         _ body: @escaping @Sendable (In) -> Void) {
        self.scheduler = scheduler
        self.name = name
        self.body = body
        self.onDrained = onDrained
        lockWord = .allocate(capacity: 1)
        lockWord.initialize(to: 0)
    }

    deinit { lockWord.deallocate() }

    @usableFromInline
    func accept(_ m: In) -> OfferStatus {
        csup_lock_acquire(lockWord)
        if closed {
            csup_lock_release(lockWord)
            return .refused(.shutDown(name))
        }
        queue.pushBack(m)
        let start = !running
        running = true
        csup_lock_release(lockWord)
        if start { scheduler.scheduleTask { [self] in drain() } }
        return .accepted
    }

    private func drain() {
        var batch: [In] = []
        batch.reserveCapacity(64)
        while true {
            csup_lock_acquire(lockWord)
            while batch.count < 64, let m = queue.popFront() { batch.append(m) }
            var drained = false
            if batch.isEmpty {
                running = false
                if closed && !drainedReported { drainedReported = true; drained = true }
            }
            csup_lock_release(lockWord)
            if batch.isEmpty {
                if drained { onDrained() }
                return
            }
            for m in batch { body(m) }
            batch.removeAll(keepingCapacity: true)
        }
    }

    /// Refuses further messages; queued ones are still processed.
    @usableFromInline
    func close() {
        csup_lock_acquire(lockWord)
        var report = false
        if !closed {
            closed = true
            if !running && queue.isEmpty && !drainedReported { drainedReported = true; report = true }
        }
        csup_lock_release(lockWord)
        if report { onDrained() }
    }

    /// True while messages are queued or being processed.
    @usableFromInline
    var isBusy: Bool {
        csup_lock_acquire(lockWord)
        defer { csup_lock_release(lockWord) }
        return running || !queue.isEmpty
    }
}

/// Calls a function on every message it accepts, one at a time, in
/// arrival order, on a task of its scheduler. [concurrency::call]
/// `filter`: messages it returns false for are declined.
/// Protocol: see `Processor` (one drain task at a time).
public final class Call<T: Sendable>: MessageTarget, @unchecked Sendable {
    // @unchecked Sendable: immutable fields of Sendable types.
    @usableFromInline let processor: Processor<T>
    @usableFromInline let filter: (@Sendable (T) -> Bool)?

    /// (Inlinable so that `body` is compiled, specialized, where `T` is known.)
    @inlinable
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
    @usableFromInline var processor: Processor<In>!
    @usableFromInline let filter: (@Sendable (In) -> Bool)?

    /// (Inlinable so that the per-message closure, which queues each result
    /// and propagates it, is compiled specialized where `In`/`Out` are known:
    /// unspecialized, it spends most of its time looking up generic metadata.)
    @inlinable
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

    @usableFromInline func shutdownOutput() { super.shutdown() }
}
