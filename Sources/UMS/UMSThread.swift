import CSupport
import Synchronization

/// A UMS thread: a user context (stack + saved registers) that primaries
/// execute, paired with a kernel thread for its blocking calls.
/// [CreateUmsThreadContext + CreateRemoteThreadEx]
///
/// Life cycle (the `state` word, an atomic ``State``):
///
///     queued ──dequeue──▶ ready ──execute──▶ running ─┬─ yield ──────▶ ready
///       ▲                   ▲  ──directed switch──▶   ├─ blockingCall ▶ inKernel ─┐
///       │                   └── completeSwitchOut ◀───┤                           │
///       └──────────────── KT queues it on return ◀────┼───────────────────────────┘
///                                                     └─ body returns ▶ terminated
///
/// Who moves the word, and with which ordering:
/// - ready → running: ``UMSPrimary/execute(_:)`` or a directed switch
///   (``switchRunning(to:param:)``), always a compare-and-exchange with
///   acquire ordering, so of two primaries racing for one ready thread
///   exactly one wins, and the winner sees the saved registers. The one
///   exception is a directed switch to a thread its caller owns alone
///   (``switchRunning(toOwned:param:)``: taken from a queue that hands
///   each thread to one taker, so nobody races): an acquire load that
///   checks ready, then a relaxed store (release builds).
/// - every other transition is made by the only party that owns the thread
///   in the source state (the dequeuer, the primary it switched back to, its
///   kernel thread, or the code that completes a directed switch): a
///   release store, checked against the expected source state in debug
///   builds (a failed check names the function and the state it found).
///
/// A new thread starts *queued* on its completion list, not running.
/// Termination is reported once, by ``UMSPrimary/execute(_:)`` returning
/// ``UMSExecuteResult/terminated``; a terminated thread is never queued on
/// the completion list (Windows queues it; reporting it twice would make
/// every scheduler handle it twice). Its stack goes back to the stack cache
/// right then.
///
/// Thread identity: code in a UMS thread runs on whichever primary executes
/// it, and a blocking call's closure runs on a kernel thread. `pthread_self`,
/// `Thread.current` and C thread-locals change across ``yield(_:)`` and
/// ``UMS/blockingCall(_:)``. Swift's exclusivity access set moves with the
/// thread; errno does not (read it inside the blocking call).
public final class UMSThread: @unchecked Sendable {
    // @unchecked Sendable: `state`, `userContextBits` are atomics; the other
    // mutable fields are handed between pthreads only through the state
    // transitions above, each a release/acquire pair (documented per field).

    /// States of the life cycle above. [UmsThreadIsSuspended /
    /// UmsThreadIsTerminated report a summary of it]
    public enum State: UInt8, Sendable, AtomicRepresentable, CustomStringConvertible {
        /// On its completion list: dequeue it before executing it.
        case queued = 0
        /// Dequeued (or yielded, or switched out) and not running: a
        /// primary may execute it, or a running thread switch to it.
        case ready
        /// Running on a primary, or switched out by a directed switch that
        /// is not completed yet.
        case running
        /// Inside a blocking call on a kernel thread.
        case inKernel
        /// Its body returned. Final.
        case terminated

        public var description: String {
            switch self {
            case .queued: return "queued"
            case .ready: return "ready"
            case .running: return "running"
            case .inKernel: return "inKernel"
            case .terminated: return "terminated"
            }
        }
    }

    @usableFromInline let state: Atomic<State>
    let ctx: OpaquePointer          // csup_ctx*, freed in deinit
    private var stack: csup_stack   // returned to the cache at termination
    private var stackReleased = false
    let node: OpaquePointer         // csup_clist_node*, freed in deinit
    /// Strong while the thread can still be queued; nil once terminated.
    private(set) var completionList: UMSCompletionList?
    private var body: (() -> Void)?

    /// Written by the UT before it switches to its primary; read by that
    /// primary after the switch returns (same pthread: program order).
    @exclusivity(unchecked) var exitReason: ExitReason = .terminated
    /// When true, ``UMS/blockingCall(_:)`` hands this thread's calls to a
    /// kernel thread even on a primary with lazy kernel entry (the thread
    /// must stay on its pthread: a scheduler sets it around code that has
    /// pinned per-pthread state). Touched only by the thread itself.
    @exclusivity(unchecked) public var prefersHandOff = false
    /// The primary executing this thread (written by that primary before the
    /// switch in; read by the thread on the same pthread).
    /// (Unmanaged: copied on every directed switch without reference counting.)
    @usableFromInline @exclusivity(unchecked) var primaryRef: Unmanaged<UMSPrimary>?
    var primary: UMSPrimary? { primaryRef?.takeUnretainedValue() }
    /// That primary's native context (set with `primary`).
    @exclusivity(unchecked) var primaryNative: OpaquePointer?
    /// The blocking call's closure: written by the UT, read and cleared by
    /// the kernel thread; the hand-off is ordered by the KT's futex word.
    @exclusivity(unchecked) var pendingCall: (() -> Void)?

    private let userContextBits = Atomic<UInt>(0)

    /// Why the thread last switched to its primary. `retaken`: its inline
    /// blocking call returned after the monitor retook the primary (see
    /// `LazyKernelEntry/KernelCallWord.swift`), so it goes through its
    /// completion list.
    enum ExitReason { case yielded(Int), blocked, retaken, terminated }

    /// Creates a thread that will run `body`, queued on `completionList`.
    ///
    /// - Parameters:
    ///   - completionList: where the thread starts queued, and where it is
    ///     queued again each time one of its blocking calls returns.
    ///   - stackSize: usable bytes, at least ``UMS/minimumStackSize``;
    ///     committed lazily, cached for reuse after termination.
    ///   - backend: context-switch mechanism (default ``UMS/defaultBackend``).
    ///   - name: shown in diagnostics (for example a stack-overflow report).
    ///   - userContext: initial ``userContext``, visible to whoever dequeues
    ///     the thread. [UMS_CREATE_THREAD_ATTRIBUTES' UmsContext]
    ///   - body: the thread's code, run on its own stack by whichever
    ///     primaries execute it; the thread terminates when it returns.
    /// - Throws: ``UMSError/invalidStackSize(requested:minimum:)``,
    ///   ``UMSError/stackAllocationFailed(errno:)``, ``UMSError/outOfMemory``;
    ///   nothing is leaked on failure.
    public init(completionList: UMSCompletionList,
                stackSize: Int = UMS.defaultStackSize,
                backend: UMSContextBackend = UMS.defaultBackend,
                name: String? = nil,
                userContext: UnsafeMutableRawPointer? = nil,
                body: @escaping @Sendable () -> Void) throws(UMSError) {
        guard stackSize >= UMS.minimumStackSize, stackSize <= 1 << 40 else {
            throw .invalidStackSize(requested: stackSize, minimum: UMS.minimumStackSize)
        }
        var st = csup_stack()
        let err = csup_stack_alloc(stackSize, &st)
        if err != 0 {
            if err == EINVAL { throw .invalidStackSize(requested: stackSize, minimum: UMS.minimumStackSize) }
            throw .stackAllocationFailed(errno: err)
        }
        guard let n = csup_clist_node_create(nil) else {
            csup_stack_free(&st)
            throw .outOfMemory
        }
        var c: OpaquePointer?
        let cerr = csup_ctx_create(&c, backend.csup, &st, umsThreadEntry, nil)
        guard cerr == 0, let c else {
            csup_clist_node_destroy(n)
            csup_stack_free(&st)
            throw cerr == ENOMEM ? .outOfMemory : .systemCallFailed(call: "makecontext", errno: cerr)
        }
        self.ctx = c
        self.stack = st
        self.node = n
        self.state = Atomic(State.queued)
        self.completionList = completionList
        self.body = body
        self.backend = backend
        self.stackSize = st.size
        // Why this is sound: the entry argument and the node item are this
        // object, unretained; the object outlives both uses (the list
        // retains it while queued, a primary while running).
        let me = Unmanaged.passUnretained(self).toOpaque()
        csup_ctx_rearm(c, umsThreadEntry, me)
        csup_clist_node_set_item(n, me)
        if let name { name.withCString { csup_ctx_set_name(c, $0) } }
        // Set before the thread is queued: a dequeuer may look at it at once.
        userContextBits.store(UInt(bitPattern: userContext), ordering: .relaxed)
        Counters.bump(Counters.threadsCreated)
        completionList.enqueue(self)
    }

    deinit {
        releaseStack()
        csup_ctx_destroy(ctx)
        csup_clist_node_destroy(node)
    }

    /// The context-switch backend this thread uses.
    public let backend: UMSContextBackend
    /// Usable stack bytes (rounded up to pages).
    public let stackSize: Int

    /// The UMS thread running on the calling pthread if that pthread is a
    /// primary (nil on a kernel thread inside a blocking call, and outside
    /// UMS threads). Code that uses per-primary state must use this, not
    /// ``current``.
    public static var currentOnPrimary: UMSThread? {
        guard let raw = csup_tls_get_carrier() else { return nil }
        // Why this is sound: see Carrier.current; the guaranteed reference
        // avoids a retain/release pair on this hot path.
        return Unmanaged<Carrier>.fromOpaque(raw)._withUnsafeGuaranteedRef { c in
            c.primary != nil ? c.thread : nil
        }
    }

    /// The ``userContext`` of ``currentOnPrimary`` as it was when the
    /// primary executed the thread, read without touching any reference
    /// count (the hot path of schedulers built on UMS; set the user context
    /// before the thread is executed, for example at creation).
    @inlinable
    public static var currentOnPrimaryUserContext: UnsafeMutableRawPointer? {
        // An out-of-line C thread-local read: the slot is fresh even when
        // the caller has migrated to another pthread since its last read.
        csup_tls_get_user_context()
    }

    /// The current state (a snapshot).
    public var currentState: State { state.load(ordering: .acquiring) }
    /// The thread's context record (`csup_ctx *`), for backtraces of a
    /// suspended thread (ConcRT's snapshots). Alive as long as this object.
    package var contextRecord: OpaquePointer { ctx }

    /// True when the thread is not running and not terminated: queued,
    /// ready, or inside a blocking call. [UmsThreadIsSuspended]
    public var isSuspended: Bool {
        switch currentState {
        case .queued, .ready, .inKernel: return true
        case .running, .terminated: return false
        }
    }

    /// True once the body has returned. [UmsThreadIsTerminated]
    public var isTerminated: Bool { currentState == .terminated }

    /// A pointer-sized value for the scheduler's own use.
    /// [UmsThreadUserContext]
    public var userContext: UnsafeMutableRawPointer? {
        get { UnsafeMutableRawPointer(bitPattern: userContextBits.load(ordering: .acquiring)) }
        set { userContextBits.store(UInt(bitPattern: newValue), ordering: .releasing) }
    }

    /// The UMS thread running this code, or nil outside one. Inside a
    /// blocking call's closure (on the kernel thread) it is still the
    /// calling UMS thread. [GetCurrentUmsThread]
    public static var current: UMSThread? { Carrier.current?.thread }

    /// Gives the primary back to its scheduler, which sees
    /// ``UMSExecuteResult/yielded(_:)`` with `param`. Returns when some
    /// primary executes this thread again. [UmsThreadYield]
    ///
    /// - Throws: ``UMSError/notOnUMSThread`` outside a UMS thread running on
    ///   a primary (including inside a blocking call's closure).
    public static func yield(_ param: Int = 0) throws(UMSError) {
        guard let c = Carrier.current, let p = c.primary, let t = c.thread,
              KernelCallWord.state(p.kernelCall.load(ordering: .relaxed)) != KernelCallWord.inKernel
        else { throw .notOnUMSThread }
        t.noteRuntimeEntry()
        t.exitReason = .yielded(param)
        t.switchToPrimary(t.primary!)
    }

    /// ``yield(_:)`` for a caller that already knows it is running on a
    /// primary as this thread (a scheduler built on UMS): no lookup of the
    /// current thread. Traps if this thread is not the one running on the
    /// calling primary.
    public func yieldRunning(_ param: Int) {
        // Raw pointers only: this is the hot path of a scheduler's every
        // cooperative wait, and retain/release pairs held across the switch
        // are most of its cost.
        guard let native = primaryNative, let raw = csup_tls_get_carrier(),
              Unmanaged<Carrier>.fromOpaque(raw)._withUnsafeGuaranteedRef({ $0.runningThreadID == ObjectIdentifier(self) })
        else {
            preconditionFailure("UMS: yieldRunning called on a thread that is not the one running here")
        }
        // As in switchRunning: a running thread's primary is never retaken.
        assert(!primaryRef.unsafelyUnwrapped._withUnsafeGuaranteedRef { $0.isRetaken },
               "yieldRunning: the running thread's primary was retaken")
        exitReason = .yielded(param)
        csup_ctx_switch(ctx, native)
    }

    // MARK: Directed switch

    /// Directed switch: the running thread (`self`) gives its primary
    /// straight to the ready thread `next`, without going through the
    /// primary's scheduler code in between (one user-mode switch instead of
    /// two). `param` is recorded as if `self` had called ``yield(_:)``.
    /// [UMS has no public equivalent; Windows' scheduler entry point is
    /// always re-entered. Comparable to SwitchToFiber between two threads
    /// that belong to one primary]
    ///
    /// Who may call it: `self`'s own code, while `self` is the thread running
    /// on the calling primary (not inside a blocking call's closure, which
    /// runs on a kernel thread). Anything else is a programming error and
    /// traps, naming the misuse.
    ///
    /// States:
    /// - `next` must be *ready* (dequeued, yielded, or switched out and
    ///   completed). It moves to *running* here by the same acquire
    ///   compare-and-exchange as ``UMSPrimary/execute(_:)``, so a racing
    ///   `execute` or directed switch to the same thread is safe: one wins.
    ///   When `next` is not ready (queued, running, in the kernel,
    ///   terminated, or `self`), this returns false and changes nothing.
    /// - `self` stays *running* after the switch, so no primary can execute
    ///   it while its registers are being saved. It becomes ready only when
    ///   ``completeSwitchOut()`` is called on it.
    ///
    /// What the caller must arrange: the first code that runs on this
    /// primary after the switch (normally `next`, right where it resumes:
    /// after its own `yield`, its own directed switch, its blocking call, or
    /// at the start of its body) calls ``completeSwitchOut()`` on `self`,
    /// and only then may publish `self` to other primaries. Until then `self`
    /// is refused by `execute` (``UMSError/threadRunning``) and by directed
    /// switches (false). A scheduler built on UMS keeps "the thread to
    /// complete" per primary and completes it at every resume point.
    ///
    /// The primary's pending ``UMSPrimary/execute(_:)`` returns when the last
    /// thread of a chain of directed switches yields, blocks or terminates;
    /// ``UMSPrimary/executeReportingThread(_:)`` says which thread that was.
    ///
    /// - Returns: false, at once, when `next` is not ready; true when some
    ///   primary resumes `self` again (by `execute` or a directed switch).
    public func switchRunning(to next: UMSThread, param: Int) -> Bool {
        switchRunning(to: next, param: param, owned: false)
    }

    /// A directed switch to a thread the caller owns: as
    /// ``switchRunning(to:param:)``, but `next` was handed to the caller
    /// alone (taken from a queue that gives each thread to one taker), so
    /// no ``UMSPrimary/execute(_:)`` or other directed switch can race for
    /// it. Then ready → running needs no atomic read-modify-write: an
    /// acquire load checks `ready` (pairing with the release that made it
    /// ready, as the compare-and-exchange's acquire does) and a relaxed
    /// store moves it to running (nobody else writes the word meanwhile).
    /// Debug builds keep the compare-and-exchange, so a broken promise
    /// shows up there as a lost race.
    ///
    /// - Returns: false, at once, when `next` is not ready.
    public func switchRunning(toOwned next: UMSThread, param: Int) -> Bool {
        switchRunning(to: next, param: param, owned: true)
    }

    @inline(__always)
    private func switchRunning(to next: UMSThread, param: Int, owned: Bool) -> Bool {
        guard let raw = csup_tls_get_carrier() else {
            preconditionFailure("switchRunning: called outside a primary (no UMS thread is running on this pthread)")
        }
        // Why this is sound: the carrier is kept alive by its primary (or
        // kernel thread) for as long as the slot names it. Only a primary's
        // carrier names a running thread, so this also checks that we are
        // on a primary and not inside a blocking call.
        let carrier = Unmanaged<Carrier>.fromOpaque(raw)
        precondition(carrier._withUnsafeGuaranteedRef { $0.runningThreadID == ObjectIdentifier(self) },
                     "switchRunning: called on a UMS thread that is not the one running on this primary")
        assertState(.running, "switchRunning")
        // Only a wrapped call is retaken, and it moves its thread before the
        // call returns (unwrapped blocks are compensated for), so a running
        // thread's primary is never retaken.
        assert(!primaryRef.unsafelyUnwrapped._withUnsafeGuaranteedRef { $0.isRetaken },
               "switchRunning: the running thread's primary was retaken")
        // ready -> running, exactly as execute does (or, for an owned
        // `next` in release builds, a checked load and a store: no one
        // races for it). Acquire: pairs with the release that made `next`
        // ready, so its saved registers are visible before we switch into
        // them.
        #if DEBUG
        let plain = false   // debug builds: always the exchange (see switchRunning(toOwned:))
        #else
        let plain = owned
        #endif
        if plain {
            guard next.state.load(ordering: .acquiring) == .ready else { return false }
            next.state.store(.running, ordering: .relaxed)
        } else {
            guard next.state.compareExchange(expected: .ready, desired: .running, ordering: .acquiring).exchanged else {
                return false
            }
        }
        exitReason = .yielded(param)
        next.primaryRef = primaryRef
        next.primaryNative = primaryNative
        let nextContext = next.userContext
        carrier._withUnsafeGuaranteedRef { c in
            c.thread = next
            c.runningThreadID = ObjectIdentifier(next)
        }
        csup_tls_set_user_context(nextContext)
        primaryRef.unsafelyUnwrapped._withUnsafeGuaranteedRef { $0.bumpRunSequence() }
        csup_ctx_switch(ctx, next.ctx)
        return true
    }

    /// Completes a directed switch away from this thread (see
    /// ``switchRunning(to:param:)``): running → ready, with release
    /// ordering, which publishes the registers the switch saved.
    ///
    /// Call it once per directed switch, from the code that runs on the
    /// same primary after that switch (normally the thread switched to),
    /// never from this thread itself and never before the switch. In debug
    /// builds a thread that is not running traps, naming its state.
    @inlinable
    public func completeSwitchOut() {
        assert(state.load(ordering: .relaxed) == .running,
               "completeSwitchOut: bad UMS thread state \(state.load(ordering: .relaxed)) (expected running)")
        state.store(.ready, ordering: .releasing)
    }

    /// Debug-build check of a state invariant: `function: bad UMS thread
    /// state X (expected Y)`. The load is relaxed: in every caller the state
    /// cannot change under it (the caller owns the thread in that state).
    @inline(__always)
    func assertState(_ expected: State, _ function: StaticString) {
        assert(state.load(ordering: .relaxed) == expected,
               "\(function): bad UMS thread state \(state.load(ordering: .relaxed)) (expected \(expected))")
    }

    /// An owner's transition: checks the source state (debug builds), then
    /// stores the new one with release ordering (publishes everything the
    /// owner wrote, such as saved registers, to the next owner).
    @inline(__always)
    func move(from old: State, to new: State, _ function: StaticString) {
        assertState(old, function)
        state.store(new, ordering: .releasing)
    }

    /// The primary this thread runs on was retaken (its pthread no longer
    /// carries the CPU): switch out with the `retaken` reason, so the
    /// primary's `execute` queues this thread on its completion list.
    /// Returns when some primary runs it again.
    func bounceToCompletionList(_ p: UMSPrimary) {
        exitReason = .retaken
        switchToPrimary(p)
    }

    /// At an entry into the runtime (a switch-out, a fork, a task
    /// boundary): if the monitor is compensating for an unwrapped block of
    /// this thread (`LazyKernelEntry/Compensation.swift`), the thread runs
    /// again, so end it. One relaxed load when nothing happened.
    @inlinable @inline(__always)
    public func noteRuntimeEntry() {
        guard let p = primaryRef else { return }
        if p._withUnsafeGuaranteedRef({ $0.compensation.load(ordering: .relaxed) == 1 }) {
            endCompensation(p)
        }
    }

    @usableFromInline @inline(never)
    func endCompensation(_ p: Unmanaged<UMSPrimary>) {
        if p._withUnsafeGuaranteedRef({ $0.endCompensationIfActive() }) {
            Counters.bump(Counters.compensationsEndedByThread)
            UMSRetakeObserver.notify(.unwrappedBlocking, userContext)
        }
    }

    /// Saves this thread's registers and resumes the primary's own context
    /// (the scheduler code waiting in `execute`).
    /// Returns when a primary executes the thread again.
    @inline(__always)
    func switchToPrimary(_ p: UMSPrimary) {
        csup_ctx_switch(ctx, p.nativeContext)
    }

    func markDequeued() {
        // queued -> ready, by the dequeuer (the only owner of a thread just
        // taken off the list). The enqueuer's writes are visible here through
        // the queue (its xchg is a full barrier, the splice reads through
        // it); the release passes them on to whichever primary executes it.
        move(from: .queued, to: .ready, "markDequeued")
    }

    /// Runs the body on this thread's stack, then records termination.
    /// Returns the contexts for the final switch. Out of line so that every
    /// Swift value it touched is released before that switch (the frame
    /// that called it is abandoned).
    @inline(never)
    static func runBodyAndFinish(_ raw: UnsafeMutableRawPointer) -> (OpaquePointer, OpaquePointer) {
        // Why this is sound: the primary executing us holds a strong
        // reference for the whole execute() call.
        let t = Unmanaged<UMSThread>.fromOpaque(raw).takeUnretainedValue()
        if let b = t.body {
            t.body = nil
            b()
        }
        t.exitReason = .terminated
        let p = t.primary!   // re-read: the body may have migrated
        return (t.ctx, p.nativeContext)
    }

    /// Called by the primary after the final switch away from this thread.
    func finishTermination() {
        releaseStack()
        completionList = nil
        move(from: .running, to: .terminated, "finishTermination")
        Counters.bump(Counters.threadsTerminated)
    }

    private func releaseStack() {
        if !stackReleased {
            stackReleased = true
            csup_stack_free(&stack)
        }
    }
}

/// Entry point of every UMS thread's context (C calling convention).
private let umsThreadEntry: @convention(c) (UnsafeMutableRawPointer?) -> Void = { raw in
    let (from, to) = UMSThread.runBodyAndFinish(raw!)
    csup_ctx_switch_final(from, to)
    fatalError("umsThreadEntry: a terminated UMS thread was resumed")
}

#if canImport(Glibc)
import Glibc
#endif
