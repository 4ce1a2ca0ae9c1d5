import CSupport
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The UMS monitor: one pthread per process that watches primaries with a
/// ``UMSRetakeHandler``, retakes those stuck in a wrapped blocking call (see
/// `KernelCallWord.swift` for the word it CASes), and, with unwrapped-block
/// detection, compensates for threads asleep in unwrapped code
/// (`Compensation.swift`). [Go's sysmon]
///
/// Ticks: while some primary is in a call, every `tick` (half the
/// smallest registered threshold, at least 10 µs), backing off by doubling
/// up to 1 ms while nothing is retaken (a call the handler declines to
/// retake costs the monitor a few loads per tick). After a retake or a
/// compensation it stays at the short tick for 50 looks (blocks come in
/// bursts; Go's sysmon does the same). While threads run with no call in
/// the kernel (an unwrapped call may block), it backs off to 50 ms (so an
/// idle VP beside one long task costs well under 1 CPU-ms/s), or to 100 µs
/// while a retake happened in the last 100 ms or a compensation for an
/// unwrapped block (`Compensation.swift`) is active. Its timer slack is
/// 1 µs (the default 50 µs would make every short tick late).
///
/// Sleep: while no primary runs a thread or is in a call, it backs off to
/// 10 ms, then sleeps on its futex with no timeout, so an idle process is
/// never woken by it. Waking it is a Dekker pair on `sleeping` and each
/// primary's kernel-call word and `running` flag:
/// - a call entry or an execute stores its word or flag, then
///   (``noteKernelEntry()``) a compiler barrier, then a relaxed load of
///   `sleeping`, and a futex wake only if it is set: the first call after
///   a quiet spell pays a wake; every other pays nothing;
/// - the monitor stores `sleeping` (seq_cst), runs membarrier(2) (every
///   running thread of the process executes a full barrier), then re-reads
///   every word and flag, and stays awake if one is set.
/// One of the two sees the other (Tests/Models/monitor.pml). Where
/// membarrier is refused (old kernels, seccomp), both sides use a seq_cst
/// fence instead and the sleep keeps a 1 s timeout as a second net.
///
/// The registry is under a lock; handler methods are called with it held,
/// so a handler must not register or unregister primaries synchronously
/// (starting a pthread that does so later is fine).
final class UMSMonitor: @unchecked Sendable {
    // @unchecked Sendable: `entries` and `started` under `lock`; `sleeping`
    // atomic; the futex word is only touched through futex calls and
    // atomic C helpers; per-entry observation fields are monitor-owned.

    static let shared = UMSMonitor()

    /// Monitor-side record of one primary.
    final class Entry: @unchecked Sendable {
        // @unchecked Sendable: `primary` and `handler` are immutable; the
        // observation fields are touched only by the monitor thread.
        unowned(unsafe) let primary: UMSPrimary
        let handler: any UMSRetakeHandler
        let thresholdNanoseconds: Int64
        /// Unwrapped-block detection is on for this primary.
        let detectUnwrapped: Bool
        var lastWord: UInt64 = .max
        var lastChange: Int64 = 0
        /// Wrapped calls: the thread's CPU time when the current call was
        /// first seen (or its window restarted); -1 when unread.
        var cpuAtLastChange: Int64 = -1
        /// Unwrapped detection: the run sequence last seen, when it last
        /// moved (or the window restarted), and the thread's CPU time then.
        var lastRun: UInt64 = .max
        var runSince: Int64 = 0
        var cpuAtRunSince: Int64 = 0

        init(primary: UMSPrimary, handler: any UMSRetakeHandler, thresholdNanoseconds: Int64, detectUnwrapped: Bool) {
            self.primary = primary
            self.handler = handler
            self.thresholdNanoseconds = thresholdNanoseconds
            self.detectUnwrapped = detectUnwrapped
        }
    }

    private let lock = MigrationSafeMutex<Void>(())
    private var entries: [Entry] = []
    private var started = false
    /// True while the monitor sleeps untimed (up to 100 ms). Relaxed: a
    /// missed wake only delays a retake (see the type's doc).
    private let sleeping = Atomic<Bool>(false)
    private let wakeWord: UnsafeMutablePointer<UInt32>
    /// membarrier(2) registered when the monitor was created: the light
    /// side uses a compiler barrier only. Immutable, so the hot path reads
    /// it with no synchronization.
    let asymmetricAtStart: Bool
    /// The monitor thread's own copy: cleared if a heavy barrier ever
    /// fails (then it also sleeps at most a second at a time). Monitor-only.
    private var asymmetric: Bool

    /// Statistics (relaxed, independent counters).
    let retakes = Atomic<Int>(0)
    let unwrappedCompensations = Atomic<Int>(0)
    /// Compensations for wrapped calls whose primary declined a retake
    /// while other work waited (it must keep its pthread).
    let pinnedCompensations = Atomic<Int>(0)
    let declinedNoReplacement = Atomic<Int>(0)
    /// Compensations ended because the thread was seen computing again.
    let computingCompensationsEnded = Atomic<Int>(0)
    /// Wrapped calls found computing (CPU busy) past the threshold, left alone.
    let computingCalls = Atomic<Int>(0)
    let ticks = Atomic<Int>(0)

    private init() {
        wakeWord = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
        wakeWord.initialize(to: 0)
        asymmetricAtStart = csup_membarrier_register()
        asymmetric = asymmetricAtStart
    }

    /// Adds a primary; starts the monitor pthread on first use.
    func register(_ p: UMSPrimary, handler: any UMSRetakeHandler, threshold: Duration,
                  detectUnwrapped: Bool) throws(UMSError) -> Entry {
        let ns = max(1_000, threshold.saturatingNanoseconds)
        let e = Entry(primary: p, handler: handler, thresholdNanoseconds: ns, detectUnwrapped: detectUnwrapped)
        var startError: Int32 = 0
        lock.withLock { _ in
            if !started {
                startError = startThread()
                if startError != 0 { return }
                started = true
            }
            entries.append(e)
        }
        if startError != 0 { throw .systemCallFailed(call: "pthread_create (UMS monitor)", errno: startError) }
        wake()
        return e
    }

    func unregister(_ e: Entry) {
        lock.withLock { _ in entries.removeAll { $0 === e } }
    }

    /// Called by every inline blocking call right after its entry store,
    /// and by `execute` on a monitored primary right after it sets
    /// `running`: wakes the monitor if it sleeps.
    ///
    /// The light side of the Dekker pair in the type's doc: a compiler
    /// barrier orders the caller's store before this load (membarrier, on
    /// the monitor's side, supplies the CPU barrier when it is needed);
    /// without membarrier, a seq_cst fence. Either way, of this load and the
    /// monitor's store of `sleeping` + re-scan, one sees the other.
    @inline(__always)
    func noteKernelEntry() {
        if asymmetricAtStart { csup_compiler_barrier() } else { atomicMemoryFence(ordering: .sequentiallyConsistent) }
        // Relaxed: ordered by the barrier above.
        if sleeping.load(ordering: .relaxed) { wake() }
    }

    /// The monitor sleeps (relaxed: a test hook's snapshot).
    var isAsleep: Bool { sleeping.load(ordering: .relaxed) }

    /// From `execute` (a thread starts running): the same pair.
    @inline(__always)
    func noteRunning() { noteKernelEntry() }

    private func wake() {
        if sleeping.exchange(false, ordering: .relaxed) {
            csup_u32_store_release(wakeWord, csup_u32_load_acquire(wakeWord) &+ 1)
            _ = csup_futex_wake(wakeWord, 1)
        }
    }

    private func startThread() -> Int32 {
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        defer { pthread_attr_destroy(&attr) }
        pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
        var tid = pthread_t()
        // Why this is sound: the monitor is a process-wide singleton that
        // is never deallocated.
        let arg = Unmanaged.passUnretained(self).toOpaque()
        return pthread_create(&tid, &attr, monitorEntry, arg)
    }

    fileprivate func main() {
        // Named for `top -H`, gdb and /proc (15 characters at most).
        _ = csup_thread_set_name("ums-monitor")
        // Started by the first primary that registered, which may be
        // pinned: the monitor (and the carriers it starts) must not share
        // that CPU.
        _ = csup_affinity_unpin_self()
        // Its ticks are 10-100 us: the default 50 us timer slack would let
        // the kernel fire each one up to 50 us late (detect p99).
        _ = csup_thread_set_timer_slack(1_000)
        var interval: Int64 = 10_000
        var quiet = 0
        var lastRetake: Int64 = .min / 2
        var hotTicks = 0
        // Read before `sleeping` is set: a wake after that bumps the word
        // past `seen`, so the wait below returns at once.
        var seen = csup_u32_load_acquire(wakeWord)
        while true {
            if sleeping.load(ordering: .relaxed) {
                // Untimed with the asymmetric barrier (nothing can be
                // missed); else at most a second (a lost noteRunning race).
                _ = csup_futex_wait(wakeWord, seen, asymmetric ? -1 : 1_000_000_000)
                if csup_u32_load_acquire(wakeWord) != seen {
                    // Woken by a call entry or an execute: look often again.
                    interval = 10_000
                    quiet = 0
                    sleeping.store(false, ordering: .relaxed)
                }
                // Timed out: stay asleep unless the scan below finds work.
            } else {
                _ = csup_futex_wait(wakeWord, seen, interval)
            }
            seen = csup_u32_load_acquire(wakeWord)
            ticks.wrappingAdd(1, ordering: .relaxed)
            let (inKernel, running, retook, compensating, shortest) = scan()
            let base = max(10_000, shortest / 2)
            let now = csup_monotonic_ns()
            if retook { lastRetake = now }
            // Calls have been blocking lately: keep looking often (a blocked
            // call that ends before the second look is a CPU lost for it).
            // So does an active compensation (its end is found by a look,
            // unless the thread's next runtime entry ends it first).
            let busyCap: Int64 = compensating || now - lastRetake < 100_000_000 ? 100_000 : 50_000_000
            if retook || inKernel || running { sleeping.store(false, ordering: .relaxed) }
            if retook { hotTicks = Self.hotTicksAfterRetake }
            if hotTicks > 0 && (retook || inKernel || running) {
                // Blocks come in bursts: after a retake or a compensation
                // keep the short tick for a while (Go's sysmon stays at
                // 20 us until 50 looks found nothing), so the next block is
                // found within about base + threshold, not after a
                // backed-off tick (detect p99).
                hotTicks -= 1
                interval = base
                quiet = 0
            } else if inKernel {
                interval = min(max(interval, base) * 2, 1_000_000)
                quiet = 0
            } else if running {
                // Threads run with no call in the kernel: watch for an
                // unwrapped block, backing off to 50 ms (a tick costs 10-30 us
                // of CPU on a VM: "idle stays idle" beside a busy VP), or to
                // 100 us while retakes or compensations happened in the last 100 ms.
                interval = min(max(interval, base) * 2, busyCap)
                quiet = 0
            } else {
                interval = min(max(interval, base) * 2, 10_000_000)
                quiet += 1
                // Quiet for a while: sleep until the next call entry, after
                // one more look for a call that entered meanwhile.
                if quiet >= 4 && interval >= 10_000_000 && !sleeping.load(ordering: .relaxed) {
                    // Store, barrier, then re-read every primary's word and
                    // running flag: a Dekker pair with a call entry's or an
                    // execute's store, barrier, load of `sleeping` (see the
                    // type's doc). Here the heavy barrier (membarrier), there
                    // a compiler barrier; without membarrier, seq_cst fences
                    // on both sides.
                    sleeping.store(true, ordering: .sequentiallyConsistent)
                    if asymmetric, csup_membarrier_heavy() != 0 {
                        // Refused now though registered: fall back for good.
                        asymmetric = false
                    }
                    if !asymmetric { atomicMemoryFence(ordering: .sequentiallyConsistent) }
                    if anyInKernelOrRunning() { sleeping.store(false, ordering: .relaxed) }
                }
            }
        }
    }

    /// Looks at the base tick after a retake or a compensation began.
    static let hotTicksAfterRetake = 50

    private func anyInKernelOrRunning() -> Bool {
        lock.withLock { _ in
            // seq_cst loads: after the store of `sleeping` and the barrier.
            entries.contains {
                KernelCallWord.state($0.primary.kernelCall.load(ordering: .sequentiallyConsistent)) == KernelCallWord.inKernel
                    || $0.primary.running.load(ordering: .sequentiallyConsistent)
            }
        }
    }

    /// One look at every registered primary. Returns whether some primary
    /// is in a call, whether one was retaken or a compensation began (for
    /// the ticks they count the same: blocks come in bursts, so look often
    /// again), whether a compensation is active, and the smallest threshold.
    private func scan() -> (inKernel: Bool, running: Bool, retook: Bool, compensating: Bool, shortest: Int64) {
        let now = csup_monotonic_ns()
        var inKernel = false, retook = false, running = false, compensating = false
        var shortest = Int64.max
        lock.withLock { _ in
            for e in entries {
                shortest = min(shortest, e.thresholdNanoseconds)
                // Acquire: pairs with the caller's release store at entry.
                let w = e.primary.kernelCall.load(ordering: .acquiring)
                guard KernelCallWord.state(w) == KernelCallWord.inKernel else {
                    e.lastWord = w
                    if KernelCallWord.state(w) == KernelCallWord.running {
                        switch lookForUnwrappedBlock(e, w, now) {
                        case .none: break
                        case .active: compensating = true
                        case .began: compensating = true; retook = true
                        }
                    }
                    if e.primary.running.load(ordering: .relaxed) { running = true }
                    continue
                }
                inKernel = true
                let p = e.primary
                if w != e.lastWord {
                    e.lastWord = w
                    e.lastChange = now
                    e.cpuAtLastChange = p.hasCPUClock ? csup_thread_cpu_ns(p.cpuClock) : -1
                    continue
                }
                if now - e.lastChange < e.thresholdNanoseconds { continue }
                // A call that kept its CPU busy (over half the window) is
                // computing, not blocked: retaking it would only add a
                // pthread beside a CPU-bound one (C libraries wrapped whole
                // in Blocking.call). Look again over a fresh window.
                if e.cpuAtLastChange >= 0 {
                    let cpu = csup_thread_cpu_ns(p.cpuClock)
                    if cpu >= 0 && cpu - e.cpuAtLastChange > (now - e.lastChange) / 2 {
                        e.lastChange = now
                        e.cpuAtLastChange = cpu
                        computingCalls.wrappingAdd(1, ordering: .relaxed)
                        continue
                    }
                }
                guard e.handler.shouldRetake() else {
                    // Declined: nothing else waits, or the primary must keep
                    // its pthread (ConcRT: a pinned context). Then the CPU
                    // can still be compensated for, as for an unwrapped block.
                    if p.hasCPUClock, p.beginCompensation(e.handler) {
                        e.lastRun = p.runSequence.load(ordering: .relaxed)
                        e.runSince = now
                        e.cpuAtRunSince = csup_thread_cpu_ns(p.cpuClock)
                        pinnedCompensations.wrappingAdd(1, ordering: .relaxed)
                        compensating = true
                        retook = true
                    }
                    continue
                }
                // About to retake: a call that got little CPU but whose
                // thread is runnable, not asleep, in /proc was preempted (a
                // loaded machine): it waits for a CPU, not for the kernel,
                // and a second pthread would only compete with it. Look
                // again over a fresh window. One /proc read (an open, a
                // read, a close), only here: a declined or computing call
                // costs none, however long it is watched.
                if e.cpuAtLastChange >= 0, csup_thread_state(p.tid) == UInt8(ascii: "R") {
                    e.lastChange = now
                    e.cpuAtLastChange = csup_thread_cpu_ns(p.cpuClock)
                    computingCalls.wrappingAdd(1, ordering: .relaxed)
                    continue
                }
                guard e.handler.reserveReplacement() else {
                    declinedNoReplacement.wrappingAdd(1, ordering: .relaxed)
                    e.lastChange = now   // try again after another threshold
                    continue
                }
                let retaken = KernelCallWord.make(sequence: KernelCallWord.sequence(w), state: KernelCallWord.retaken)
                // Acquire-release: the caller's leave-CAS on the same value
                // either wins (then this fails) or sees `retaken`.
                if e.primary.kernelCall.compareExchange(expected: w, desired: retaken,
                                                       ordering: .acquiringAndReleasing).exchanged {
                    retakes.wrappingAdd(1, ordering: .relaxed)
                    e.handler.startReplacement()
                    retook = true
                } else {
                    e.handler.releaseReplacement()
                }
            }
        }
        return (inKernel, running, retook, compensating, shortest == .max ? 20_000 : shortest)
    }

    /// What one look at a running primary found.
    private enum UnwrappedLook { case none, active, began }

    /// Unwrapped-block detection for a primary whose word says `running`:
    /// its thread has not switched for the threshold, it used the CPU for
    /// under half the window, and /proc says it sleeps in the
    /// kernel (S or D; R is a busy task, never compensated for). Then the
    /// handler is asked to compensate (`Compensation.swift`): the thread
    /// keeps its primary. The thread ends the compensation at its next
    /// runtime entry; a look ends it if the thread switched without doing
    /// so.
    private func lookForUnwrappedBlock(_ e: Entry, _ w: UInt64, _ now: Int64) -> UnwrappedLook {
        let p = e.primary
        if p.compensation.load(ordering: .relaxed) == Compensation.active {
            // A compensation lasts until the thread's next runtime entry
            // (it ends it there), as a retake's oversubscription window
            // did: code that blocked once usually blocks again (a loop of
            // reads), and ending at the first return would cost a new
            // detection per block. Here only a switch the thread did not
            // report (a UMS scheduler that never calls noteRuntimeEntry)
            // or the primary going idle ends it.
            if !p.running.load(ordering: .relaxed) || p.runSequence.load(ordering: .relaxed) != e.lastRun {
                p.endCompensationIfActive()
                e.runSince = now
                return .none
            }
            // The thread computes again (its call returned and it kept the
            // CPU busy over half of a window of at least the threshold):
            // end it, which bounds the oversubscription of a thread that
            // runs on for long without entering the runtime. A thread that
            // keeps blocking (a loop of reads) stays under half.
            let window = now - e.runSince
            if window >= e.thresholdNanoseconds {
                let cpu = csup_thread_cpu_ns(p.cpuClock)
                if cpu >= 0 && cpu - e.cpuAtRunSince > window / 2 {
                    p.endCompensationIfActive()
                    e.runSince = now
                    e.cpuAtRunSince = cpu
                    computingCompensationsEnded.wrappingAdd(1, ordering: .relaxed)
                    return .none
                }
                // Look over a fresh window at least every 50 thresholds, so
                // a thread that starts computing late is seen soon.
                if window >= 50 * e.thresholdNanoseconds {
                    e.runSince = now
                    e.cpuAtRunSince = cpu
                }
            }
            return .active
        }
        guard e.detectUnwrapped, p.hasCPUClock, p.running.load(ordering: .relaxed) else {
            e.lastRun = .max
            return .none
        }
        let seq = p.runSequence.load(ordering: .relaxed)
        if seq != e.lastRun {
            e.lastRun = seq
            e.runSince = now
            e.cpuAtRunSince = csup_thread_cpu_ns(p.cpuClock)
            return .none
        }
        let window = now - e.runSince
        if window < e.thresholdNanoseconds { return .none }
        // Nothing else waits: not worth a syscall and a /proc read (with
        // many temporary VPs blocked at once, those would be most of the
        // monitor's time).
        guard e.handler.compensationWanted() else { return .none }
        let cpu = csup_thread_cpu_ns(p.cpuClock)
        // Mostly computing (over half the window), or unreadable: look again
        // over a fresh window. A thread that sleeps at least half the time
        // goes on to the /proc look, which says whether it sleeps *now*:
        // with a tight "stood still" test (a tenth, as before), a thread
        // that computes 20% of the time was never caught once the ticks
        // had backed off to tens of ms (a whole blockmix run went by
        // without a single detection, in both the retake and this design).
        if cpu < 0 || cpu - e.cpuAtRunSince > window / 2 {
            e.runSince = now
            e.cpuAtRunSince = cpu
            return .none
        }
        let state = csup_thread_state(p.tid)
        guard state == UInt8(ascii: "S") || state == UInt8(ascii: "D") else {
            e.runSince = now
            e.cpuAtRunSince = cpu
            return .none
        }
        // Still the same run after the /proc read (16 us)? A thread that
        // switched back to its scheduler meanwhile (which then sleeps in S
        // too) is not blocked in user code. A wrong guess here costs only
        // a temporary VP's start and stop: nothing is handed over.
        guard p.running.load(ordering: .relaxed), p.runSequence.load(ordering: .relaxed) == seq,
              KernelCallWord.state(p.kernelCall.load(ordering: .relaxed)) == KernelCallWord.running else {
            e.runSince = now
            e.cpuAtRunSince = cpu
            return .none
        }
        // The handler declines when nothing else waits for the CPU, or
        // when it cannot start anything (it counts that itself).
        guard p.beginCompensation(e.handler) else {
            e.runSince = now
            return .none
        }
        e.runSince = now
        e.cpuAtRunSince = cpu
        unwrappedCompensations.wrappingAdd(1, ordering: .relaxed)
        return .began
    }
}

private let monitorEntry: @convention(c) (UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? = { raw in
    // Why this is sound: `raw` is the never-deallocated singleton.
    Unmanaged<UMSMonitor>.fromOpaque(raw!).takeUnretainedValue().main()
    return nil
}
