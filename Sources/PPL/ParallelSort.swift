import ConcRT

/// Sorts in place, in parallel: a quicksort whose two sides are forked
/// (median-of-three pivot), down to leaves sorted by a sequential introsort.
/// Not stable. [parallel_sort]
///
/// The comparator must be a strict weak ordering. Works on any mutable
/// random-access collection; contiguous storage is sorted in place,
/// anything else through a temporary array.
@inlinable
public func parallelSort<C: MutableCollection & RandomAccessCollection>(
    _ c: inout C, scheduler: Scheduler? = nil, by less: @escaping @Sendable (C.Element, C.Element) -> Bool) {
    quickSortCollection(&c, scheduler, ClosureOrder(less))
}

@inlinable
func quickSortCollection<C: MutableCollection & RandomAccessCollection, L: ElementOrdering>(
    _ c: inout C, _ scheduler: Scheduler?, _ less: L) where L.Element == C.Element {
    withContiguousStorage(&c) { a, n in
        onScheduler(scheduler) { ctx in
            let cutoff = max(2048, n / (max(1, ctx?.owningScheduler.virtualProcessorCount ?? 1) * 32))
            parallelQuickSort(ctx, a, 0, n, sortDepthLimit(n), cutoff, less)
        }
    }
}

/// Sorts ascending, in parallel. [parallel_sort]
@inlinable
public func parallelSort<C: MutableCollection & RandomAccessCollection>(_ c: inout C, scheduler: Scheduler? = nil)
where C.Element: Comparable {
    quickSortCollection(&c, scheduler, NaturalOrder<C.Element>())
}

/// Sorts in place, in parallel, with an O(n) buffer: a merge sort whose
/// halves are sorted in parallel (introsort at the leaves) and merged
/// through the buffer. Stable-free but with a guaranteed O(n log n).
/// [parallel_buffered_sort]
@inlinable
public func parallelBufferedSort<C: MutableCollection & RandomAccessCollection>(
    _ c: inout C, scheduler: Scheduler? = nil, by less: @escaping @Sendable (C.Element, C.Element) -> Bool) {
    mergeSortCollection(&c, scheduler, ClosureOrder(less))
}

@inlinable
func mergeSortCollection<C: MutableCollection & RandomAccessCollection, L: ElementOrdering>(
    _ c: inout C, _ scheduler: Scheduler?, _ less: L) where L.Element == C.Element {
    withContiguousStorage(&c) { a, n in
        if n < 2 { return }
        let buf = UnsafeMutablePointer<C.Element>.allocate(capacity: n)
        defer { buf.deallocate() }
        onScheduler(scheduler) { ctx in
            let cutoff = max(4096, n / (max(1, ctx?.owningScheduler.virtualProcessorCount ?? 1) * 16))
            mergeSort(ctx, a, buf, 0, n, cutoff, less)
        }
    }
}

/// Sorts ascending with a buffer, in parallel. [parallel_buffered_sort]
@inlinable
public func parallelBufferedSort<C: MutableCollection & RandomAccessCollection>(_ c: inout C, scheduler: Scheduler? = nil)
where C.Element: Comparable {
    mergeSortCollection(&c, scheduler, NaturalOrder<C.Element>())
}

// MARK: Kernels

/// Runs `body` with the collection's elements as a contiguous buffer.
@inlinable
func withContiguousStorage<C: MutableCollection & RandomAccessCollection>(
    _ c: inout C, _ body: (UnsafeMutablePointer<C.Element>, Int) -> Void) {
    let done: Void? = c.withContiguousMutableStorageIfAvailable { b in
        if let base = b.baseAddress { body(base, b.count) }
    }
    if done == nil {
        var copy = Array(c)
        copy.withUnsafeMutableBufferPointer { b in
            if let base = b.baseAddress { body(base, b.count) }
        }
        var i = c.startIndex
        for x in copy { c[i] = x; i = c.index(after: i) }
    }
}

/// Runs `body` on a context of `scheduler` (or the caller's, or the
/// default), passing that context (nil never happens inside).
@inlinable
func onScheduler(_ scheduler: Scheduler?, _ body: (Context?) -> Void) {
    if let ctx = Context.current, scheduler == nil || Scheduler.current === scheduler {
        body(ctx)
    } else {
        (scheduler ?? Scheduler.default).run { body(Context.current) }
    }
}

@inlinable
func parallelQuickSort<T, L: ElementOrdering>(_ ctx: Context?, _ a: UnsafeMutablePointer<T>, _ lo: Int, _ hi: Int,
                                            _ depth: Int, _ cutoff: Int, _ less: L) where L.Element == T {
    if hi - lo <= cutoff || depth == 0 || ctx == nil {
        sortIntro(a, lo, hi, depth, less)
        return
    }
    let p = sortPartition(a, lo, hi, less)
    _ = Context.forkJoinOn(ctx!, { parallelQuickSort(ctx, a, lo, p, depth - 1, cutoff, less) },
                           { parallelQuickSort(Context.current, a, p, hi, depth - 1, cutoff, less) })
}

/// Sorts a[lo..<hi]; the result is left in `a`. `b` is scratch.
@inlinable
func mergeSort<T, L: ElementOrdering>(_ ctx: Context?, _ a: UnsafeMutablePointer<T>, _ b: UnsafeMutablePointer<T>,
                                      _ lo: Int, _ hi: Int, _ cutoff: Int, _ less: L) where L.Element == T {
    if hi - lo <= cutoff || ctx == nil {
        sortIntro(a, lo, hi, sortDepthLimit(hi - lo), less)
        return
    }
    let mid = lo + (hi - lo) / 2
    _ = Context.forkJoinOn(ctx!, { mergeSort(ctx, a, b, lo, mid, cutoff, less) },
                           { mergeSort(Context.current, a, b, mid, hi, cutoff, less) })
    // Merge a[lo..<mid] and a[mid..<hi] into b, then move back.
    if !less.areInIncreasingOrder(a[mid], a[mid - 1]) { return }   // already in order
    var i = lo, j = mid, k = lo
    while i < mid && j < hi {
        if less.areInIncreasingOrder(a[j], a[i]) { (b + k).moveInitialize(from: a + j, count: 1); j += 1 }
        else { (b + k).moveInitialize(from: a + i, count: 1); i += 1 }
        k += 1
    }
    if i < mid { (b + k).moveInitialize(from: a + i, count: mid - i); k += mid - i }
    if j < hi { (b + k).moveInitialize(from: a + j, count: hi - j) }
    (a + lo).moveInitialize(from: b + lo, count: hi - lo)
}
