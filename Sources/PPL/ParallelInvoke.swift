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
    // Unprotected pointers (no stack-protector canary in the caller): each
    // addresses one Optional, written only through `pointee`, never
    // indexed (see Context.forkJoin for the job record's).
    _withUnprotectedUnsafeMutablePointer(to: &ra) { pa in
        _withUnprotectedUnsafeMutablePointer(to: &rb) { pb in
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
    // Unprotected: as in parallelInvoke(_:_:).
    _withUnprotectedUnsafeMutablePointer(to: &ra) { pa in
        _withUnprotectedUnsafeMutablePointer(to: &rb) { pb in
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
/// The closures are split in halves recursively over the stack-record
/// fork/join (``Context/forkJoin(_:_:_:whenStolen:)``), so independent
/// closures run on as many virtual processors as are free. All closures
/// run; the first error by position is rethrown. A closure taken by a
/// thief runs inside the caller's cancellation scope. Outside a scheduler
/// it runs on ``Scheduler/default`` and blocks the caller.
///
/// No heap allocation of its own: results and errors are kept in stack
/// buffers (laid out by ``PackSlots`` from each result type's own size, so
/// no generic type such as `Result<R, Error>` is instantiated at run
/// time). (The closures stay `@escaping`, as before, so that a call with
/// two closures still picks the two-way form.)
@inlinable
public func parallelInvoke<each R: Sendable>(_ fs: repeat @escaping @Sendable () throws -> each R) throws -> (repeat each R) {
    var layout = PackSlots()
    for f in repeat each fs { _ = layout.add(f) }
    let n = layout.count
    return try withUnsafeTemporaryAllocation(of: (any Error)?.self, capacity: n) { errors in
        errors.initialize(repeating: nil)
        defer { errors.baseAddress!.deinitialize(count: n) }
        return try withUnsafeTemporaryAllocation(byteCount: max(1, layout.bytes), alignment: layout.alignment) { buf in
            let base = buf.baseAddress!
            let errs = errors.baseAddress!
            // Closure k stores its value (or its error) in slot k: disjoint
            // memory per closure.
            invokeIndices(n) { k in
                var slots = PackSlots()
                for f in repeat each fs {
                    if slots.count == k { slots.run(f, base, errs) } else { _ = slots.add(f) }
                }
            }
            // Every closure ran (invokeIndices returns only then).
            if let first = errors.first(where: { $0 != nil }) {
                var drop = PackSlots()
                for f in repeat each fs { drop.discard(f, base, errs) }
                throw first!
            }
            var take = PackSlots()
            return (repeat take.take(each fs, base))
        }
    }
}

/// The layout of the pack form's value buffer: each closure's result, in
/// order, at its type's alignment. A pack cannot be indexed, so each use
/// walks it from the start: every call moves to the next closure's slot.
@usableFromInline
struct PackSlots {
    /// Closures walked so far (the index of the next slot).
    @usableFromInline var count = 0
    /// The end of the walked slots, in bytes.
    @usableFromInline var bytes = 0
    /// The largest alignment seen.
    @usableFromInline var alignment = 1

    @inlinable init() {}

    /// Moves past the slot of a closure returning `T`; returns its offset.
    @inlinable
    mutating func add<T>(_: () throws -> T) -> Int {
        let a = MemoryLayout<T>.alignment
        let offset = (bytes + a - 1) & ~(a - 1)
        bytes = offset + MemoryLayout<T>.size
        alignment = Swift.max(alignment, a)
        count += 1
        return offset
    }

    /// Runs `f`: its value goes to its slot, or its error to `errors[k]`.
    @inlinable
    mutating func run<T>(_ f: () throws -> T, _ base: UnsafeMutableRawPointer,
                         _ errors: UnsafeMutablePointer<(any Error)?>) {
        let k = count
        let offset = add(f)
        do {
            let v = try f()
            // Why this is sound: the buffer has room for a T at `offset`
            // (the same walk laid it out), and only this closure writes it.
            (base + offset).initializeMemory(as: T.self, to: v)
        } catch {
            errors[k] = error   // only this closure writes errors[k]
        }
    }

    /// Destroys the slot's value if it holds one (the error path).
    @inlinable
    mutating func discard<T>(_ f: () throws -> T, _ base: UnsafeMutableRawPointer,
                             _ errors: UnsafeMutablePointer<(any Error)?>) {
        let k = count
        let offset = add(f)
        // Why this is sound: `run` initialized the slot exactly when it
        // stored no error; it is destroyed once, here.
        if errors[k] == nil { _ = (base + offset).assumingMemoryBound(to: T.self).deinitialize(count: 1) }
    }

    /// Moves the slot's value out (no closure failed).
    @inlinable
    mutating func take<T>(_ f: () throws -> T, _ base: UnsafeMutableRawPointer) -> T {
        let offset = add(f)
        // Why this is sound: initialized by `run`, moved out once, here.
        return (base + offset).assumingMemoryBound(to: T.self).move()
    }
}

/// Runs `run(k)` for `k` in `0..<n` in parallel, by recursive halving over
/// the stack-record fork/join; off a context, on ``Scheduler/default``.
@usableFromInline
func invokeIndices(_ n: Int, _ run: (Int) -> Void) {
    if n <= 0 { return }
    guard let ctx = Context.currentUnretained else {
        Scheduler.default.run { invokeIndices(n, run) }
        return
    }
    invokeSplit(0, n, ctx, CancellationScope.current(on: ctx), run)
}

/// `run(k)` for `k` in `lo..<hi`, forking the upper half. A thief runs its
/// half inside `scope`, the forker's cancellation scope.
func invokeSplit(_ lo: Int, _ hi: Int, _ ctx: Unmanaged<Context>, _ scope: CancellationScope?,
                 _ run: (Int) -> Void) {
    if hi - lo == 1 { run(lo); return }
    let mid = lo + (hi - lo) / 2
    Context.forkJoin(ctx, { invokeSplit(lo, mid, ctx, scope, run) }, { invokeSplit(mid, hi, ctx, scope, run) },
                     whenStolen: { invokeStolen(mid, hi, scope, run) })
}

/// A thief's half of ``invokeSplit(_:_:_:_:_:)``: on its own context, in
/// the forker's scope.
@inline(never)
func invokeStolen(_ lo: Int, _ hi: Int, _ scope: CancellationScope?, _ run: (Int) -> Void) {
    func go() {
        if let thief = Context.currentUnretained {
            invokeSplit(lo, hi, thief, scope, run)
        } else {
            for k in lo..<hi { run(k) }   // not on a context: one after the other
        }
    }
    if let scope { CancellationScope.with(scope) { go() } } else { go() }
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
