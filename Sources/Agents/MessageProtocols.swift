import ConcRT

/// What a target answers to an offered message. [message_status:
/// accepted, declined, postponed; `refused` has no agents.h equivalent]
public enum OfferStatus: Sendable, Equatable {
    /// The target took the message (it owns it now).
    case accepted
    /// The target does not want this message; offer it elsewhere.
    case declined
    /// The target cannot take it now. If an origin was given, the target
    /// registered it and will later `reserve` and `consume` (or `release`)
    /// a message from it; with no origin nothing was registered.
    case postponed
    /// The target will never take a message again (for example it was shut
    /// down, or a ``SingleAssignment`` already holds a value).
    case refused(AgentsError)
}

/// The source side a target calls back after postponing an offer: the
/// reservation protocol non-greedy joins and bounded buffers use to take a
/// message later. [ISource::reserve / consume / release]
///
/// A target reserves at most one message at a time from an origin, and
/// follows each successful `reserve` with exactly one `consume` or `release`.
public protocol MessageOrigin<Output>: AnyObject, Sendable {
    associatedtype Output: Sendable
    /// Takes the next message meant for `target` out of circulation; nil
    /// when there is none (it went elsewhere). [ISource::reserve]
    func reserve(for target: ObjectIdentifier) -> Output?
    /// Completes a reservation: the message is the target's. [ISource::consume]
    func consume(for target: ObjectIdentifier)
    /// Undoes a reservation: the message is offered again. [ISource::release]
    func release(for target: ObjectIdentifier)
    /// The target was shut down while this origin was registered with it.
    func targetShutDown(_ target: ObjectIdentifier)
}

/// A block that receives messages. [ITarget]
public protocol MessageTarget<Input>: AnyObject, Sendable {
    associatedtype Input: Sendable
    /// Offers `message`. `origin`: who holds it (a linked source, or the
    /// pending `send` of ``send(_:_:)``), for a target that postpones.
    /// [ITarget::propagate / send]
    func offer(_ message: Input, from origin: (any MessageOrigin<Input>)?) -> OfferStatus
}

/// A block that messages can be received from and that propagates them to
/// linked targets. [ISource]
public protocol MessageSource<Output>: AnyObject, Sendable {
    associatedtype Output: Sendable
    /// Links `target`: messages are offered to linked targets in link
    /// order, each to the first that accepts (unless the block broadcasts).
    /// `filter`: only messages it returns true for are offered.
    /// - Throws: ``AgentsError/selfLink`` when `target` is this block.
    ///   [ISource::link_target]
    func link(to target: any MessageTarget<Output>, filter: (@Sendable (Output) -> Bool)?) throws(AgentsError)
    /// Removes a link; false when `target` was not linked. [ISource::unlink_target]
    @discardableResult
    func unlink(_ target: any MessageTarget<Output>) -> Bool
    /// Takes a message if one is ready, without waiting. [try_receive]
    func tryReceive() -> Output?
    /// Waits for a message (nil timeout: forever). Blocks the context, not
    /// its thread; works from plain pthreads too. [receive]
    /// - Throws: ``AgentsError/timeout(_:)``; ``AgentsError/shutDown(_:)``
    ///   when the block was shut down and holds nothing more.
    func receive(timeout: Duration?) throws(AgentsError) -> Output
}

extension MessageSource {
    /// Links `target` with no filter.
    public func link(to target: any MessageTarget<Output>) throws(AgentsError) {
        try link(to: target, filter: nil)
    }
}

/// One link from a source to a target.
@usableFromInline
struct Link<T: Sendable>: @unchecked Sendable {
    // @unchecked Sendable: the target and filter are Sendable; the
    // existential box is immutable.
    @usableFromInline let target: any MessageTarget<T>
    @usableFromInline let id: ObjectIdentifier
    @usableFromInline let filter: (@Sendable (T) -> Bool)?

    @inlinable init(_ target: any MessageTarget<T>, filter: (@Sendable (T) -> Bool)?) {
        self.target = target
        id = ObjectIdentifier(target)
        self.filter = filter
    }

    @inlinable
    func passes(_ m: T) -> Bool { filter?(m) ?? true }
}

/// A receive waiting on a block: the value (or nil for a shutdown) is
/// written under the block's lock by the waker that won `claim()`, before
/// `wake`; the receiver reads it after its park returns. Why skipping the
/// exclusivity check on `value` is sound: exactly one party (the claim's
/// winner) writes it, once, and the wake orders that write before the
/// receiver's read (Parker's protocol).
@usableFromInline
final class ReceiveWaiter<T>: Parker, @unchecked Sendable {
    @usableFromInline @exclusivity(unchecked) var value: T?
    @inlinable override init() { super.init() }
}
