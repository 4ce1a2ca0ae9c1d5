import ConcRT

/// Sorts in place by an unsigned integer key, in parallel: a
/// most-significant-digit-first radix sort with an O(n) buffer. The first
/// pass (10-bit digit) builds per-chunk histograms in parallel and scatters
/// in parallel into the buffer; the buckets are then sorted in parallel,
/// each by a sequential MSD radix sort that stays in the core's cache
/// (digits of up to 12 bits, insertion sort for runs of at most 24 keys),
/// and a bucket still too large for one core gets another parallel pass.
/// Digits on which every key agrees are skipped without moving data (keys
/// that use only their low bits cost no extra passes); equal keys end the
/// recursion. Stable: equal keys keep their order. [parallel_radixsort]
///
/// Signed keys: project them to unsigned with the sign bit flipped, for
/// example `UInt64(bitPattern: Int64(x)) ^ (1 << 63)`.
@inlinable
public func parallelRadixSort<C: MutableCollection & RandomAccessCollection, K: FixedWidthInteger & UnsignedInteger>(
    _ c: inout C, scheduler: Scheduler? = nil, key: @Sendable (C.Element) -> K) {
    withoutActuallyEscaping(key) { k in radixSortCollection(&c, scheduler, RadixClosureKey(k)) }
}

/// Sorts unsigned integers ascending with ``parallelRadixSort(_:scheduler:key:)``.
@inlinable
public func parallelRadixSort<C: MutableCollection & RandomAccessCollection>(_ c: inout C, scheduler: Scheduler? = nil)
where C.Element: FixedWidthInteger & UnsignedInteger {
    radixSortCollection(&c, scheduler, RadixIdentityKey<C.Element>())
}

@inlinable
func radixSortCollection<C: MutableCollection & RandomAccessCollection, X: RadixKeyExtractor>(
    _ c: inout C, _ scheduler: Scheduler?, _ key: X) where X.Element == C.Element {
    withContiguousStorage(&c) { a, n in
        if n < 2 { return }
        onScheduler(scheduler) { ctx in
            radixSort(ctx, a, n, key)
        }
    }
}

/// Inputs shorter than this are sorted on the calling context alone.
@usableFromInline let radixParallelMin = 1 << 16

/// Digit width of a parallel pass (1024 buckets: 10M random keys leave
/// buckets of ~10K, 80 KB of UInt64, that a core sorts in its L2 cache
/// with one more pass and insertion sorts of a few keys).
@usableFromInline let radixParallelBits = 10

@inlinable
func radixSort<T, K, X: RadixKeyExtractor>(
    _ ctx: Context?, _ a: UnsafeMutablePointer<T>, _ n: Int, _ key: X) where X.Element == T, X.Key == K {
    if n <= radixInsertionMax {
        radixInsertionSort(a, n, key)
        return
    }
    let scratch = RadixScratch<T>(capacity: n)
    let buf = scratch.base
    defer { scratch.release() }   // every element has been moved back to `a`
    if let ctx, n >= radixParallelMin {
        radixSortParallel(ctx, a, buf, n, K.bitWidth, true, key)
    } else {
        let arena = UnsafeMutablePointer<Int>.allocate(capacity: radixArenaCapacity(K.self, maxN: n))
        defer { arena.deallocate() }
        radixSortRange(a, buf, n, K.bitWidth, true, arena, key)
    }
}

/// Sorts a range (terms of RadixSortKernels.swift) in parallel: one
/// most-significant-digit pass whose per-chunk histograms and stable
/// scatter run in parallel, then the buckets in parallel (a bucket still
/// large by this same function, the others by ``radixSortRange``).
@inlinable
func radixSortParallel<T, K, X: RadixKeyExtractor>(
    _ ctx: Context, _ src: UnsafeMutablePointer<T>, _ dst: UnsafeMutablePointer<T>, _ n: Int, _ topBit: Int,
    _ finalInSrc: Bool, _ key: X) where X.Element == T, X.Key == K {
    let vps = max(1, ctx.owningScheduler.virtualProcessorCount)
    let per = (n + vps * 4 - 1) / (vps * 4)
    let chunks = (n + per - 1) / per
    var topBit = topBit
    var bits = min(topBit, radixParallelBits)
    let maxRadix = 1 << bits
    // counts[c * maxRadix + d]: keys of chunk c with digit d; then where
    // chunk c writes its next such key.
    let counts = UnsafeMutablePointer<Int>.allocate(capacity: chunks * maxRadix)
    defer { counts.deallocate() }
    // diffs[c]: OR of (key XOR chunk c's first key) over chunk c.
    let diffs = UnsafeMutablePointer<K>.allocate(capacity: chunks)
    defer { diffs.deallocate() }
    while true {
        let shift = topBit - bits, mask = K(truncatingIfNeeded: (1 << bits) - 1), radix = 1 << bits
        forEachChunk(ctx, 0, chunks) { c in
            let lo = c * per, hi = min(n, lo + per)
            let h = counts + c * maxRadix
            h.initialize(repeating: 0, count: radix)
            let first = key.key(src[lo])
            var diff: K = 0
            var i = lo
            while i < hi {
                let k = key.key(src[i])
                diff |= k ^ first
                h[Int(truncatingIfNeeded: (k &>> shift) & mask)] &+= 1
                i += 1
            }
            diffs[c] = diff
        }
        // Why sound: chunk c wrote only counts[c * maxRadix ..< (c + 1) * maxRadix]
        // and diffs[c], and read src; forEachChunk returns after every
        // chunk ran, and its joins order those writes before these reads.
        let first = key.key(src[0])
        var diff: K = 0
        for c in 0..<chunks { diff |= diffs[c] | (key.key(src[c * per]) ^ first) }
        if diff == 0 {   // all keys equal
            if !finalInSrc { radixMoveParallel(ctx, src, dst, n, chunks, per) }
            return
        }
        let varying = radixTopBit(diff)
        if varying > shift { break }
        topBit = varying   // this digit is the same in every key: skip to the bits that vary
        bits = min(bits, topBit)
    }
    let shift = topBit - bits, mask = K(truncatingIfNeeded: (1 << bits) - 1), radix = 1 << bits
    // starts[d]: where bucket d begins; starts[radix] == n.
    let starts = UnsafeMutablePointer<Int>.allocate(capacity: radix + 1)
    defer { starts.deallocate() }
    var offset = 0
    for d in 0..<radix {
        starts[d] = offset
        for c in 0..<chunks {
            let k = counts[c * maxRadix + d]
            counts[c * maxRadix + d] = offset
            offset += k
        }
    }
    starts[radix] = n
    // Stable scatter: chunk c's keys with digit d go after those of chunks
    // before c, in their order. Why sound: the offsets give every chunk its
    // own slots of dst (they partition 0..<n), each chunk reads only its own
    // slice of src and its own row of counts, and the join of forEachChunk
    // orders all the moves before the buckets are sorted.
    forEachChunk(ctx, 0, chunks) { c in
        let lo = c * per, hi = min(n, lo + per)
        let o = counts + c * maxRadix
        var i = lo
        while i < hi {
            let d = Int(truncatingIfNeeded: (key.key(src[i]) &>> shift) & mask)
            (dst + o[d]).moveInitialize(from: src + i, count: 1)
            o[d] += 1
            i += 1
        }
    }
    radixSortBuckets(ctx, dst, src, starts, 0, radix, shift, !finalInSrc, key)
}

/// Sorts buckets lo..<hi (bucket d is `starts[d]..<starts[d + 1]` of the
/// range at `src`, scratch at `dst`, every key agreeing on bits at and
/// above `topBit`) in parallel, halving the bucket range.
@inlinable
func radixSortBuckets<T, K, X: RadixKeyExtractor>(
    _ ctx: Context, _ src: UnsafeMutablePointer<T>, _ dst: UnsafeMutablePointer<T>,
    _ starts: UnsafeMutablePointer<Int>, _ lo: Int, _ hi: Int, _ topBit: Int, _ finalInSrc: Bool,
    _ key: X) where X.Element == T, X.Key == K {
    // Why the forks are sound: bucket d owns src[starts[d]..<starts[d + 1]]
    // and the same slots of dst, so the two halves touch disjoint memory;
    // `starts` is only read. forkJoinOn returns after both halves ran,
    // and its join orders their writes before whatever the caller does next.
    if hi - lo > 1 && starts[hi] - starts[lo] > radixParallelMin {
        let mid = lo + (hi - lo) / 2
        _ = Context.forkJoinOn(ctx, { radixSortBuckets(ctx, src, dst, starts, lo, mid, topBit, finalInSrc, key) },
                               { radixSortBuckets(Context.current!, src, dst, starts, mid, hi, topBit, finalInSrc, key) })
        return
    }
    if hi - lo == 1 && starts[hi] - starts[lo] >= radixParallelMin {
        let s = starts[lo]
        radixSortParallel(ctx, src + s, dst + s, starts[hi] - s, topBit, finalInSrc, key)
        return
    }
    var largest = 0
    for d in lo..<hi { largest = max(largest, starts[d + 1] - starts[d]) }
    let arena = UnsafeMutablePointer<Int>.allocate(capacity: radixArenaCapacity(K.self, maxN: largest))
    defer { arena.deallocate() }
    for d in lo..<hi {
        let s = starts[d], e = starts[d + 1]
        if e > s { radixSortRange(src + s, dst + s, e - s, topBit, finalInSrc, arena, key) }
    }
}

/// Moves `n` elements from `src` to `dst` in parallel, by chunks.
@inlinable
func radixMoveParallel<T>(_ ctx: Context, _ src: UnsafeMutablePointer<T>, _ dst: UnsafeMutablePointer<T>,
                          _ n: Int, _ chunks: Int, _ per: Int) {
    forEachChunk(ctx, 0, chunks) { c in
        let lo = c * per, hi = min(n, lo + per)
        if lo < hi { (dst + lo).moveInitialize(from: src + lo, count: hi - lo) }
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
