import CSupport
import Synchronization
import UMS
#if canImport(Glibc)
import Glibc
#endif

/// A virtual processor: one UMS primary (pinned where the mask allows)
/// with its own task deque, run queue and idle-context cache.
/// [VirtualProcessor / virtual processor root]
///
/// This file is the primary's loop. Each pass:
///   1. drain the scheduler's completion list into this VP's run queue
///      (the UMS rule: completions before anything runs), fire due timers;
///   2. after a streak of `runnext` takes, or after a `Context.yield()`,
///      give queued work a turn (`FairTurns.swift`);
///   3. run a runnable context, if any (`runnext` first, then the ring:
///      `Queues/RunQueue.swift`);
///   4. else run a task context (from the idle cache, or a new one), which
///      runs tasks from the local deque, the group and injection queues,
///      and steals from other VPs (`TaskLoop.swift`, `Stealing.swift`);
///   5. when that context found nothing, sleep (`Idle/IdleProtocol.swift`).
///
/// After each execute, the context that came back is acted on by its
/// switch-out reason: a park or block is committed (registered on its
/// event, or marked blocked), an idle or hand-off context is cached, a
/// yielding one is requeued behind the others.
///
/// Ownership: the deque's bottom end belongs to whichever context this VP
/// is running (one at a time, on this pthread); thieves use the top. The
/// run queue has an owner side and a thief side. The idle cache,
/// `switchedOut`, the fairness fields and the steal snapshot are
/// owner-only (`@exclusivity(unchecked)`: only this VP's pthread touches
/// them, and only one context runs here at a time).
@usableFromInline
final class VirtualProcessor: @unchecked Sendable {
    /// This VP's index in its scheduler (0..<virtualProcessorCount for the
    /// regular VPs, then the oversubscription slots).
    let index: Int
    unowned(unsafe) let scheduler: Scheduler
    @usableFromInline let deque: OpaquePointer
    let cpu: Int?
    let runQueue = RunQueue()
    @exclusivity(unchecked) private var idleCache: [Context] = []
    /// True for oversubscription VPs asked to leave.
    let retiring = Atomic<Bool>(false)
    let temporary: Bool
    /// Temporary slots: taken while a primary runs it (under the
    /// scheduler's thread lock).
    var slotInUse = false
    /// The pthread of this VP's last primary (temporary slots).
    var lastPrimary: pthread_t?
    /// Locality steal order (Stealing.swift); nil: one sweep. Set by the
    /// scheduler before the primary starts, then only read.
    var stealOrder: StealOrder?
    /// Dense index of this VP's NUMA node in ``Scheduler/nodeIdle``; -1
    /// without node locality and on temporary VPs. Set by the scheduler
    /// before the primary starts, then only read.
    var node = -1
    /// Futex bitset this VP sleeps with (Idle/NodeIdle.swift); ANY without
    /// node locality. Set with ``node``.
    var wakeMask: UInt32 = CSUP_FUTEX_BITSET_ANY
    /// This VP's free mark is set (Idle/NodeIdle.swift; owner-only; never
    /// set without node locality).
    @exclusivity(unchecked) var nodeFree = false
    /// xorshift state for the steal start (owner-only).
    @exclusivity(unchecked) var rng: UInt64
    /// Index of the schedule group this VP took from last (owner-only).
    @exclusivity(unchecked) var lastGroupIndex = 0
    /// This VP's counters (mostly written by its own pthread: no sharing).
    let stats = StatisticsCounters()
    /// Executions so far (owner-written with a plain load and store,
    /// relaxed): a thief that sees it unchanged across a watch or spin
    /// window knows this VP is stuck in one context and may take its
    /// runnable contexts.
    let switchCount = Atomic<Int>(0)
    /// Id of the context this VP switched in last (relaxed; owner-written
    /// at every switch, read by snapshots and the watchdog: see
    /// Reflection/ContextActivity.swift).
    let runningContextID = Atomic<Int>(0)
    /// Linux thread id of the pthread carrying this VP now (relaxed; set
    /// when a carrier starts running the VP, read by the watchdog to
    /// capture a long task's backtrace).
    let carrierTID = Atomic<Int64>(0)
    /// The running trace's buffer (a csup_trace_buf pointer; 0: no trace).
    /// Release on publish, acquire at each trace point (Reflection/Trace.swift).
    let traceBuffer = Atomic<UInt>(0)
    /// Thief-side snapshot of the other VPs' switch counts (owner-only).
    @exclusivity(unchecked) var seenSwitches: [Int] = []
    /// True while this VP holds a core from the Resource Manager
    /// (CoreTokens.swift; owner-only).
    @exclusivity(unchecked) var holdsCore = false
    /// Set when the last task context found nothing: sleep next.
    @exclusivity(unchecked) private var wantsSleep = false
    /// Set when this VP returns from an idle sleep, until its next pick
    /// (``passOnWakeUp()``; owner-only).
    @exclusivity(unchecked) private var justWoke = false

    // Fair turns and directed switches (FairTurns.swift, DirectSwitch.swift).

    /// The context that made a directed switch to the one now running here,
    /// until that one finishes its suspension (owner-only).
    @exclusivity(unchecked) var switchedOut: Unmanaged<Context>?
    /// `runnext` takes in a row, by this loop or by directed switches
    /// (owner-only). See ``runnextLimit``.
    @exclusivity(unchecked) var runnextStreak = 0
    /// Set for a task context started by a fair turn: it runs one task
    /// before it looks at runnable contexts again (owner-only).
    @exclusivity(unchecked) var runOneTaskFirst = false
    /// Calls of `checkCoreRequest()` (owner only; CoreTokens.swift).
    @exclusivity(unchecked) var debtLooks: UInt32 = 0
    /// Set when a context yielded: queued tasks get a turn before the
    /// yielder runs again (owner-only).
    @exclusivity(unchecked) var yieldTurnPending = false

    init(index: Int, scheduler: Scheduler, cpu: Int?, temporary: Bool) throws(ConcRTError) {
        guard let d = csup_deque_create(256) else { throw .schedulerStartFailed("out of memory for a deque") }
        self.index = index
        self.scheduler = scheduler
        self.deque = d
        self.cpu = cpu
        self.temporary = temporary
        self.rng = UInt64(index + 1) &* 0x9E37_79B9_7F4A_7C15
        self.completions = Unmanaged.passUnretained(scheduler.completionList)
        self.idleRef = Unmanaged.passUnretained(scheduler.idle)
        self.retake = nil
        self.retake = VirtualProcessorRetake(self)
    }

    /// This VP's io_uring (IO/IORing.swift): set by the scheduler before
    /// the VP's primary starts, then only read. nil on temporary VPs and
    /// where the ring is unavailable or turned off.
    private(set) var ring: IORing?
    /// `ring`, unretained (the VP keeps it through `ring` for its life),
    /// for the primary loop's pass: binding `ring` there retained and
    /// released it on every pass.
    private var ringRef: Unmanaged<IORing>?
    func attachRing(_ r: IORing) {
        precondition(ring == nil && !temporary, "VirtualProcessor.attachRing: VP \(index) already has a ring or is temporary")
        ring = r
        ringRef = Unmanaged.passUnretained(r)
    }

    /// Tags of ring calls to cancel, from other threads
    /// (IO/IOInterruption.swift), and whether any wait (release/acquire).
    let ioCancelRequests = MigrationSafeMutex<[UInt]>([])
    let ioCancelPending = Atomic<Bool>(false)

    /// Swift jobs in flight on this VP (Concurrency/JobPinning.swift): the
    /// VP is not retaken while any is. Written on the VP's pthread, read by
    /// the monitor (relaxed).
    let pinnedJobs = Atomic<Int>(0)

    /// This VP's answer to the UMS monitor (PrimaryCarriers.swift).
    private(set) var retake: VirtualProcessorRetake!

    deinit { csup_deque_destroy(deque) }

    /// The scheduler's completion list, unretained (the scheduler owns it
    /// and outlives its VPs), so hot-path checks touch no reference count.
    private let completions: Unmanaged<UMSCompletionList>

    /// The scheduler's idle protocol, unretained for the same reason (the
    /// scheduler owns it and outlives its VPs): read through
    /// `scheduler.idle`, every wake-up and local push retained and
    /// released it (two atomic RMWs on the wake path of every event set).
    /// Usable from inlinable code: a fork's push checks the idle counters
    /// inline through it (one load, not vp.scheduler.idle's three).
    @usableFromInline let idleRef: Unmanaged<IdleProtocol>

    /// True when contexts are queued on the completion list (a snapshot).
    @inline(__always)
    var completionsPending: Bool {
        completions._withUnsafeGuaranteedRef { !$0.isEmpty } || (ring?.hasCompletions ?? false)
    }

    // MARK: Local deque (owner: the context running on this VP)

    @usableFromInline
    func push(_ item: WorkItem) {
        if csup_deque_push(deque, item) != 0 {
            // The deque could not grow: run the item now instead of losing it.
            runWorkItem(item)
            return
        }
        idleRef._withUnsafeGuaranteedRef { $0.notifyLocalPush() }
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

    /// True when this VP's deque or run queue holds something.
    var hasLocalWork: Bool {
        csup_deque_size(deque) > 0 || runQueue.hasRunnable || (ring?.hasCompletions ?? false)
            || ioCancelPending.load(ordering: .acquiring)   // interruptIO asked this VP to cancel
    }

    // MARK: Run queue (owner side)

    /// Queues a runnable context here. `front`: woken by the context
    /// running on this VP (goes to `runnext`, and the idle protocol is told).
    @inline(__always)
    func pushRunnable(_ c: Unmanaged<Context>, front: Bool) {
        if forwardIfPinnedElsewhere(c) { return }   // Concurrency/JobPinning.swift
        if runQueue.push(c, front: front) { idleRef._withUnsafeGuaranteedRef { $0.runnextPushed() } }
    }

    /// Takes the next runnable context and counts a `runnext` take in the
    /// streak (FairTurns.swift).
    @inline(__always)
    func popRunnable() -> Unmanaged<Context>? {
        guard let (c, fromRunnext) = runQueue.pop() else {
            runnextStreak = 0
            return nil
        }
        runnextStreak = fromRunnext ? runnextStreak + 1 : 0
        return c
    }

    // MARK: Primary loop

    /// A small process-unique number while this VP runs (kept across
    /// retakes, reused after the VP leaves): an index for per-VP data such
    /// as combinable values.
    private(set) var processSlot = -1

    /// Runs this VP's loop on `primary` until the VP leaves (returns false)
    /// or the UMS monitor retakes it from a context's blocking call
    /// (returns true: another carrier runs the VP now, and nothing here
    /// may touch it; see PrimaryCarriers.swift).
    func run(_ primary: UMSPrimary) -> Bool {
        // The slot belongs to the VP, not to this pthread: a replacement
        // carrier after a retake keeps it; it is released when the VP leaves.
        if processSlot < 0 { processSlot = ProcessSlots.acquire() }
        carrierTID.store(csup_gettid(), ordering: .relaxed)
        let list = scheduler.completionList
        // A regular VP runs only while it holds a core (a retake's
        // replacement carrier inherits it): take one, or sleep as a core
        // waiter until one is free (ResourceManager/ResourceManager.swift).
        if !mayRun && !tryTakeCore() { scheduler.idle.sleep(self) }
        while true {
            if !list.isEmpty {
                list.drain(timeout: .zero) { t in
                    self.stats.completions.ownerIncrement()
                    self.pushRunnable(Unmanaged.passUnretained(Context.of(t)), front: false)
                }
            }
            // Why the unretained references are sound: the ring lives as
            // long as this VP (`ring` keeps it), the scheduler as long as
            // its VPs.
            ringRef?._withUnsafeGuaranteedRef { ring in
                // I/O completions before anything runs, then submit what
                // contexts queued (IO/IORing.swift). Internal completions
                // (cancels) are reaped too, so none lingers as "work".
                if ring.hasCompletions { ring.reap(self) }
                if ring.inFlight > 0 { ring.submitIfDue(runQueueEmpty: !runQueue.hasRunnable, self) }
                if ioCancelPending.load(ordering: .relaxed) { processIOCancelRequests(ring) }
            }
            // Timers of this VP's queue: the contexts they wake are queued
            // here (Timers/TimerQueues.swift).
            _ = Unmanaged.passUnretained(scheduler)._withUnsafeGuaranteedRef { $0.fireTimers(on: self, idlePath: false) }
            if let c = takeFairTurn() {
                if nodeFree { scheduler.nodeIdle.unsafelyUnwrapped.clearFree(self) }   // busy now (Idle/NodeIdle.swift)
                passOnWakeUp()
                if !execute(c, primary) { return true }
                continue
            }
            if let c = popRunnable() {
                if nodeFree { scheduler.nodeIdle.unsafelyUnwrapped.clearFree(self) }
                passOnWakeUp()
                if !execute(c, primary) { return true }
                continue
            }
            // Nothing to run: fire due timers of every VP's queue (their
            // owners may be stuck in long tasks), then look again.
            if scheduler.fireTimers(on: self, idlePath: true) > 0 { continue }
            justWoke = false   // it looks for tasks itself now
            // A retiring temporary VP stays while a context pinned to it
            // (Context.withPinnedThread) is blocked: it can resume only here.
            if retiring.load(ordering: .relaxed) && !hasLocalWork && pinnedJobs.load(ordering: .relaxed) == 0 { break }
            if scheduler.readyToStop {
                guard let ring, ring.inFlight > 0 else { break }
                // Operations of contexts no task waits for: cancel them and
                // run their contexts to the end before leaving.
                ring.cancelAll()
                scheduler.idle.sleep(self, napNanoseconds: 1_000_000)
                continue
            }
            if wantsSleep {
                wantsSleep = false
                scheduler.idle.sleep(self)
                justWoke = true
                continue
            }
            guard let c = takeIdleContext() else {
                // No context could be made (stack or memory exhausted): nap
                // a little for blocked ones to return rather than spin.
                scheduler.idle.sleep(self, napNanoseconds: 1_000_000)
                continue
            }
            if !execute(Unmanaged.passUnretained(c), primary) { return true }
        }
        // Leaving: end the cached contexts, give the core back.
        if nodeFree { scheduler.nodeIdle.unsafelyUnwrapped.clearFree(self) }
        for c in idleCache { terminate(c, primary) }
        idleCache.removeAll()
        // At shutdown every leaving VP ends what the shared pool holds; the
        // last to leave finds all (SpareContexts.swift). A temporary VP that
        // retires while the scheduler runs leaves the pool to the others.
        if scheduler.readyToStop {
            for c in scheduler.spareContexts.drainAtShutdown() { terminate(c, primary) }
        }
        if holdsCore { releaseCore() }
        ProcessSlots.release(processSlot)
        processSlot = -1
        if temporary { scheduler.temporaryVirtualProcessorLeft(self) }
        return false
    }

    /// Executes `context` until it switches out, then acts on its reason.
    /// Unretained: see RunQueue. Returns false when the UMS monitor retook
    /// this VP meanwhile: then it acted on nothing (the context that was in
    /// its call is on the completion list, and another carrier runs the VP).
    @discardableResult
    func execute(_ context: Unmanaged<Context>, _ primary: UMSPrimary) -> Bool {
        assert(switchedOut == nil, "VirtualProcessor.execute: VP \(index) entered with a switched-out context pending")
        assert(runQueue.invariantsHold())
        if forwardIfPinnedElsewhere(context) { return true }   // stolen: Concurrency/JobPinning.swift
        let thread = context._withUnsafeGuaranteedRef { c in
            c.vpRef = Unmanaged.passUnretained(self)
            return c.threadRef.unsafelyUnwrapped
        }
        countSwitch(to: context)
        let r: (result: UMSExecuteResult, thread: Unmanaged<UMSThread>, userContext: UnsafeMutableRawPointer?)
        do {
            r = try thread._withUnsafeGuaranteedRef { try primary.executeReportingThread($0) }
        } catch UMSError.primaryRetaken {
            // Retaken while this pthread ran scheduler code (the known race
            // of unwrapped detection): the replacement runs the VP; leave.
            return false
        } catch {
            context._withUnsafeGuaranteedRef { c in
                fatalError("VirtualProcessor.execute: internal error executing context \(c.id): \(error)")
            }
        }
        // Retaken: this pthread no longer carries the VP. Touch nothing.
        if primary.isRetaken {
            assert(r.result == .blocked(.systemCall), "VirtualProcessor.execute: retaken with result \(r.result)")
            return false
        }
        // The context that came back: `context`, or the last one of a chain
        // of directed switches that began with it.
        // Why this is sound: a context's user context holds its +1.
        Unmanaged<Context>.fromOpaque(r.userContext!)._withUnsafeGuaranteedRef { c in
            switch r.result {
            case .blocked:
                stats.kernelBlocks.ownerIncrement()
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
                    pushRunnable(Unmanaged.passUnretained(c), front: false)
                    yieldTurnPending = true
                case .io:
                    break   // queued on the ring; submitted at the top of the pass
                }
            }
        }
        return true
    }

    /// A VP woken from its sleep that first runs a context (its own I/O, a
    /// kernel call's completion) while tasks are queued wakes another VP for
    /// them: the wake-up it took may have been meant for those tasks (a
    /// ring's futex wait stays queued until its cancel, so it can absorb a
    /// notify after its VP woke for I/O; Tests/Models/ringsleep.pml), and
    /// the context may run for long. Go's rule: a woken M that finds more
    /// work than it takes wakes another.
    @inline(__always)
    private func passOnWakeUp() {
        guard justWoke else { return }
        justWoke = false
        if scheduler.hasQueuedTasks { scheduler.idle.notifyWork() }
    }

    @inline(__always)
    func countSwitch(to c: Unmanaged<Context>) {
        let id = c._withUnsafeGuaranteedRef { $0.id }
        runningContextID.store(id, ordering: .relaxed)
        trace(.switchIn, id)
        stats.contextSwitches.ownerIncrement()
        switchCount.store(switchCount.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
    }

    /// A context that switched out to park on an event or to block, now
    /// saved: commit that (register on the event / blocked state). If it was
    /// signaled or unblocked meanwhile, it runs again next.
    @inline(__always)
    func finishSuspension(_ c: Context) {
        switch c.yieldReason {
        case .park:
            let e = c.parkEvent.unsafelyUnwrapped
            c.parkEvent = nil
            if !e._withUnsafeGuaranteedRef({ Event.commitPark(c, on: $0) }) {
                pushRunnable(Unmanaged.passUnretained(c), front: true)
            }
        case .block:
            if c.commitBlock() { pushRunnable(Unmanaged.passUnretained(c), front: true) }
        case .idle, .handoff, .yield, .io:
            preconditionFailure("VirtualProcessor.finishSuspension: context \(c.id) switched out with \(c.yieldReason), not park or block")
        }
    }

    // MARK: Idle contexts

    private func cache(_ c: Context, _ primary: UMSPrimary) {
        assert(c.yieldReason == .idle || c.yieldReason == .handoff,
               "VirtualProcessor.cache: context \(c.id) is \(c.yieldReason), not idle")
        c.isCachedIdle.store(true, ordering: .relaxed)
        if idleCache.count < scheduler.policy.localContextCacheSize {
            idleCache.append(c)
        } else if temporary || !scheduler.spareContexts.put(c) {
            // A temporary VP's overflow is not kept: it exists for bursts.
            c.isCachedIdle.store(false, ordering: .relaxed)
            terminate(c, primary)
        }
    }

    private func terminate(_ c: Context, _ primary: UMSPrimary) {
        c.exitRequested = true
        c.vpRef = Unmanaged.passUnretained(self)
        do {
            let r = try primary.execute(c.thread)
            precondition(r == .terminated, "VirtualProcessor.terminate: context \(c.id) did not exit: \(r)")
        } catch {
            fatalError("VirtualProcessor.terminate: internal error ending context \(c.id): \(error)")
        }
        scheduler.contextEnded(c)
    }

    /// A cached idle context (this VP's, else the scheduler's spare pool),
    /// else a new one (nil when none can be made).
    func takeIdleContext() -> Context? {
        if let c = idleCache.popLast() ?? scheduler.spareContexts.take() {
            c.isCachedIdle.store(false, ordering: .relaxed)
            assert(c.yieldReason == .idle || c.yieldReason == .handoff,
                   "VirtualProcessor.takeIdleContext: cached context \(c.id) is \(c.yieldReason)")
            return c
        }
        return scheduler.makeContext(for: self)
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

/// Allocator of small process-unique numbers for running VPs (lowest free
/// first), so per-VP data (combinable values) can be indexed across
/// schedulers.
enum ProcessSlots {
    private static let free = MigrationSafeMutex<(next: Int, released: [Int])>((0, []))
    static func acquire() -> Int {
        free.withLock { s in
            // The smallest free one, so the numbers stay small (per-slot
            // arrays sized by the largest) after bursts of temporary VPs.
            // At VP start only; the list is at most the peak VP count.
            if let m = s.released.indices.min(by: { s.released[$0] < s.released[$1] }) {
                return s.released.swapRemoveAt(m)
            }
            s.next += 1
            return s.next - 1
        }
    }
    static func release(_ i: Int) { free.withLock { $0.released.append(i) } }
}

private extension Array {
    /// Removes the element at `i` by moving the last one into its place.
    mutating func swapRemoveAt(_ i: Int) -> Element {
        swapAt(i, count - 1)
        return removeLast()
    }
}
