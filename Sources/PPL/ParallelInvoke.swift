import ConcRT

/// Runs two closures in parallel and returns both results. [parallel_invoke]
///
/// The second closure is forked as a job record on this frame; if no other
/// virtual processor steals it, it runs inline after the first: no context
/// switch, no futex, no heap allocation. Both closures always run; if
/// either throws, the first one's error (else the second's) is rethrown
/// after both finish. Outside a scheduler it runs on ``Scheduler/default``
/// and blocks the caller.
@inlinable
public func parallelInvoke<A, B>(_ a: @Sendable () throws -> A,
                                 _ b: @Sendable () throws -> B) throws -> (A, B) {
    guard let ctx = Context.current else {
        return try Scheduler.default.run { try parallelInvoke(a, b) }
    }
    let scope = pplCurrentScope(ctx)
    var ra: Result<A, any Error>?
    var rb: Result<B, any Error>?
    withUnsafeMutablePointer(to: &ra) { pa in
        withUnsafeMutablePointer(to: &rb) { pb in
            Context.forkJoin(ctx, { pa.pointee = Result { try a() } }, {
                if let scope {
                    pplWithScope(scope) { pb.pointee = Result { try b() } }
                } else {
                    pb.pointee = Result { try b() }
                }
            })
        }
    }
    return (try ra!.get(), try rb!.get())
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
func pplCurrentScope(_ ctx: Context) -> AnyObject? { CancellationScope.current }

/// Runs `body` with `scope` as the current context's scope.
@usableFromInline
func pplWithScope<T>(_ scope: AnyObject, _ body: () -> T) -> T {
    guard let s = scope as? CancellationScope else { return body() }
    return CancellationScope.with(s, body)
}
