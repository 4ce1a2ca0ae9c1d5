/// A growable FIFO ring (power-of-two storage), used under a block's lock.
/// Not thread-safe by itself.
@usableFromInline
struct Ring<T> {
    @usableFromInline var buf: [T?] = []
    @usableFromInline var head = 0
    @usableFromInline var count = 0

    @inlinable init() {}

    @inlinable var isEmpty: Bool { count == 0 }
    @inlinable var first: T? { count > 0 ? buf[head] : nil }

    @inlinable var mask: Int { buf.count - 1 }

    @usableFromInline mutating func grow() {
        let newCap = Swift.max(8, buf.count * 2)
        var nb = [T?](repeating: nil, count: newCap)
        for i in 0..<count { nb[i] = buf[(head + i) & mask] }
        buf = nb
        head = 0
    }

    @inlinable mutating func pushBack(_ x: T) {
        if count == buf.count { grow() }
        buf[(head + count) & mask] = x
        count += 1
    }

    @inlinable mutating func pushFront(_ x: T) {
        if count == buf.count { grow() }
        head = (head - 1) & mask
        buf[head] = x
        count += 1
    }

    @inlinable mutating func popFront() -> T? {
        guard count > 0 else { return nil }
        let x = buf[head]
        buf[head] = nil
        head = (head + 1) & mask
        count -= 1
        return x
    }

    /// Removes and returns every element, in order.
    @inlinable mutating func removeAllElements() -> [T] {
        var out: [T] = []
        out.reserveCapacity(count)
        while let x = popFront() { out.append(x) }
        return out
    }

    /// Removes the elements matching `pred`, keeping the others' order.
    @inlinable mutating func removeAll(where pred: (T) -> Bool) {
        let all = removeAllElements()
        for x in all where !pred(x) { pushBack(x) }
    }

    @inlinable func contains(where pred: (T) -> Bool) -> Bool {
        for i in 0..<count where pred(buf[(head + i) & mask]!) { return true }
        return false
    }
}
