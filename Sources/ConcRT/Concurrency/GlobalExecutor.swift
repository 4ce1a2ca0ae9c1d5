import CSupport
import Synchronization
import UMS
#if canImport(Glibc)
import Glibc
#endif

/// Installing a scheduler as Swift's global concurrent executor.
/// [no ConcRT name; Swift: the global concurrent executor, `Task {}`,
/// `Task.detached`, nonisolated async functions, default actors]
///
/// **Choice: the runtime's enqueue hooks, not `ExecutorFactory`.**
/// Swift 6.3 has two ways to replace the global executor:
/// - `ExecutorFactory` (the custom main/global executor proposal) is SPI
///   (`@_spi(ExperimentalCustomExecutors)`), is chosen by the runtime once
///   at start-up from the program's main type, and replaces the main
///   executor's factory too. A library cannot opt in at run time, and the
///   SPI may change in any release.
/// - `swift_task_enqueueGlobal_hook` (and the `WithDelay` /
///   `WithDeadline` hooks): exported variables the runtime consults on
///   every global enqueue, each handed the original implementation. They
///   have been stable since Swift 5.5, swift-nio's NIOPosix installs them
///   the same way (`NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor`), and they
///   can be set by a library at run time, leaving the main executor alone.
/// So this installs the hooks. The main actor stays on the main thread
/// (the main-executor hooks are not touched).
///
/// Safety rules, enforced: one scheduler, once per process (a second call
/// throws); install before creating tasks if every job should run here
/// (jobs enqueued earlier stay on the default executor; mixing is safe).
/// The installed scheduler is retained for the life of the process and
/// must not be shut down: if it is, later global jobs go back to the
/// default executor (the original implementation), so nothing is lost.
extension Scheduler {
    private static let installed = Atomic<UInt>(0)

    /// Makes this scheduler run every job of Swift's global concurrent
    /// executor (and `Task.sleep` timers) from now on. Opt-in, once per
    /// process. [swift_task_enqueueGlobal_hook]
    ///
    /// Jobs of the global executor run on contexts like tasks, so
    /// ``Blocking`` calls in async code give their virtual processor back;
    /// task-locals and thread identity behave as described for
    /// ``Scheduler`` as a `TaskExecutor`.
    /// - Throws: ``ConcRTError/globalExecutorUnavailable(_:)`` when a
    ///   scheduler is already installed or the runtime lacks the hooks.
    public func installAsGlobalExecutor() throws(ConcRTError) {
        _ = SwiftJobItem.tlsReady
        guard let enqueueHook = dlsym(nil, "swift_task_enqueueGlobal_hook"),
              let delayHook = dlsym(nil, "swift_task_enqueueGlobalWithDelay_hook"),
              let deadlineHook = dlsym(nil, "swift_task_enqueueGlobalWithDeadline_hook") else {
            throw .globalExecutorUnavailable("the Swift runtime does not export the global enqueue hooks")
        }
        let me = UInt(bitPattern: Unmanaged.passRetained(self).toOpaque())
        guard Self.installed.compareExchange(expected: 0, desired: me, ordering: .acquiringAndReleasing).exchanged else {
            Unmanaged<Scheduler>.fromOpaque(UnsafeRawPointer(bitPattern: me)!).release()
            throw .globalExecutorUnavailable("a scheduler is already installed as the global executor")
        }
        // The scheduler is published (release) before any hook can read it.
        enqueueHook.assumingMemoryBound(to: GlobalHooks.Enqueue?.self).pointee = GlobalHooks.enqueue
        delayHook.assumingMemoryBound(to: GlobalHooks.Delay?.self).pointee = GlobalHooks.delay
        deadlineHook.assumingMemoryBound(to: GlobalHooks.Deadline?.self).pointee = GlobalHooks.deadline
    }

    /// The scheduler installed as the global executor, if any.
    public static var globalExecutorScheduler: Scheduler? {
        let bits = installed.load(ordering: .acquiring)
        guard bits != 0 else { return nil }
        return Unmanaged<Scheduler>.fromOpaque(UnsafeRawPointer(bitPattern: bits)!).takeUnretainedValue()
    }

    /// Queues a delayed Swift item: counted as pending now (so shutdown
    /// waits for it), pushed when `deadline` (monotonic ns) passes.
    func enqueueSwiftItem(_ item: WorkItem, deadline: Int64) -> Bool {
        outstanding.wrappingAdd(1, ordering: .sequentiallyConsistent)
        if stopped.load(ordering: .sequentiallyConsistent) {
            outstanding.wrappingSubtract(1, ordering: .releasing)
            return false
        }
        let bits = UInt(bitPattern: item)
        // Fires on a primary (not a context): the injection queue.
        _ = armTimeout(deadline) { [self] _ in inject(UnsafeMutableRawPointer(bitPattern: bits)!) }
        return true
    }
}

/// The hook functions (thin: the runtime calls them with the Swift calling
/// convention and no context).
enum GlobalHooks {
    typealias EnqueueOriginal = @convention(thin) (UnownedJob) -> Void
    typealias Enqueue = @convention(thin) (UnownedJob, EnqueueOriginal) -> Void
    typealias DelayOriginal = @convention(thin) (UInt64, UnownedJob) -> Void
    typealias Delay = @convention(thin) (UInt64, UnownedJob, DelayOriginal) -> Void
    typealias DeadlineOriginal = @convention(thin) (Int64, Int64, Int64, Int64, Int32, UnownedJob) -> Void
    typealias Deadline = @convention(thin) (Int64, Int64, Int64, Int64, Int32, UnownedJob, DeadlineOriginal) -> Void

    static let enqueue: Enqueue = { job, original in
        guard let s = Scheduler.globalExecutorScheduler,
              s.enqueueSwiftItem(SwiftJobItem.item(job, tag: SwiftJobItem.globalTag)) else {
            original(job)
            return
        }
    }

    static let delay: Delay = { nanoseconds, job, original in
        let deadline = csup_monotonic_ns() &+ Int64(clamping: nanoseconds)
        guard let s = Scheduler.globalExecutorScheduler,
              s.enqueueSwiftItem(SwiftJobItem.item(job, tag: SwiftJobItem.globalTag), deadline: deadline) else {
            original(nanoseconds, job)
            return
        }
    }

    /// `clock`: 1 continuous (CLOCK_BOOTTIME on Linux), 2 suspending
    /// (CLOCK_MONOTONIC); the deadline is converted to a delay on that
    /// clock and re-based on the scheduler's monotonic clock. The leeway
    /// (`tsec`, `tnsec`) is not used.
    static let deadline: Deadline = { sec, nsec, tsec, tnsec, clock, job, original in
        let clockID: clockid_t = clock == 1 ? CLOCK_BOOTTIME : CLOCK_MONOTONIC
        var now = timespec()
        clock_gettime(clockID, &now)
        let remaining = (sec &- Int64(now.tv_sec)) &* 1_000_000_000 &+ (nsec &- Int64(now.tv_nsec))
        let due = csup_monotonic_ns() &+ max(0, remaining)
        guard let s = Scheduler.globalExecutorScheduler,
              s.enqueueSwiftItem(SwiftJobItem.item(job, tag: SwiftJobItem.globalTag), deadline: due) else {
            original(sec, nsec, tsec, tnsec, clock, job)
            return
        }
    }
}
