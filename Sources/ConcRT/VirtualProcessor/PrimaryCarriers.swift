import CSupport
import Synchronization
import UMS
#if canImport(Glibc)
import Glibc
#endif

/// The pthreads that carry virtual processors' primaries, and how a VP
/// moves to another one when the UMS monitor retakes it from a blocking
/// call (lazy kernel entry: `Sources/UMS/LazyKernelEntry/`).
///
/// A carrier enters scheduling mode for one VP and runs its loop. Normally
/// it does so until the VP leaves (shutdown, a retired oversubscription
/// VP), then the pthread ends. When the monitor retakes the VP while a
/// context's call is in the kernel on this pthread:
///
/// 1. on the monitor thread, ``VirtualProcessorRetake`` has reserved a
///    spare carrier (a parked one, or a new pthread) and, after the
///    monitor's CAS won, assigns it the VP: the spare enters scheduling
///    mode and runs the VP's loop, which resumes where the VP's state
///    (deque, run queue, idle cache) stands;
/// 2. here, the call returns, its leave-CAS fails, the context is queued on
///    the completion list by UMS, `execute` returns and the VP loop sees
///    ``UMSPrimary/isRetaken`` and returns at once, touching nothing the
///    replacement now owns; this pthread leaves scheduling mode and parks
///    as a spare (up to ``Scheduler/maxSpareCarriers``), else ends.
///
/// Handing over: the spare's assignment is published with a release store
/// of its futex word (after `assigned` is written) and read with an
/// acquire load, so the spare sees the VP. The VP's own state needs no
/// hand-over: the old carrier touches none of it after the retake (its
/// UMS thread was inside a call; the loop checks `isRetaken` right after
/// `execute` returns), and the replacement starts only after the retake.
final class PrimaryCarrier: @unchecked Sendable {
    // @unchecked Sendable: `assigned` is written before the release store of
    // `word` and read after the acquire load that sees it.
    private let word: UnsafeMutablePointer<UInt32>
    private var assigned: VirtualProcessor?
    private static let parked: UInt32 = 0, go: UInt32 = 1, exit: UInt32 = 2

    init() {
        word = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
        word.initialize(to: Self.parked)
    }

    deinit { word.deallocate() }

    /// Parks until given a VP (returned) or told to exit (nil).
    func park() -> VirtualProcessor? {
        while true {
            let w = csup_u32_load_acquire(word)
            if w == Self.go {
                csup_u32_store_release(word, Self.parked)
                let v = assigned
                assigned = nil
                return v
            }
            if w == Self.exit { return nil }
            _ = csup_futex_wait(word, Self.parked, -1)
        }
    }

    /// Gives this (parked) carrier a VP to run.
    func assign(_ vp: VirtualProcessor) {
        assigned = vp
        csup_u32_store_release(word, Self.go)
        _ = csup_futex_wake(word, 1)
    }

    /// Tells this (parked) carrier to end its pthread.
    func stop() {
        csup_u32_store_release(word, Self.exit)
        _ = csup_futex_wake(word, 1)
    }
}

/// A VP's answer to the UMS monitor (the retake methods run on the monitor
/// thread; `reserved` is touched only there).
///
/// Unwrapped blocks are compensated for, not retaken: `beginCompensation`
/// (monitor thread) starts a temporary VP, on a parked spare carrier when
/// there is one, and returns it as the token; `endCompensation` (the
/// context's own pthread, the monitor, or the VP's carrier as it leaves)
/// asks that VP to retire. The token lives in the UMS primary
/// (`Compensation.swift`), so this handler keeps no compensation state.
final class VirtualProcessorRetake: UMSRetakeHandler, @unchecked Sendable {
    unowned(unsafe) let vp: VirtualProcessor
    private var reserved: PrimaryCarrier?

    init(_ vp: VirtualProcessor) { self.vp = vp }

    /// Worth it while something else waits for this VP or the scheduler:
    /// its deque or run queue, completions, queued tasks, a due timer.
    func shouldRetake() -> Bool {
        // Declined: the monitor compensates instead. With
        // SchedulerPolicy.retakeBlockedCalls false, and always for a
        // Swift job in flight or a context in withPinnedThread, which are
        // pinned to this pthread (JobPinning.swift).
        vp.scheduler.policy.retakeBlockedCalls && vp.pinnedJobs.load(ordering: .relaxed) == 0 && otherWorkWaits
    }

    /// Something else waits for this VP or its scheduler: its deque or run
    /// queue, completions, queued tasks, a due timer, or tasks queued in
    /// another VP's deque. The last matters when a task that spawned many
    /// children is not the one that blocks: async code's `addTask`, or a
    /// `parallelFor` body, pushes them on the spawner's VP, and the VP
    /// whose thread blocked would have stolen them (before this, only the
    /// spawner's own VP was ever compensated for, and async blockmix ran at
    /// 1.5x its ideal). An idle VP would steal them too; starting a
    /// temporary VP beside one costs a thread start, not correctness.
    private var otherWorkWaits: Bool {
        let s = vp.scheduler
        return vp.hasLocalWork || vp.completionsPending || s.hasQueuedTasks || s.timers.hasExpired
            || s.anyDequeHasWork(besides: vp)
    }

    func reserveReplacement() -> Bool {
        assert(reserved == nil, "VirtualProcessorRetake.reserveReplacement: VP \(vp.index) already holds a reserved carrier")
        let s = vp.scheduler
        if let c = s.takeSpareCarrier() {
            reserved = c
            return true
        }
        do {
            reserved = try s.startCarrier(for: nil)
            return true
        } catch {
            s.stats.retakeCarrierFailures.add()
            return false
        }
    }

    func startReplacement() {
        guard let c = reserved else {
            preconditionFailure("VirtualProcessorRetake.startReplacement: VP \(vp.index) has no reserved carrier")
        }
        reserved = nil
        vp.scheduler.stats.retakes.add()
        vp.trace(.retake)
        c.assign(vp)
    }

    func releaseReplacement() {
        guard let c = reserved else { return }
        reserved = nil
        if !vp.scheduler.offerSpareCarrier(c) { c.stop() }
    }

    /// Worth it while other work waits (as for a retake; a pinned Swift
    /// job does not matter here: nothing moves).
    func compensationWanted() -> Bool { !vp.scheduler.isStopping && otherWorkWaits }

    func beginCompensation() -> UMSCompensationToken? {
        let s = vp.scheduler
        guard compensationWanted() else { return nil }
        let temporary: VirtualProcessor
        do {
            temporary = try s.addTemporaryVirtualProcessor(carrier: s.takeSpareCarrier())
        } catch {
            s.stats.compensationFailures.add()
            return nil
        }
        // No trace event: the VP's trace buffer has one writer, its own
        // pthread, which goes on running (a retake traces from here only
        // because its VP's thread is inside the call).
        s.stats.compensations.add()
        return temporary
    }

    func endCompensation(_ token: UMSCompensationToken) {
        guard let temporary = token as? VirtualProcessor, temporary.temporary else {
            preconditionFailure("VirtualProcessorRetake.endCompensation: the token is not a temporary virtual processor")
        }
        vp.scheduler.retireTemporaryVirtualProcessor(temporary)
    }
}

extension Scheduler {
    /// Test hook: the next `count` spare carriers the monitor asks for fail
    /// to start, as if pthread_create returned EAGAIN.
    public static func _injectSpareCarrierFailures(_ count: Int) {
        injectedCarrierFailures.store(count, ordering: .relaxed)
    }
    static let injectedCarrierFailures = Atomic<Int>(0)

    /// Spare carriers kept parked at most (more end their pthreads).
    /// (Temporary VPs retiring after a compensation park theirs here too,
    /// so a burst of unwrapped blocks does not create a pthread per block.)
    var maxSpareCarriers: Int { max(2, regularVPCount) + Self.temporarySlots / 4 }

    /// Starts a carrier pthread that runs `vp` (or parks first, for nil).
    /// Its pthread is joined at shutdown.
    @discardableResult
    func startCarrier(for vp: VirtualProcessor?) throws(ConcRTError) -> PrimaryCarrier {
        if vp == nil, Self.injectedCarrierFailures.load(ordering: .relaxed) > 0,
           Self.injectedCarrierFailures.wrappingSubtract(1, ordering: .relaxed).oldValue > 0 {
            throw .schedulerStartFailed("pthread_create: \(UMS.describe(errno: EAGAIN)) (injected)")
        }
        let carrier = PrimaryCarrier()
        let tid = try spawnPThread { [self] in
            // The overflow signal stack for the pthread's life, not per
            // primary: each enterSchedulingMode below only counts it.
            let holdsAltStack = csup_overflow_thread_enter() == 0
            defer { if holdsAltStack { csup_overflow_thread_exit() } }
            var next = vp ?? carrier.park()
            var first = vp != nil
            // What this pthread already did for an earlier VP (a spare runs
            // one temporary VP after another): two system calls fewer on a
            // compensation's start.
            var unpinned = false
            var namedFor = -1
            while let v = next {
                var retaken = false
                // A VP with no CPU (a temporary one, or an unpinned layout)
                // runs anywhere: this pthread may have been created by a
                // pinned one (the monitor's creator, a VP) and inherited its
                // single-CPU mask. A VP with a CPU pins it (below).
                if v.cpu == nil {
                    if !unpinned { _ = csup_affinity_unpin_self() }
                    unpinned = true
                } else {
                    unpinned = false
                }
                // Named per VP for top -H, gdb and /proc (a thread started by
                // the monitor would otherwise carry its name).
                if namedFor != v.index { _ = csup_thread_set_name("ums-vp\(v.index)") }
                namedFor = v.index
                do {
                    try UMS.enterSchedulingMode(cpu: v.cpu, retakeHandler: policy.retakeAfter == nil ? nil : v.retake,
                                                retakeAfter: policy.retakeAfter ?? .zero,
                                                detectUnwrappedBlocking: policy.detectUnwrappedBlocking) { p in
                        if first { self.primaryStarted() }
                        retaken = v.run(p)
                    }
                } catch {
                    if first {
                        self.primaryFailedToStart("virtual processor \(v.index): \(error)")
                        return
                    }
                    // A replacement that cannot enter scheduling mode would
                    // leave the VP's work stranded: say so.
                    fatalError("ConcRT: a replacement primary for virtual processor \(v.index) could not start: \(error)")
                }
                first = false
                // A retaken carrier, or one whose temporary VP retired,
                // parks as a spare if there is room.
                guard retaken || v.temporary, offerSpareCarrier(carrier) else { return }
                next = carrier.park()
            }
        }
        primaryThreads.withLock { $0.append(tid) }
        return carrier
    }

    /// A parked spare carrier, if any.
    func takeSpareCarrier() -> PrimaryCarrier? {
        spareCarriers.withLock { $0.popLast() }
    }

    /// Parks `c` as a spare unless enough are parked or the scheduler is
    /// stopping (then false: the caller ends or stops it).
    func offerSpareCarrier(_ c: PrimaryCarrier) -> Bool {
        spareCarriers.withLock { spares in
            if isStopping || spares.count >= maxSpareCarriers { return false }
            spares.append(c)
            return true
        }
    }

    /// Stops every parked spare (shutdown).
    func stopSpareCarriers() {
        let spares = spareCarriers.withLock { s in defer { s.removeAll() }; return s }
        for c in spares { c.stop() }
    }
}
