import CSupport
import Synchronization
import UMS
#if canImport(Glibc)
import Glibc
#endif

/// One watchdog finding.
public struct WatchdogReport: Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// A virtual processor stayed in one task longer than
        /// ``SchedulerPolicy/longTaskReportAfter``.
        case longTask = "long-task"
        /// A context waited on one event or lock longer than
        /// ``SchedulerPolicy/longWaitReportAfter``: a possible deadlock.
        case longWait = "long-wait"
        /// The UMS monitor retook a virtual processor from a wrapped call
        /// (first time at this call site).
        case retake
        /// The UMS monitor retook a virtual processor from unwrapped
        /// blocking code (first time at this call site).
        case unwrappedBlocking = "unwrapped-blocking"
    }

    public let kind: Kind
    public let contextID: Int?
    public let label: String?
    public let virtualProcessor: Int?
    /// How long the task ran or the wait lasted, when known.
    public let duration: Duration?
    /// What it was doing ("waiting on event 0x…").
    public let detail: String
    /// Where (nil when it could not be taken, for example a thread that did
    /// not answer the capture signal in time).
    public let backtrace: Backtrace?

    /// One line: kind, where, how long, and the innermost frames.
    public var description: String {
        var s = "ums watchdog: \(kind.rawValue):"
        if let vp = virtualProcessor { s += " VP \(vp)" }
        if let id = contextID { s += " context \(id)" }
        if let label { s += " \"\(label)\"" }
        s += " \(detail)"
        if let duration { s += " for \(SchedulerSnapshot.format(duration))" }
        if let backtrace {
            let top = backtrace.userFrames.prefix(3).map { $0.symbol ?? "0x\(String($0.address, radix: 16))" }
            s += " at " + top.joined(separator: " <- ")
        }
        return s
    }
}

/// The watchdog: one process-wide pthread that samples every scheduler
/// whose policy asks for it. [no ConcRT equivalent; Go's sysmon, tokio's
/// blocking-task warnings]
///
/// Sampling protocol (no cost on any scheduler path):
/// - each VP already counts its switches (`switchCount`) and tasks
///   (`stats.tasksRun`), and stores the id of the context it switched in
///   last (`runningContextID`); all are owner-written, read here relaxed;
/// - every period (a quarter of the smallest threshold, at least 5 ms)
///   the watchdog reads them. A VP whose two counters have not moved since
///   an earlier sample has been in one task (or asleep) at least that long;
///   it is reported when the context it runs is still running, not in a
///   blocking call, past the threshold, once per (switch, task) pair;
///   (contexts' waits are scanned at most every quarter of the wait
///   threshold, and at most once a second);
/// - the long task's backtrace is taken by signalling the VP's carrier
///   pthread (csup_thread_backtrace), which walks its own frames;
/// - waits are read from the contexts' reflection words
///   (Reflection/ContextActivity.swift) every period;
/// - when every VP of every watched scheduler sleeps, the watchdog parks
///   on its futex word until a VP wakes (`virtualProcessorWoke`, called by
///   the idle protocol: a Dekker pair on `parked` and the sleeper counts,
///   both seq_cst; Tests/Models/watchdog.pml). Before it parks it scans the
///   contexts' waits: while one may still become a long wait it parks
///   until the next wait scan (at most a second); with none, it parks
///   with no timeout (a new wait needs a running context, whose VP wakes
///   first), so an idle process is not woken at all.
/// Reports go to the handler (``setReportHandler(_:)``); the default
/// writes one line to stderr.
public enum Watchdog {
    public typealias Handler = @Sendable (WatchdogReport) -> Void

    /// Boxed (see UMSRetakeObserver: a bare function value in a Mutex is
    /// re-abstracted on every access).
    private final class HandlerBox: Sendable {
        let f: Handler
        init(_ f: @escaping Handler) { self.f = f }
    }
    private static let handler = MigrationSafeMutex<HandlerBox?>(nil)

    /// Replaces the report handler (nil restores the default, one line on
    /// stderr). Process-wide.
    public static func setReportHandler(_ h: Handler?) {
        handler.withLock { $0 = h.map(HandlerBox.init) }
    }

    static func report(_ r: WatchdogReport) {
        if let h = handler.withLock({ $0 }) {
            h.f(r)
        } else {
            writeToStandardError(r.description + "\n")
        }
    }

    // MARK: Watched schedulers

    private static let watched = SchedulerSet()
    /// Bumped on each registration; the thread sleeps on it when nothing is
    /// watched (futex word; release on bump, acquire on read).
    nonisolated(unsafe) private static let registrations: UnsafeMutablePointer<UInt32> = {
        let p = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
        p.initialize(to: 0)
        return p
    }()
    private static let threadStarted = Atomic<Bool>(false)
    /// True while the watchdog sleeps because every watched VP sleeps
    /// (seq_cst: see main()).
    private static let parked = Atomic<Bool>(false)

    /// Called by a VP leaving its idle sleep: wakes a parked watchdog. One
    /// seq_cst load when it is not parked.
    @inline(__always)
    static func virtualProcessorWoke() {
        if parked.load(ordering: .sequentiallyConsistent) { wakeParked() }
    }

    @inline(never)
    private static func wakeParked() {
        guard parked.exchange(false, ordering: .sequentiallyConsistent) else { return }
        _ = csup_u32_fetch_add_seq_cst(registrations, 1)
        _ = csup_futex_wake(registrations, 1)
    }

    /// Starts watching `s` (its policy says what to report).
    static func watch(_ s: Scheduler) {
        let p = s.policy
        if p.reportRetakeSites { installRetakeObserver() }
        guard p.longTaskReportAfter != nil || p.longWaitReportAfter != nil || p.reportRetakeSites else { return }
        if p.longTaskReportAfter != nil || p.longWaitReportAfter != nil {
            watched.insert(s)
        }
        _ = csup_u32_fetch_add_seq_cst(registrations, 1)
        _ = csup_futex_wake(registrations, 1)
        if !threadStarted.exchange(true, ordering: .acquiringAndReleasing) {
            do {
                let t = try spawnPThread(stackSize: 256 * 1024) { Watchdog.main() }
                pthread_detach(t)
            } catch {
                threadStarted.store(false, ordering: .releasing)
                report(WatchdogReport(kind: .longTask, contextID: nil, label: nil, virtualProcessor: nil, duration: nil,
                                      detail: "watchdog not started: \(error)", backtrace: nil))
            }
        }
    }

    static func unwatch(_ s: Scheduler) {
        watched.remove(s)
    }

    private static func main() {
        // Load this program's symbols now, off every VP, so that reports
        // later symbolize from the cache.
        _ = Backtrace.current().frames
        var period: Int64 = 25_000_000
        while true {
            _ = period
            let seen = csup_u32_load_acquire(registrations)
            reportPendingRetakes()
            let list = watched.alive
            if list.isEmpty {
                _ = csup_futex_wait(registrations, seen, -1)
                continue
            }
            let base = list.map { $0.watch.period }.min() ?? 25_000_000
            var allAsleep = true
            for s in list where !s.isStopping {
                if !s.watch.sample(s) { allAsleep = false }
            }
            if allAsleep {
                // Park until a VP wakes (or a registration), and at the
                // latest for the next wait scan. Dekker pair with
                // virtualProcessorWoke: parked = true, then re-read the
                // sleeper counts (seq_cst) / a VP decrements its count,
                // then reads parked (seq_cst): one of us sees the other.
                let word = csup_u32_load_acquire(registrations)
                parked.store(true, ordering: .sequentiallyConsistent)
                let still = list.allSatisfy { s in
                    s.isStopping || s.idle.sleeping.load(ordering: .sequentiallyConsistent)
                        >= s.activeVPCount.load(ordering: .sequentiallyConsistent)
                }
                if still {
                    // A context already in a wait may still become a long
                    // wait: look again at the next wait scan. With none, no
                    // timeout: a new wait needs a running context, so a VP
                    // wakes first, and that wakes the watchdog.
                    let pending = list.contains { !$0.isStopping && $0.watch.scanWaitsNow($0) }
                    let longest = list.map { $0.watch.waitScanPeriod }.min() ?? 1_000_000_000
                    _ = csup_futex_wait(registrations, word, pending ? min(longest, 1_000_000_000) : -1)
                }
                parked.store(false, ordering: .relaxed)
                period = base
                continue
            }
            period = base
            _ = csup_futex_wait(registrations, csup_u32_load_acquire(registrations), period)
        }
    }

    // MARK: Retakes

    private static let retakeObserverInstalled = Atomic<Bool>(false)
    private static let retakeSites = MigrationSafeMutex<Set<Int>>([])

    /// A retake seen on its thread, reported by the watchdog thread (the
    /// retaken thread only captures raw addresses: symbolizing there would
    /// take CPU from the VPs at the moment the monitor is judging them).
    private struct PendingRetake {
        let kind: UMSRetakeObserver.Kind
        let contextID: Int
        let label: String?
        let call: UInt
        let backtrace: Backtrace
    }
    private static let pendingRetakes = MigrationSafeMutex<[PendingRetake]>([])
    /// Raw call paths already queued (cheap first filter, on the retaken thread).
    private static let retakePaths = MigrationSafeMutex<Set<Int>>([])

    private static func installRetakeObserver() {
        if retakeObserverInstalled.exchange(true, ordering: .acquiringAndReleasing) { return }
        UMSRetakeObserver.set { kind, userContext in
            // Why this is sound: a UMS thread of a scheduler has its Context
            // as user context, holding a +1 on it while the thread lives.
            guard let userContext else { return }
            let c = Unmanaged<Context>.fromOpaque(userContext).takeUnretainedValue()
            guard c.scheduler.policy.reportRetakeSites else { return }
            let bt = Backtrace.current(skip: 1)
            var h = Hasher()
            for a in bt.addresses { h.combine(a) }
            let path = h.finalize()
            guard Watchdog.retakePaths.withLock({ $0.insert(path).inserted }) else { return }
            let p = PendingRetake(kind: kind, contextID: c.id, label: c.label,
                                  call: c.kernelCallName.load(ordering: .relaxed), backtrace: bt)
            Watchdog.pendingRetakes.withLock { $0.append(p) }
            _ = csup_u32_fetch_add_seq_cst(registrations, 1)
            _ = csup_futex_wake(registrations, 1)
        }
    }

    /// On the watchdog thread: symbolizes queued retakes and reports each
    /// call site (the first frame past the runtime's) once.
    private static func reportPendingRetakes() {
        let pending = pendingRetakes.withLock { p in defer { p.removeAll() }; return p }
        for p in pending {
            var h = Hasher()
            if let site = p.backtrace.callSite { h.combine(site.address) } else { for a in p.backtrace.addresses { h.combine(a) } }
            let key = h.finalize()
            guard retakeSites.withLock({ $0.insert(key).inserted }) else { continue }
            let name = KernelCall.name(bits: p.call)
            let detail = p.kind == .wrappedCall
                ? "blocking call \(name) retaken (first time at this site)"
                : "unwrapped blocking code retaken (first time at this site)"
            report(WatchdogReport(kind: p.kind == .wrappedCall ? .retake : .unwrappedBlocking, contextID: p.contextID,
                                  label: p.label, virtualProcessor: nil, duration: nil, detail: detail, backtrace: p.backtrace))
        }
    }
}

/// Per-scheduler watchdog state (touched by the watchdog thread and by
/// snapshots, under its lock).
final class SchedulerWatch: Sendable {
    struct VPSample { var switches: Int; var tasks: Int; var since: Int64; var reported: Bool }
    struct State {
        var samples: [Int: VPSample] = [:]
        /// Context id -> the waitSince already reported.
        var reportedWaits: [Int: Int64] = [:]
    }
    private let state = MigrationSafeMutex(State())
    let longTask: Int64?
    let longWait: Int64?
    /// Sampling period (ns).
    let period: Int64
    /// Waits are scanned this often (ns); the last scan (watchdog thread only).
    let waitScanPeriod: Int64
    private let lastWaitScan = Atomic<Int64>(0)

    init(_ policy: SchedulerPolicy) {
        longTask = policy.longTaskReportAfter?.saturatingNanoseconds
        longWait = policy.longWaitReportAfter?.saturatingNanoseconds
        let smallest = [longTask, longWait].compactMap { $0 }.min() ?? 100_000_000
        period = max(5_000_000, min(smallest / 4, 250_000_000))
        let base = period
        waitScanPeriod = longWait.map { max(base, min($0 / 4, 1_000_000_000)) } ?? .max
    }

    /// VP index -> when the watchdog first saw its current switch and task
    /// (monotonic ns).
    func runningSince() -> [Int: Int64] {
        state.withLock { s in s.samples.mapValues { $0.since } }
    }

    /// One sample of `s`. Returns true when all its VPs sleep.
    func sample(_ s: Scheduler) -> Bool {
        let now = csup_monotonic_ns()
        let active = s.activeVPCount.load(ordering: .acquiring)
        var suspects: [(VirtualProcessor, Int64)] = []
        state.withLock { st in
            for vp in s.virtualProcessors.prefix(active) {
                let sw = vp.switchCount.load(ordering: .relaxed), tasks = vp.stats.tasksRun.value
                if var old = st.samples[vp.index], old.switches == sw, old.tasks == tasks {
                    if let limit = longTask, !old.reported, now - old.since >= limit {
                        old.reported = true
                        st.samples[vp.index] = old
                        suspects.append((vp, now - old.since))
                    }
                } else {
                    st.samples[vp.index] = VPSample(switches: sw, tasks: tasks, since: now, reported: false)
                }
            }
        }
        for (vp, ran) in suspects { reportLongTask(s, vp, ran) }
        if longWait != nil, now - lastWaitScan.load(ordering: .relaxed) >= waitScanPeriod {
            lastWaitScan.store(now, ordering: .relaxed)
            scanWaits(s)
        }
        return s.idle.sleeping.load(ordering: .relaxed) >= active
    }

    private func reportLongTask(_ s: Scheduler, _ vp: VirtualProcessor, _ ran: Int64) {
        let id = vp.runningContextID.load(ordering: .relaxed)
        guard let c = s.contextRegistry.lookup(id) else { return }
        // Only a context still running here, and not in a blocking call
        // (those are the retake's business).
        guard c.thread.currentState == .running, !c.isCachedIdle.load(ordering: .relaxed),
              c.kernelCallName.load(ordering: .relaxed) == 0,
              vp.runningContextID.load(ordering: .relaxed) == id else { return }
        let tid = vp.carrierTID.load(ordering: .relaxed)
        // A thread asleep in the kernel (unwrapped blocking code) is not
        // signalled: a non-restartable call (nanosleep, poll) would return
        // early with EINTR. It is reported without a backtrace.
        let state = csup_thread_state(Int32(truncatingIfNeeded: tid))
        let asleep = state == UInt8(ascii: "S") || state == UInt8(ascii: "D")
        let bt = asleep ? nil : Backtrace.ofRunningThread(tid: tid, stack: c.thread.contextRecord, timeout: .milliseconds(100))
        Watchdog.report(WatchdogReport(kind: .longTask, contextID: c.id, label: c.label, virtualProcessor: vp.index,
                                       duration: .nanoseconds(ran),
                                       detail: asleep ? "has run one task, now blocked in the kernel without a wrapper"
                                                      : "has run one task", backtrace: bt))
    }

    /// A wait scan now (the watchdog is about to park). True when some
    /// context is in a wait that may still be reported (not reported yet).
    func scanWaitsNow(_ s: Scheduler) -> Bool {
        guard longWait != nil else { return false }
        lastWaitScan.store(csup_monotonic_ns(), ordering: .relaxed)
        return scanWaits(s)
    }

    /// Reports waits past the limit (once per wait). Returns true when some
    /// context is in a reportable wait that has not been reported.
    @discardableResult
    private func scanWaits(_ s: Scheduler) -> Bool {
        guard let limit = longWait else { return false }
        let now = csup_coarse_ns()
        let all = s.registeredContexts()
        var found: [(Context, WaitReason, Int64)] = []
        var pending = false
        for c in all {
            guard let o = Scheduler.observe(c, runningOn: [:]), case .waiting(let why) = o.activity else { continue }
            switch why {
            case .event, .criticalSection, .readerWriterLock, .multipleEvents, .block: break
            case .join, .timer, .otherScheduler, .unknown: continue
            }
            let since = c.waitSince.load(ordering: .relaxed)
            if since > 0 && now - since >= limit { found.append((c, why, since)) } else { pending = true }
        }
        let live = Set(all.map(\.id))
        let fresh = state.withLock { st in
            st.reportedWaits = st.reportedWaits.filter { live.contains($0.key) }
            return found.filter { c, _, since in
                if st.reportedWaits[c.id] == since { return false }
                st.reportedWaits[c.id] = since
                return true
            }
        }
        for (c, why, since) in fresh {
            var bt: Backtrace? = Backtrace.ofSuspended(c.thread.contextRecord)
            if c.waitSince.load(ordering: .relaxed) != since { bt = nil }   // it moved on meanwhile
            Watchdog.report(WatchdogReport(kind: .longWait, contextID: c.id, label: c.label, virtualProcessor: nil,
                                           duration: .nanoseconds(now - since),
                                           detail: "waiting on \(why) (possible deadlock)", backtrace: bt))
        }
        return pending
    }
}
