import CSupport
import UMS

/// A context's task loop: how a context runs tasks one after another on
/// its virtual processor.
///
/// Order of work sources: one queued task first when the VP gave this
/// context a fair turn; then, before every task, a check that no runnable
/// context or completion waits (if one does, the context hands the VP back
/// so it runs first: a blocked task that was woken beats new work); then
/// the local deque (LIFO), the group and injection queues, and finally
/// stealing. A task may block and resume on another VP, so the VP is
/// re-read on every iteration.
extension VirtualProcessor {
    /// Runs tasks until there are none (returns `.idle`) or until runnable
    /// contexts or completions are waiting (`.handoff`).
    func processTasks(_ ctx: Context) -> Context.YieldReason {
        let scheduler = self.scheduler
        while true {
            ctx.noteRuntimeEntry()   // ends a compensation for a task's unwrapped block
            let vp = ctx.vp!   // re-read: a task may have blocked and migrated
            if vp.runOneTaskFirst {
                vp.runOneTaskFirst = false
                if let item = vp.pop() ?? scheduler.takeQueued(for: vp, context: ctx) {
                    vp.runCounted(item, ctx)
                    continue
                }
            }
            if vp.runQueue.hasRunnable || vp.completionsPending
                || (vp.retiring.load(ordering: .relaxed) && csup_deque_size(vp.deque) == 0) {
                return .handoff
            }
            // Between tasks: the Resource Manager may have asked this
            // scheduler for a core back (one relaxed load; CoreTokens.swift).
            // The deque's items stay where the scheduler's other VPs steal them.
            if vp.checkCoreRequest() { return .idle }
            if let item = vp.pop() {
                vp.runCounted(item, ctx)
                continue
            }
            if let item = scheduler.takeQueued(for: vp, context: ctx) {
                vp.runCounted(item, ctx)
                continue
            }
            switch vp.search(ctx) {
            case .item(let item): vp.runCounted(item, ctx)
            case .handoff: return .handoff
            case .nothing: return .idle
            }
        }
    }

    /// Runs one work item and counts it.
    @inline(__always)
    func runCounted(_ item: WorkItem, _ ctx: Context) {
        if nodeFree { scheduler.nodeIdle.unsafelyUnwrapped.clearFree(self) }   // busy now (Idle/NodeIdle.swift)
        stats.tasksRun.ownerIncrement()
        trace(.taskBegin, ctx.id)
        runWorkItem(item)
        ctx.withVP { $0.trace(.taskEnd, ctx.id) }   // it may have moved
    }
}
