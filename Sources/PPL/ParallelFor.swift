import ConcRT
import Synchronization

/// Shared state of one algorithm run: its cancellation scope and the first
/// error. The first error cancels the run (remaining chunks are skipped).
final class RunState: @unchecked Sendable {
    // @unchecked Sendable: `failed` is atomic; `error` is written once by
    // the winner of `failed` and read after the join.
    let scope: CancellationScope
    private let failed = Atomic<Bool>(false)
    private var error: (any Error)?

    init(token: CancellationToken) {
        scope = CancellationScope(parent: CancellationScope.current, token: token)
    }

    var isCanceled: Bool { scope.isCanceled }

    func record(_ e: any Error) {
        if failed.exchange(true, ordering: .acquiringAndReleasing) { return }
        error = e
        scope.cancel()
    }

    /// After the join: rethrows the first error; throws TaskCanceled when
    /// canceled from outside (token or enclosing group).
    func finish() throws {
        if failed.load(ordering: .acquiring), let e = error { throw e }
        if scope.isCanceled { throw TaskCanceled() }
    }
}

/// Runs `chunk(lo, hi)` over `0..<n` by recursive halving down to `grain`,
/// forking the upper half each time (it is what thieves take).
func splitRange(_ lo: Int, _ hi: Int, grain: Int, _ state: RunState,
                _ chunk: (Int, Int) throws -> Void) {
    if state.isCanceled { return }
    if hi - lo <= grain {
        do {
            try CancellationScope.with(state.scope) { try chunk(lo, hi) }
        } catch {
            state.record(error)
        }
        return
    }
    let mid = lo + (hi - lo) / 2
    guard let ctx = Context.current else {
        splitRange(lo, mid, grain: grain, state, chunk)
        splitRange(mid, hi, grain: grain, state, chunk)
        return
    }
    _ = Context.forkJoinOn(ctx, { splitRange(lo, mid, grain: grain, state, chunk) },
                           { splitRange(mid, hi, grain: grain, state, chunk) })
}

/// The grain size for `n` iterations under `partitioner` on `scheduler`.
func grainSize(_ n: Int, _ partitioner: Partitioner, _ scheduler: Scheduler) -> Int {
    let p = max(1, scheduler.virtualProcessorCount)
    switch partitioner {
    case .auto: return max(1, n / (p * 16))
    case .static: return max(1, (n + p - 1) / p)
    case .simple(let chunk):
        precondition(chunk >= 1, "PPL: simple partitioner chunk must be >= 1 (got \(chunk))")
        return chunk
    case .affinity: return max(1, (n + p * 4 - 1) / (p * 4))
    }
}

/// Runs `chunk` over `0..<n`, in parallel, on the caller's scheduler (or
/// `scheduler`, or the default), blocking until every chunk ran.
func runChunked(_ n: Int, partitioner: Partitioner, scheduler: Scheduler?, token: CancellationToken,
                _ chunk: @escaping (Int, Int) throws -> Void) throws {
    if n <= 0 { return }
    let sched = scheduler ?? Scheduler.current ?? Scheduler.default
    let state = RunState(token: token)
    if state.isCanceled { throw TaskCanceled() }
    let body = { () -> Void in
        if case .affinity(let ap) = partitioner {
            runAffinity(n, ap, sched, state, chunk)
        } else {
            splitRange(0, n, grain: grainSize(n, partitioner, sched), state, chunk)
        }
    }
    if let c = Context.current, Scheduler.current === sched {
        _ = c
        body()
    } else {
        sched.run { body() }
    }
    try state.finish()
}

/// Affinity partitioning: one worker per virtual processor; each first
/// runs the chunks it ran last time, then any unclaimed chunk, and records
/// where each chunk ran.
func runAffinity(_ n: Int, _ ap: AffinityPartitioner, _ sched: Scheduler, _ state: RunState,
                 _ chunk: @escaping (Int, Int) throws -> Void) {
    let vps = max(1, sched.virtualProcessorCount)
    let chunks = ap.prepare(count: n, vps: vps)
    let claimed = UnsafeMutablePointer<Atomic<Bool>>.allocate(capacity: chunks)
    for i in 0..<chunks { (claimed + i).initialize(to: Atomic(false)) }
    defer { claimed.deinitialize(count: chunks); claimed.deallocate() }
    let migrations = Atomic<Int>(0)
    let per = (n + chunks - 1) / chunks
    func runChunk(_ i: Int, _ vp: Int) {
        if claimed[i].exchange(true, ordering: .acquiringAndReleasing) { return }
        if ap.owner(of: i) != vp { migrations.wrappingAdd(1, ordering: .relaxed) }
        ap.record(i, vp: vp)
        if state.isCanceled { return }
        let lo = i * per, hi = min(n, lo + per)
        if lo >= hi { return }
        do { try CancellationScope.with(state.scope) { try chunk(lo, hi) } } catch { state.record(error) }
    }
    splitRange(0, vps, grain: 1, state) { w, _ in
        let vp = Context.current?.virtualProcessorID ?? -1
        for i in 0..<chunks where ap.owner(of: i) == vp { runChunk(i, vp) }
        let start = (w * chunks) / vps
        for k in 0..<chunks { runChunk((start + k) % chunks, vp) }
    }
    ap.setMigrations(migrations.load(ordering: .relaxed))
}

/// Runs `body(i)` for `i` in `range` stepping by `step`, in parallel.
/// [parallel_for]
///
/// The first error thrown cancels the remaining iterations and is
/// rethrown; if `token` (or an enclosing task group) is canceled, the
/// remaining iterations are skipped and ``TaskCanceled`` is thrown.
/// From a scheduler context it runs there; from any other thread it runs
/// on `scheduler` (default: ``Scheduler/default``) and blocks the caller.
public func parallelFor(_ range: Range<Int>, step: Int = 1, partitioner: Partitioner = .auto,
                        scheduler: Scheduler? = nil, token: CancellationToken = .none,
                        _ body: @escaping @Sendable (Int) throws -> Void) throws {
    precondition(step > 0, "PPL: parallelFor step must be > 0 (got \(step))")
    let n = range.isEmpty ? 0 : (range.count + step - 1) / step
    let lower = range.lowerBound
    try runChunked(n, partitioner: partitioner, scheduler: scheduler, token: token) { lo, hi in
        for k in lo..<hi {
            try body(lower + k * step)
            if k & 63 == 63, isTaskCancellationRequested() { return }
        }
    }
}

/// Runs `body` on every element, in parallel. [parallel_for_each]
public func parallelForEach<C: RandomAccessCollection & Sendable>(
    _ collection: C, partitioner: Partitioner = .auto, scheduler: Scheduler? = nil,
    token: CancellationToken = .none, _ body: @escaping @Sendable (C.Element) throws -> Void) throws {
    let start = collection.startIndex
    try runChunked(collection.count, partitioner: partitioner, scheduler: scheduler, token: token) { lo, hi in
        var i = collection.index(start, offsetBy: lo)
        for _ in lo..<hi {
            try body(collection[i])
            i = collection.index(after: i)
        }
    }
}
