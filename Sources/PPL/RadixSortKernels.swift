/// Sequential kernels of ``parallelRadixSort(_:scheduler:key:)``: a stable
/// most-significant-digit-first radix sort that ping-pongs between the
/// input and a buffer of the same size, and a stable insertion sort by key
/// for short runs. Generic and @inlinable, so the caller's specialization
/// inlines the key function.
///
/// Terms used by the kernels: a *range* is `n` elements at `src` with a
/// scratch range of the same length at `dst`; every key in it agrees on all
/// bits at and above `topBit` (so only bits `0..<topBit` are left to sort
/// on). `finalInSrc` says where the sorted elements must end: at `src`
/// (true) or at `dst` (false). Elements are moved, never copied, so each
/// one is initialized in exactly one of the two ranges at any time.

/// How the radix sort reads an element's key. A type, not a closure, so
/// that specialization inlines the identity key of the plain overload (a
/// closure would be an indirect call per key read).
@usableFromInline
protocol RadixKeyExtractor {
    associatedtype Element
    associatedtype Key: FixedWidthInteger & UnsignedInteger
    func key(_ x: Element) -> Key
}

/// The element is its own key.
@usableFromInline
struct RadixIdentityKey<Element: FixedWidthInteger & UnsignedInteger>: RadixKeyExtractor {
    @inlinable init() {}
    @inlinable @inline(__always) func key(_ x: Element) -> Element { x }
}

/// A key closure (the `key:` overload).
@usableFromInline
struct RadixClosureKey<Element, Key: FixedWidthInteger & UnsignedInteger>: RadixKeyExtractor {
    @usableFromInline let body: (Element) -> Key
    @inlinable init(_ body: @escaping (Element) -> Key) { self.body = body }
    @inlinable @inline(__always) func key(_ x: Element) -> Key { body(x) }
}

/// Ranges this short are insertion-sorted instead of scattered.
@usableFromInline let radixInsertionMax = 24

/// The widest digit of a sequential pass, in bits (4096 counters: 32 KiB).
@usableFromInline let radixMaxDigitBits = 12

/// Stable insertion sort of `a[0..<n]` by key (moves only on a strictly
/// smaller key, so equal keys keep their order).
@inlinable
func radixInsertionSort<T, K, X: RadixKeyExtractor>(
    _ a: UnsafeMutablePointer<T>, _ n: Int, _ key: X) where X.Element == T, X.Key == K {
    var i = 1
    while i < n {
        let k = key.key(a[i])
        if k < key.key(a[i - 1]) {
            let x = (a + i).move()
            var j = i
            repeat {
                (a + j).moveInitialize(from: a + j - 1, count: 1)
                j -= 1
            } while j > 0 && k < key.key(a[j - 1])
            (a + j).initialize(to: x)
        }
        i += 1
    }
}

/// Moves a finished range to where it must end (see the file comment).
@inlinable
func radixSettle<T>(_ src: UnsafeMutablePointer<T>, _ dst: UnsafeMutablePointer<T>, _ n: Int, _ finalInSrc: Bool) {
    if !finalInSrc && n > 0 { dst.moveInitialize(from: src, count: n) }
}

/// Digit width for a sequential pass over `n` keys with `topBit` bits
/// left: n/4 to n/8 buckets (random keys then leave runs of a few keys for
/// the insertion sort), between 4 and ``radixMaxDigitBits`` bits, never
/// more than the bits left.
@inlinable
func radixDigitBits(_ n: Int, _ topBit: Int) -> Int {
    min(topBit, radixDigitBitsCap(n))
}

/// The widest digit ``radixDigitBits(_:_:)`` picks for up to `n` keys.
@inlinable
func radixDigitBitsCap(_ n: Int) -> Int {
    let log2n = Int.bitWidth - 1 - max(1, n).leadingZeroBitCount
    return max(4, min(radixMaxDigitBits, log2n - 2))
}

/// The highest bit where keys differ, plus one, given the OR of every
/// key XOR the first; 0 when all keys are equal.
@inlinable
func radixTopBit<K: FixedWidthInteger>(_ diff: K) -> Int { K.bitWidth - diff.leadingZeroBitCount }

/// Capacity of the counter arena ``radixSortRange`` needs for ranges of
/// at most `maxN` keys of type `K`: one counter per bucket on each level
/// of the deepest recursion. Every digit there is at most
/// `radixDigitBitsCap(maxN)` bits wide (ranges only shrink) and the digits
/// add up to at most `K.bitWidth` bits, so the sum of 2^bits is largest
/// with as many widest digits as fit plus the rest in one.
@inlinable
func radixArenaCapacity<K: FixedWidthInteger>(_: K.Type, maxN: Int) -> Int {
    let cap = radixDigitBitsCap(maxN)
    return (K.bitWidth / cap) * (1 << cap) + (1 << (K.bitWidth % cap))
}

/// Sorts one range sequentially (see the file comment for the terms):
/// counts the next digit below `topBit` (and which bits vary at all),
/// scatters stably into `dst`, and sorts each bucket the same way with the
/// roles of the two ranges swapped. A digit on which every key agrees is
/// skipped without moving anything, straight down to the highest bit that
/// varies; equal keys end the recursion. `arena` holds this level's
/// counters and, past them, the deeper levels' (capacity
/// ``radixArenaCapacity(_:maxN:)`` for at least `n`, uninitialized is fine).
@inlinable
func radixSortRange<T, K, X: RadixKeyExtractor>(
    _ src: UnsafeMutablePointer<T>, _ dst: UnsafeMutablePointer<T>, _ n: Int, _ topBit: Int,
    _ finalInSrc: Bool, _ arena: UnsafeMutablePointer<Int>, _ key: X) where X.Element == T, X.Key == K {
    if n <= radixInsertionMax {
        radixSettle(src, dst, n, finalInSrc)
        radixInsertionSort(finalInSrc ? src : dst, n, key)
        return
    }
    // No bits left below the digits already sorted on: every key in the
    // range is equal (and the arena has no counters for this level: its
    // capacity covers digits that add up to the key's width, no more).
    // Found by ASan: a bucket of more than radixInsertionMax equal UInt8
    // keys read one counter past the arena.
    if topBit <= 0 {
        radixSettle(src, dst, n, finalInSrc)
        return
    }
    var topBit = topBit
    var bits = radixDigitBits(n, topBit)
    let counts = arena
    while true {
        let mask = K(truncatingIfNeeded: (1 << bits) - 1)
        let shift = topBit - bits
        counts.initialize(repeating: 0, count: 1 << bits)
        let first = key.key(src[0])
        var diff: K = 0
        var i = 0
        while i < n {
            let k = key.key(src[i])
            diff |= k ^ first
            counts[Int(truncatingIfNeeded: (k &>> shift) & mask)] &+= 1
            i += 1
        }
        if diff == 0 {   // all keys equal: already sorted
            radixSettle(src, dst, n, finalInSrc)
            return
        }
        let varying = radixTopBit(diff)
        if varying > shift { break }
        // Every key has the same digit here: go straight to the highest
        // bit that varies, with no data movement (the next round's digit
        // varies, so this loops at most twice).
        topBit = varying
        bits = min(bits, topBit)
    }
    // Exclusive prefix sums: counts[d] becomes bucket d's start.
    let shift = topBit - bits, mask = K(truncatingIfNeeded: (1 << bits) - 1)
    var sum = 0
    for d in 0..<(1 << bits) {
        let c = counts[d]
        counts[d] = sum
        sum += c
    }
    var i = 0
    while i < n {
        let d = Int(truncatingIfNeeded: (key.key(src[i]) &>> shift) & mask)
        (dst + counts[d]).moveInitialize(from: src + i, count: 1)
        counts[d] += 1
        i += 1
    }
    // counts[d] is now bucket d's end; the buckets' elements are at dst.
    var start = 0
    for d in 0..<(1 << bits) {
        let end = counts[d]
        if end > start {
            radixSortRange(dst + start, src + start, end - start, shift, !finalInSrc, arena + (1 << bits), key)
        }
        start = end
    }
}
