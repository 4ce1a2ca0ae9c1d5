import CSupport
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Why ``UMSPrimary/execute(_:)`` returned: the Swift form of the UMS
/// scheduler entry point's reasons (UmsSchedulerThreadBlocked,
/// UmsSchedulerThreadYield), plus termination.
///
/// `execute` returns instead of re-entering a scheduler procedure on a fresh
/// stack, so no Swift frame is abandoned and nothing leaks.
public enum UMSExecuteResult: Equatable, Sendable {
    /// The thread entered a blocking call; it is on its kernel thread and
    /// will come back through its completion list. [UmsSchedulerThreadBlocked]
    case blocked(UMSBlockReason)
    /// The thread called ``UMSThread/yield(_:)`` with this parameter; it is
    /// ready to be executed again. [UmsSchedulerThreadYield]
    case yielded(Int)
    /// The thread's body returned; its stack is released.
    case terminated
}

/// Why a thread blocked. Windows also reports page faults and traps; here
/// only system calls made through ``UMS/blockingCall(_:)`` are seen.
public enum UMSBlockReason: Equatable, Sendable {
    case systemCall
}

/// A primary: a pthread in UMS scheduling mode. It stands for a CPU and
/// runs UMS threads on itself by switching user contexts.
/// [the thread that called EnterUmsSchedulingMode]
///
/// Only the pthread that entered scheduling mode may use its primary
/// (`execute` checks this).
public final class UMSPrimary {
    /// The CPU this primary is pinned to, or nil.
    public let cpu: Int?
    let nativeContext: OpaquePointer
    /// Published in the pthread's carrier slot while in scheduling mode.
    private(set) var carrier: Carrier!
    @exclusivity(unchecked) private var executing = false
    /// Successful ``execute(_:)`` calls on this primary (owner-only
    /// counter): one per call, not one per distinct thread, and not
    /// counting the threads a directed switch ran inside that call.
    @exclusivity(unchecked) public private(set) var executeCount = 0
    /// Old name of ``executeCount``, which it always counted.
    @available(*, deprecated, renamed: "executeCount")
    public var executionCount: Int { executeCount }
    /// Yields seen by this primary (owner-only counter): `execute` calls
    /// that returned ``UMSExecuteResult/yielded(_:)``. Directed switches
    /// (``UMSThread/switchRunning(to:param:)``) are not counted; a
    /// scheduler that uses them keeps its own count.
    @exclusivity(unchecked) public internal(set) var yieldCount = 0
    /// Lazy kernel entry's word (see `LazyKernelEntry/KernelCallWord.swift`):
    /// written by this primary's running thread and by the monitor.
    @usableFromInline let kernelCall = Atomic<UInt64>(0)
    /// The monitor's record, when this primary has a retake handler
    /// (blocking calls then run inline). Set once before any thread runs.
    @exclusivity(unchecked) var monitorEntry: UMSMonitor.Entry?
    /// The process's monitor, read on every inline call with no lazy-global
    /// check and no reference count (it is never deallocated).
    let monitor = Unmanaged.passUnretained(UMSMonitor.shared)

    /// True once the monitor retook this primary's CPU while one of its
    /// threads was in a blocking call. The scheduler must then leave
    /// scheduling mode on this pthread (return from the body) without
    /// touching state that the replacement primary now owns; ``execute(_:)``
    /// refuses to run anything more here. [no Windows equivalent]
    public var isRetaken: Bool {
        KernelCallWord.state(kernelCall.load(ordering: .acquiring)) == KernelCallWord.retaken
    }

    /// True when blocking calls on this primary run inline (it has a
    /// retake handler).
    public var hasLazyKernelEntry: Bool { monitorEntry != nil }

    /// Enters an inline blocking call from the word `old` (state
    /// `running`, read by the caller): returns the word to leave with.
    @inline(__always)
    func enterKernelCall(_ old: UInt64) -> UInt64 {
        // Only a call leaves `running`, and the monitor writes the word
        // only from `inKernel` (its retake CAS), so a retaken primary never
        // runs a thread again: the word is `running` here.
        assert(KernelCallWord.state(old) == KernelCallWord.running,
               "UMSPrimary.enterKernelCall: bad kernel-call state \(KernelCallWord.state(old)) (expected running)")
        let w = KernelCallWord.make(sequence: KernelCallWord.sequence(old) &+ 1, state: KernelCallWord.inKernel)
        // A store, not a CAS: nobody else writes a `running` word. Release:
        // the monitor's acquire load sees the call's sequence with it.
        // noteKernelEntry then orders it before its load of `sleeping`.
        kernelCall.store(w, ordering: .releasing)
        monitor._withUnsafeGuaranteedRef { $0.noteKernelEntry() }
        return w
    }

    // MARK: Unwrapped-block detection (read by the monitor)

    /// The pthread carrying this primary: its kernel tid and CPU clock, for
    /// the monitor's look at a thread that stopped switching.
    @exclusivity(unchecked) var tid: Int32 = 0
    @exclusivity(unchecked) var cpuClock = clockid_t(0)
    @exclusivity(unchecked) var hasCPUClock = false
    /// Bumped (owner-only, relaxed) at every switch into or out of a UMS
    /// thread on this primary, directed switches included: a value that
    /// stands still while `executing` means one thread has run for that long.
    let runSequence = Atomic<UInt64>(0)
    /// True while a UMS thread runs on this primary (relaxed, owner-written).
    let running = Atomic<Bool>(false)
    /// Unwrapped-block compensation: idle, active or ending (see
    /// `LazyKernelEntry/Compensation.swift` for the protocol).
    @usableFromInline let compensation = Atomic<UInt8>(0)
    /// The handler's token for the active compensation (see the protocol).
    @exclusivity(unchecked) var compensationToken: UMSCompensationToken?

    @inline(__always)
    func bumpRunSequence() {
        runSequence.store(runSequence.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
    }

    /// Leaves an inline blocking call: true when this primary still owns
    /// its CPU (nobody retook it); false when it was retaken.
    @inline(__always)
    func leaveKernelCall(_ w: UInt64) -> Bool {
        let back = KernelCallWord.make(sequence: KernelCallWord.sequence(w), state: KernelCallWord.running)
        // Acquire-release CAS against the monitor's CAS on the same value.
        return kernelCall.compareExchange(expected: w, desired: back, ordering: .acquiringAndReleasing).exchanged
    }

    init(cpu: Int?, nativeContext: OpaquePointer) {
        self.cpu = cpu
        self.nativeContext = nativeContext
        self.carrier = nil
        self.carrier = Carrier(primary: self)
    }

    /// The UMS thread this primary is running, or nil.
    var thread: UMSThread? {
        get { carrier.thread }
        set { carrier.thread = newValue }
    }

    /// The primary of the calling pthread, if it is one.
    public static var current: UMSPrimary? { Carrier.current?.primary }

    /// Runs `thread` on this primary until it blocks, yields or terminates,
    /// and says which. [ExecuteUmsThread]
    ///
    /// - Throws: ``UMSError/notAPrimary`` when called from another pthread;
    ///   ``UMSError/executeFromUMSThread`` from inside a UMS thread;
    ///   ``UMSError/threadRunning``, ``UMSError/threadTerminated``,
    ///   ``UMSError/threadBlockedInKernel`` or
    ///   ``UMSError/threadQueuedOnCompletionList`` when the thread is not
    ///   ready. A thrown error changes nothing.
    public func execute(_ thread: UMSThread) throws(UMSError) -> UMSExecuteResult {
        try executeReportingThread(thread).result
    }

    /// ``execute(_:)`` that also names the thread the result is about and
    /// its user context. [the UMS scheduler entry point's "which thread"
    /// argument]
    ///
    /// The result is about `thread` itself unless it made a directed switch
    /// (``UMSThread/switchRunning(to:param:)``); then it is about the last
    /// thread of that chain, the one that yielded, blocked or terminated
    /// back to this primary. Every earlier thread of the chain is still
    /// *running* until its switch-out is completed, which the chain itself
    /// must have done (see ``UMSThread/completeSwitchOut()``).
    ///
    /// Same callers, states and errors as ``execute(_:)``.
    ///
    /// - Returns: the result; the thread it is about, unretained (it is
    ///   alive: ready, in the kernel, or just terminated and still
    ///   referenced by whoever owns it); and that thread's user context as
    ///   it was when it last ran here.
    public func executeReportingThread(_ thread: UMSThread) throws(UMSError)
        -> (result: UMSExecuteResult, thread: Unmanaged<UMSThread>, userContext: UnsafeMutableRawPointer?) {
        // Pointer comparison with the pthread's carrier slot: no retain.
        guard csup_tls_get_carrier() == Unmanaged.passUnretained(carrier).toOpaque() else { throw .notAPrimary }
        guard !executing, carrier.runningThreadID == nil else { throw .executeFromUMSThread }
        guard !isRetaken else { throw .primaryRetaken }
        // ready -> running. Acquire: the thread's saved context (written by
        // whoever switched it out) is visible before we switch into it.
        let (ok, seen) = thread.state.compareExchange(expected: .ready, desired: .running, ordering: .acquiring)
        guard ok else {
            switch seen {
            case .running: throw .threadRunning
            case .terminated: throw .threadTerminated
            case .inKernel: throw .threadBlockedInKernel
            case .queued: throw .threadQueuedOnCompletionList
            case .ready:
                // A strong compare-and-exchange fails only on another value.
                preconditionFailure("execute: bad UMS thread state ready after a failed ready→running exchange")
            }
        }
        executing = true
        install(thread)
        bumpRunSequence()
        running.store(true, ordering: .relaxed)
        if monitorEntry != nil { monitor._withUnsafeGuaranteedRef { $0.noteRunning() } }
        csup_ctx_switch(nativeContext, thread.ctx)
        // The thread that switched back: `thread`, or the last one of a
        // chain of directed switches.
        let back = Unmanaged.passUnretained(carrier.thread.unsafelyUnwrapped)
        let userContext = csup_tls_get_user_context()
        self.thread = nil
        carrier.runningThreadID = nil
        csup_tls_set_user_context(nil)
        executing = false
        running.store(false, ordering: .relaxed)
        bumpRunSequence()
        let result: UMSExecuteResult = back._withUnsafeGuaranteedRef { t in
            switch t.exitReason {
            case .yielded(let p):
                yieldCount &+= 1
                // running -> ready. Release: the saved context is published.
                t.move(from: .running, to: .ready, "execute (yielded)")
                return .yielded(p)
            case .blocked:
                handOffToKernelThread(t)
                return .blocked(.systemCall)
            case .retaken:
                // Its call already returned: queue it as a kernel thread
                // would after the call. This primary is retaken for good.
                let list = t.completionList!
                list.inKernelCount.wrappingAdd(1, ordering: .relaxed)
                t.move(from: .running, to: .inKernel, "execute (retaken)")
                KernelThread.complete(t)
                return .blocked(.systemCall)
            case .terminated:
                t.finishTermination()
                return .terminated
            }
        }
        return (result, back, userContext)
    }

    /// Makes `thread` (already moved to running) the one this primary runs.
    private func install(_ thread: UMSThread) {
        executeCount &+= 1
        thread.primaryRef = Unmanaged.passUnretained(self)
        thread.primaryNative = nativeContext
        self.thread = thread
        carrier.runningThreadID = ObjectIdentifier(thread)
        csup_tls_set_user_context(thread.userContext)
    }

    /// The thread has switched out with a pending blocking call: give it to
    /// a kernel thread. If none can be created (pthread_create failed), run
    /// the call here and queue the thread as a KT would: slower, but no call
    /// is lost and the thread still comes back through its completion list.
    private func handOffToKernelThread(_ thread: UMSThread) {
        let list = thread.completionList!
        list.inKernelCount.wrappingAdd(1, ordering: .relaxed)
        thread.move(from: .running, to: .inKernel, "handOffToKernelThread")
        do {
            let kt = try list.kernelThreads.acquire()
            kt.start(thread)
        } catch {
            Counters.bump(Counters.inlineFallbacks)
            KernelThread.runCall(of: thread, carrier: carrier)
            KernelThread.complete(thread)
        }
    }
}

extension UMS {
    /// Makes the calling pthread a primary for the length of `body`.
    /// [EnterUmsSchedulingMode]
    ///
    /// The body is the scheduler: it dequeues threads from completion lists
    /// and calls ``UMSPrimary/execute(_:)`` on them. When it returns (or
    /// throws), the pthread leaves scheduling mode and its CPU affinity is
    /// restored.
    ///
    /// Errors: the runtime's own failures are thrown as ``UMSError`` before
    /// `body` runs; an error thrown by `body` is rethrown unchanged. So
    ///
    ///     do { try UMS.enterSchedulingMode { p in try schedule(p) } }
    ///     catch UMSError.alreadyInSchedulingMode { ... }
    ///     catch let e as MySchedulerError { ... }
    ///
    /// - Parameters:
    ///   - cpu: pins the primary to this CPU for the duration.
    ///   - body: the scheduler, run on this pthread with its ``UMSPrimary``;
    ///     do not let the primary escape (it refuses other pthreads).
    /// - Throws: ``UMSError/alreadyInSchedulingMode``,
    ///   ``UMSError/affinityFailed(cpu:errno:)``, ``UMSError/outOfMemory``,
    ///   ``UMSError/systemCallFailed(call:errno:)`` (sigaltstack), or
    ///   whatever `body` throws, as it was thrown.
    @discardableResult
    public static func enterSchedulingMode<R>(
        cpu: Int? = nil,
        _ body: (UMSPrimary) throws -> R
    ) throws -> R {
        try enterSchedulingMode(cpu: cpu, retakeHandler: nil, body)
    }

    /// `detectUnwrappedBlocking` (off by default) also has the monitor
    /// watch for a thread asleep in the kernel in code made with no
    /// wrapper, and ask `retakeHandler` to compensate for it (see
    /// `LazyKernelEntry/Compensation.swift`).
    ///
    /// ``enterSchedulingMode(cpu:_:)`` with lazy kernel entry: blocking
    /// calls on this primary's threads run inline, and the UMS monitor
    /// retakes the CPU from a call still in the kernel after
    /// `retakeAfter`, through `retakeHandler` (see ``UMSRetakeHandler``
    /// and ``UMSPrimary/isRetaken``). With a nil handler, every blocking
    /// call is handed to a kernel thread at once, as Windows UMS did.
    ///
    /// - Throws: as ``enterSchedulingMode(cpu:_:)``, and
    ///   ``UMSError/systemCallFailed(call:errno:)`` when the monitor thread
    ///   cannot be started.
    @discardableResult
    public static func enterSchedulingMode<R>(
        cpu: Int? = nil,
        retakeHandler: (any UMSRetakeHandler)?,
        retakeAfter: Duration = .microseconds(20),
        detectUnwrappedBlocking: Bool = false,
        _ body: (UMSPrimary) throws -> R
    ) throws -> R {
        if Carrier.current != nil { throw UMSError.alreadyInSchedulingMode }
        var savedMask: UnsafeMutableRawPointer?
        if let cpu {
            let err = csup_affinity_pin_self(Int32(cpu), &savedMask)
            if err != 0 { throw UMSError.affinityFailed(cpu: cpu, errno: err) }
        }
        defer { if savedMask != nil { csup_affinity_restore(savedMask) } }
        guard let native = csup_ctx_create_native() else { throw UMSError.outOfMemory }
        defer { csup_ctx_destroy(native) }
        // Stacks freed here stay in this pthread's magazine (no lock) while
        // it schedules; the shared cache gets them when it leaves.
        csup_stack_thread_cache_begin()
        defer { csup_stack_thread_cache_end() }
        _ = csup_overflow_install()
        let altErr = csup_overflow_thread_enter()
        if altErr != 0 { throw UMSError.systemCallFailed(call: "sigaltstack", errno: altErr) }
        defer { csup_overflow_thread_exit() }
        let primary = UMSPrimary(cpu: cpu, nativeContext: native)
        // Why this is sound: `primary` is kept alive until the slot is
        // cleared by the defer below.
        primary.tid = Int32(truncatingIfNeeded: csup_gettid())
        primary.hasCPUClock = pthread_getcpuclockid(pthread_self(), &primary.cpuClock) == 0
        if let retakeHandler {
            primary.monitorEntry = try UMSMonitor.shared.register(primary, handler: retakeHandler, threshold: retakeAfter,
                                                                 detectUnwrapped: detectUnwrappedBlocking)
        }
        defer {
            if let e = primary.monitorEntry {
                UMSMonitor.shared.unregister(e)
                // After the monitor let go of it: no begin can follow.
                primary.endCompensationIfActive()
            }
        }
        csup_tls_set_carrier(Unmanaged.passUnretained(primary.carrier).toOpaque())
        defer {
            csup_tls_set_carrier(nil)
            withExtendedLifetime(primary) {}
        }
        return try body(primary)
    }

    /// Runs ``UMSPrimary/execute(_:)`` on the calling pthread's primary.
    /// - Throws: ``UMSError/notAPrimary`` when the caller is not a primary.
    public static func execute(_ thread: UMSThread) throws(UMSError) -> UMSExecuteResult {
        guard let p = Carrier.current?.primary else { throw .notAPrimary }
        return try p.execute(thread)
    }
}
