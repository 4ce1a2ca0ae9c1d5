import CSupport
import Synchronization
import UMS

/// The schedule groups of a scheduler, and how a VP picks the next one.
///
/// **No lock on the read side.** Groups live in fixed slots (chunks of 64,
/// at most ``maxGroups``), never removed while the scheduler lives. A new
/// group is written into its slot (and its chunk pointer, when it opens a
/// chunk) under `adding`, then published by the release store of `count`;
/// a VP reads `count` with an acquire load and then the slots below it, so
/// it sees every slot it reads fully written. Picking a group reads only
/// atomics of the groups (their queue counts and usage); the group's own
/// queue lock is the only lock on the take path, and it is per group.
///
/// **Picking.** While every group has share 1 and no cap, the scheduling
/// protocol decides (locality: the last group first; forward progress: the
/// next one). Once any group has a share or a cap (`weighted`), a VP takes
/// from the group with the least pass (``GroupUsage/pass``) among those with
/// queued tasks that are within their cap: stride scheduling, so busy
/// groups get VP time in proportion to their shares. With
/// `.enhanceScheduleGroupLocality` the VP stays with its last group while
/// that group's pass is within ``localitySlack`` of the least.
///
/// **Home nodes** (`GroupHome.swift`). Once a group with a home node is
/// published (`homed`), a VP looks at the groups in two passes: first
/// those homed on its node or on none, then those homed on a node with no
/// capacity; a group homed on a node with capacity is skipped (its home's
/// VPs take it). Stride scheduling picks among the same eligible groups.
///
/// **Activation.** A group whose queue goes from empty to non-empty while
/// others are busy has its pass lifted to the least pass of the busy ones,
/// so time it did not use while idle is not owed to it (a group cannot
/// save up VP time by idling).
final class ScheduleGroupRegistry: @unchecked Sendable {
    // @unchecked Sendable: slots are written under `adding` before the
    // release store of `count`, and read below an acquire load of it.
    static let chunkSize = 64
    static let maxChunks = 64
    /// Most schedule groups one scheduler can have.
    static let maxGroups = chunkSize * maxChunks
    /// Pass difference (ns of VP time per unit of share) within which a VP
    /// stays with its last group under `.enhanceScheduleGroupLocality`.
    static let localitySlack = 500_000

    private let chunks: UnsafeMutablePointer<UnsafeMutablePointer<Unmanaged<ScheduleGroup>>?>
    private let count = Atomic<Int>(0)
    private let adding = MigrationSafeMutex<Void>(())
    /// Some group has a share other than 1 or a cap (release on set).
    let weighted = Atomic<Bool>(false)
    /// Groups with a cap.
    private let capped = Atomic<Int>(0)
    /// Some group has a home node (release on set; GroupHome.swift).
    private let homed = Atomic<Bool>(false)

    init() {
        chunks = .allocate(capacity: Self.maxChunks)
        chunks.initialize(repeating: nil, count: Self.maxChunks)
    }

    deinit {
        let n = count.load(ordering: .acquiring)
        for i in 0..<n { slot(i).pointee.release() }
        for c in 0..<Self.maxChunks { chunks[c]?.deallocate() }
        chunks.deallocate()
    }

    @inline(__always)
    private func slot(_ i: Int) -> UnsafeMutablePointer<Unmanaged<ScheduleGroup>> {
        chunks[i / Self.chunkSize].unsafelyUnwrapped + i % Self.chunkSize
    }

    /// Runs `body` on group `i` (below an acquired count) without touching
    /// its reference count. Why this is sound: the registry holds a +1 on
    /// every published group until it is destroyed with the scheduler.
    @inline(__always)
    private func withGroup<R>(_ i: Int, _ body: (ScheduleGroup) -> R) -> R {
        slot(i).pointee._withUnsafeGuaranteedRef(body)
    }

    /// Publishes `g`. Traps with a message past ``maxGroups``.
    func add(_ g: ScheduleGroup) {
        adding.withLock { _ in
            let n = count.load(ordering: .relaxed)
            precondition(n < Self.maxGroups,
                         "ConcRT: a scheduler can have at most \(Self.maxGroups) schedule groups (createScheduleGroup called \(n + 1) times)")
            let c = n / Self.chunkSize
            if chunks[c] == nil { chunks[c] = .allocate(capacity: Self.chunkSize) }
            (chunks[c].unsafelyUnwrapped + n % Self.chunkSize).initialize(to: .passRetained(g))
            if g.cap != nil { capped.wrappingAdd(1, ordering: .relaxed) }
            if g.share != 1 || g.cap != nil { weighted.store(true, ordering: .releasing) }
            if g.homeIndex >= 0 { homed.store(true, ordering: .releasing) }
            count.store(n + 1, ordering: .releasing)
        }
    }

    /// True when some group has queued tasks it may run now (a capped group
    /// over its budget does not count: it waits for the next period).
    var hasWork: Bool {
        let n = count.load(ordering: .acquiring)
        if n == 0 { return false }
        let now = capped.load(ordering: .relaxed) > 0 ? csup_monotonic_ns() : 0
        for i in 0..<n where withGroup(i, { $0.queued.load(ordering: .relaxed) > 0 && $0.usage.withinCap(now: now) }) {
            return true
        }
        return false
    }

    /// ``hasWork`` for `vp`: only groups `vp` may take now (a group homed
    /// on another node with capacity does not count).
    func hasWork(for vp: VirtualProcessor) -> Bool {
        guard homed.load(ordering: .acquiring) else { return hasWork }
        let n = count.load(ordering: .acquiring)
        let now = capped.load(ordering: .relaxed) > 0 ? csup_monotonic_ns() : 0
        for i in 0..<n where withGroup(i, { g in
            g.queued.load(ordering: .relaxed) > 0 && g.usage.withinCap(now: now) && mayTake(g, vp, pass: nil)
        }) {
            return true
        }
        return false
    }

    /// May `vp` take from `g` now? `pass` 0: only groups homed on `vp`'s
    /// node or on none; 1: only groups homed on another node without
    /// capacity; nil: either (GroupHome.swift).
    @inline(__always)
    private func mayTake(_ g: ScheduleGroup, _ vp: VirtualProcessor, pass: Int?) -> Bool {
        let home = g.homeIndex
        let local = home < 0 || home == vp.node
        switch pass {
        case 0?: return local
        case 1?: return !local && !vp.scheduler.nodeIdle.unsafelyUnwrapped.hasCapacity(home)
        default: return local || !vp.scheduler.nodeIdle.unsafelyUnwrapped.hasCapacity(home)
        }
    }

    /// For a VP about to sleep: each home node whose groups hold tasks
    /// `vp` declines (homed elsewhere, home with capacity) gets a wake if
    /// a VP of it sleeps and none searches (`NodeIdle.forwardDeclined`).
    func forwardDeclined(for vp: VirtualProcessor) {
        guard homed.load(ordering: .acquiring) else { return }
        let nodes = vp.scheduler.nodeIdle.unsafelyUnwrapped
        let n = count.load(ordering: .acquiring)
        var done: UInt64 = 0   // homes already forwarded to (first 64)
        for i in 0..<n {
            withGroup(i) { g in
                let home = g.homeIndex
                guard home >= 0, home != vp.node, g.queued.load(ordering: .relaxed) > 0,
                      home >= 64 || done & (1 << UInt64(home)) == 0, nodes.hasCapacity(home) else { return }
                if home < 64 { done |= 1 << UInt64(home) }
                nodes.forwardDeclined(home: home)
            }
        }
    }

    /// When a capped group holds queued tasks but is over its budget:
    /// nanoseconds until its budget is refilled (an idle VP sleeps no
    /// longer); else nil.
    func nanosecondsUntilCapRefill() -> Int64? {
        if capped.load(ordering: .relaxed) == 0 { return nil }
        let n = count.load(ordering: .acquiring)
        let now = csup_monotonic_ns()
        for i in 0..<n where withGroup(i, { $0.queued.load(ordering: .relaxed) > 0 && !$0.usage.withinCap(now: now) }) {
            return GroupUsage.untilNextPeriod(now: now)
        }
        return nil
    }

    /// `g`'s queue went from empty to non-empty: lift its pass to the least
    /// pass of the other groups with queued tasks (see the type's doc).
    func activated(_ g: ScheduleGroup) {
        guard weighted.load(ordering: .acquiring) else { return }
        let n = count.load(ordering: .acquiring)
        var floor = Int.max
        for i in 0..<n {
            withGroup(i) { o in
                if o !== g, o.queued.load(ordering: .relaxed) > 0 { floor = min(floor, o.usage.pass) }
            }
        }
        if floor != .max { g.usage.lift(toPass: floor) }
    }

    /// Next item for `vp`; returns it and its group's id.
    func take(for vp: VirtualProcessor, protocol p: SchedulerPolicy.SchedulingProtocol) -> (WorkItem, Int)? {
        let n = count.load(ordering: .acquiring)
        if n == 0 { return nil }
        let homes = homed.load(ordering: .acquiring)
        if weighted.load(ordering: .acquiring) { return takeByPass(for: vp, n, p, homes: homes) }
        let start: Int
        switch p {
        case .enhanceScheduleGroupLocality: start = vp.lastGroupIndex % n
        case .enhanceForwardProgress: start = (vp.lastGroupIndex + 1) % n
        }
        if !homes {
            for k in 0..<n {
                let i = (start + k) % n
                if let taken = withGroup(i, { g in g.dequeue().map { ($0, g.id) } }) {
                    vp.lastGroupIndex = i
                    return taken
                }
            }
            return nil
        }
        // Home nodes: own node's groups first, then those of nodes with no
        // capacity (see the type's doc).
        for pass in 0..<2 {
            for k in 0..<n {
                let i = (start + k) % n
                if let taken = withGroup(i, { g -> (WorkItem, Int)? in
                    guard g.queued.load(ordering: .relaxed) > 0, mayTake(g, vp, pass: pass) else { return nil }
                    return g.dequeue().map { ($0, g.id) }
                }) {
                    vp.lastGroupIndex = i
                    return taken
                }
            }
        }
        return nil
    }

    /// Stride scheduling: the eligible group with the least pass (see the
    /// type's doc). A lost race for the chosen group's last task (another
    /// VP took it) tries again, at most `n` times.
    private func takeByPass(for vp: VirtualProcessor, _ n: Int, _ p: SchedulerPolicy.SchedulingProtocol,
                            homes: Bool) -> (WorkItem, Int)? {
        let now = capped.load(ordering: .relaxed) > 0 ? csup_monotonic_ns() : 0
        for _ in 0..<n {
            var best = -1, bestPass = Int.max
            for i in 0..<n {
                let pass = withGroup(i) { g in
                    g.queued.load(ordering: .relaxed) > 0 && g.usage.withinCap(now: now)
                        && (!homes || mayTake(g, vp, pass: nil)) ? g.usage.pass : Int.max
                }
                if pass < bestPass { best = i; bestPass = pass }
            }
            if best < 0 { return nil }
            let last = vp.lastGroupIndex
            if p == .enhanceScheduleGroupLocality, last != best, last < n,
               let taken = withGroup(last, { g -> (WorkItem, Int)? in
                   guard g.usage.withinCap(now: now), g.usage.pass <= bestPass &+ Self.localitySlack,
                         !homes || mayTake(g, vp, pass: nil) else { return nil }
                   return g.dequeue().map { ($0, g.id) }
               }) {
                return taken
            }
            if let taken = withGroup(best, { g in g.dequeue().map { ($0, g.id) } }) {
                vp.lastGroupIndex = best
                return taken
            }
        }
        return nil
    }

    /// True when a finished group task's time must be charged to its group
    /// (some group has a share or cap; otherwise nobody reads it).
    @inline(__always)
    var accounts: Bool { weighted.load(ordering: .relaxed) }
}
