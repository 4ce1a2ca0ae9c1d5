import ConcRT

/// Which source a ``Choice`` took its message from, and the message.
public struct ChoiceSelection<T: Sendable>: Sendable {
    /// Index of the source in the choice's source list.
    public let index: Int
    public let value: T
}

/// Takes exactly one message: the first that any of its sources offers.
/// Receives read the selection (index and value) without consuming it, as
/// a ``SingleAssignment``; it is broadcast to linked targets.
/// [concurrency::choice; there the sources may differ in type, here they
/// share `T`]
///
/// Protocol: the choice links one input to each source. An input accepts an
/// offer only if the selection is still empty (the store is the
/// single-assignment's, under its lock, so of two concurrent offers exactly
/// one is accepted and the other declined and left with its source). After
/// the selection, every input is unlinked, so no further message is taken.
public final class Choice<T: Sendable>: ValueBlock<ChoiceSelection<T>>, @unchecked Sendable {
    private var inputs: [ChoiceInput<T>] = []
    private let sources: [any MessageSource<T>]

    /// Links to every source. - Throws: ``AgentsError/invalidArgument(_:)``
    /// for no sources.
    public init(_ sources: [any MessageSource<T>]) throws(AgentsError) {
        guard !sources.isEmpty else { throw .invalidArgument("Choice needs at least one source") }
        self.sources = sources
        super.init(once: true, name: "Choice")
        inputs = sources.indices.map { ChoiceInput(choice: self, index: $0) }
        for (s, i) in zip(sources, inputs) {
            try s.link(to: i, filter: nil)
        }
    }

    /// The index of the source chosen, once a message was taken. [choice::index]
    public var index: Int? { tryReceive()?.index }

    func select(_ index: Int, _ m: T) -> OfferStatus {
        guard store(ChoiceSelection(index: index, value: m)) == .accepted else { return .declined }
        for (s, i) in zip(sources, inputs) { s.unlink(i) }
        return .accepted
    }
}

/// The target a ``Choice`` links to one source.
final class ChoiceInput<T: Sendable>: MessageTarget, @unchecked Sendable {
    // @unchecked Sendable: immutable.
    weak var choice: Choice<T>?
    let index: Int

    init(choice: Choice<T>, index: Int) {
        self.choice = choice
        self.index = index
    }

    func offer(_ message: T, from origin: (any MessageOrigin<T>)?) -> OfferStatus {
        choice?.select(index, message) ?? .declined
    }
}
