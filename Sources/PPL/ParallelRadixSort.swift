import ConcRT

/// Sorts in place by an unsigned integer key, in parallel: an LSD radix
/// sort with 11-bit digits (6 passes for 64-bit keys). Each pass builds per-chunk histograms in
/// parallel, computes every chunk's output offsets, and scatters in
/// parallel into an O(n) buffer; passes where every key has the same digit
/// are skipped. Stable. [parallel_radixsort]
///
/// Signed keys: project them to unsigned with the sign bit flipped, for
/// example `UInt64(bitPattern: Int64(x)) ^ (1 << 63)`.
@inlinable
public func parallelRadixSort<C: MutableCollection & RandomAccessCollection, K: FixedWidthInteger & UnsignedInteger>(
    _ c: inout C, scheduler: Scheduler? = nil, key: @Sendable (C.Element) -> K) {
    radixSortCollection(&c, scheduler, key)
}

/// Sorts unsigned integers ascending with ``parallelRadixSort(_:scheduler:key:)``.
@inlinable
public func parallelRadixSort<C: MutableCollection & RandomAccessCollection>(_ c: inout C, scheduler: Scheduler? = nil)
where C.Element: FixedWidthInteger & UnsignedInteger {
    radixSortCollection(&c, scheduler, { $0 })
}

@inlinable
func radixSortCollection<C: MutableCollection & RandomAccessCollection, K: FixedWidthInteger & UnsignedInteger>(
    _ c: inout C, _ scheduler: Scheduler?, _ key: (C.Element) -> K) {
    withContiguousStorage(&c) { a, n in
        if n < 2 { return }
        onScheduler(scheduler) { ctx in
            radixSort(ctx, a, n, key)
        }
    }
}

@inlinable
func radixSort<T, K: FixedWidthInteger & UnsignedInteger>(
    _ ctx: Context?, _ a: UnsafeMutablePointer<T>, _ n: Int, _ key: (T) -> K) {
    if n <= 4096 || ctx == nil {
        withoutActuallyEscaping(key) { k in sortIntro(a, 0, n, sortDepthLimit(n), KeyOrder(key: k)) }
        return
    }
    let vps = max(1, ctx!.owningScheduler.virtualProcessorCount)
    let chunks = min(vps * 4, max(1, n / 4096))
    let per = (n + chunks - 1) / chunks
    let buf = UnsafeMutablePointer<T>.allocate(capacity: n)
    defer { buf.deallocate() }
    // counts[c * radix + d]: digit d in chunk c; then its output offset.
    let radix = 2048, digitBits = 11
    let counts = UnsafeMutablePointer<Int>.allocate(capacity: chunks * radix)
    defer { counts.deallocate() }
    var src = a, dst = buf
    let passes = (K.bitWidth + digitBits - 1) / digitBits
    for pass in 0..<passes {
        let shift = K(pass * digitBits)
        counts.initialize(repeating: 0, count: chunks * radix)
        forEachChunk(ctx!, 0, chunks) { c in
            let lo = c * per, hi = min(n, lo + per)
            let h = counts + c * radix
            var i = lo
            while i < hi { h[Int(truncatingIfNeeded: key(src[i]) >> shift) & (radix - 1)] += 1; i += 1 }
        }
        // Skip a pass in which every key has the same digit.
        var digitsUsed = 0
        for d in 0..<radix {
            var t = 0
            for c in 0..<chunks { t += counts[c * radix + d] }
            if t > 0 { digitsUsed += 1 }
        }
        if digitsUsed <= 1 { continue }
        var offset = 0
        for d in 0..<radix {
            for c in 0..<chunks {
                let k = counts[c * radix + d]
                counts[c * radix + d] = offset
                offset += k
            }
        }
        let s = src, t = dst
        forEachChunk(ctx!, 0, chunks) { c in
            let lo = c * per, hi = min(n, lo + per)
            let o = counts + c * radix
            var i = lo
            while i < hi {
                let d = Int(truncatingIfNeeded: key(s[i]) >> shift) & (radix - 1)
                (t + o[d]).moveInitialize(from: s + i, count: 1)
                o[d] += 1
                i += 1
            }
        }
        swap(&src, &dst)
    }
    if src != a {
        forEachChunk(ctx!, 0, chunks) { c in
            let lo = c * per, hi = min(n, lo + per)
            if lo < hi { (a + lo).moveInitialize(from: src + lo, count: hi - lo) }
        }
    }
}

/// Runs body(c) for c in lo..<hi in parallel by recursive halving.
@inlinable
func forEachChunk(_ ctx: Context, _ lo: Int, _ hi: Int, _ body: (Int) -> Void) {
    if hi - lo == 1 { body(lo); return }
    if hi <= lo { return }
    let mid = lo + (hi - lo) / 2
    _ = Context.forkJoinOn(ctx, { forEachChunk(ctx, lo, mid, body) }, { forEachChunk(Context.current!, mid, hi, body) })
}

/// Ordering by an unsigned key (small inputs of the radix sort).
@usableFromInline
struct KeyOrder<T, K: FixedWidthInteger & UnsignedInteger>: ElementOrdering {
    @usableFromInline let key: (T) -> K
    @inlinable init(key: @escaping (T) -> K) { self.key = key }
    @inlinable func areInIncreasingOrder(_ a: T, _ b: T) -> Bool { key(a) < key(b) }
}
