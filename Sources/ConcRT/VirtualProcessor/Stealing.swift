import CSupport
import UMS

/// Stealing: how an out-of-work VP takes work from the others.
///
/// - **Tasks** (``search(_:)``): sweeps over the other VPs' deques from a
///   random start, with exponential backoff between sweeps (a thief that
///   re-reads a busy owner's deque indices in a tight loop keeps bouncing
///   the owner's cache lines), for up to the scheduler's spin window.
///   While searching, the VP counts as a searcher in the idle protocol,
///   so producers do not wake sleepers for work it will find anyway.
///   A steal that loses a race (another thief, or the owner's pop of the
///   last item, took the item between our reads) is retried on the same
///   victim, since its deque was not empty.
///   When the VPs are placed on two or more NUMA nodes, each sweep goes
///   by locality instead: VPs on the thief's node, then its processor
///   group, then the rest, then active temporary VPs (order precomputed
///   at scheduler start: Topology/VirtualProcessorLayout.swift).
/// - **Runnable contexts** (``stealFromBusyVirtualProcessor()``): only from
///   a VP whose switch count has not moved since this VP's last snapshot
///   (its running context is busy, so what waits in its run queue is
///   stranded). A VP that is switching will run them itself, soon, with
///   their caches warm.
extension VirtualProcessor {
    enum SearchResult { case item(WorkItem), handoff, nothing }

    /// Steals from other VPs for up to the scheduler's spin window.
    func search(_ ctx: Context?) -> SearchResult {
        let s = scheduler
        s.idle.beginSearch()
        // Node locality (Idle/NodeIdle.swift): counted per node, free mark
        // set (cleared when the VP runs a task: runCounted, or a context).
        if node >= 0 { s.nodeIdle.unsafelyUnwrapped.beginSearch(self) }
        defer {
            s.idle.endSearch()
            if node >= 0 { s.nodeIdle.unsafelyUnwrapped.endSearch(self) }
        }
        let start = csup_monotonic_ns()
        let deadline = start + s.spinNanoseconds
        let busyAfter = start + 10_000
        snapshotSwitchCounts()
        var round = 0
        var backoff = 16
        while true {
            if let item = stealOnce() {
                stats.steals.ownerIncrement()
                trace(.steal)
                // More may be left: if nobody else is searching, wake one.
                if s.idle.isLoneSearcher { s.idle.notifyWork(force: true) }
                return .item(item)
            }
            if let item = s.takeQueued(for: self, context: ctx) { return .item(item) }
            if runQueue.hasRunnable || completionsPending
                || (retiring.load(ordering: .relaxed) && csup_deque_size(deque) == 0) || s.readyToStop {
                return .handoff
            }
            round += 1
            if round & 15 == 0 {
                let now = csup_monotonic_ns()
                if now > busyAfter, stealFromBusyVirtualProcessor() { return .handoff }
                if now > deadline { return .nothing }
            }
            for _ in 0..<backoff { csup_cpu_relax() }
            backoff = min(backoff * 2, 512)
        }
    }

    /// Records every VP's switch count, for ``stealFromBusyVirtualProcessor()``.
    func snapshotSwitchCounts() {
        let vps = scheduler.virtualProcessors
        if seenSwitches.count != vps.count { seenSwitches = Array(repeating: -1, count: vps.count) }
        let n = scheduler.activeVPCount.load(ordering: .acquiring)
        for i in 0..<n { seenSwitches[i] = vps[i].switchCount.load(ordering: .relaxed) }
    }

    /// Takes a runnable context from a VP that has not switched since the
    /// last snapshot (its running context is busy); true if one was taken
    /// (it is now on this VP's run queue).
    func stealFromBusyVirtualProcessor() -> Bool {
        // No snapshot yet (this VP has not searched): take one; a VP is
        // "busy" only relative to an earlier snapshot.
        if seenSwitches.count != scheduler.virtualProcessors.count { snapshotSwitchCounts(); return false }
        return forEachStrandedRunQueue { v in
            guard let c = v.runQueue.steal() else { return false }
            stats.steals.ownerIncrement()
            trace(.steal)
            pushRunnable(c, front: false)
            return true
        }
    }

    /// True when ``stealFromBusyVirtualProcessor()`` would find a context
    /// (a look, no take: an idle VP without a core asks for one first).
    func hasStrandedRunnable() -> Bool {
        if seenSwitches.count != scheduler.virtualProcessors.count { return false }
        return forEachStrandedRunQueue { _ in true }
    }

    /// Calls `body` with each other VP that has runnable contexts queued and
    /// has not switched since this VP's snapshot, until `body` returns true
    /// (then true). Needs a snapshot (``snapshotSwitchCounts()``).
    @inline(__always)
    private func forEachStrandedRunQueue(_ body: (VirtualProcessor) -> Bool) -> Bool {
        let vps = scheduler.virtualProcessors
        let n = scheduler.activeVPCount.load(ordering: .acquiring)
        for i in 0..<n where vps[i] !== self {
            let v = vps[i]
            if v.runQueue.hasRunnable, v.switchCount.load(ordering: .relaxed) == seenSwitches[i], body(v) { return true }
        }
        return false
    }

    /// One sweep over the other VPs' deques, from a random start. A lost
    /// race is retried on the same victim (bounded), since it had work.
    /// With a locality order (VPs placed on two or more nodes), the sweep
    /// goes tier by tier instead (``stealByLocality(_:)``).
    func stealOnce() -> WorkItem? {
        if let order = stealOrder { return stealByLocality(order) }
        let vps = scheduler.virtualProcessors
        let n = scheduler.activeVPCount.load(ordering: .acquiring)
        if n <= 1 { return nil }
        rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17
        let start = Int(rng % UInt64(n))
        for k in 0..<n {
            let v = vps[(start + k) % n]
            if v === self { continue }
            if let item = steal(from: v) { return item }
        }
        return nil
    }

    /// Tries one victim's deque; a lost race is retried (at most 4 times).
    @inline(__always)
    private func steal(from v: VirtualProcessor) -> WorkItem? {
        for _ in 0..<4 {
            var lost: Int32 = 0
            if let item = csup_deque_steal(v.deque, &lost) { return item }
            if lost == 0 { break }
            csup_cpu_relax()
        }
        return nil
    }

    /// The locality sweep: own node, own processor group, anywhere (the
    /// tiers of ``VirtualProcessorLayout``), each from a random start; then
    /// the temporary VPs active now (past the regular ones), which the
    /// tiers do not list, so work left in their deques is still found.
    private func stealByLocality(_ order: StealOrder) -> WorkItem? {
        let vps = scheduler.virtualProcessors
        var lo = 0
        for end in order.tierEnds {
            let len = end - lo
            rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17
            let start = Int(rng % UInt64(len))
            for k in 0..<len {
                let victim = order.victims[lo + (start + k) % len]
                assert(victim != index, "VirtualProcessor \(index): steal order lists itself")
                if let item = steal(from: vps[victim]) { return item }
            }
            lo = end
        }
        let n = scheduler.activeVPCount.load(ordering: .acquiring)
        var i = scheduler.regularVPCount
        while i < n {
            if let item = steal(from: vps[i]) { return item }
            i += 1
        }
        return nil
    }
}
