import CSupport
import Synchronization

/// Namespace for the User-Mode Scheduling core.
///
/// Windows 7 UMS, rebuilt from pthreads and user-mode context switches:
///
/// | Windows                         | here                                   |
/// |---------------------------------|----------------------------------------|
/// | `CreateUmsCompletionList`       | ``UMSCompletionList/init(reservingKernelThreads:)`` |
/// | `DequeueUmsCompletionListItems` | ``UMSCompletionList/dequeue(timeout:)`` |
/// | `GetUmsCompletionListEvent`     | ``UMSCompletionList/eventDescriptor()`` |
/// | `DeleteUmsCompletionList`       | ``UMSCompletionList/delete()``          |
/// | `CreateUmsThreadContext` + `CreateRemoteThreadEx` | ``UMSThread/init(completionList:stackSize:backend:name:userContext:body:)`` |
/// | `EnterUmsSchedulingMode`        | ``UMS/enterSchedulingMode(cpu:_:)``     |
/// | `ExecuteUmsThread`              | ``UMSPrimary/execute(_:)``              |
/// | `UmsThreadYield`                | ``UMSThread/yield(_:)``                 |
/// | (none: a yield that names the next thread, like `SwitchToFiber`) | ``UMSThread/switchRunning(to:param:)``, ``UMSThread/completeSwitchOut()`` |
/// | `GetCurrentUmsThread`           | ``UMSThread/current``                   |
/// | `Query/SetUmsThreadInformation` | ``UMSThread/isSuspended``, ``UMSThread/isTerminated``, ``UMSThread/userContext`` |
/// | scheduler entry point reasons   | ``UMSExecuteResult``                    |
/// | a UT entering the kernel        | ``UMS/blockingCall(_:)``                |
/// | `GetLastError` + `FormatMessage` | ``UMSError``, ``UMS/describe(errno:)`` |
/// | a timeout re-checked against the tick count | ``UMSDeadline``, `Duration.saturatingNanoseconds` |
public enum UMS {
    /// The context-switch mechanism used for new threads when none is given.
    /// Settable at run time; existing threads keep theirs.
    public static var defaultBackend: UMSContextBackend {
        get { defaultBackendStorage.load(ordering: .relaxed) }
        set { defaultBackendStorage.store(newValue, ordering: .relaxed) }
    }
    /// Relaxed: an independent setting, read once per thread creation.
    private static let defaultBackendStorage = Atomic<UMSContextBackend>(.assembly)

    /// Default usable stack size for a UMS thread: 256 KiB, committed lazily.
    public static let defaultStackSize = 256 * 1024

    /// Smallest accepted stack size.
    public static let minimumStackSize = Int(CSUP_STACK_MIN)

    /// Test hook: true while the UMS monitor sleeps because no primary runs
    /// a thread or is in a call.
    public static var _monitorIsAsleep: Bool { UMSMonitor.shared.isAsleep }

    /// True when the monitor's sleep has no timeout (membarrier(2) is
    /// available); false where it falls back to seq_cst fences and a 1 s
    /// timeout.
    public static var monitorSleepsUntimed: Bool { UMSMonitor.shared.asymmetricAtStart }

    /// Process-wide counters, for tests and diagnostics.
    public static var statistics: UMSStatistics {
        UMSStatistics(
            threadsCreated: Counters.threadsCreated.load(ordering: .relaxed),
            threadsTerminated: Counters.threadsTerminated.load(ordering: .relaxed),
            blockingCalls: Counters.blockingCalls.load(ordering: .relaxed),
            kernelThreadsCreated: Counters.kernelThreadsCreated.load(ordering: .relaxed),
            kernelThreadsLive: Counters.kernelThreadsLive.load(ordering: .relaxed),
            inlineFallbacks: Counters.inlineFallbacks.load(ordering: .relaxed),
            retakes: UMSMonitor.shared.retakes.load(ordering: .relaxed),
            retakenCalls: Counters.retakenCalls.load(ordering: .relaxed),
            unwrappedCompensations: UMSMonitor.shared.unwrappedCompensations.load(ordering: .relaxed),
            compensationsEndedByThread: Counters.compensationsEndedByThread.load(ordering: .relaxed),
            wrappedCallCompensations: UMSMonitor.shared.pinnedCompensations.load(ordering: .relaxed),
            retakesWithoutReplacement: UMSMonitor.shared.declinedNoReplacement.load(ordering: .relaxed),
            computingCallsLeftAlone: UMSMonitor.shared.computingCalls.load(ordering: .relaxed),
            monitorTicks: UMSMonitor.shared.ticks.load(ordering: .relaxed),
            compensationsEndedComputing: UMSMonitor.shared.computingCompensationsEnded.load(ordering: .relaxed),
            stacksMapped: Int(csup_stack_mapped_count()),
            stacksCached: Int(csup_stack_cached_count())
        )
    }

    /// Unmaps every cached stack (they are otherwise kept for reuse).
    public static func trimStackCache() { csup_stack_cache_trim() }
}

/// How a context switch is done.
public enum UMSContextBackend: Int, Sendable, CaseIterable, AtomicRepresentable {
    /// Hand-written register switch (x86_64 and aarch64): callee-saved
    /// registers, stack pointer and FP control words; no system call.
    case assembly = 0
    /// `makecontext` / `swapcontext`: the portable reference. Each switch
    /// makes an `rt_sigprocmask` system call.
    case ucontext = 1

    var csup: csup_backend {
        switch self {
        case .assembly: return CSUP_BACKEND_ASM
        case .ucontext: return CSUP_BACKEND_UCONTEXT
        }
    }
}

/// Snapshot of the process-wide UMS counters.
public struct UMSStatistics: Sendable, Equatable {
    public var threadsCreated: Int
    public var threadsTerminated: Int
    public var blockingCalls: Int
    public var kernelThreadsCreated: Int
    /// Kernel threads alive now (idle in a pool or running a call).
    public var kernelThreadsLive: Int
    /// Blocking calls run on the primary because no kernel thread could be
    /// created (pthread_create failed); the call still completed.
    public var inlineFallbacks: Int
    /// Primaries the monitor retook from a blocking call (lazy kernel entry).
    public var retakes: Int
    /// Inline blocking calls that returned after a retake and went through
    /// their completion list.
    public var retakenCalls: Int
    /// Compensations started for threads found asleep in the kernel in
    /// unwrapped code (`detectUnwrappedBlocking`; see
    /// `LazyKernelEntry/Compensation.swift`).
    public var unwrappedCompensations: Int
    /// Of those, the ones the thread itself ended at its next runtime
    /// entry (the rest were ended by the monitor, seeing the thread
    /// compute or switch, or as the primary left).
    public var compensationsEndedByThread: Int
    /// Compensations for wrapped calls that blocked on a primary that
    /// declined the retake while other work waited (ConcRT: a context in
    /// `Context.withPinnedThread`).
    public var wrappedCallCompensations: Int
    /// Retakes given up because the handler had no replacement pthread
    /// (the call was waited for instead).
    public var retakesWithoutReplacement: Int
    /// Looks at wrapped calls past the retake threshold whose thread kept
    /// its CPU busy (computing, not blocked): left alone, looked at again.
    public var computingCallsLeftAlone: Int
    /// Monitor ticks so far (its CPU cost while calls are in the kernel).
    public var monitorTicks: Int
    /// Compensations the monitor ended because the thread was computing
    /// again (its call had returned) without entering the runtime.
    public var compensationsEndedComputing: Int
    public var stacksMapped: Int
    public var stacksCached: Int
}

/// Relaxed counters: each is an independent statistic, read only as a
/// snapshot, so no ordering with other memory is needed.
enum Counters {
    static let threadsCreated = Atomic<Int>(0)
    static let threadsTerminated = Atomic<Int>(0)
    static let blockingCalls = Atomic<Int>(0)
    static let kernelThreadsCreated = Atomic<Int>(0)
    static let kernelThreadsLive = Atomic<Int>(0)
    static let inlineFallbacks = Atomic<Int>(0)
    /// Inline blocking calls that returned after their primary was retaken.
    static let retakenCalls = Atomic<Int>(0)
    /// Compensations ended by their thread at a runtime entry.
    static let compensationsEndedByThread = Atomic<Int>(0)
    /// Test hook: the next N kernel-thread creations fail with EAGAIN.
    static let injectedKernelThreadFailures = Atomic<Int>(0)
    /// Test hook: kernel threads sleep this long after queuing a thread
    /// whose call returned, still holding its completion list.
    static let injectedCompletionDelayNanoseconds = Atomic<Int>(0)
    /// Kernel threads that found themselves in their own pool's trim (the
    /// list's last reference was dropped on them) and were detached.
    static let kernelThreadsSelfDetached = Atomic<Int>(0)

    @inline(__always) static func bump(_ c: borrowing Atomic<Int>) {
        c.wrappingAdd(1, ordering: .relaxed)
    }
}

extension UMS {
    /// Test hook: makes the next `count` kernel-thread creations fail as if
    /// pthread_create returned EAGAIN.
    public static func _injectKernelThreadCreationFailures(_ count: Int) {
        Counters.injectedKernelThreadFailures.store(count, ordering: .relaxed)
    }
    /// Test hook: every kernel thread sleeps `nanoseconds` after queuing a
    /// thread whose call returned, before it lets go of the thread's
    /// completion list (0: off). Widens the window in which that kernel
    /// thread holds the list's last reference.
    public static func _delayKernelThreadCompletions(nanoseconds: Int) {
        Counters.injectedCompletionDelayNanoseconds.store(nanoseconds, ordering: .relaxed)
    }
    /// Test hook: how many kernel threads were detached because their
    /// completion list was released last on them (they cannot join
    /// themselves; see KernelThreadPool.trim).
    public static var _kernelThreadsSelfDetached: Int {
        Counters.kernelThreadsSelfDetached.load(ordering: .relaxed)
    }
    /// Test hook: makes the next `count` stack allocations fail with ENOMEM
    /// (a cached stack is not handed out instead).
    public static func _injectStackAllocationFailures(_ count: Int) {
        csup_stack_inject_failures(Int32(count))
    }
}
