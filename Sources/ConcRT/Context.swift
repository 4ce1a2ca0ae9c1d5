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
/// Block/unblock protocol (the `blockState` word):
///
///     running ──block()──▶ blocking ──primary commits──▶ blocked ──unblock──▶ running (queued)
///        │                    │
///        └─unblock─▶ unblockedEarly (next block() returns at once)
///                             └─unblock─▶ unblockedWhileBlocking (primary requeues it)
///
/// `block()` only announces (CAS running→blocking) and switches to the
/// primary; the primary commits (CAS blocking→blocked) after the switch has
/// saved the context. An unblock that lands before the commit turns the
/// state into `unblockedWhileBlocking` and the primary requeues the context
/// itself; one that lands after finds `blocked` and queues it. Either way
/// nobody resumes a context whose registers are still being saved, and no
/// wake-up is lost. Every transition is an acquire-release CAS.
public final class Context: @unchecked Sendable {
    // @unchecked Sendable: `blockState` is atomic; `vp`, `yieldReason` and
    // `exitRequested` are touched only by the context itself and by the
    // primary executing it, on the same pthread.

    /// Unique id within the process. [Context::GetId]
    public let id: Int
    /// The context's UMS thread. Set by whoever dequeues it from the
    /// completion list (a new thread is queued there before its creator
    /// gets it back), so every reader sees it after the list's hand-off.
    var thread: UMSThread!
    @usableFromInline unowned(unsafe) let scheduler: Scheduler
    /// The virtual processor running this context (set before each execute).
    @usableFromInline @exclusivity(unchecked) unowned(unsafe) var vp: VirtualProcessor!
    /// Schedule group of the task being run (0: none).
    @exclusivity(unchecked) var scheduleGroupID = 0
    let blockState = Atomic<Int>(BlockState.running)
    @exclusivity(unchecked) var yieldReason: YieldReason = .idle
    @exclusivity(unchecked) var exitRequested = false
    /// The waiter record this context reuses for plain `Event.wait()`s.
    private(set) lazy var plainWaiter = Waiter(for: self)
    /// Storage behind `layerLocal` (touched only by this context).
    @exclusivity(unchecked) var _layerLocal: AnyObject?
    /// Oversubscription nesting of this context.
    var oversubscription: [VirtualProcessor] = []

    enum BlockState {
        static let running = 0, blocking = 1, blocked = 2
        static let unblockedEarly = 3, unblockedWhileBlocking = 4
    }

    enum YieldReason: Int {
        /// Found no work: cache me, maybe sleep.
        case idle = 1
        /// Runnable contexts or completions are waiting: cache me, go on.
        case handoff = 2
        /// Context.yield(): requeue me behind the runnable ones.
        case yield = 3
        /// Context.block(): commit the block.
        case block = 4
    }

    private static let nextID = Atomic<Int>(1)

    init(scheduler: Scheduler, list: UMSCompletionList, policy: SchedulerPolicy) throws(UMSError) {
        id = Context.nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        self.scheduler = scheduler
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

    /// Calls `body` with the calling context without retaining it (nil
    /// outside a scheduler context). For hot paths.
    @inline(__always)
    static func withCurrent<R>(_ body: (Context?) -> R) -> R {
        guard let p = UMSThread.currentOnPrimaryUserContext else { return body(nil) }
        // Why this is sound: the context is running this code, so its +1
        // (held by its thread's user context) outlives the call.
        return Unmanaged<Context>.fromOpaque(p)._withUnsafeGuaranteedRef { body($0) }
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
    public var scheduleGroupIDValue: Int { scheduleGroupID }

    // MARK: Yield, block, unblock

    /// Gives the virtual processor to other runnable contexts; returns when
    /// this one runs again. Outside a context it yields the pthread.
    /// [Context::Yield]
    public static func yield() {
        guard let c = currentInternal else { sched_yield(); return }
        c.vp.stats.yields.bump()
        c.switchOut(.yield)
    }

    /// Blocks the calling context until ``unblock()``. An unblock that came
    /// first makes this return at once. [Context::Block]
    public static func block() throws(ConcRTError) {
        guard let c = currentInternal else { throw .notOnContext }
        c.blockInternal()
    }

    /// Makes a blocked context runnable. May come before the matching
    /// ``block()``. [Context::Unblock]
    ///
    /// Pair it only with ``block()``: a context waiting in an ``Event``, a
    /// lock or a join is blocked by the runtime, and unblocking it is
    /// unbalanced (as in ConcRT) and stops the program with a message.
    /// - Throws: ``ConcRTError/selfUnblock``, ``ConcRTError/unbalancedUnblock``.
    public func unblock() throws(ConcRTError) {
        if Context.currentInternal === self { throw .selfUnblock }
        try unblockChecked()
    }

    func blockInternal() {
        while true {
            let s = blockState.load(ordering: .acquiring)
            if s == BlockState.unblockedEarly {
                if blockState.compareExchange(expected: s, desired: BlockState.running,
                                              ordering: .acquiringAndReleasing).exchanged { return }
                continue
            }
            precondition(s == BlockState.running, "ConcRT: block() from a context in state \(s)")
            if blockState.compareExchange(expected: s, desired: BlockState.blocking,
                                          ordering: .acquiringAndReleasing).exchanged { break }
        }
        vp.stats.blocks.bump()
        switchOut(.block)
    }

    @inline(__always)
    func switchOut(_ reason: YieldReason) {
        yieldReason = reason
        // Guaranteed reference: the thread lives as long as this context.
        Unmanaged.passUnretained(thread)._withUnsafeGuaranteedRef { $0.yieldRunning(reason.rawValue) }
    }

    /// For runtime-internal wakers (latches, events): an unbalanced unblock
    /// there is a runtime bug, so it traps with the reason.
    /// `wakeIdle`: also wake an idle VP for it (a join continuation: it
    /// usually heads a large part of the remaining work).
    func unblockInternal(wakeIdle: Bool = false) {
        do {
            try unblockChecked(wakeIdle: wakeIdle)
        } catch {
            preconditionFailure("ConcRT: context \(id) was already unblocked when its event, lock or join released it: "
                                + "Context.unblock() was called on it while it waited in a runtime primitive (unbalanced unblock)")
        }
    }

    private func unblockChecked(wakeIdle: Bool = false) throws(ConcRTError) {
        while true {
            let s = blockState.load(ordering: .acquiring)
            switch s {
            case BlockState.running:
                if blockState.compareExchange(expected: s, desired: BlockState.unblockedEarly,
                                              ordering: .acquiringAndReleasing).exchanged { return }
            case BlockState.blocking:
                if blockState.compareExchange(expected: s, desired: BlockState.unblockedWhileBlocking,
                                              ordering: .acquiringAndReleasing).exchanged { return }
            case BlockState.blocked:
                if blockState.compareExchange(expected: s, desired: BlockState.running,
                                              ordering: .acquiringAndReleasing).exchanged {
                    scheduler.makeRunnable(self, wakeIdle: wakeIdle)
                    return
                }
            default:
                throw .unbalancedUnblock
            }
        }
    }

    /// Primary side, after the context switched out with `.block`.
    /// Returns true when it must be requeued (an unblock raced the block).
    func commitBlock() -> Bool {
        if blockState.compareExchange(expected: BlockState.blocking, desired: BlockState.blocked,
                                      ordering: .acquiringAndReleasing).exchanged { return false }
        blockState.store(BlockState.running, ordering: .releasing)
        return true
    }

    // MARK: Oversubscription

    /// Adds (true) or removes (false) a temporary virtual processor for the
    /// length of a long call that holds this one, such as a blocking call
    /// not made through ``Blocking``. Nests. [Context::Oversubscribe]
    public static func oversubscribe(_ begin: Bool) throws(ConcRTError) {
        guard let c = currentInternal else { throw .notOnContext }
        if begin {
            c.oversubscription.append(try c.scheduler.addTemporaryVirtualProcessor())
        } else {
            guard let vp = c.oversubscription.popLast() else { throw .unbalancedOversubscription }
            c.scheduler.retireTemporaryVirtualProcessor(vp)
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
