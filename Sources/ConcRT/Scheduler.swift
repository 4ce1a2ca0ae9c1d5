import ConcurrentContainers
import CSupport
import Synchronization
import UMS
#if canImport(Glibc)
import Glibc
#endif

/// A ConcRT-style scheduler on the UMS core: virtual processors are UMS
/// primaries, contexts are UMS threads, and a task that blocks, in the
/// kernel or cooperatively, never holds a CPU. [Scheduler / CurrentScheduler]
///
/// Work sources, in the order a virtual processor looks at them:
/// completion list (contexts back from the kernel), its runnable contexts,
/// its own deque, the schedule-group and injection queues, other VPs'
/// deques (stealing). No lock is taken on spawn, pop, steal, completion,
/// event wait/set, or a wake-up by a context of the same VP (its `runnext`
/// slot is one atomic word); other runnable contexts go to a per-VP ring
/// under that VP's lock; the injection and schedule-group queues (for
/// submissions from outside) are lock-free (`ConcurrentQueue`).
///
/// Wake-up protocol: see `Idle/README.md` and ``IdleProtocol``.
public final class Scheduler: @unchecked Sendable {
    // @unchecked Sendable: shared state is atomics, Mutex-protected queues,
    // or set once during init before any primary starts.

    public let policy: SchedulerPolicy
    let completionList: UMSCompletionList
    /// Every VP this scheduler can have: the regular ones, then
    /// `temporarySlots` for oversubscription. Immutable after init; the
    /// first `activeVPCount` are stolen from (a retired temporary VP stays
    /// counted, so anything left in its deque is still found).
    private(set) var virtualProcessors: [VirtualProcessor] = []
    let activeVPCount = Atomic<Int>(0)
    let regularVPCount: Int
    /// Where the regular VPs run and whom they steal from first
    /// (Topology/VirtualProcessorLayout.swift). Set once in init.
    public let layout: VirtualProcessorLayout
    /// Oversubscription and compensation (a temporary VP per context
    /// blocked in unwrapped code, held until the VP's current task ends):
    /// a blocking-heavy load needs as many as it has blocked calls at once.
    static let temporarySlots = 256
    /// Running primaries' pthreads, joined at shutdown (or when a temporary
    /// VP is reused).
    let primaryThreads = MigrationSafeMutex<[pthread_t]>([])
    /// Carrier pthreads parked for a retake (PrimaryCarriers.swift).
    let spareCarriers = MigrationSafeMutex<[PrimaryCarrier]>([])
    /// Idle contexts shared behind the VPs' own caches
    /// (VirtualProcessor/SpareContexts.swift). Set in init.
    let spareContexts: SpareContexts
    private let startedPrimaries = Atomic<Int>(0)
    private let startFailures = Atomic<Int>(0)
    private let startFailure = MigrationSafeMutex<String?>(nil)
    let stats = StatisticsCounters()
    /// One timer queue per regular VP (Timers/TimerQueues.swift). Set in init.
    let timers: TimerQueues
    /// Watchdog samples and reported waits (Reflection/Watchdog.swift).
    let watch: SchedulerWatch
    /// Trace buffers, running and retired (Reflection/Trace.swift).
    let traceState = MigrationSafeMutex(TraceState())
    /// Sleeping, searching and waking VPs (Idle/IdleProtocol.swift).
    let idle: IdleProtocol
    /// This scheduler's account with its Resource Manager
    /// (ResourceManager/ResourceManager.swift). Set in init, before any
    /// primary starts.
    let cores: CoreAllotment
    let spinNanoseconds: Int64 = 30_000
    /// Tasks submitted from outside the scheduler's contexts: lock-free
    /// (ConcurrentQueue: a producer claims a slot with one CAS).
    private let injection = ConcurrentQueue<UInt>()
    private let injectedCount = Atomic<Int>(0)
    /// Heap tasks scheduled and not finished (for shutdown).
    let outstanding = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    let stopped = Atomic<Bool>(false)
    let liveContexts = Atomic<Int>(0)
    /// Every live context, for snapshots (Reflection/ContextRegistry.swift).
    let contextRegistry = ContextRegistry()
    let groups = ScheduleGroupRegistry()
    /// Per-node idle state for node-preferring schedule groups
    /// (Idle/NodeIdle.swift): nil unless `.enhanceScheduleGroupLocality`
    /// with the VPs placed on two or more nodes. Set once in init.
    private(set) var nodeIdle: NodeIdle?
    /// nil when the regular VPs have io_uring queues; else why not. Set
    /// once in init, before any primary starts.
    private(set) var ringUnavailableReason: String?

    /// Creates and starts a scheduler. [Scheduler::Create]
    /// - Parameters:
    ///   - policy: how it is built.
    ///   - resourceManager: whom it shares cores with: by default every
    ///     scheduler of the process (``ResourceManager/shared``). Its
    ///     regular VPs run only while they hold a core from it.
    /// - Throws: ``ConcRTError/invalidPolicy(_:)`` for a bad policy,
    ///   ``ConcRTError/schedulerStartFailed(_:)`` when a primary cannot start
    ///   (everything already started is stopped again).
    public init(policy: SchedulerPolicy = SchedulerPolicy(),
                resourceManager: ResourceManager = .shared) throws(ConcRTError) {
        try policy.validate()
        self.policy = policy
        watch = SchedulerWatch(policy)
        do {
            completionList = try UMSCompletionList()
        } catch {
            throw .schedulerStartFailed("\(error)")
        }
        idle = IdleProtocol(list: completionList)
        let n = policy.virtualProcessorCount
        regularVPCount = n
        spareContexts = SpareContexts(capacity: policy.localContextCacheSize * n)
        timers = TimerQueues(count: n, virtualProcessors: n + Self.temporarySlots)
        // Topology/VirtualProcessorLayout.swift: VP i's CPU (pinned on the
        // live system) and steal order, fixed before any primary starts
        // (it throws, so before the Resource Manager registration).
        layout = try VirtualProcessorLayout(policy: policy, virtualProcessorCount: n)
        cores = resourceManager.register(policy: policy, vpCount: n, idle: idle)
        nodeIdle = NodeIdle(policy: policy, layout: layout, list: completionList, idle: idle)
        for i in 0..<(n + Self.temporarySlots) {
            let temporary = i >= n
            let cpu: Int? = !temporary && layout.pinned ? layout.slots[i].cpu : nil
            do {
                virtualProcessors.append(try VirtualProcessor(index: i, scheduler: self, cpu: cpu, temporary: temporary))
            } catch {
                resourceManager.unregister(cores)
                throw error
            }
            if !temporary { virtualProcessors[i].stealOrder = layout.stealOrders[i] }
            if let nodeIdle {
                virtualProcessors[i].node = temporary ? -1 : nodeIdle.vpNodes[i]
                virtualProcessors[i].wakeMask = temporary ? NodeIdle.unplacedMask : NodeIdle.mask(nodeIdle.vpNodes[i])
                // A regular VP starts free (it runs nothing yet); before its
                // primary starts, which orders this for its pthread.
                if !temporary { nodeIdle.markFree(virtualProcessors[i]) }
            }
        }
        ringUnavailableReason = Self.attachRings(to: virtualProcessors[0..<n], policy: policy)
        activeVPCount.store(n, ordering: .releasing)
        var started = 0
        var failure: String?
        for vp in virtualProcessors[0..<n] {
            do { try startPrimary(vp); started += 1 } catch { failure = error.description; break }
        }
        while failure == nil, startedPrimaries.load(ordering: .acquiring) + startFailures.load(ordering: .acquiring) < started {
            usleep(50)
        }
        if failure == nil { failure = startFailure.withLock { $0 } }
        if let failure {
            stopping.store(true, ordering: .releasing)
            stopped.store(true, ordering: .releasing)
            joinPrimaries()
            for vp in virtualProcessors { vp.ring?.destroy() }
            cores.manager.unregister(cores)
            throw .schedulerStartFailed(failure)
        }
        Watchdog.watch(self)
        SnapshotSignal.installFromEnvironment()
        SnapshotSignal.register(self)
    }

    /// Gives each regular VP a ring, all or none: returns nil, or the
    /// reason none has one (a ring that cannot be made, for example at the
    /// descriptor limit, closes the ones made before it).
    private static func attachRings(to vps: ArraySlice<VirtualProcessor>, policy: SchedulerPolicy) -> String? {
        guard policy.useIORing else { return "turned off by SchedulerPolicy.useIORing or UMS_IO_URING=0" }
        var rings: [IORing] = []
        for _ in vps {
            switch IORing.make() {
            case .success(let r): rings.append(r)
            case .failure(let why):
                for r in rings { r.destroy() }
                return why.reason
            }
        }
        for (vp, r) in zip(vps, rings) { vp.attachRing(r) }
        return nil
    }

    func startPrimary(_ vp: VirtualProcessor) throws(ConcRTError) {
        try startCarrier(for: vp)
    }

    func primaryStarted() { startedPrimaries.wrappingAdd(1, ordering: .releasing) }

    func primaryFailedToStart(_ message: String) {
        startFailure.withLock { $0 = message }
        startFailures.wrappingAdd(1, ordering: .releasing)
    }

    var isStopping: Bool { stopping.load(ordering: .acquiring) }

    /// Wakes every VP until all primaries have left, then joins them.
    private func joinPrimaries() {
        // Keep nudging sleepers while joining (a VP may be between checks),
        // and stopping spares (a retaken carrier may park late). Carriers
        // started meanwhile (replacements) are joined in the next round.
        while true {
            let tids = primaryThreads.withLock { t in defer { t.removeAll() }; return t }
            if tids.isEmpty { break }
            for tid in tids {
                while true {
                    idle.wakeAll()
                    stopSpareCarriers()
                    if csup_pthread_join_timeout(tid, 2) == 0 { break }
                }
            }
        }
    }

    // MARK: Default and current

    /// The process-wide scheduler, created with the default policy on first
    /// use. [the default scheduler]
    public static let `default`: Scheduler = {
        do {
            return try Scheduler()
        } catch {
            fatalError("ConcRT: could not start the default scheduler: \(error)")
        }
    }()

    /// The scheduler running the caller, or nil outside any.
    /// [CurrentScheduler::Get returns the default instead; use
    /// `Scheduler.current ?? .default` for that]
    public static var current: Scheduler? { Context.currentInternal?.scheduler }

    /// Number of virtual processors. [Scheduler::GetNumberOfVirtualProcessors]
    public var virtualProcessorCount: Int { regularVPCount }

    // MARK: Scheduling

    /// Schedules a fire-and-forget task. [Scheduler::ScheduleTask]
    /// From a context of this scheduler it goes to the local deque;
    /// otherwise to the injection queue.
    public func scheduleTask(_ body: @escaping @Sendable () -> Void) {
        scheduleTask(body, group: nil)
    }

    func scheduleTask(_ body: @escaping () -> Void, group: ScheduleGroup?) {
        precondition(!stopped.load(ordering: .relaxed), "ConcRT: scheduleTask on a scheduler that was shut down")
        outstanding.wrappingAdd(1, ordering: .relaxed)
        let node = TaskNode(body: { body(); self.outstanding.wrappingSubtract(1, ordering: .releasing) }, group: group)
        if let group {
            if group.enqueue(node.item) { groups.activated(group) }
            if group.homeIndex >= 0 {
                nodeIdle.unsafelyUnwrapped.notifyHome(group.homeIndex)   // its home node first
            } else {
                idle.notifyWork()
            }
        } else if let c = Context.currentInternal, c.scheduler === self {
            c.vp.push(node.item)
        } else {
            inject(node.item)
        }
    }

    /// Hands a work item to the scheduler from outside its contexts.
    func inject(_ item: WorkItem) {
        let bits = UInt(bitPattern: item)
        injection.push(bits)
        injectedCount.wrappingAdd(1, ordering: .releasing)
        idle.notifyWork()
    }

    /// Creates a schedule group. [Scheduler::CreateScheduleGroup]
    /// Under `.enhanceScheduleGroupLocality` on two or more NUMA nodes it
    /// prefers a node (``ScheduleGroup/homeNode``): the creating VP's
    /// node, or round-robin when created from outside the scheduler.
    public func createScheduleGroup() -> ScheduleGroup {
        let g = ScheduleGroup(scheduler: self, share: 1, cap: nil, home: defaultHome())
        groups.add(g)
        return g
    }

    /// Creates a schedule group with a CPU share and an optional cap (fair
    /// share scheduling: see ``ScheduleGroup``). [DFSS: a user's weight and
    /// CPU rate limit]
    /// - Parameters:
    ///   - share: weight, 1...10,000: busy groups get VP time in proportion.
    ///   - cap: most of the scheduler's VP time the group may use, in
    ///     (0, 1], even when nothing else runs; nil: no cap.
    /// - Throws: ``ConcRTError/invalidPolicy(_:)`` naming the bad value.
    public func createScheduleGroup(share: Int, cap: Double? = nil) throws(ConcRTError) -> ScheduleGroup {
        try createScheduleGroup(share: share, cap: cap, home: defaultHome())
    }

    /// Checks `share` and `cap`, then creates and publishes the group with
    /// home node `home` (a dense index, -1: none; GroupHome.swift).
    func createScheduleGroup(share: Int, cap: Double?, home: Int) throws(ConcRTError) -> ScheduleGroup {
        guard share >= 1 && share <= 10_000 else {
            throw .invalidPolicy("schedule group share must be in 1...10000 (got \(share))")
        }
        if let cap, !(cap > 0 && cap <= 1) {
            throw .invalidPolicy("schedule group cap must be in (0, 1] (got \(cap))")
        }
        let g = ScheduleGroup(scheduler: self, share: share, cap: cap, home: home)
        groups.add(g)
        return g
    }

    /// Next queued item for `vp`: schedule groups (by the scheduling
    /// protocol), then the injection queue.
    func takeQueued(for vp: VirtualProcessor, context: Context?) -> WorkItem? {
        if let (item, gid) = groups.take(for: vp, protocol: policy.schedulingProtocol) {
            context?.currentGroupID = gid
            return item
        }
        context?.currentGroupID = 0
        if injectedCount.load(ordering: .acquiring) == 0 { return nil }
        guard let bits = injection.tryPop() else { return nil }
        injectedCount.wrappingSubtract(1, ordering: .relaxed)
        return UnsafeMutableRawPointer(bitPattern: bits)
    }

    /// True when schedule-group or injection queues hold tasks (a snapshot).
    var hasQueuedTasks: Bool { injectedCount.load(ordering: .acquiring) > 0 || groups.hasWork }

    /// Some VP other than `vp` (regular or an active temporary one) has
    /// tasks in its deque that a thief could take. Read from the monitor
    /// thread: the deque's size is a racy snapshot of two relaxed indices
    /// (a hint, as a thief's first look is), and `activeVPCount` is
    /// acquired so the slots below it are initialized VPs.
    func anyDequeHasWork(besides vp: VirtualProcessor) -> Bool {
        let n = activeVPCount.load(ordering: .acquiring)
        let vps = virtualProcessors
        for i in 0..<min(n, vps.count) where vps[i] !== vp {
            if csup_deque_size(vps[i].deque) > 0 { return true }
        }
        return false
    }

    /// Queues a context that was unblocked (unretained: a blocked or parked
    /// context is kept alive by its thread's user context until it runs
    /// again). From a VP of its scheduler it goes to that VP's `runnext`
    /// (it usually runs next, when the waker blocks), touching no reference
    /// count; from elsewhere to its last VP, and a sleeper is woken.
    /// `wakeIdle`: also wake an idle VP (a join continuation).
    static func makeRunnable(_ c: Unmanaged<Context>, wakeIdle: Bool = false) {
        // From a VP of this scheduler: like Go's runnext and tokio's LIFO
        // slot, the waker usually blocks next and this VP runs the woken
        // context at once, so no sleeper is woken for it (a futex wake per
        // unblock would dominate a ping-pong). If the waker stays busy
        // instead, a watching idle VP takes the context (Idle/README.md).
        let sid = c._withUnsafeGuaranteedRef { $0.schedulerID }
        if let vp = Context.currentVirtualProcessor(of: sid) {
            vp._withUnsafeGuaranteedRef { v in
                v.pushRunnable(c, front: true)
                if wakeIdle { v.scheduler.idle.notifyWork() }
            }
            return
        }
        let ctx = c.takeUnretainedValue()
        ctx.scheduler.makeRunnableFromOutside(ctx)
    }

    /// From a pthread that is not one of this scheduler's VPs: queue the
    /// context on its last VP, and wake a sleeper.
    private func makeRunnableFromOutside(_ c: Context) {
        let target = c.vp.map { $0.retiring.load(ordering: .relaxed) ? virtualProcessors[0] : $0 } ?? virtualProcessors[0]
        target.pushRunnable(Unmanaged.passUnretained(c), front: false)
        idle.notifyWork(force: true)
    }

    /// True when any work source holds something (for the idle check).
    func hasWork(for vp: VirtualProcessor) -> Bool {
        if !completionList.isEmpty || injectedCount.load(ordering: .acquiring) > 0 || groups.hasWork(for: vp) { return true }
        if timers.hasExpired { return true }
        let n = activeVPCount.load(ordering: .acquiring)
        for i in 0..<n {
            let v = virtualProcessors[i]
            if v === vp ? v.hasLocalWork : csup_deque_size(v.deque) > 0 { return true }
        }
        return false
    }

    /// True when a VP other than `vp` has runnable contexts queued (a
    /// seq_cst snapshot: the load half of the idle protocol's pair A).
    func otherVirtualProcessorHasRunnable(than vp: VirtualProcessor) -> Bool {
        let n = activeVPCount.load(ordering: .acquiring)
        for i in 0..<n where virtualProcessors[i] !== vp {
            if virtualProcessors[i].runQueue.hasRunnable { return true }
        }
        return false
    }

    // MARK: Contexts

    func makeContext(for vp: VirtualProcessor) -> Context? {
        do {
            let made = try Context(scheduler: self, list: completionList, policy: policy)
            liveContexts.wrappingAdd(1, ordering: .relaxed)
            stats.contextsCreated.add()
            // It starts queued on the completion list: take it (and anything
            // else there, counted as completions) into this VP's runnable
            // queue and run it from there.
            completionList.drain(timeout: .zero) { t in
                let c = Context.of(t)
                if c !== made { vp.stats.completions.ownerIncrement() }
                vp.pushRunnable(Unmanaged.passUnretained(c), front: false)
            }
            return vp.popRunnable()?.takeUnretainedValue()
        } catch {
            stats.contextCreationFailures.add()
            return nil
        }
    }

    func contextEnded(_ c: Context) {
        contextRegistry.remove(c.id)
        liveContexts.wrappingSubtract(1, ordering: .relaxed)
        // Balance the +1 taken at creation.
        Unmanaged<Context>.fromOpaque(c.thread.userContext!).release()
    }

    // MARK: Run and shutdown

    /// Runs `body` as a task on this scheduler and waits for its result;
    /// errors are rethrown. From a context of this scheduler it runs inline.
    /// From a context of another scheduler, that context blocks (its
    /// virtual processor runs other work meanwhile). From any other thread
    /// (main, a pthread, a Dispatch queue) that thread blocks until the
    /// task is done. No heap allocation for the hand-off:
    /// the job record lives on the caller's stack.
    public func run<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        if let c = Context.currentInternal, c.scheduler === self { return try body() }
        precondition(!stopped.load(ordering: .relaxed), "ConcRT: run on a scheduler that was shut down")
        var outcome: Result<T, E>?
        withUnsafeMutablePointer(to: &outcome) { out in
            runOutside { out.pointee = Result { () throws(E) -> T in try body() } }
        }
        return try outcome!.get()
    }

    /// Injects `call` as a stack job and waits on the job's latch until a
    /// context has run it. A context of another scheduler blocks (its
    /// virtual processor runs other work meanwhile); a plain pthread parks
    /// on the latch's futex.
    private func runOutside(_ call: () -> Void) {
        // Counted like a scheduled task: shutdown() waits for it.
        outstanding.wrappingAdd(1, ordering: .relaxed)
        defer { outstanding.wrappingSubtract(1, ordering: .releasing) }
        var job = StackJob(call)
        withUnsafeMutablePointer(to: &job) { jp in
            let caller = Context.currentInternal
            // Set before the job is published: the executor reads it after
            // its exchange sees contextWaiting.
            if let caller { jp.pointee.waiter = Unmanaged.passUnretained(caller) }
            inject(StackJob.item(jp))
            let word = StackJob.latchWord(jp)
            if let caller {
                // A context of another scheduler: block the context, not its
                // VP. acq_rel: publishes `waiter` to the executor's exchange.
                var expected = StackJob.pending
                if csup_u32_cas_acq_rel(word, &expected, StackJob.contextWaiting) {
                    caller.blockInternal(.otherScheduler)
                }
                assert(csup_u32_load_acquire(word) == StackJob.done,
                       "Scheduler.runOutside: woken before the job was done (latch \(csup_u32_load_acquire(word)))")
                return
            }
            var expected = StackJob.pending
            if csup_u32_cas_acq_rel(word, &expected, StackJob.threadWaiting) {
                while csup_u32_load_acquire(word) == StackJob.threadWaiting {
                    _ = csup_futex_wait(word, StackJob.threadWaiting, -1)
                }
            }
        }
    }

    var readyToStop: Bool { stopping.load(ordering: .acquiring) && outstanding.load(ordering: .acquiring) == 0 }

    /// Waits for every scheduled task to finish (including tasks whose
    /// contexts are blocked in the kernel or on events), then stops the
    /// virtual processors and releases every pthread, stack and descriptor.
    /// Idempotent. [Scheduler::Release + shutdown]
    ///
    /// - Parameter timeout: how long to wait for pending tasks; nil waits
    ///   for ever. On timeout nothing is stopped and
    ///   ``ConcRTError/shutdownTimedOut(pendingTasks:)`` is thrown.
    public func shutdown(timeout: Duration? = nil) throws(ConcRTError) {
        precondition(Context.currentInternal?.scheduler !== self,
                     "ConcRT: shutdown() called from one of the scheduler's own contexts; call it from outside")
        if stopped.load(ordering: .acquiring) { return }
        let deadline = timeout.map { UMSDeadline(after: $0).nanoseconds }
        var pause: UInt32 = 50
        while outstanding.load(ordering: .acquiring) > 0 {
            if let d = deadline, csup_monotonic_ns() > d {
                throw .shutdownTimedOut(pendingTasks: outstanding.load(ordering: .relaxed))
            }
            usleep(pause)
            pause = min(pause * 2, 2_000)
        }
        if stopped.exchange(true, ordering: .acquiringAndReleasing) { return }
        Watchdog.unwatch(self)
        SnapshotSignal.unregister(self)
        stopping.store(true, ordering: .releasing)
        joinPrimaries()
        // Every primary has left, each with nothing in flight on its ring,
        // and each gave its core back: the manager hands them on.
        cores.manager.unregister(cores)
        for vp in virtualProcessors { vp.ring?.destroy() }
        try? completionList.delete()
    }

    /// True once ``shutdown(timeout:)`` has completed.
    public var isShutDown: Bool {
        stopped.load(ordering: .acquiring) && primaryThreads.withLock { $0.isEmpty }
    }

    /// Counters since creation. [Scheduler statistics]
    public var statistics: SchedulerStatistics {
        var total = stats.snapshot(liveContexts: liveContexts.load(ordering: .relaxed))
        total.timerFirings = timers.firings.load(ordering: .relaxed)
        for vp in virtualProcessors {
            let v = vp.stats.snapshot(liveContexts: 0)
            total.tasksRun += v.tasksRun; total.steals += v.steals; total.contextSwitches += v.contextSwitches
            total.blocks += v.blocks; total.yields += v.yields; total.kernelBlocks += v.kernelBlocks
            total.completions += v.completions; total.idleSleeps += v.idleSleeps
            total.idleWatchExpiries += v.idleWatchExpiries
            total.ringOperations += v.ringOperations; total.ringCompletions += v.ringCompletions
            total.ringSubmits += v.ringSubmits; total.ringSleeps += v.ringSleeps
            total.ringFallbacks += v.ringFallbacks
            total.timerSleeps += v.timerSleeps; total.idleWakeUps += v.idleWakeUps
        }
        return total
    }
}
