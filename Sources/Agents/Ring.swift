/// A growable FIFO ring over manually managed storage (power-of-two
/// capacity), used under a block's lock. A class, so that mutating it
/// under a lock costs no copy-on-write uniqueness check; not thread-safe by
/// itself. Its fields skip dynamic exclusivity checks: every use is under
/// the owning block's lock.
@usableFromInline
final class Ring<T> {
    @usableFromInline @exclusivity(unchecked) var buf: UnsafeMutablePointer<T>
    @usableFromInline @exclusivity(unchecked) var cap: Int
    @usableFromInline @exclusivity(unchecked) var head = 0
    @usableFromInline @exclusivity(unchecked) var count = 0

    @inlinable init() {
        cap = 8
        buf = .allocate(capacity: 8)
    }

    deinit {
        // Why this is sound: slots head ..< head+count (mod cap) are the
        // initialized ones; the rest are raw.
        for i in 0..<count { (buf + ((head + i) & (cap - 1))).deinitialize(count: 1) }
        buf.deallocate()
    }

    @inlinable var isEmpty: Bool { count == 0 }
    @inlinable var first: T? { count > 0 ? buf[head] : nil }

    @usableFromInline func grow() {
        let newCap = cap * 2
        let nb = UnsafeMutablePointer<T>.allocate(capacity: newCap)
        // Why this is sound: moves the `count` initialized slots, in order,
        // into the front of the new storage; the old one is then raw.
        for i in 0..<count { (nb + i).moveInitialize(from: buf + ((head + i) & (cap - 1)), count: 1) }
        buf.deallocate()
        buf = nb
        cap = newCap
        head = 0
    }

    @inlinable func pushBack(_ x: T) {
        if count == cap { grow() }
        (buf + ((head + count) & (cap - 1))).initialize(to: x)
        count += 1
    }

    @inlinable func pushFront(_ x: T) {
        if count == cap { grow() }
        head = (head - 1) & (cap - 1)
        (buf + head).initialize(to: x)
        count += 1
    }

    @inlinable func popFront() -> T? {
        guard count > 0 else { return nil }
        let x = (buf + head).move()
        head = (head + 1) & (cap - 1)
        count -= 1
        return x
    }

    /// Removes and returns every element, in order.
    @inlinable func removeAllElements() -> [T] {
        var out: [T] = []
        out.reserveCapacity(count)
        while let x = popFront() { out.append(x) }
        return out
    }

    /// Removes the elements matching `pred`, keeping the others' order.
    @inlinable func removeAll(where pred: (T) -> Bool) {
        let all = removeAllElements()
        for x in all where !pred(x) { pushBack(x) }
    }

    @inlinable func contains(where pred: (T) -> Bool) -> Bool {
        for i in 0..<count where pred(buf[(head + i) & (cap - 1)]) { return true }
        return false
    }
}
