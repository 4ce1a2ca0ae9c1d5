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

/// One loop run's shared state, on the stack of the caller of
/// ``runChunked(_:partitioner:scheduler:token:_:)``: its cancellation scope
/// and the first error. Chunks reach it through a pointer; the frame
/// outlives them all (the run returns only after every chunk joined).
struct LoopRun {
    /// The loop's scope (the one heap object of a run): the current scope
    /// of every chunk, so ``isTaskCancellationRequested()`` in the body sees
    /// the loop's first error, its token and any enclosing group.
    let scope: CancellationScope
    /// Written once, by the chunk whose error canceled `scope` first; read
    /// after the join (which orders the write before the read).
    var error: (any Error)?

    /// `scope`, unretained, for the checks of every split and chunk (no
    /// reference count is touched): `scope` holds it until the run ends,
    /// after every chunk has joined.
    let scopeRef: Unmanaged<CancellationScope>

    init(scope: CancellationScope) {
        self.scope = scope
        scopeRef = Unmanaged.passUnretained(scope)
    }

    /// After the join: rethrows the first error; throws TaskCanceled when
    /// canceled from outside (token or enclosing group).
    func finish() throws {
        if let error { throw error }
        if scope.isCanceled { throw TaskCanceled() }
    }
}

extension UnsafeMutablePointer where Pointee == LoopRun {
    /// True when the loop's scope (or an enclosing one, or its token) is
    /// canceled. Reads only the `scopeRef` field (a computed property of
    /// LoopRun itself would copy, and retain, the whole run).
    var isCanceled: Bool { pointee.scopeRef._withUnsafeGuaranteedRef { $0.isCanceled } }

    /// A chunk ended with `e`: the first one cancels the loop's scope (the
    /// remaining chunks are skipped) and keeps its error.
    func record(_ e: any Error) {
        // Why this is sound: only the winner of cancelFirst writes `error`,
        // and it is read only after the join (see LoopRun.error).
        if pointee.scope.cancelFirst() { pointee.error = e }
    }
}

/// How many more times a range may be halved before it runs as one chunk.
///
/// `.auto` splits adaptively, as rayon's and TBB's auto partitioners do:
/// a run starts with a budget of one split per virtual processor, each
/// split halves it, and a range that a thief took resets it to at least
/// the processor count (there is demand: split again). So a loop that
/// nobody helps with costs a few forks, not one per grain, and a loop
/// nested in a parallel tree (skynet: `parallelFor(0..<10)` per node)
/// forks about 3 times per node on 2 VPs instead of 9; stolen halves are
/// split as finely as the thieves need. The other partitioners split down
/// to their grain: an unlimited budget.
struct SplitBudget {
    var splits: Int
    /// Processor count: the floor a stolen range resets the budget to.
    let vps: Int

    static func adaptive(vps: Int) -> SplitBudget { SplitBudget(splits: max(1, vps), vps: max(1, vps)) }
    static let unlimited = SplitBudget(splits: .max, vps: 1)

    /// Whether to halve a range (of more than the grain) now, and the
    /// budget its halves get.
    @inline(__always)
    mutating func shouldSplit(stolen: Bool) -> Bool {
        if splits == .max { return true }
        if stolen {
            splits = max(vps, splits / 2)
            return true
        }
        if splits > 0 {
            splits /= 2
            return true
        }
        return false
    }
}

/// Runs `chunk(lo, hi)` over `lo..<hi` by recursive halving, down to
/// `grain` and while `budget` allows, forking the upper half each time (it
/// is what thieves take). `stolen`: this range was just taken by a thief.
///
/// The loop's scope is already the current one on `ctx` (runOnContext set
/// it once): chunks run inline here are plain calls and see it. A half
/// that a thief takes runs on the thief's context, which sets the scope
/// around it (`whenStolen`). `ctx` is the running context, nil off a
/// context (then the halves run one after the other).
func splitRange(_ lo: Int, _ hi: Int, grain: Int, budget: SplitBudget, stolen: Bool = false,
                _ run: UnsafeMutablePointer<LoopRun>,
                _ ctx: Unmanaged<Context>?, _ chunk: (Int, Int) throws -> Void) {
    if run.isCanceled { return }
    var budget = budget
    if hi - lo <= grain || !budget.shouldSplit(stolen: stolen) {
        do { try chunk(lo, hi) } catch { run.record(error) }
        return
    }
    let mid = lo + (hi - lo) / 2
    guard let ctx else {
        splitRange(lo, mid, grain: grain, budget: budget, run, nil, chunk)
        splitRange(mid, hi, grain: grain, budget: budget, run, nil, chunk)
        return
    }
    Context.forkJoin(ctx, { splitRange(lo, mid, grain: grain, budget: budget, run, ctx, chunk) },
                     { splitRange(mid, hi, grain: grain, budget: budget, run, ctx, chunk) },
                     whenStolen: { runStolenHalf(mid, hi, grain: grain, budget: budget, run, chunk) })
}

/// A thief runs the upper half of a split: on its own context, inside the
/// loop's scope, with the split budget of a stolen range.
@inline(never)
func runStolenHalf(_ lo: Int, _ hi: Int, grain: Int, budget: SplitBudget, _ run: UnsafeMutablePointer<LoopRun>,
                   _ chunk: (Int, Int) throws -> Void) {
    CancellationScope.with(run.pointee.scope) {
        splitRange(lo, hi, grain: grain, budget: budget, stolen: true, run, Context.currentUnretained, chunk)
    }
}

/// The grain size for `n` iterations under `partitioner` on `scheduler`.
func grainSize(_ n: Int, _ partitioner: Partitioner, _ scheduler: Scheduler) -> Int {
    grainSize(n, partitioner, vps: scheduler.virtualProcessorCount)
}

/// The grain size for `n` iterations under `partitioner` over `vps`
/// virtual processors.
func grainSize(_ n: Int, _ partitioner: Partitioner, vps: Int) -> Int {
    let p = max(1, vps)
    switch partitioner {
    case .auto: return max(1, n / (p * 16))   // parallelReduce; loops split adaptively (SplitBudget)
    case .static: return max(1, (n + p - 1) / p)
    case .simple(let chunk):
        precondition(chunk >= 1, "PPL: simple partitioner chunk must be >= 1 (got \(chunk))")
        return chunk
    case .affinity: return max(1, (n + p * 4 - 1) / (p * 4))
    }
}

/// Runs `chunk` over `0..<n`, in parallel, on the caller's scheduler (or
/// `scheduler`, or the default), blocking until every chunk ran.
///
/// On a context of the scheduler (the common case: a loop inside a task,
/// or nested in another loop's body) the run costs one heap object, its
/// scope: the rest of its state is on this frame, the forks are stack
/// records (``Context/forkJoin(_:_:_:whenStolen:)``), and the scope is set
/// as the current one once per run and once per stolen half, not per chunk.
func runChunked(_ n: Int, partitioner: Partitioner, scheduler: Scheduler?, token: CancellationToken,
                _ chunk: (Int, Int) throws -> Void) throws {
    if n <= 0 { return }
    let here = Context.currentUnretained
    let parent: CancellationScope?
    if let here { parent = CancellationScope.current(on: here) } else { parent = CancellationScope.current }
    var run = LoopRun(scope: CancellationScope(parent: parent, token: token))
    if run.scope.isCanceled { throw TaskCanceled() }
    try withUnsafeMutablePointer(to: &run) { rp in
        if let here, scheduler.map({ s in here._withUnsafeGuaranteedRef { $0.belongs(to: s) } }) ?? true {
            let vps = here._withUnsafeGuaranteedRef { $0.schedulerVirtualProcessorCount }
            runOnContext(n, partitioner, vps: vps, rp, here, chunk)
        } else {
            let sched = scheduler ?? Scheduler.current ?? Scheduler.default
            let vps = sched.virtualProcessorCount
            sched.run { runOnContext(n, partitioner, vps: vps, rp, Context.currentUnretained, chunk) }
        }
        try rp.pointee.finish()
    }
}

/// The body of ``runChunked(_:partitioner:scheduler:token:_:)`` on the
/// context `ctx` of the loop's scheduler: sets the loop's scope, splits.
func runOnContext(_ n: Int, _ partitioner: Partitioner, vps: Int, _ run: UnsafeMutablePointer<LoopRun>,
                  _ ctx: Unmanaged<Context>?, _ chunk: (Int, Int) throws -> Void) {
    CancellationScope.with(run.pointee.scope) {
        if case .affinity(let ap) = partitioner {
            runAffinity(n, ap, vps: vps, run, ctx, chunk)
        } else {
            if case .auto = partitioner {
                splitRange(0, n, grain: 1, budget: .adaptive(vps: vps), run, ctx, chunk)
            } else {
                splitRange(0, n, grain: grainSize(n, partitioner, vps: vps), budget: .unlimited, run, ctx, chunk)
            }
        }
    }
}

/// Affinity partitioning: one worker per virtual processor; each first
/// runs the chunks it ran last time, then any unclaimed chunk, and records
/// where each chunk ran.
func runAffinity(_ n: Int, _ ap: AffinityPartitioner, vps: Int, _ run: UnsafeMutablePointer<LoopRun>,
                 _ ctx: Unmanaged<Context>?, _ chunk: (Int, Int) throws -> Void) {
    let vps = max(1, vps)
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
        if run.isCanceled { return }
        let lo = i * per, hi = min(n, lo + per)
        if lo >= hi { return }
        // The loop's scope is current here (see splitRange).
        do { try chunk(lo, hi) } catch { run.record(error) }
    }
    splitRange(0, vps, grain: 1, budget: .unlimited, run, ctx) { w, _ in
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
                        _ body: @Sendable (Int) throws -> Void) throws {
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
    token: CancellationToken = .none, _ body: @Sendable (C.Element) throws -> Void) throws {
    let start = collection.startIndex
    try runChunked(collection.count, partitioner: partitioner, scheduler: scheduler, token: token) { lo, hi in
        var i = collection.index(start, offsetBy: lo)
        for _ in lo..<hi {
            try body(collection[i])
            i = collection.index(after: i)
        }
    }
}
