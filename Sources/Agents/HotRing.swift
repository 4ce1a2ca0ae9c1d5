import CSupport

/// The hot part of a ``QueueBlock``: its lock word and its message ring's
/// header in one 64-byte-aligned cache line, so that a send or receive that
/// does not wait moves one line between cores (plus the slot), and touches
/// no reference count.
///
/// Layout (bytes): 0 lock word (CSupport's `csup_lock`: 0 free, 1 held,
/// 2 held with sleepers; acquire on lock, release on unlock) · 8 head ·
/// 16 count · 24 capacity (a power of two) · 32 slot storage.
/// Every field but the lock word is read and written only under the lock.
/// Why the raw accesses are sound: the line is 64 bytes, allocated and
/// zeroed here, freed only in `destroy` (the block's deinit); the fields
/// are trivial types at fixed, aligned offsets, and only the lock word is
/// bound to a type (UInt32) for `csup_lock`.
@usableFromInline
struct HotRing<T> {
    @usableFromInline let line: UnsafeMutableRawPointer

    @usableFromInline init(line: UnsafeMutableRawPointer) { self.line = line }

    /// Allocates the line and 8 slots.
    @usableFromInline static func make() -> HotRing {
        let line = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64)
        line.initializeMemory(as: UInt8.self, repeating: 0, count: 64)
        line.bindMemory(to: UInt32.self, capacity: 1)
        let r = HotRing(line: line)
        r.cap = 8
        r.buf = .allocate(capacity: 8)
        return r
    }

    /// Frees the slots' messages, the slots and the line.
    @usableFromInline func destroy() {
        // Why this is sound: slots head ..< head+count (mod cap) are the
        // initialized ones; nobody else holds the block any more (deinit).
        for i in 0..<count { (buf + ((head + i) & (cap - 1))).deinitialize(count: 1) }
        buf.deallocate()
        line.deallocate()
    }

    @inlinable var lockWord: UnsafeMutablePointer<UInt32> { line.assumingMemoryBound(to: UInt32.self) }

    @inlinable var head: Int {
        get { line.load(fromByteOffset: 8, as: Int.self) }
        nonmutating set { line.storeBytes(of: newValue, toByteOffset: 8, as: Int.self) }
    }
    @inlinable var count: Int {
        get { line.load(fromByteOffset: 16, as: Int.self) }
        nonmutating set { line.storeBytes(of: newValue, toByteOffset: 16, as: Int.self) }
    }
    @inlinable var cap: Int {
        get { line.load(fromByteOffset: 24, as: Int.self) }
        nonmutating set { line.storeBytes(of: newValue, toByteOffset: 24, as: Int.self) }
    }
    @inlinable var buf: UnsafeMutablePointer<T> {
        get { line.load(fromByteOffset: 32, as: UnsafeMutablePointer<T>.self) }
        nonmutating set { line.storeBytes(of: newValue, toByteOffset: 32, as: UnsafeMutablePointer<T>.self) }
    }

    @inlinable var isEmpty: Bool { count == 0 }
    @inlinable var first: T? { count > 0 ? buf[head] : nil }

    @usableFromInline func grow() {
        let (c, h, n) = (cap, head, count)
        let nb = UnsafeMutablePointer<T>.allocate(capacity: c * 2)
        // Why this is sound: moves the `n` initialized slots, in order, to
        // the front of the new storage; the old storage is then raw.
        for i in 0..<n { (nb + i).moveInitialize(from: buf + ((h + i) & (c - 1)), count: 1) }
        buf.deallocate()
        buf = nb
        cap = c * 2
        head = 0
    }

    @inlinable func pushBack(_ x: T) {
        let n = count
        if n == cap { grow() }
        (buf + ((head + n) & (cap - 1))).initialize(to: x)
        count = n + 1
    }

    @inlinable func pushFront(_ x: T) {
        if count == cap { grow() }
        let h = (head - 1) & (cap - 1)
        (buf + h).initialize(to: x)
        head = h
        count += 1
    }

    @inlinable func popFront() -> T? {
        let n = count
        guard n > 0 else { return nil }
        let h = head
        let x = (buf + h).move()
        head = (h + 1) & (cap - 1)
        count = n - 1
        return x
    }
}
