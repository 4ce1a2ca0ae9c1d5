import ConcRT

/// Iterative teardown of future chains.
///
/// A pending future owns its continuations; a continuation owns the future
/// it completes (`then`, `continueWith`, `whenAll`, `whenAny`), which owns
/// its own continuations, and so on. Dropping the head of such a chain
/// released it recursively (Future.deinit → continuation closure → next
/// Future.deinit → …): about 600 links overflowed a context's 256 KiB
/// stack, and 100,000 overflowed the main thread's.
///
/// Protocol: a future's deinit moves its continuations into ``release(_:)``'s
/// work list.
/// The outermost call on the running context (or pthread) becomes the
/// drainer: it keeps a work list in a ``ContextLocal`` and releases its
/// entries one at a time in a loop. A deinit reached from that loop finds
/// the list and only appends to it, returning at once. So the stack depth
/// stays constant whatever the chain length, and every entry is released
/// by the same drainer before it returns.
///
/// Context-local rather than thread-local: a deinit may block (a captured
/// value's deinit can), and the context can then resume on another
/// pthread; the work list must follow it. No lock or atomic: the list
/// belongs to the one context (or pthread) draining it.
enum FutureTeardown {
    /// The work list of the drainer running on this context, if any.
    private static let drain = ContextLocal<WorkList?>(default: nil)

    /// Entries waiting to be released: each is an array of continuations
    /// (one word, stored inline in `Any`).
    final class WorkList: @unchecked Sendable {
        // @unchecked Sendable: used only by the context (or pthread) that
        // made it, through a context-local key.
        var items: [Any] = []
    }

    /// Releases what `moveInto` moves into the work list (and whatever it
    /// owns) without recursion proportional to the chain length.
    ///
    /// `moveInto` must move its entries (leave no other reference to them
    /// on the caller's frame): an entry whose last reference died on the
    /// caller's frame after the drain would be released there, outside the
    /// loop, and the recursion would be back.
    static func release(_ moveInto: (WorkList) -> Void) {
        if let list = drain.value {
            moveInto(list)   // the drainer below us on this context releases it
            return
        }
        let list = WorkList()
        moveInto(list)
        drain.withValue(list) {
            // Each entry is dropped at the end of an iteration; a Future
            // deinit it triggers appends to `list` and returns.
            while let next = list.items.popLast() { _ = next }
        }
    }
}
