// ConcurrentVector: concurrent append and read, growth by segments of
// doubling size that never move an element (oneTBB's concurrent_vector
// layout; no code copied).
//
// Protocol
// --------
// Index i lives in segment k = floor(log2(i + 8)) - 3 at offset
// i + 8 - 8 << k: segment 0 holds 8 elements, segment k holds 8 << k.
// `table` holds 61 segment addresses (Atomic<UInt>, 0 = not allocated yet),
// enough for every Int index.
//
// append: reserve index i with a fetch-add on `reserved` (relaxed: only
//   uniqueness matters, publication is per slot). Find segment k; if it is
//   not allocated, allocate one and CAS it into table[k] (acq_rel); the
//   loser frees its own. Initialize the element, then store 1 in the slot's
//   ready byte (release).
// read (subscript, address(of:)): require i < reserved (the misuse
//   otherwise: an index never appended). Load table[k] (acquire) and the
//   slot's ready byte (acquire: the element's initialization happened
//   before); if the append of i is still in flight, wait for it.
// Segments are freed only in deinit, so an element's address is stable for
// the vector's lifetime.
//
// Progress: append is lock-free (a fetch-add; the segment CAS can only fail
// because another thread installed the segment). Reading an index whose
// append is in flight waits for that append's few instructions (blocking
// if that appender is preempted inside them), like TBB's.
import CSupport
import Synchronization

/// A vector that many threads append to at once, whose elements never move.
/// Safe from ConcRT contexts, tasks and plain pthreads alike.
/// [ConcRT: `concurrency::concurrent_vector<T>` (`push_back`, `grow_by`,
/// `operator[]`, `size`)]
///
/// **Progress guarantee:** ``append(_:)`` is lock-free. Reading an index
/// whose append is still in flight waits for that append (a few
/// instructions: the element's copy) and is otherwise wait-free.
/// ``count`` counts appends that have reserved their index, including ones
/// in flight (as `concurrent_vector::size`).
///
/// Elements are read-only once appended: the vector has no concurrent
/// mutation or removal (like `concurrent_vector`, whose `clear` is not
/// concurrency-safe; here the elements go with the vector).
public final class ConcurrentVector<Element> {
    @usableFromInline static var segmentCount: Int { 61 }
    @usableFromInline let table: UnsafeMutablePointer<Atomic<UInt>>
    @usableFromInline let reserved = Atomic<Int>(0)

    /// Creates an empty vector.
    public init() {
        table = .allocate(capacity: Self.segmentCount)
        for k in 0..<Self.segmentCount { (table + k).initialize(to: Atomic(0)) }
    }

    deinit {
        // No other reference exists, so every append has completed.
        let n = reserved.load(ordering: .acquiring)
        for k in 0..<Self.segmentCount {
            let seg = table[k].load(ordering: .acquiring)
            guard seg != 0 else { continue }
            let base = UnsafeMutableRawPointer(bitPattern: seg)!
            let size = VectorSegment<Element>.size(k)
            let first = (8 << k) - 8
            let live = max(0, min(size, n - first))
            // Why this is sound: indices below `reserved` were all appended
            // (their appenders have returned), none above were.
            VectorSegment<Element>.values(base, k).deinitialize(count: live)
            base.deallocate()
        }
        table.deallocate()
    }

    /// Appends `element` and returns its index.
    /// [concurrent_vector::push_back]
    @inlinable
    @discardableResult
    public func append(_ element: consuming Element) -> Int {
        let i = reserved.wrappingAdd(1, ordering: .relaxed).oldValue
        precondition(i >= 0, "ConcurrentVector.append: index overflow")
        let (k, offset) = VectorSegment<Element>.locate(i)
        let base = segment(k)
        // Why this is sound: index i was reserved by this call alone.
        assert(VectorSegment<Element>.ready(base).advanced(by: offset).pointee.load(ordering: .relaxed) == 0,
               "ConcurrentVector.append: slot \(i) was already written")
        VectorSegment<Element>.values(base, k).advanced(by: offset).initialize(to: element)
        VectorSegment<Element>.ready(base).advanced(by: offset).pointee.store(1, ordering: .releasing)
        return i
    }

    /// Appends every element of `elements` in order, at consecutive
    /// indices; returns the first index. [concurrent_vector::grow_by]
    @discardableResult
    public func append<C: Collection>(contentsOf elements: C) -> Int where C.Element == Element {
        let n = elements.count
        let first = reserved.wrappingAdd(n, ordering: .relaxed).oldValue
        precondition(first >= 0 && first <= Int.max - n, "ConcurrentVector.append(contentsOf:): index overflow")
        var i = first
        for e in elements {
            let (k, offset) = VectorSegment<Element>.locate(i)
            let base = segment(k)
            // Why this is sound: first..<first+n were reserved by this call.
            VectorSegment<Element>.values(base, k).advanced(by: offset).initialize(to: e)
            VectorSegment<Element>.ready(base).advanced(by: offset).pointee.store(1, ordering: .releasing)
            i += 1
        }
        assert(i == first + n, "ConcurrentVector.append(contentsOf:): the collection's count changed")
        return first
    }

    /// The number of appended elements, counting appends in flight.
    /// [concurrent_vector::size]
    @inlinable
    public var count: Int { reserved.load(ordering: .acquiring) }

    /// The element at `index` (`0 ..< count`). If that element's append is
    /// still in flight, waits for it. [concurrent_vector::operator[]]
    @inlinable
    public subscript(index: Int) -> Element {
        address(of: index).pointee
    }

    /// The element's address, valid as long as the vector lives (elements
    /// never move). Reading through it is safe from any thread; the vector
    /// never writes an element after its append.
    @inlinable
    public func address(of index: Int) -> UnsafePointer<Element> {
        let n = count
        precondition(index >= 0 && index < n, "ConcurrentVector: index \(index) out of range (count \(n))")
        let (k, offset) = VectorSegment<Element>.locate(index)
        var backoff = Backoff()
        while true {
            let seg = table[k].load(ordering: .acquiring)
            if seg != 0 {
                let base = UnsafeMutableRawPointer(bitPattern: seg).unsafelyUnwrapped
                if VectorSegment<Element>.ready(base).advanced(by: offset).pointee.load(ordering: .acquiring) != 0 {
                    return UnsafePointer(VectorSegment<Element>.values(base, k).advanced(by: offset))
                }
            }
            backoff.snooze()   // the append of `index` is in flight
        }
    }

    /// Calls `body` with each element of `0 ..< count` (count read once, at
    /// the start), in index order.
    public func forEach(_ body: (Element) throws -> Void) rethrows {
        let n = count
        for i in 0..<n { try body(self[i]) }
    }

    /// Segment k, allocated (and raced for) if needed.
    @inlinable
    func segment(_ k: Int) -> UnsafeMutableRawPointer {
        let seg = table[k].load(ordering: .acquiring)
        if seg != 0 { return UnsafeMutableRawPointer(bitPattern: seg).unsafelyUnwrapped }
        return installSegment(k)
    }

    @usableFromInline
    func installSegment(_ k: Int) -> UnsafeMutableRawPointer {
        let mine = VectorSegment<Element>.allocate(k)
        // acq_rel: release publishes the zeroed ready bytes; acquire on
        // failure sees the winner's.
        let (won, current) = table[k].compareExchange(expected: 0, desired: UInt(bitPattern: mine),
                                                     ordering: .acquiringAndReleasing)
        if won { return mine }
        mine.deallocate()
        return UnsafeMutableRawPointer(bitPattern: current).unsafelyUnwrapped
    }
}

extension ConcurrentVector: @unchecked Sendable where Element: Sendable {}
// @unchecked Sendable: shared words are Atomics; each element is written
// once, by the append that reserved it, before its ready byte (release).

/// Segment k: `size(k)` ready bytes, then the elements (aligned).
@usableFromInline
enum VectorSegment<Element> {
    @inlinable static func size(_ k: Int) -> Int { 8 << k }

    @inlinable
    static func locate(_ i: Int) -> (segment: Int, offset: Int) {
        let j = UInt(i) + 8
        let k = (UInt.bitWidth - 1 - j.leadingZeroBitCount) - 3
        return (k, Int(j - (8 << UInt(k))))
    }

    @inlinable
    static func valuesOffset(_ k: Int) -> Int {
        let a = MemoryLayout<Element>.alignment
        return (size(k) + a - 1) / a * a
    }

    @inlinable
    static func ready(_ base: UnsafeMutableRawPointer) -> UnsafeMutablePointer<Atomic<UInt8>> {
        base.assumingMemoryBound(to: Atomic<UInt8>.self)
    }

    @inlinable
    static func values(_ base: UnsafeMutableRawPointer, _ k: Int) -> UnsafeMutablePointer<Element> {
        (base + valuesOffset(k)).assumingMemoryBound(to: Element.self)
    }

    @usableFromInline
    static func allocate(_ k: Int) -> UnsafeMutableRawPointer {
        let n = size(k)
        let bytes = valuesOffset(k) + n * MemoryLayout<Element>.stride
        let base = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: max(64, MemoryLayout<Element>.alignment))
        let r = base.bindMemory(to: Atomic<UInt8>.self, capacity: n)
        for i in 0..<n { (r + i).initialize(to: Atomic(0)) }
        return base
    }
}
