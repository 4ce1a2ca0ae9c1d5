/// A growable FIFO/LIFO ring buffer, used under a lock by its owner (a
/// virtual processor's runnable contexts, the injection queue).
///
/// Not thread-safe by itself: every use is inside the mutex that owns it.
/// Popped slots are cleared, so a ring never keeps a popped element alive
/// (or, for address bits, never shows a stale one in a debugger).
struct Ring<Element>: ~Copyable {
    private var buf: [Element?]
    private var head = 0
    /// Elements held now.
    private(set) var count = 0

    /// `capacity` must be a power of two; the ring doubles when full.
    init(capacity: Int = 16) {
        precondition(capacity > 0 && capacity & (capacity - 1) == 0,
                     "Ring.init: capacity \(capacity) is not a power of two")
        buf = Array(repeating: nil, count: capacity)
    }

    var isEmpty: Bool { count == 0 }

    mutating func pushBack(_ x: Element) {
        if count == buf.count { grow() }
        buf[(head + count) & (buf.count - 1)] = x
        count += 1
    }

    mutating func pushFront(_ x: Element) {
        if count == buf.count { grow() }
        head = (head - 1) & (buf.count - 1)
        buf[head] = x
        count += 1
    }

    mutating func popFront() -> Element? {
        if count == 0 { return nil }
        let x = buf[head]
        buf[head] = nil
        head = (head + 1) & (buf.count - 1)
        count -= 1
        assert(x != nil, "Ring.popFront: empty slot inside the live range (count \(count + 1))")
        return x
    }

    mutating func popBack() -> Element? {
        if count == 0 { return nil }
        let i = (head + count - 1) & (buf.count - 1)
        let x = buf[i]
        buf[i] = nil
        count -= 1
        assert(x != nil, "Ring.popBack: empty slot inside the live range (count \(count + 1))")
        return x
    }

    private mutating func grow() {
        var nb = [Element?](repeating: nil, count: buf.count * 2)
        for i in 0..<count { nb[i] = buf[(head + i) & (buf.count - 1)] }
        buf = nb
        head = 0
    }
}
