import CSupport
import Synchronization
import UMS

/// An execution context: a UMS thread that runs tasks one after another on
/// a virtual processor. [Context / CurrentScheduler-bound context]
///
/// A virtual processor switches to another context only when the running
/// one blocks: cooperatively (an ``Event``, a ``CriticalSection``, a join on
/// a stolen task, ``block()``) or in the kernel (``Blocking``). So the
/// number of contexts grows with the number of blocked ones, not with the
/// number of tasks.
///
/// Blocking protocols: see `BlockProtocol.swift`.
///
/// A plain ``Event/wait()`` uses neither word: it switches out with the
/// `.park` reason and is registered on the event after the switch (see
/// ``Event``).
public final class Context: @unchecked Sendable {
    // @unchecked Sendable: `blockState`, `userBlock` and `parkedOnEvent` are atomic;
    // `vpRef`, `yieldReason`, `parkEvent` and `exitRequested` are touched
    // only by the context itself and by the primary (or the context) that
    // switches it out, on the same pthread.

    /// Unique id within the process. [Context::GetId]
    public let id: Int
    /// The context's UMS thread. Set by whoever dequeues it from the
    /// completion list (a new thread is queued there before its creator
    /// gets it back), so every reader sees it after the list's hand-off.
    /// `threadOwner` keeps it; `thread` reads it without reference counting.
    private var threadOwner: UMSThread?
    @usableFromInline @exclusivity(unchecked) private(set) var threadRef: Unmanaged<UMSThread>?
    var thread: UMSThread! { threadRef?.takeUnretainedValue() }
    @usableFromInline unowned(unsafe) let scheduler: Scheduler
    /// `scheduler`'s identity, for comparisons that touch no reference count.
    let schedulerID: ObjectIdentifier
    /// The virtual processor running this context (set before each execute),
    /// unretained: VPs live as long as their scheduler. Hot paths use
    /// ``withVP(_:)``, which touches no reference count.
    @usableFromInline @exclusivity(unchecked) var vpRef: Unmanaged<VirtualProcessor>?
    @usableFromInline var vp: VirtualProcessor! { vpRef?.takeUnretainedValue() }

    @inline(__always)
    func withVP<R>(_ body: (VirtualProcessor) throws -> R) rethrows -> R {
        try vpRef.unsafelyUnwrapped._withUnsafeGuaranteedRef(body)
    }
    /// Schedule group of the task being run (0: none).
    @exclusivity(unchecked) var currentGroupID = 0
    let blockState = Atomic<BlockState>(.running)
    /// The public block()/unblock() pairing, kept apart from `blockState`
    /// (which runtime waits use), so that a pending user unblock is never
    /// taken by a lock or join wait, and a user unblock never wakes one:
    ///
    ///     none ──unblock──▶ permit ──block()──▶ none          (unblock first)
    ///     none ──block()──▶ waiting ──unblock──▶ none + runtime unblock
    let userBlock = Atomic<UserBlock>(.none)
    @exclusivity(unchecked) var yieldReason: YieldReason = .idle
    @exclusivity(unchecked) var exitRequested = false
    /// The result of the ring operation this context parked on (`.io`):
    /// written by the VP that reaped its completion before it queued the
    /// context, read by the context when it runs again (the run queue's
    /// hand-off orders the two).
    @exclusivity(unchecked) var ioResult: Int32 = 0
    /// Ring-call generation (owner-only): the low 4 bits of a ring tag, so
    /// a late cancel request for an earlier call matches nothing.
    @exclusivity(unchecked) var ioGeneration: UInt = 0
    /// The last ring call ended by an interruption (owner-only): its
    /// ECANCELED is returned, not resubmitted (IO/RingCall.swift).
    @exclusivity(unchecked) var ioInterruptTaken = false
    /// Tag of the ring operation this context is parked on (0: none), and
    /// that ring's VP. Written by the context (seq_cst: the store half of
    /// the interruption pair, see IO/IOInterruption.swift); read by
    /// ``interruptIO()`` from any thread.
    let ioParkedTag = Atomic<UInt>(0)
    let ioParkedVP = Atomic<Int>(-1)
    /// An interruption asked for and not yet delivered (seq_cst).
    let ioInterruptPending = Atomic<Bool>(false)
    /// The waiter record this context reuses for plain `Event.wait()`s
    /// (owned by `parkWaiterOwner`; used unretained on the hot path).
    private let parkWaiterOwner = Waiter.forContext()
    let parkWaiter: Unmanaged<Waiter>
    /// The event a `.park` switch-out waits on (set by the context before
    /// the switch, read by its primary after it).
    @exclusivity(unchecked) var parkEvent: Unmanaged<Event>?
    /// True while the context is registered on an event by a plain wait
    /// (diagnostics and tests; relaxed: it orders nothing).
    let parkedOnEvent = Atomic<Bool>(false)

    // Reflection words (Reflection/ContextActivity.swift). Each is written
    // only by the context itself, with a relaxed store, and read by
    // snapshots and the watchdog from any thread (relaxed: a snapshot is a
    // best-effort picture, ordered by nothing).
    /// What the context last suspended on: a WaitReason in the low 4 bits,
    /// the object's address (16-byte aligned) above them.
    let waitWord = Atomic<UInt>(0)
    /// When it suspended there (coarse monotonic ns).
    let waitSince = Atomic<Int64>(0)
    /// The blocking call it is in (a StaticString's address; 0: none) and
    /// the call's descriptor (-1: none).
    let kernelCallName = Atomic<UInt>(0)
    let kernelCallFD = Atomic<Int32>(-1)
    /// True while the context sits in a VP's idle cache (written by that
    /// VP's primary).
    let isCachedIdle = Atomic<Bool>(false)
    /// The label given to this context, or to the task it runs now
    /// (``Context/withLabel(_:_:)``).
    let labelStorage = MigrationSafeMutex<String?>(nil)

    /// True while the context waits: parked on an event, or blocked (a
    /// lock, a timed or multiple wait, a join, ``block()``). A snapshot.
    var isWaiting: Bool {
        parkedOnEvent.load(ordering: .relaxed) || blockState.load(ordering: .acquiring) == .blocked
    }
    /// This context's ContextLocal values (touched only by this context;
    /// see ContextLocal.swift).
    @usableFromInline @exclusivity(unchecked) var contextLocals = ContextLocalStorage()
    /// Emptied tables of tasks that ran nested on this context's frame
    /// (``ContextLocalStorage/runTask(on:_:)``), kept with their boxes so
    /// the next nested task stores without allocating. Touched only by
    /// this context.
    @exclusivity(unchecked) var spareContextLocals: [ContextLocalStorage] = []
    /// Index of the VP this context is pinned to while it runs a Swift job
    /// (-1: not pinned). See Concurrency/JobPinning.swift. Written by the
    /// context itself (relaxed); read by whoever queues it while it is
    /// suspended (ordered by the queue hand-off).
    let swiftJobHome = Atomic<Int>(-1)
    /// Oversubscription nesting of this context.
    var oversubscription: [VirtualProcessor] = []

    enum YieldReason: Int {
        /// Found no work: cache me, maybe sleep.
        case idle = 1
        /// Runnable contexts or completions are waiting: cache me, go on.
        case handoff = 2
        /// Context.yield(): requeue me behind the runnable ones.
        case yield = 3
        /// Context.block(): commit the block.
        case block = 4
        /// Event.wait(): register on `parkEvent` (Event.commitPark).
        case park = 5
        /// A Blocking call queued an operation on the VP's ring: the VP
        /// submits it; its completion requeues the context (IO/IORing.swift).
        case io = 6
    }

    private static let nextID = Atomic<Int>(1)

    init(scheduler: Scheduler, list: UMSCompletionList, policy: SchedulerPolicy) throws(UMSError) {
        id = Context.nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        self.scheduler = scheduler
        schedulerID = ObjectIdentifier(scheduler)
        parkWaiter = Unmanaged.passUnretained(parkWaiterOwner)
        parkWaiterOwner.attach(self)
        // The thread's user context holds a +1 on this Context, released
        // when the thread terminates (Scheduler.contextEnded). It is set
        // before the thread is queued, so a dequeuer always finds it.
        let me = Unmanaged.passRetained(self)
        let unowned = UnownedContext(self)
        do {
            _ = try UMSThread(completionList: list, stackSize: policy.contextStackSize,
                                   backend: policy.contextBackend, name: "concrt-context-\(id)",
                                   userContext: me.toOpaque()) {
                unowned.context.main()
            }
        } catch {
            me.release()
            throw error
        }
    }

    /// The context body: run tasks; when there are none, give the virtual
    /// processor back; leave when asked to.
    private func main() {
        while !exitRequested {
            let reason = vp.processTasks(self)
            if exitRequested { break }
            switchOut(reason)
        }
    }

    // MARK: Current context

    /// The context running the caller, or nil outside a scheduler (a plain
    /// pthread, or inside a blocking call's closure on a kernel thread).
    @inlinable
    static var currentInternal: Context? {
        guard let p = UMSThread.currentOnPrimaryUserContext else { return nil }
        // Why this is sound: userContext holds a +1 on the Context for as
        // long as the thread can run.
        return Unmanaged<Context>.fromOpaque(p).takeUnretainedValue()
    }

    /// The virtual processor of the calling context if it belongs to
    /// `scheduler` (unretained; nil elsewhere). For hot paths: no
    /// reference count is touched.
    @inline(__always)
    static func currentVirtualProcessor(of scheduler: ObjectIdentifier) -> Unmanaged<VirtualProcessor>? {
        guard let p = UMSThread.currentOnPrimaryUserContext else { return nil }
        // Why this is sound: the context is running this code, so its +1
        // (held by its thread's user context) outlives the call.
        return Unmanaged<Context>.fromOpaque(p)._withUnsafeGuaranteedRef { me in
            me.schedulerID == scheduler ? me.vpRef : nil
        }
    }

    /// At a task boundary or a switch-out: if the monitor is compensating
    /// for an unwrapped block of this context (a temporary VP runs beside
    /// it), the context runs again, so end that now rather than at the
    /// monitor's next look. One chain of three loads when nothing happened.
    /// Not needed for safety: a compensation hands nothing over, so forks
    /// and other hot paths skip it.
    @inlinable @inline(__always)
    func noteRuntimeEntry() {
        threadRef.unsafelyUnwrapped._withUnsafeGuaranteedRef { $0.noteRuntimeEntry() }
    }

    /// The calling context. [Context::CurrentContext]
    public static var current: Context? { currentInternal }

    /// The scheduler this context belongs to.
    public var owningScheduler: Scheduler { scheduler }

    /// Index of the virtual processor running this context.
    /// [Context::GetVirtualProcessorId]
    public var virtualProcessorID: Int { vp?.index ?? -1 }

    /// Schedule group of the task this context is running (0: none).
    /// [Context::GetScheduleGroupId]
    public var scheduleGroupID: Int { currentGroupID }

    // MARK: Yield, block, unblock

    /// Gives the virtual processor to other runnable contexts; returns when
    /// this one runs again. Outside a context it yields the pthread.
    /// [Context::Yield]
    public static func yield() {
        guard let c = currentInternal else { sched_yield(); return }
        c.noteRuntimeEntry()
        c.withVP { $0.stats.yields.ownerIncrement() }
        c.switchOut(.yield)
    }

    /// Switches to the primary with `reason`; returns when this context
    /// runs again (then finishes a directed switch that brought it back).
    @inline(__always)
    func switchOut(_ reason: YieldReason) {
        // No runtime-entry note here: callers that wait made it (a switch
        // ends a compensation at the monitor's next look anyway).
        yieldReason = reason
        // Guaranteed reference: the thread lives as long as this context.
        threadRef.unsafelyUnwrapped._withUnsafeGuaranteedRef { $0.yieldRunning(reason.rawValue) }
        VirtualProcessor.finishDirectSwitch(into: self)
    }

    /// Suspends the context with the `.park` or `.block` reason (already
    /// announced). When its VP has a context in `runnext` (one this
    /// context just woke, usually), switches straight to it (a directed
    /// switch: one context switch instead of two through the primary, and
    /// no pass of the primary loop); the context switched to finishes this
    /// one's suspension (VirtualProcessor.finishDirectSwitch). Otherwise
    /// goes through the primary.
    static func suspend(_ me: Unmanaged<Context>, _ reason: YieldReason) {
        // Why the unretained references are sound: `me` is the running
        // context (kept by its thread's user context), its VP lives as long
        // as the scheduler, threads live as long as their contexts, and
        // `next` was taken exclusively from runnext (a queued context
        // cannot terminate).
        // Callers (park, blockInternal) noted their runtime entry already.
        let (vp, thread) = me._withUnsafeGuaranteedRef { c in
            c.yieldReason = reason
            return (c.vpRef.unsafelyUnwrapped, c.threadRef.unsafelyUnwrapped)
        }
        if let next = vp._withUnsafeGuaranteedRef({ $0.takeDirectSwitchTarget(from: me) }) {
            let nextThread = next._withUnsafeGuaranteedRef { n in
                n.vpRef = vp
                return n.threadRef.unsafelyUnwrapped
            }
            let switched = thread._withUnsafeGuaranteedRef { t in
                // Owned: `next` came out of runnext by an exchange, which
                // hands each context to one taker.
                nextThread._withUnsafeGuaranteedRef { t.switchRunning(toOwned: $0, param: reason.rawValue) }
            }
            if !switched {
                // Not ready: a runtime bug (runnext holds only suspended
                // contexts). Say so rather than lose the context.
                next._withUnsafeGuaranteedRef { n in
                    preconditionFailure("ConcRT: context \(n.id) in a runnable queue is not ready to run")
                }
            }
        } else {
            thread._withUnsafeGuaranteedRef { $0.yieldRunning(reason.rawValue) }
        }
        me._withUnsafeGuaranteedRef { VirtualProcessor.finishDirectSwitch(into: $0) }
    }

    /// A plain Event.wait() from the context whose user-context pointer is
    /// `me`: switch out with `.park`; the primary registers the context on
    /// the event after the switch (see Event). The context's block state is
    /// not touched, so a pending ``unblock()`` stays pending for the next
    /// ``block()``. Raw pointers only: no reference count is touched on
    /// this path (the running context and its thread are alive while it
    /// runs).
    @inline(never)
    static func park(_ me: UnsafeMutableRawPointer, on e: Event) {
        let ctx = Unmanaged<Context>.fromOpaque(me)
        ctx._withUnsafeGuaranteedRef { c in
            c.noteRuntimeEntry()
            c.parkEvent = Unmanaged.passUnretained(e)
            c.withVP { v in
                v.stats.blocks.ownerIncrement()
                v.trace(.block, c.id)
            }
            c.noteWait(.event, e)
        }
        suspend(ctx, .park)
        // Whoever committed the park cleared parkEvent; the setter that
        // woke us cleared parkedOnEvent (Waiter.wakeParked).
    }

    /// Records the thread the first time this context is dequeued.
    func adopt(_ t: UMSThread) {
        if threadOwner == nil {
            threadOwner = t
            threadRef = Unmanaged.passUnretained(t)
            // Known to snapshots from now on, with `thread` set (the
            // registry's lock publishes it; Reflection/Snapshot.swift).
            scheduler.contextRegistry.insert(self)
        }
    }

}

/// The context's body refers to it unowned: the thread's user context
/// keeps the Context alive for as long as the thread can run.
struct UnownedContext: @unchecked Sendable {
    unowned(unsafe) let context: Context
    init(_ c: Context) { context = c }
}

#if canImport(Glibc)
import Glibc
#endif
