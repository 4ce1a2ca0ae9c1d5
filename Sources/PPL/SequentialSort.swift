/// Sequential sorting kernels used at the leaves of the parallel sorts:
/// an introsort (median-of-three quicksort, insertion sort for short runs,
/// heapsort when recursion gets too deep), on raw element pointers.
/// Generic and @inlinable so each call site is specialized for its element
/// type and comparator.

@inlinable
func sortInsertion<T>(_ a: UnsafeMutablePointer<T>, _ lo: Int, _ hi: Int, _ less: (T, T) throws -> Bool) rethrows {
    if hi - lo < 2 { return }
    var i = lo + 1
    while i < hi {
        if try less(a[i], a[i - 1]) {
            let x = (a + i).move()
            var j = i
            repeat {
                (a + j).moveInitialize(from: a + j - 1, count: 1)
                j -= 1
            } while try j > lo && less(x, a[j - 1])
            (a + j).initialize(to: x)
        }
        i += 1
    }
}

@inlinable
func sortSiftDown<T>(_ a: UnsafeMutablePointer<T>, _ lo: Int, _ start: Int, _ n: Int, _ less: (T, T) throws -> Bool) rethrows {
    var root = start
    while true {
        var child = 2 * root + 1
        if child >= n { return }
        if try child + 1 < n && less(a[lo + child], a[lo + child + 1]) { child += 1 }
        if try !less(a[lo + root], a[lo + child]) { return }
        swap(&a[lo + root], &a[lo + child])
        root = child
    }
}

@inlinable
func sortHeap<T>(_ a: UnsafeMutablePointer<T>, _ lo: Int, _ hi: Int, _ less: (T, T) throws -> Bool) rethrows {
    let n = hi - lo
    if n < 2 { return }
    var start = n / 2 - 1
    while start >= 0 { try sortSiftDown(a, lo, start, n, less); start -= 1 }
    var end = n - 1
    while end > 0 {
        swap(&a[lo], &a[lo + end])
        try sortSiftDown(a, lo, 0, end, less)
        end -= 1
    }
}

/// Partitions a[lo..<hi] (hi - lo >= 3) around a median-of-three pivot.
/// Returns p with a[lo..<p] <= pivot <= a[p..<hi], both sides non-empty.
@inlinable
func sortPartition<T>(_ a: UnsafeMutablePointer<T>, _ lo: Int, _ hi: Int, _ less: (T, T) throws -> Bool) rethrows -> Int {
    let mid = lo + (hi - lo) / 2
    // Order a[lo], a[mid], a[hi-1]; the median goes to a[mid].
    if try less(a[mid], a[lo]) { swap(&a[mid], &a[lo]) }
    if try less(a[hi - 1], a[mid]) {
        swap(&a[hi - 1], &a[mid])
        if try less(a[mid], a[lo]) { swap(&a[mid], &a[lo]) }
    }
    let pivot = a[mid]
    var i = lo - 1
    var j = hi
    while true {
        repeat { i += 1 } while try less(a[i], pivot)
        repeat { j -= 1 } while try less(pivot, a[j])
        if i >= j { return j + 1 }
        swap(&a[i], &a[j])
    }
}

@inlinable
func sortIntro<T>(_ a: UnsafeMutablePointer<T>, _ lo: Int, _ hi: Int, _ depth: Int, _ less: (T, T) throws -> Bool) rethrows {
    var lo = lo, hi = hi, depth = depth
    while hi - lo > 24 {
        if depth == 0 { try sortHeap(a, lo, hi, less); return }
        depth -= 1
        let p = try sortPartition(a, lo, hi, less)
        // Recurse into the smaller side, loop on the larger.
        if p - lo < hi - p {
            try sortIntro(a, lo, p, depth, less)
            lo = p
        } else {
            try sortIntro(a, p, hi, depth, less)
            hi = p
        }
    }
    try sortInsertion(a, lo, hi, less)
}

@inlinable
func sortDepthLimit(_ n: Int) -> Int {
    var d = 0, m = n
    while m > 1 { m >>= 1; d += 1 }
    return 2 * d + 4
}
