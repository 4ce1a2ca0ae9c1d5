import ConcRT
import Synchronization

/// Reduces `range` in parallel: `map` turns a sub-range into a partial
/// result, `combine` joins two partial results (it must be associative;
/// it is applied in left-to-right order of the sub-ranges, so it need not
/// be commutative). An empty range gives `identity`. [parallel_reduce]
public func parallelReduce<T>(_ range: Range<Int>, identity: T, partitioner: Partitioner = .auto,
                              scheduler: Scheduler? = nil, token: CancellationToken = .none,
                              map: @escaping @Sendable (Range<Int>) throws -> T,
                              combine: @escaping @Sendable (T, T) throws -> T) throws -> T {
    if range.isEmpty { return identity }
    let sched = scheduler ?? Scheduler.current ?? Scheduler.default
    let state = RunState(token: token)
    let grain = grainSize(range.count, partitioner, sched)
    let base = range.lowerBound
    func reduce(_ lo: Int, _ hi: Int) -> T? {
        if state.isCanceled { return nil }
        if hi - lo <= grain {
            do { return try CancellationScope.with(state.scope) { try map((base + lo)..<(base + hi)) } } catch {
                state.record(error); return nil
            }
        }
        let mid = lo + (hi - lo) / 2
        let (l, r): (T?, T?)
        if let ctx = Context.current {
            (l, r) = Context.forkJoinOn(ctx, { reduce(lo, mid) }, { reduce(mid, hi) })
        } else {
            (l, r) = (reduce(lo, mid), reduce(mid, hi))
        }
        guard let l, let r else { return nil }
        do { return try combine(l, r) } catch { state.record(error); return nil }
    }
    var out: T?
    if Scheduler.current === sched { out = reduce(0, range.count) } else { out = sched.run { reduce(0, range.count) } }
    try state.finish()
    return out!
}

/// Reduces a collection's elements in parallel with an associative
/// `combine`. [parallel_reduce over iterators]
public func parallelReduce<C: RandomAccessCollection & Sendable>(
    _ collection: C, identity: C.Element, scheduler: Scheduler? = nil, token: CancellationToken = .none,
    _ combine: @escaping @Sendable (C.Element, C.Element) throws -> C.Element) throws -> C.Element
    where C.Element: Sendable, C.Index: Sendable {
    let start = collection.startIndex
    return try parallelReduce(0..<collection.count, identity: identity, scheduler: scheduler, token: token,
                              map: { r in
                                  var acc = identity
                                  var i = collection.index(start, offsetBy: r.lowerBound)
                                  for _ in r { acc = try combine(acc, collection[i]); i = collection.index(after: i) }
                                  return acc
                              }, combine: combine)
}

/// Writes `transform(input[i])` to `output[i]` for every element, in
/// parallel. `output` must have at least `input.count` elements.
/// [parallel_transform]
public func parallelTransform<C: RandomAccessCollection & Sendable, T>(
    _ input: C, into output: inout [T], partitioner: Partitioner = .auto,
    scheduler: Scheduler? = nil, token: CancellationToken = .none,
    _ transform: @escaping @Sendable (C.Element) throws -> T) throws {
    precondition(output.count >= input.count,
                 "PPL: parallelTransform output has \(output.count) elements for \(input.count) inputs")
    let start = input.startIndex
    try output.withUnsafeMutableBufferPointer { out in
        let dst = UnsafeSendablePointer(out.baseAddress!)
        try runChunked(input.count, partitioner: partitioner, scheduler: scheduler, token: token) { lo, hi in
            var i = input.index(start, offsetBy: lo)
            for k in lo..<hi {
                dst.pointer[k] = try transform(input[i])
                i = input.index(after: i)
            }
        }
    }
}

/// Maps every element in parallel and returns the results in order: the
/// Swift form of parallel_transform into a new array.
public func parallelMap<C: RandomAccessCollection & Sendable, T>(
    _ input: C, partitioner: Partitioner = .auto, scheduler: Scheduler? = nil,
    token: CancellationToken = .none, _ transform: @escaping @Sendable (C.Element) throws -> T) throws -> [T] {
    let n = input.count
    if n == 0 { return [] }
    let start = input.startIndex
    // Each chunk initializes its slots fully or, on an error, deinitializes
    // what it did; `done` marks the fully initialized chunks.
    let chunkSize = max(1, n / (max(1, (scheduler ?? Scheduler.current ?? Scheduler.default).virtualProcessorCount) * 16))
    let chunks = (n + chunkSize - 1) / chunkSize
    let done = UnsafeMutablePointer<Atomic<Bool>>.allocate(capacity: chunks)
    for i in 0..<chunks { (done + i).initialize(to: Atomic(false)) }
    defer { done.deinitialize(count: chunks); done.deallocate() }
    let doneP = UnsafeSendablePointer(done)
    var failure: (any Error)?
    let result = [T](unsafeUninitializedCapacity: n) { buf, count in
        let dst = UnsafeSendablePointer(buf.baseAddress!)
        do {
            try runChunked(chunks, partitioner: .simple(chunk: 1), scheduler: scheduler, token: token) { c, _ in
                let lo = c * chunkSize, hi = min(n, lo + chunkSize)
                var i = input.index(start, offsetBy: lo)
                var k = lo
                do {
                    while k < hi {
                        (dst.pointer + k).initialize(to: try transform(input[i]))
                        k += 1
                        i = input.index(after: i)
                    }
                } catch {
                    (dst.pointer + lo).deinitialize(count: k - lo)
                    throw error
                }
                doneP.pointer[c].store(true, ordering: .releasing)
            }
            count = n
        } catch {
            for c in 0..<chunks where done[c].load(ordering: .acquiring) {
                let lo = c * chunkSize, hi = min(n, lo + chunkSize)
                (buf.baseAddress! + lo).deinitialize(count: hi - lo)
            }
            count = 0
            failure = error
        }
    }
    if let failure { throw failure }
    return result
}

/// A pointer handed to parallel chunks that write disjoint elements.
@usableFromInline
struct UnsafeSendablePointer<T: ~Copyable>: @unchecked Sendable {
    @usableFromInline let pointer: UnsafeMutablePointer<T>
    @inlinable init(_ p: UnsafeMutablePointer<T>) { pointer = p }
}
