import ConcRT

/// Runs two closures in parallel and returns both results. [parallel_invoke]
///
/// The second closure is forked as a job record on this frame; if no other
/// virtual processor steals it, it runs inline after the first, as a plain
/// call: no context switch, no futex, no heap allocation, no reference
/// count. The function is inlined into its caller, so both closures are
/// too (the fork costs about as much as rayon's `join`). Outside a
/// scheduler it runs on ``Scheduler/default`` and blocks the caller.
///
/// A stolen second closure runs on the thief's context inside the
/// forker's cancellation scope (see ``isTaskCancellationRequested()``).
@inlinable @inline(__always)
public func parallelInvoke<A, B>(_ a: @Sendable () -> A, _ b: @Sendable () -> B) -> (A, B) {
    guard let ctx = Context.currentUnretained else { return parallelInvokeOutside(a, b) }
    // A task with any context-local value stored may have a cancellation
    // scope, which a thief must take over: the scoped form looks it up.
    if ctx._withUnsafeGuaranteedRef({ $0.hasContextLocals }) { return parallelInvokeScoped(ctx, a, b) }
    var ra: A?
    var rb: B?
    withUnsafeMutablePointer(to: &ra) { pa in
        withUnsafeMutablePointer(to: &rb) { pb in
            Context.forkJoin(ctx, { pa.pointee = a() }, { pb.pointee = b() }, whenStolen: { pb.pointee = b() })
        }
    }
    // Both ran: forkJoin returns only after `a` and `b` have.
    return (ra.unsafelyUnwrapped, rb.unsafelyUnwrapped)
}

/// ``parallelInvoke(_:_:)`` on a task that has context-local values: a
/// stolen `b` runs in the forker's cancellation scope, if any.
@inlinable
func parallelInvokeScoped<A, B>(_ ctx: Unmanaged<Context>, _ a: () -> A, _ b: () -> B) -> (A, B) {
    let scope = pplCurrentScope()
    var ra: A?
    var rb: B?
    withUnsafeMutablePointer(to: &ra) { pa in
        withUnsafeMutablePointer(to: &rb) { pb in
            Context.forkJoin(ctx, { pa.pointee = a() }, { pb.pointee = b() }, whenStolen: {
                if let scope {
                    pplWithScope(scope) { pb.pointee = b() }
                } else {
                    pb.pointee = b()
                }
            })
        }
    }
    return (ra.unsafelyUnwrapped, rb.unsafelyUnwrapped)
}

/// ``parallelInvoke(_:_:)`` off a context: runs it as a task on
/// ``Scheduler/default`` and waits.
@usableFromInline
func parallelInvokeOutside<A, B>(_ a: @Sendable () -> A, _ b: @Sendable () -> B) -> (A, B) {
    Scheduler.default.run { parallelInvoke(a, b) }
}

/// Runs two throwing closures in parallel and returns both results.
/// [parallel_invoke]
///
/// As the non-throwing form; both closures always run. If either throws,
/// the first one's error (else the second's) is rethrown after both finish.
@inlinable
public func parallelInvoke<A, B>(_ a: @Sendable () throws -> A,
                                 _ b: @Sendable () throws -> B) throws -> (A, B) {
    let (ra, rb) = parallelInvoke({ Result { try a() } }, { Result { try b() } })
    return (try ra.get(), try rb.get())
}

/// Runs any number of closures in parallel and returns a tuple of their
/// results (a parameter pack). [parallel_invoke]
///
/// The closures are split in halves recursively over ``parallelInvoke(_:_:)``,
/// so independent closures run on as many virtual processors as are free.
/// All closures run; the first error by position is rethrown.
public func parallelInvoke<each R: Sendable>(_ fs: repeat @escaping @Sendable () throws -> each R) throws -> (repeat each R) {
    let boxes = (repeat ResultSlot<each R>())
    var jobs: [@Sendable () -> Void] = []
    repeat jobs.append(makeInvokeJob(each fs, each boxes))
    try runJobsInParallel(jobs[...])
    return (repeat try (each boxes).get())
}

/// Holds one closure's outcome for the pack form.
final class ResultSlot<T: Sendable>: @unchecked Sendable {
    // @unchecked Sendable: written by one job before the join that makes
    // the caller read it.
    var result: Result<T, any Error>?
    init() {}
    func get() throws -> T { try result!.get() }
}

func makeInvokeJob<T: Sendable>(_ f: @escaping @Sendable () throws -> T, _ slot: ResultSlot<T>) -> @Sendable () -> Void {
    { slot.result = Result { try f() } }
}

func runJobsInParallel(_ jobs: ArraySlice<@Sendable () -> Void>) throws {
    switch jobs.count {
    case 0: return
    case 1: jobs.first!()
    default:
        let mid = jobs.startIndex + jobs.count / 2
        _ = try parallelInvoke({ try runJobsInParallel(jobs[..<mid]) }, { try runJobsInParallel(jobs[mid...]) })
    }
}

/// The PPL cancellation scope of the context (nil: none).
@usableFromInline
func pplCurrentScope() -> AnyObject? { CancellationScope.current }

/// Runs `body` with `scope` as the current context's scope.
@usableFromInline
func pplWithScope<T>(_ scope: AnyObject, _ body: () -> T) -> T {
    guard let s = scope as? CancellationScope else { return body() }
    return CancellationScope.with(s, body)
}
