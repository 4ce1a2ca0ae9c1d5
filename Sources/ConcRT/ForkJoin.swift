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
    @usableFromInline
    package static func forkJoin(_ ctx: Context, _ a: () -> Void, _ b: () -> Void) {
        var job = StackJob()
        withUnsafeMutablePointer(to: &job) { jp in
            StackJob.setClosure(jp, b)
            let item = StackJob.item(jp)
            ctx.withVP { $0.push(item) }
            a()
            // Re-read vp: `a` may have blocked and resumed elsewhere.
            if ctx.withVP({ $0.popUntil(item) }) {
                StackJob.run(jp)
            } else {
                ctx.waitForStolen(jp)
            }
        }
    }

    /// Generic form of ``forkJoin(_:_:_:)`` returning both results.
    @inlinable
    package static func forkJoinOn<A, B>(_ ctx: Context, _ a: () -> A, _ b: () -> B) -> (A, B) {
        var ra: A?
        var rb: B?
        withUnsafeMutablePointer(to: &ra) { pa in
            withUnsafeMutablePointer(to: &rb) { pb in
                forkJoin(ctx, { pa.pointee = a() }, { pb.pointee = b() })
            }
        }
        return (ra!, rb!)
    }

    /// The joiner's slow path: `jp` was taken by a thief.
    ///
    /// It does not run unrelated tasks on top of this frame (TBB's and
    /// rayon's "help"): here tasks may block, and a helped task that waits
    /// for something this frame's caller will do later would deadlock.
    /// Instead it spins briefly (a stolen fork often finishes within a few
    /// microseconds), then blocks the context; the virtual processor runs
    /// other work on another context meanwhile, so nothing is lost.
    @usableFromInline
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
        blockInternal()
    }

    /// Pushes a heap task on this context's virtual processor, tagged with
    /// `owner` (a task group) so that the owner's wait can run its own
    /// tasks inline.
    package func pushTask(owner: AnyObject?, _ body: @escaping () -> Void) {
        vp.push(TaskNode(body: body, group: nil, owner: owner).item)
    }

    /// Runs, inline, the tasks of `owner` that sit at the bottom of this
    /// virtual processor's deque; stops at the first item that is not
    /// `owner`'s (it is pushed back where it was). Returns how many ran.
    /// Only the owner's own tasks are run on the waiter's frame: an
    /// unrelated task could block on something the waiter's caller does
    /// later, and deadlock.
    package func runOwnTasks(of owner: AnyObject) -> Int {
        var ran = 0
        while let item = vp.pop() {
            let bits = UInt(bitPattern: item)
            if bits & 0b11 == 0,   // a TaskNode (not a stack job or a Swift job)
               Unmanaged<TaskNode>.fromOpaque(item).takeUnretainedValue().owner === owner {
                vp.runCounted(item)
                ran += 1
                continue
            }
            // Not ours: put it back (bottom of the deque: LIFO restores it).
            if csup_deque_push(vp.deque, item) != 0 { vp.runCounted(item) }
            break
        }
        return ran
    }
}

