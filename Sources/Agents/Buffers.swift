import ConcRT

/// An unbounded FIFO buffer: every message is kept until one receiver or
/// linked target takes it, in order. [concurrency::unbounded_buffer]
/// Propagation, ordering and wake-up protocol: see ``QueueBlock``.
public final class UnboundedBuffer<T: Sendable>: QueueBlock<T>, MessageTarget, @unchecked Sendable {
    public init() { super.init(capacity: .max, name: "UnboundedBuffer") }

    @inlinable
    public func offer(_ message: T, from origin: (any MessageOrigin<T>)?) -> OfferStatus {
        enqueue(message, from: origin)
    }
}

/// A FIFO buffer of at most `capacity` messages: ``send(_:_:)`` waits while
/// it is full (the context blocks, not its thread), linked sources and
/// ``asend(_:_:)`` are postponed and their messages taken later in order.
///
/// An extension beyond agents.h, which has no bounded buffer: ConcRT users
/// built one from an unbounded_buffer plus a semaphore. Go's buffered
/// channel and tokio's `mpsc::channel(n)` are the same thing.
/// Protocol: see ``QueueBlock`` (capacity and the postponed senders).
public final class BoundedBuffer<T: Sendable>: QueueBlock<T>, MessageTarget, @unchecked Sendable {
    /// - Throws: ``AgentsError/invalidArgument(_:)`` when `capacity` < 1.
    public init(capacity: Int) throws(AgentsError) {
        guard capacity >= 1 else { throw .invalidArgument("BoundedBuffer capacity must be >= 1 (got \(capacity))") }
        super.init(capacity: capacity, name: "BoundedBuffer")
    }

    @inlinable
    public func offer(_ message: T, from origin: (any MessageOrigin<T>)?) -> OfferStatus {
        enqueue(message, from: origin)
    }
}
