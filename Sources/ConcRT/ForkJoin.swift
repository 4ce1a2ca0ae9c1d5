import CSupport
import UMS

/// Fork/join on the current context: the primitive under the PPL layer.
///
/// `forkJoin(a, b)` pushes `b` as a ``StackJob`` on the virtual processor's
/// deque (the record lives in this frame: no heap allocation), runs `a`,
/// then pops `b` back. If nobody stole it, `b` runs inline right here: no
/// context switch, no futex, no allocation. If it was stolen (or this
/// context migrated while `a` blocked), the joiner helps: it steals and
/// runs other work while its stack has room, then blocks its context on
/// the job's latch, and the virtual processor moves on to another context.
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
            ctx.vp.push(item)
            a()
            // Re-read vp: `a` may have blocked and resumed elsewhere.
            if ctx.vp.popUntil(item) {
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
    @usableFromInline
    func waitForStolen(_ jp: UnsafeMutablePointer<StackJob>) {
        // Help while the stack has room (at least half free): run stolen
        // work instead of switching contexts. Bounded depth, like rayon.
        var helped = 0
        while !StackJob.isDone(jp) && helped < 64 && stackHeadroomIsAmple() {
            guard let item = vp.stealForHelp() else { break }
            helped += 1
            vp.runCounted(item)
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

    /// True while at least half of this context's stack is unused.
    @usableFromInline
    func stackHeadroomIsAmple() -> Bool {
        var marker: UInt8 = 0
        let sp = withUnsafeMutablePointer(to: &marker) { UInt(bitPattern: $0) }
        let lo = thread.stackLowerBound
        return sp > lo && (sp - lo) > UInt(thread.stackSize / 2)
    }

    /// Runs a work item as the current context (for waits that help).
    package func runWorkItemForHelp(_ item: UnsafeMutableRawPointer) { vp.runCounted(item) }

    /// Pushes a heap task on this context's virtual processor.
    package func pushTask(_ body: @escaping () -> Void) {
        vp.push(TaskNode(body: body, group: nil).item)
    }

    /// Takes work to help with while waiting: the local deque first, then
    /// the other virtual processors'.
    package func takeWorkForHelp() -> UnsafeMutableRawPointer? {
        vp.pop() ?? vp.stealForHelp()
    }

    /// Number of the current virtual processor, for per-VP data
    /// (Combinable): small, unique in the process among running VPs, and
    /// stable while the caller does not block.
    package var virtualProcessorGlobalIndex: Int { vp.globalIndex }

    /// Free-form per-context slot for the layer above (the PPL's current
    /// cancellation scope). Only the context itself reads or writes it.
    package var layerLocal: AnyObject? {
        get { _layerLocal }
        set { _layerLocal = newValue }
    }
}

extension VirtualProcessor {
    /// One steal sweep over the other VPs' deques.
    func stealForHelp() -> WorkItem? {
        let vps = scheduler.virtualProcessors
        let n = scheduler.activeVPCount.load(ordering: .acquiring)
        if n <= 1 { return nil }
        rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17
        let start = Int(rng % UInt64(n))
        for k in 0..<n {
            let v = vps[(start + k) % n]
            if v === self { continue }
            var lost: Int32 = 0
            if let item = csup_deque_steal(v.deque, &lost) {
                stats.steals.add()
                return item
            }
        }
        return nil
    }
}

extension Scheduler {
    /// Slots for per-VP data: one per possible VP plus one for callers
    /// outside the scheduler.
    package var virtualProcessorSlots: Int { virtualProcessors.count + 1 }
}
