/// Sequential sorting kernels used at the leaves of the parallel sorts:
/// an introsort (median-of-three quicksort, insertion sort for short runs,
/// heapsort when recursion gets too deep), on raw element pointers.
/// Generic over the ordering type and @inlinable, so each call site is
/// specialized for its element type and ordering: `NaturalOrder` inlines
/// `<` into the kernels (a comparator closure would be an indirect call
/// per comparison).

/// A strict weak ordering of `Element`s.
public protocol ElementOrdering {
    associatedtype Element
    func areInIncreasingOrder(_ a: Element, _ b: Element) -> Bool
}

/// `<` of a Comparable type.
@frozen
public struct NaturalOrder<Element: Comparable>: ElementOrdering {
    @inlinable public init() {}
    @inlinable @inline(__always)
    public func areInIncreasingOrder(_ a: Element, _ b: Element) -> Bool { a < b }
}

/// A comparator closure.
@frozen
public struct ClosureOrder<Element>: ElementOrdering {
    @usableFromInline let less: (Element, Element) -> Bool
    @inlinable public init(_ less: @escaping (Element, Element) -> Bool) { self.less = less }
    @inlinable @inline(__always)
    public func areInIncreasingOrder(_ a: Element, _ b: Element) -> Bool { less(a, b) }
}

@inlinable
func sortInsertion<T, L: ElementOrdering>(_ a: UnsafeMutablePointer<T>, _ lo: Int, _ hi: Int, _ less: L) where L.Element == T {
    if hi - lo < 2 { return }
    var i = lo + 1
    while i < hi {
        if less.areInIncreasingOrder(a[i], a[i - 1]) {
            let x = (a + i).move()
            var j = i
            repeat {
                (a + j).moveInitialize(from: a + j - 1, count: 1)
                j -= 1
            } while j > lo && less.areInIncreasingOrder(x, a[j - 1])
            (a + j).initialize(to: x)
        }
        i += 1
    }
}

@inlinable
func sortSiftDown<T, L: ElementOrdering>(_ a: UnsafeMutablePointer<T>, _ lo: Int, _ start: Int, _ n: Int, _ less: L) where L.Element == T {
    var root = start
    while true {
        var child = 2 * root + 1
        if child >= n { return }
        if child + 1 < n && less.areInIncreasingOrder(a[lo + child], a[lo + child + 1]) { child += 1 }
        if !less.areInIncreasingOrder(a[lo + root], a[lo + child]) { return }
        swap(&a[lo + root], &a[lo + child])
        root = child
    }
}

@inlinable
func sortHeap<T, L: ElementOrdering>(_ a: UnsafeMutablePointer<T>, _ lo: Int, _ hi: Int, _ less: L) where L.Element == T {
    let n = hi - lo
    if n < 2 { return }
    var start = n / 2 - 1
    while start >= 0 { sortSiftDown(a, lo, start, n, less); start -= 1 }
    var end = n - 1
    while end > 0 {
        swap(&a[lo], &a[lo + end])
        sortSiftDown(a, lo, 0, end, less)
        end -= 1
    }
}

/// Partitions a[lo..<hi] (hi - lo >= 3) around a median-of-three pivot.
/// Returns p with a[lo..<p] <= pivot <= a[p..<hi], both sides non-empty.
@inlinable
func sortPartition<T, L: ElementOrdering>(_ a: UnsafeMutablePointer<T>, _ lo: Int, _ hi: Int, _ less: L) -> Int where L.Element == T {
    let mid = lo + (hi - lo) / 2
    // Order a[lo], a[mid], a[hi-1]; the median goes to a[mid].
    if less.areInIncreasingOrder(a[mid], a[lo]) { swap(&a[mid], &a[lo]) }
    if less.areInIncreasingOrder(a[hi - 1], a[mid]) {
        swap(&a[hi - 1], &a[mid])
        if less.areInIncreasingOrder(a[mid], a[lo]) { swap(&a[mid], &a[lo]) }
    }
    let pivot = a[mid]
    var i = lo - 1
    var j = hi
    while true {
        repeat { i += 1 } while less.areInIncreasingOrder(a[i], pivot)
        repeat { j -= 1 } while less.areInIncreasingOrder(pivot, a[j])
        if i >= j { return j + 1 }
        swap(&a[i], &a[j])
    }
}

@inlinable
func sortIntro<T, L: ElementOrdering>(_ a: UnsafeMutablePointer<T>, _ lo: Int, _ hi: Int, _ depth: Int, _ less: L) where L.Element == T {
    var lo = lo, hi = hi, depth = depth
    while hi - lo > 24 {
        if depth == 0 { sortHeap(a, lo, hi, less); return }
        depth -= 1
        let p = sortPartition(a, lo, hi, less)
        // Recurse into the smaller side, loop on the larger.
        if p - lo < hi - p {
            sortIntro(a, lo, p, depth, less)
            lo = p
        } else {
            sortIntro(a, p, hi, depth, less)
            hi = p
        }
    }
    sortInsertion(a, lo, hi, less)
}

@inlinable
func sortDepthLimit(_ n: Int) -> Int {
    var d = 0, m = n
    while m > 1 { m >>= 1; d += 1 }
    return 2 * d + 4
}
