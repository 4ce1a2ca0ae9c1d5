import CSupport
import Synchronization
import UMS
#if canImport(Glibc)
import Glibc
#endif

/// A virtual processor: one UMS primary (pinned where the mask allows)
/// with its own task deque, runnable-context queue and idle-context cache.
/// [VirtualProcessor / virtual processor root]
///
/// Primary loop, each pass:
///   1. drain the scheduler's completion list into this VP's runnable queue
///      (the UMS rule: completions before anything runs);
///   2. run a runnable context, if any (`runnext` first, then the ring;
///      after 16 `runnext` takes in a row, the ring or one queued task
///      first: see ``fairTurn()``);
///   3. else run a task context (from the idle cache, or a new one), which
///      takes tasks from the local deque, the injection and group queues,
///      and steals from other VPs;
///   4. when that context found nothing, sleep (see ``sleep()``).
///
/// Directed switches: a context that parks on an event or blocks while
/// `runnext` holds a context switches straight to it, without a pass of
/// this loop (``takeDirectSwitchTarget(from:)``). The context switched to
/// finishes the other's suspension first thing after its own switch
/// returns (``finishDirectSwitch(into:)``): only then are the other's
/// registers saved, so only then may it be registered on the event or
/// marked blocked, where a waker could resume it. Refused while
/// completions wait and at the 16-take streak limit, so the loop still
/// drains completions, fires timers and serves the ring.
///
/// Ownership: the deque's bottom end belongs to whichever context this VP
/// is running (one at a time, on this pthread); thieves use the top.
/// `runnext`, the ring and the counters are shared; the idle cache,
/// `switchedOut` and the streak are owner-only.
@usableFromInline
final class VirtualProcessor: @unchecked Sendable {
    let index: Int
    unowned(unsafe) let scheduler: Scheduler
    let deque: OpaquePointer
    let cpu: Int?
    /// Runnable contexts: unblocked ones from this VP go to the front (LIFO,
    /// like Go's runnext: the waker usually blocks next), others to the back.
    private let runnable = MigrationSafeMutex<ContextRing>(ContextRing())
    /// Contexts in `runnable` (not counting `runnext`).
    private let runnableCount = Atomic<Int>(0)
    /// One context unblocked by this VP's running context (the bits of an
    /// unretained Context, 0 when empty): run next, ahead of the ring. The
    /// owner takes it with an exchange, thieves with a CAS.
    private let runnext = Atomic<UInt>(0)
    @exclusivity(unchecked) private var idleCache: [Context] = []
    /// True for oversubscription VPs asked to leave.
    let retiring = Atomic<Bool>(false)
    let temporary: Bool
    /// Temporary slots: taken while a primary runs it (under the
    /// scheduler's thread lock).
    var slotInUse = false
    /// The pthread of this VP's last primary (temporary slots).
    var lastPrimary: pthread_t?
    @exclusivity(unchecked) var rng: UInt64
    /// Index of the schedule group this VP took from last (owner-only).
    @exclusivity(unchecked) var lastGroupIndex = 0
    /// This VP's counters (mostly written by its own pthread: no sharing).
    let stats = StatisticsCounters()
    /// Executions so far (owner-written, relaxed): a thief that sees it
    /// unchanged across its spin window knows this VP is stuck in one
    /// context and may take its runnable contexts.
    let switchCount = Atomic<Int>(0)
    /// Thief-side snapshot of the other VPs' switch counts (owner-only).
    @exclusivity(unchecked) private var seenSwitches: [Int] = []
    /// Set when the last task context found nothing: sleep next.
    @exclusivity(unchecked) private var wantsSleep = false

    init(index: Int, scheduler: Scheduler, cpu: Int?, temporary: Bool) throws(ConcRTError) {
        guard let d = csup_deque_create(256) else { throw .schedulerStartFailed("out of memory for a deque") }
        self.index = index
        self.scheduler = scheduler
        self.deque = d
        self.cpu = cpu
        self.temporary = temporary
        self.rng = UInt64(index + 1) &* 0x9E37_79B9_7F4A_7C15
        self.completions = Unmanaged.passUnretained(scheduler.completionList)
    }

    deinit { csup_deque_destroy(deque) }

    /// The scheduler's completion list, unretained (the scheduler owns it
    /// and outlives its VPs), so hot-path checks touch no reference count.
    private let completions: Unmanaged<UMSCompletionList>

    /// True when contexts are queued on the completion list (a snapshot).
    @inline(__always)
    var completionsPending: Bool { completions._withUnsafeGuaranteedRef { !$0.isEmpty } }

    // MARK: Local deque (owner: the context running on this VP)

    @usableFromInline
    func push(_ item: WorkItem) {
        if csup_deque_push(deque, item) != 0 {
            // The deque could not grow: run the item now instead of losing it.
            runWorkItem(item)
            return
        }
        scheduler.notifyWork()
    }

    @inline(__always)
    func pop() -> WorkItem? { csup_deque_pop(deque) }

    /// Pops items until `target` is found (returns true: it is ours to run
    /// inline) or the deque is empty (false: it was stolen or migrated).
    /// Other items found on the way are run: they were pushed above the
    /// target by code that did not join them (fire-and-forget tasks).
    @usableFromInline
    func popUntil(_ target: WorkItem) -> Bool {
        while let x = csup_deque_pop(deque) {
            if x == target { return true }
            runWorkItem(x)
        }
        return false
    }

    // MARK: Runnable contexts

    /// Queues a runnable context. `front`: it was unblocked by the context
    /// running on this VP, so it goes to `runnext` (the previous occupant,
    /// if any, to the front of the ring); others go to the back of the ring.
    func pushRunnable(_ c: Context, front: Bool) {
        let bits = UInt(bitPattern: Unmanaged.passUnretained(c).toOpaque())
        if front {
            // Acquire-release: publishes the context's saved state to the
            // VP that takes it (pop or steal), and takes over an evicted one.
            let old = runnext.exchange(bits, ordering: .acquiringAndReleasing)
            if old == 0 { return }
            runnable.withLock { $0.pushFront(Self.context(old)) }
        } else {
            runnable.withLock { $0.pushBack(c) }
        }
        runnableCount.wrappingAdd(1, ordering: .releasing)
    }

    /// Takes the next runnable context, unretained (every live context is
    /// kept alive by its thread's user context).
    @inline(__always)
    func popRunnable() -> Unmanaged<Context>? {
        if runnext.load(ordering: .relaxed) != 0 {
            let x = runnext.exchange(0, ordering: .acquiringAndReleasing)
            if x != 0 {
                runnextStreak += 1
                return Unmanaged.fromOpaque(UnsafeRawPointer(bitPattern: x)!)
            }
        }
        runnextStreak = 0
        return popRing()
    }

    private func popRing() -> Unmanaged<Context>? {
        if runnableCount.load(ordering: .acquiring) == 0 { return nil }
        let c = runnable.withLock { $0.popFront() }
        if c != nil { runnableCount.wrappingSubtract(1, ordering: .relaxed) }
        return c.map { Unmanaged.passUnretained($0) }
    }

    /// A thief's take: the back of the ring, else `runnext`.
    func stealRunnable() -> Context? {
        if runnableCount.load(ordering: .acquiring) > 0 {
            let c = runnable.withLock { $0.popBack() }
            if let c {
                runnableCount.wrappingSubtract(1, ordering: .relaxed)
                return c
            }
        }
        let x = runnext.load(ordering: .relaxed)
        if x != 0, runnext.compareExchange(expected: x, desired: 0, ordering: .acquiringAndReleasing).exchanged {
            return Self.context(x)
        }
        return nil
    }

    /// True when a runnable context is queued here (a relaxed snapshot).
    @inline(__always)
    var hasRunnable: Bool {
        runnext.load(ordering: .relaxed) != 0 || runnableCount.load(ordering: .relaxed) > 0
    }

    private static func context(_ bits: UInt) -> Context {
        // Why this is sound: queued contexts are kept alive by their
        // threads' user contexts (+1 until termination), and a queued
        // context cannot terminate.
        Unmanaged<Context>.fromOpaque(UnsafeRawPointer(bitPattern: bits)!).takeUnretainedValue()
    }

    // MARK: Primary loop

    /// A small process-unique number while this VP's primary runs (reused
    /// after it leaves): an index for per-VP data such as Combinable.
    private(set) var globalIndex = -1

    func run(_ primary: UMSPrimary) {
        globalIndex = GlobalVPIndex.acquire()
        defer { GlobalVPIndex.release(globalIndex) }
        let list = scheduler.completionList
        while true {
            if !list.isEmpty {
                list.drain(timeout: .zero) { t in
                    self.stats.completions.bump()
                    self.pushRunnable(Context.of(t), front: false)
                }
            }
            scheduler.timers.fireExpired()
            if runnextStreak >= Self.runnextLimit, let c = fairTurn() {
                execute(c, primary)
                continue
            }
            if let c = popRunnable() {
                nudgeUntimedSleepers()
                execute(c, primary)
                continue
            }
            if retiring.load(ordering: .relaxed) && !hasLocalWork { break }
            if scheduler.readyToStop { break }
            if wantsSleep {
                wantsSleep = false
                sleep()
                continue
            }
            guard let c = takeIdleContext() else {
                // No context could be made (stack or memory exhausted): wait a
                // little for blocked ones to return rather than spin.
                sleep(maxTimeout: .milliseconds(1))
                continue
            }
            execute(c, primary)
        }
        // Leaving: end the cached contexts.
        for c in idleCache { terminate(c, primary) }
        idleCache.removeAll()
        if temporary { scheduler.temporaryVirtualProcessorLeft(self) }
    }

    /// This VP has real work (a task or a runnable context) while others
    /// sleep with no timeout (they slept when everything was idle): nudge
    /// them once, so that they sleep again with the 1 ms bound and can take
    /// contexts this VP's busy tasks wake (see Scheduler.makeRunnable).
    @inline(__always)
    func nudgeUntimedSleepers() {
        if scheduler.untimedSleepers.load(ordering: .relaxed) > 0 { scheduler.completionList.wakeAllWaiters() }
    }

    private func execute(_ c: Context, _ primary: UMSPrimary) {
        execute(Unmanaged.passUnretained(c), primary)
    }

    /// Executes `context` until it switches out, then acts on its reason.
    /// Unretained: see popRunnable.
    private func execute(_ context: Unmanaged<Context>, _ primary: UMSPrimary) {
        let thread = context._withUnsafeGuaranteedRef { c in
            c.vpRef = Unmanaged.passUnretained(self)
            return c.threadRef.unsafelyUnwrapped
        }
        countSwitch()
        let r: (result: UMSExecuteResult, thread: Unmanaged<UMSThread>, userContext: UnsafeMutableRawPointer?)
        do {
            r = try thread._withUnsafeGuaranteedRef { try primary.executeReportingThread($0) }
        } catch {
            context._withUnsafeGuaranteedRef { c in
                fatalError("ConcRT: internal error executing context \(c.id): \(error)")
            }
        }
        // The context that came back: `context`, or the last one of a chain
        // of directed switches that began with it.
        // Why this is sound: a context's user context holds its +1.
        Unmanaged<Context>.fromOpaque(r.userContext!)._withUnsafeGuaranteedRef { c in
            switch r.result {
            case .blocked:
                stats.kernelBlocks.bump()
            case .terminated:
                scheduler.contextEnded(c)
            case .yielded:
                switch c.yieldReason {
                case .park, .block:
                    finishSuspension(c)
                case .idle:
                    cache(c, primary)
                    wantsSleep = true
                case .handoff:
                    cache(c, primary)
                case .yield:
                    pushRunnable(c, front: false)
                }
            }
        }
    }

    @inline(__always)
    private func countSwitch() {
        stats.contextSwitches.bump()
        switchCount.store(switchCount.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
    }

    /// A context that switched out to park on an event or to block, now
    /// saved: commit that (register on the event / blocked state). If it was
    /// signaled or unblocked meanwhile, it runs again next.
    @inline(__always)
    private func finishSuspension(_ c: Context) {
        if c.yieldReason == .park {
            let e = c.parkEvent.unsafelyUnwrapped
            c.parkEvent = nil
            if !e._withUnsafeGuaranteedRef({ Event.commitPark(c, on: $0) }) { pushRunnable(c, front: true) }
        } else if c.commitBlock() {
            pushRunnable(c, front: true)
        }
    }

    // MARK: Directed switches (owner: the context running on this VP)

    /// The context that made a directed switch to the one now running here,
    /// until that one finishes its suspension (owner-only).
    @exclusivity(unchecked) private var switchedOut: Unmanaged<Context>?
    /// `runnext` takes in a row, by the primary loop or by directed
    /// switches (owner-only). At ``runnextLimit`` a directed switch is
    /// refused, so the primary loop gets a turn: it drains completions,
    /// fires timers, and gives one turn to the ring or to queued tasks
    /// (``fairTurn()``), so a ping-pong pair cannot starve them.
    @exclusivity(unchecked) private var runnextStreak = 0
    static let runnextLimit = 16
    /// Set for a task context started by ``fairTurn()``: it runs one task
    /// before it looks at runnable contexts again (owner-only).
    @exclusivity(unchecked) private var runOneTaskFirst = false

    /// After a streak of `runnext` takes: the ring's front, else a task
    /// context that runs one queued task (own deque, groups, injection);
    /// nil when neither waits.
    private func fairTurn() -> Unmanaged<Context>? {
        runnextStreak = 0
        if let c = popRing() { return c }
        if csup_deque_size(deque) > 0 || scheduler.hasQueuedTasks, let c = takeIdleContext() {
            runOneTaskFirst = true
            return Unmanaged.passUnretained(c)
        }
        return nil
    }

    /// The context `from` may switch straight to: this VP's `runnext`, when
    /// no completion is waiting and the streak allows. Records `from` as
    /// the one to finish.
    @inline(__always)
    func takeDirectSwitchTarget(from: Unmanaged<Context>) -> Unmanaged<Context>? {
        if runnext.load(ordering: .relaxed) == 0 || runnextStreak >= Self.runnextLimit || completionsPending {
            return nil
        }
        let x = runnext.exchange(0, ordering: .acquiringAndReleasing)
        if x == 0 { return nil }
        runnextStreak += 1
        countSwitch()
        switchedOut = from
        return Unmanaged.fromOpaque(UnsafeRawPointer(bitPattern: x)!)
    }

    /// Run by a context each time it resumes: if it was resumed by a
    /// directed switch, the context that switched to it is saved now, so
    /// mark its thread ready and commit its suspension.
    @inline(__always)
    static func finishDirectSwitch(into c: Context) {
        // Why this is sound: `from` is alive (its thread's user context
        // holds it, and it cannot terminate while switched out) and owned
        // by this VP's running context until finished here.
        c.vpRef.unsafelyUnwrapped._withUnsafeGuaranteedRef { vp in
            guard let from = vp.switchedOut else { return }
            vp.switchedOut = nil
            from._withUnsafeGuaranteedRef { f in
                f.threadRef.unsafelyUnwrapped._withUnsafeGuaranteedRef { $0.completeSwitchOut() }
                vp.finishSuspension(f)
            }
        }
    }

    private func cache(_ c: Context, _ primary: UMSPrimary) {
        if idleCache.count < scheduler.policy.localContextCacheSize {
            idleCache.append(c)
        } else {
            terminate(c, primary)
        }
    }

    private func terminate(_ c: Context, _ primary: UMSPrimary) {
        c.exitRequested = true
        c.vpRef = Unmanaged.passUnretained(self)
        do {
            let r = try primary.execute(c.thread)
            precondition(r == .terminated, "ConcRT: context \(c.id) did not exit: \(r)")
        } catch {
            fatalError("ConcRT: internal error ending context \(c.id): \(error)")
        }
        scheduler.contextEnded(c)
    }

    private func takeIdleContext() -> Context? {
        if let c = idleCache.popLast() { return c }
        return scheduler.makeContext(for: self)
    }

    // MARK: Task loop (runs on a context)

    /// Runs tasks until there are none (returns `.idle`) or until runnable
    /// contexts or completions are waiting (`.handoff`).
    func processTasks(_ ctx: Context) -> Context.YieldReason {
        while true {
            let vp = ctx.vp!   // re-read: a task may have blocked and migrated
            if vp.runOneTaskFirst {
                vp.runOneTaskFirst = false
                if let item = vp.pop() ?? scheduler.takeQueued(for: vp, context: ctx) {
                    vp.runCounted(item)
                    continue
                }
            }
            if vp.hasRunnable || vp.completionsPending
                || (vp.retiring.load(ordering: .relaxed) && csup_deque_size(vp.deque) == 0) {
                return .handoff
            }
            if let item = vp.pop() {
                vp.runCounted(item)
                continue
            }
            if let item = scheduler.takeQueued(for: vp, context: ctx) {
                vp.runCounted(item)
                continue
            }
            switch vp.search(ctx) {
            case .item(let item): vp.runCounted(item)
            case .handoff: return .handoff
            case .nothing: return .idle
            }
        }
    }

    @inline(__always)
    func runCounted(_ item: WorkItem) {
        nudgeUntimedSleepers()
        stats.tasksRun.bump()
        runWorkItem(item)
    }

    enum SearchResult { case item(WorkItem), handoff, nothing }

    /// Steals from other VPs for up to the scheduler's spin window. While
    /// searching, this VP counts as a searcher, so producers do not wake
    /// sleepers for work it will find anyway.
    func search(_ ctx: Context?) -> SearchResult {
        let s = scheduler
        s.searchers.wrappingAdd(1, ordering: .sequentiallyConsistent)
        defer { s.searchers.wrappingSubtract(1, ordering: .sequentiallyConsistent) }
        let start = csup_monotonic_ns()
        let deadline = start + s.spinNanoseconds
        let busyAfter = start + 10_000
        snapshotSwitchCounts()
        var round = 0
        var backoff = 16
        while true {
            if let item = stealOnce() {
                stats.steals.bump()
                // More may be left: if nobody else is searching, wake one.
                if s.searchers.load(ordering: .relaxed) == 1 { s.notifyWork(force: true) }
                return .item(item)
            }
            if let item = s.takeQueued(for: self, context: ctx) { return .item(item) }
            if hasRunnable || completionsPending
                || (retiring.load(ordering: .relaxed) && csup_deque_size(deque) == 0) || s.readyToStop {
                return .handoff
            }
            round += 1
            if round & 15 == 0 {
                let now = csup_monotonic_ns()
                if now > busyAfter, stealFromBusyVirtualProcessor() { return .handoff }
                if now > deadline { return .nothing }
            }
            // Exponential backoff between sweeps: a thief that re-reads a
            // busy owner's deque indices in a tight loop keeps bouncing the
            // owner's cache lines and slows every push and pop there.
            for _ in 0..<backoff { csup_cpu_relax() }
            backoff = min(backoff * 2, 512)
        }
    }

    private func snapshotSwitchCounts() {
        let vps = scheduler.virtualProcessors
        if seenSwitches.count != vps.count { seenSwitches = Array(repeating: -1, count: vps.count) }
        let n = scheduler.activeVPCount.load(ordering: .acquiring)
        for i in 0..<n { seenSwitches[i] = vps[i].switchCount.load(ordering: .relaxed) }
    }

    /// Takes a runnable context from a VP that has not switched since the
    /// search began (its running context is busy); true if one was taken
    /// (it is now on this VP's runnable queue).
    private func stealFromBusyVirtualProcessor() -> Bool {
        let vps = scheduler.virtualProcessors
        // No snapshot yet (this VP has not searched): take one; a VP is
        // "busy" only relative to an earlier snapshot.
        if seenSwitches.count != vps.count { snapshotSwitchCounts(); return false }
        let n = scheduler.activeVPCount.load(ordering: .acquiring)
        for i in 0..<n where vps[i] !== self {
            let v = vps[i]
            if v.hasRunnable,
               v.switchCount.load(ordering: .relaxed) == seenSwitches[i],
               let c = v.stealRunnable() {
                stats.steals.bump()
                pushRunnable(c, front: false)
                return true
            }
        }
        return false
    }

    /// One sweep over the other VPs' deques, from a random start.
    private func stealOnce() -> WorkItem? {
        let vps = scheduler.virtualProcessors
        let n = scheduler.activeVPCount.load(ordering: .acquiring)
        if n <= 1 { return nil }
        rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17
        let start = Int(rng % UInt64(n))
        for k in 0..<n {
            let v = vps[(start + k) % n]
            if v === self { continue }
            var lost: Int32 = 0
            if let item = csup_deque_steal(v.deque, &lost) { return item }
        }
        return nil
    }

    // MARK: Idle

    /// Sleeps on the completion list's futex until a completion, a
    /// notification (new task, runnable context, earlier timer, shutdown)
    /// or the next timer deadline. Registers as a waiter first, then
    /// re-checks every work source, so no wake-up is lost (see
    /// csup_clist.h).
    func sleep(maxTimeout: Duration? = nil) {
        let s = scheduler
        let list = s.completionList
        let ticket = list.prepareToWait()
        if s.hasWork(for: self) || retiring.load(ordering: .relaxed) || s.readyToStop {
            list.cancelWait()
            return
        }
        // Last chance before sleeping: a runnable context parked on a VP
        // that has not switched since our search began (its context is
        // busy). A VP that is switching will run it itself, soon.
        if stealFromBusyVirtualProcessor() {
            list.cancelWait()
            return
        }
        var timeout = s.timers.timeUntilNextDeadline()
        if let m = maxTimeout { timeout = timeout.map { min($0, m) } ?? m }
        // While another VP is awake, it may end up busy with contexts
        // queued behind it: look again within 1 ms (see makeRunnable).
        let asleep = s.sleepingVPs.wrappingAdd(1, ordering: .acquiringAndReleasing).newValue
        if asleep < s.activeVPCount.load(ordering: .relaxed) {
            timeout = timeout.map { min($0, .milliseconds(1)) } ?? .milliseconds(1)
        }
        stats.idleSleeps.bump()
        if timeout == nil { s.untimedSleepers.wrappingAdd(1, ordering: .relaxed) }
        list.wait(ticket: ticket, timeout: timeout)
        if timeout == nil { s.untimedSleepers.wrappingSubtract(1, ordering: .relaxed) }
        s.sleepingVPs.wrappingSubtract(1, ordering: .relaxed)
    }

    var hasLocalWork: Bool {
        csup_deque_size(deque) > 0 || hasRunnable
    }
}

extension Context {
    /// The Context behind a UMS thread of a scheduler.
    static func of(_ t: UMSThread) -> Context {
        // Why this is sound: every UMS thread on a scheduler's completion
        // list is a context, whose userContext holds a +1 on it.
        let c = Unmanaged<Context>.fromOpaque(t.userContext!).takeUnretainedValue()
        c.adopt(t)
        return c
    }
}

/// A growable ring of contexts (under the VP's runnable mutex). Holds them
/// unretained: every live context is kept alive by its thread's user
/// context (+1 until it terminates), and a queued context cannot terminate.
struct ContextRing: ~Copyable {
    private var buf: [Unmanaged<Context>?] = Array(repeating: nil, count: 16)
    private var head = 0
    private(set) var count = 0

    mutating func pushBack(_ c: Context) {
        if count == buf.count { grow() }
        buf[(head + count) & (buf.count - 1)] = Unmanaged.passUnretained(c)
        count += 1
    }
    mutating func pushFront(_ c: Context) {
        if count == buf.count { grow() }
        head = (head - 1) & (buf.count - 1)
        buf[head] = Unmanaged.passUnretained(c)
        count += 1
    }
    mutating func popFront() -> Context? {
        if count == 0 { return nil }
        let c = buf[head]
        head = (head + 1) & (buf.count - 1)
        count -= 1
        return c?.takeUnretainedValue()
    }
    mutating func popBack() -> Context? {
        if count == 0 { return nil }
        let i = (head + count - 1) & (buf.count - 1)
        let c = buf[i]
        count -= 1
        return c?.takeUnretainedValue()
    }
    private mutating func grow() {
        var nb = [Unmanaged<Context>?](repeating: nil, count: buf.count * 2)
        for i in 0..<count { nb[i] = buf[(head + i) & (buf.count - 1)] }
        buf = nb
        head = 0
    }
}

/// Allocator of small process-unique VP numbers (lowest free first).
enum GlobalVPIndex {
    private static let free = MigrationSafeMutex<(next: Int, released: [Int])>((0, []))
    static func acquire() -> Int {
        free.withLock { s in
            if let i = s.released.popLast() { return i }
            s.next += 1
            return s.next - 1
        }
    }
    static func release(_ i: Int) { free.withLock { $0.released.append(i) } }
}
