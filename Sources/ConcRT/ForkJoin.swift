import CSupport
import UMS

/// Fork/join on the current context: the primitive under the PPL layer.
///
/// `forkJoin(a, b)` pushes `b` as a ``StackJob`` on the virtual processor's
/// deque (the record lives in this frame: no heap allocation), runs `a`,
/// then pops `b` back. If nobody stole it, `b` runs inline right here: no
/// context switch, no futex, no allocation. If it was stolen (or this
/// context migrated while `a` blocked), the joiner does not help (it runs
/// no unrelated work on top of this frame: see ``waitForStolen(_:)``): it
/// spins briefly, then blocks its context on the job's latch, and the
/// virtual processor moves on to another context.
extension Context {
    /// Runs `a` on this context while `b` is offered to thieves; returns
    /// when both have run. The caller must be running on `ctx`.
    ///
    /// Results travel through pointers the closures capture (see PPL's
    /// parallelInvoke): the closures are the caller's non-escaping
    /// literals, so their contexts live on the caller's stack, and the job
    /// records `b` by its two words (StackJob.setClosure) instead of an
    /// escaping copy. Net heap allocations: zero.
    @inlinable @inline(__always)
    package static func forkJoin(_ ctx: Context, _ a: () -> Void, _ b: () -> Void) {
        forkJoin(Unmanaged.passUnretained(ctx), a, b, whenStolen: b)
    }

    /// The fork/join core, inlined into its caller so that `a` and `b`
    /// (the caller's closure literals) are inlined too: push a job record
    /// for `b`, run `a`, pop the record back and, if nobody took it, call
    /// `b` directly (not through the record). `whenStolen` is what a thief
    /// runs instead of `b` (the same work, wrapped in whatever per-task
    /// state the thief's context must take over, e.g. PPL's cancellation
    /// scope); only its two words are stored in the record.
    ///
    /// `ctx` is the running context, unretained: the caller is running on
    /// it, so its +1 (held by its thread's user context) outlives the
    /// call. No reference count is touched, nothing is allocated, and the
    /// common path makes one out-of-line call (reading the closure words,
    /// CSupport/closure.c) plus the deque's inline push, idle check and pop.
    ///
    /// The record's pointer is taken without a stack protector
    /// (`_withUnprotectedUnsafeMutablePointer`): a protected pointer makes
    /// the caller (fib's every call, leaves included) load and check the
    /// canary. Why this is sound: the pointer addresses one `StackJob`,
    /// never a buffer; it is written only through its typed fields, and the
    /// deque holds it tagged (bit 0), untagged before any use.
    @inlinable @inline(__always)
    package static func forkJoin(_ ctx: Unmanaged<Context>, _ a: () -> Void, _ b: () -> Void,
                                 whenStolen: () -> Void) {
        var job = StackJob(whenStolen)
        _withUnprotectedUnsafeMutablePointer(to: &job) { jp in
            let item = StackJob.item(jp)
            ctx._withUnsafeGuaranteedRef { $0.pushFork(item) }
            a()
            // Re-read the VP (inside popFork): `a` may have blocked and
            // resumed on another one.
            if ctx._withUnsafeGuaranteedRef({ $0.popFork(item) }) {
                b()
            } else {
                ctx._withUnsafeGuaranteedRef { $0.waitForStolen(jp) }
            }
        }
    }

    /// The calling context, unretained (nil off a context). For hot paths:
    /// no reference count is touched. Valid while the caller runs on it.
    @inlinable @inline(__always)
    package static var currentUnretained: Unmanaged<Context>? {
        guard let p = UMSThread.currentOnPrimaryUserContext else { return nil }
        // Why this is sound: see currentInternal (the thread's user context
        // holds a +1 on the Context while the thread can run).
        return Unmanaged<Context>.fromOpaque(p)
    }

    /// True when this context belongs to `scheduler` (no reference count
    /// is touched: `scheduler` is unowned and outlives its contexts).
    @inlinable @inline(__always)
    package func belongs(to scheduler: Scheduler) -> Bool { self.scheduler === scheduler }

    /// The virtual processor count of this context's scheduler (PPL's
    /// grain sizes), read without touching a reference count.
    package var schedulerVirtualProcessorCount: Int {
        Unmanaged.passUnretained(scheduler)._withUnsafeGuaranteedRef { $0.virtualProcessorCount }
    }

    /// True when the running task has stored any ContextLocal value (PPL
    /// reads its cancellation scope only then: a fork made with no value
    /// stored skips the table lookup).
    @inlinable @inline(__always)
    package var hasContextLocals: Bool { !contextLocals.isEmpty }

    /// Pushes a fork's job record on this context's VP deque (inline fast
    /// path; a full buffer goes through ``VirtualProcessor/push(_:)``),
    /// then the idle protocol's producer check, inline too
    /// (``IdleProtocol/notifyLocalPush()``: two loads, the wake out of line).
    @inlinable @inline(__always)
    func pushFork(_ item: WorkItem) {
        vpRef.unsafelyUnwrapped._withUnsafeGuaranteedRef { vp in
            if csup_deque_push(vp.deque, item) != 0 {
                vp.push(item)   // could not grow: push runs it now
            } else {
                // Guaranteed reference: the scheduler owns its idle
                // protocol and outlives its VPs.
                vp.idleRef._withUnsafeGuaranteedRef { $0.notifyLocalPush() }
            }
        }
    }

    /// Pops the fork `item` back: true when it was still at the bottom of
    /// this context's VP deque (the caller runs it inline). Items found
    /// above it are run first (``VirtualProcessor/popUntil(_:)``).
    @inlinable @inline(__always)
    func popFork(_ item: WorkItem) -> Bool {
        return vpRef.unsafelyUnwrapped._withUnsafeGuaranteedRef { vp in
            guard let x = csup_deque_pop(vp.deque) else { return false }
            if x == item { return true }
            return vp.popUntil(afterRunning: x, item)
        }
    }

    /// Generic form of ``forkJoin(_:_:_:)`` returning both results.
    @inlinable
    package static func forkJoinOn<A, B>(_ ctx: Context, _ a: () -> A, _ b: () -> B) -> (A, B) {
        var ra: A?
        var rb: B?
        // Unprotected: see forkJoin(_:_:_:whenStolen:) (one value each).
        _withUnprotectedUnsafeMutablePointer(to: &ra) { pa in
            _withUnprotectedUnsafeMutablePointer(to: &rb) { pb in
                forkJoin(ctx, { pa.pointee = a() }, { pb.pointee = b() })
            }
        }
        // Both closures ran (forkJoin returns only then).
        return (ra.unsafelyUnwrapped, rb.unsafelyUnwrapped)
    }

    /// The joiner's slow path: `jp` was taken by a thief.
    ///
    /// It does not run unrelated tasks on top of this frame (TBB's and
    /// rayon's "help"): here tasks may block, and a helped task that waits
    /// for something this frame's caller will do later would deadlock.
    /// Instead it spins briefly (a stolen fork often finishes within a few
    /// microseconds), then blocks the context; the virtual processor runs
    /// other work on another context meanwhile, so nothing is lost.
    @usableFromInline @inline(never)
    func waitForStolen(_ jp: UnsafeMutablePointer<StackJob>) {
        for _ in 0..<16 {
            if StackJob.isDone(jp) { return }
            for _ in 0..<8 { csup_cpu_relax() }
        }
        if StackJob.isDone(jp) { return }
        // Park: publish ourselves as the waiter, then announce it.
        jp.pointee.waiter = Unmanaged.passUnretained(self)
        var expected = StackJob.pending
        if !csup_u32_cas_acq_rel(StackJob.latchWord(jp), &expected, StackJob.contextWaiting) {
            return   // done meanwhile
        }
        blockInternal(.join)
    }

    /// Pushes an owned task (``TaskOwner``) on this context's virtual
    /// processor: one heap object, the node, which holds `owner` and
    /// `body`; `owner.runOwnedTask(body)` runs it.
    package func pushOwnedTask(_ owner: any TaskOwner, _ body: @escaping () throws -> Void) {
        withVP { $0.push(TaskNode(owner: owner, body).item) }
    }

    /// Runs, inline, the tasks of `owner` that sit at the bottom of this
    /// virtual processor's deque; stops at the first item that is not
    /// `owner`'s (it is pushed back where it was). Returns how many ran.
    /// Only the owner's own tasks are run on the waiter's frame: an
    /// unrelated task could block on something the waiter's caller does
    /// later, and deadlock.
    ///
    /// No reference count is touched per task: the VP is re-read through
    /// ``withVP(_:)`` each time (a task may block and resume on another),
    /// and a node's owner is compared by identity.
    package func runOwnTasks(of owner: AnyObject) -> Int {
        var ran = 0
        let id = ObjectIdentifier(owner)
        while let item = withVP({ $0.pop() }) {
            let bits = UInt(bitPattern: item)
            if bits & 0b11 == 0,   // a TaskNode (not a stack job or a Swift job)
               Unmanaged<TaskNode>.fromOpaque(item)._withUnsafeGuaranteedRef({ $0.ownerID == id }) {
                withVP { $0.runCounted(item, self) }
                ran += 1
                continue
            }
            // Not ours: put it back (bottom of the deque: LIFO restores it).
            withVP { vp in
                if csup_deque_push(vp.deque, item) != 0 { vp.runCounted(item, self) }
            }
            break
        }
        return ran
    }
}


extension VirtualProcessor {
    /// ``popUntil(_:)`` after the first pop found `x`, not `target`: runs
    /// `x` and goes on popping.
    @usableFromInline @inline(never)
    func popUntil(afterRunning x: WorkItem, _ target: WorkItem) -> Bool {
        runWorkItem(x)
        return popUntil(target)
    }
}
