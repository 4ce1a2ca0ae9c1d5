import Foundation
import Synchronization
import XCTest
@testable import PPL
import ConcRT
import CSupport
import UMS
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

// The soak (issue 13, item 5): random mixes of compute, yields,
// cooperative blocks (Event, CriticalSection), kernel blocks (Blocking.read,
// poll, sleep and call on pipes), nested parallel work, cancellation
// (tokens, group cancel, tasks that throw) and scheduler shutdown and
// re-creation, run in rounds ("batches" of one TaskGroup each) on a series
// of schedulers ("epochs", each with a random policy).
//
// Length: LONG=1 soaks for 10 minutes in release
// (`LONG=1 swift test -c release --filter SoakTests`), 1 minute in debug,
// 30 s under a sanitizer; otherwise 10 s, and 3 s under a sanitizer (TSan
// and ASan slow every switch and keep a fiber state per context). The
// seed is printed; SOAK_SEED=N replays its random choices.
//
// Invariants checked:
// - every task of a batch ran at most once; a batch that completed ran each
//   task exactly once; a task that started always finished (no lost task);
//   a batch with a throwing task rethrows that error, a canceled one
//   reports .canceled;
// - CriticalSection: a plain counter under it equals the lock holders;
// - fire-and-forget tasks scheduled just before shutdown all run;
// - after each shutdown no context is live, and descriptors and context
//   stacks are back within their baseline; pthreads too, at the end;
// - no hang: the driver waits in 1 s steps and fails with a scheduler
//   snapshot when no task finished for the stall limit (30 s).

final class SoakTests: XCTestCase {
    func testSoak() throws {
        // LONG=1: 10 minutes in release; a minute in debug and 30 s under a
        // sanitizer, so `LONG=1 ./ums.sh test` (which runs this in each
        // stage) stays bounded.
        let seconds: Double = Sanitizer.any ? (longMode ? 30 : 3)
            : _isDebugAssertConfiguration() ? (longMode ? 60 : 10) : (longMode ? 600 : 10)
        // SOAK_SEED=N replays a run's random choices (printed on failure);
        // thread interleavings differ, so it narrows a failure, not more.
        let seed = ProcessInfo.processInfo.environment["SOAK_SEED"].flatMap { UInt64($0) } ?? (UInt64(csup_monotonic_ns()) | 1)
        let soak = Soak(seed: seed, seconds: seconds)
        try soak.run()
        print("SoakTests: \(soak.report)")
    }
}

/// Totals over the whole soak (reported at the end).
struct SoakTotals: CustomStringConvertible {
    var epochs = 0, batches = 0, tasksRun = 0, tasksDiscarded = 0
    var canceledBatches = 0, failedBatches = 0, finalTasks = 0
    var blocks = 0, kernelBlocks = 0, ringOperations = 0, ringResubmits = 0, retakes = 0, timerSleeps = 0, yields = 0
    var contextsCreated = 0, leaks: [String] = []

    var description: String {
        "\(epochs) schedulers (restarts), \(batches) batches, \(tasksRun) tasks run, \(tasksDiscarded) discarded by "
            + "cancellation, \(canceledBatches) batches canceled, \(failedBatches) rethrew a task's error, "
            + "\(finalTasks) tasks run across a shutdown; cooperative blocks \(blocks), yields \(yields), "
            + "kernel blocks \(kernelBlocks) (+\(ringOperations) on io_uring, \(ringResubmits) resubmitted, \(retakes) retakes, "
            + "\(timerSleeps) timer sleeps), contexts created \(contextsCreated); leaks found: "
            + (leaks.isEmpty ? "none" : leaks.joined(separator: "; "))
    }
}

/// Thrown by a task of an "error" batch; the batch must rethrow it.
struct SoakError: Error, Equatable { let batch: Int }

/// The soak driver. Runs on the test's thread; tasks report through
/// atomics and per-task counters.
final class Soak: @unchecked Sendable {
    // @unchecked Sendable: `rng` and `totals` are touched only by the
    // driver's thread; everything tasks touch is atomic or locked.
    private var rng: TestRNG
    private let seconds: Double
    private(set) var totals = SoakTotals()
    /// Tasks finished (any batch): the watchdog's progress counter.
    let progress = Counter()
    private let stallLimitSeconds = 30
    private let seed: UInt64
    private var baselineInventory = Inventory(fds: [], threads: [])

    init(seed: UInt64, seconds: Double) {
        self.seed = seed
        rng = TestRNG(seed: seed)
        self.seconds = seconds
    }

    var report: String { "seed \(seed), \(Int(seconds)) s: \(totals)" }

    func run() throws {
        warmUpProcessSingletons()
        UMS.trimStackCache()
        let baseline = try ResourceCounts.now()
        baselineInventory = Inventory.now()
        let end = csup_monotonic_ns() + Int64(seconds * 1e9)
        while csup_monotonic_ns() < end {
            try epoch(until: min(end, csup_monotonic_ns() + Int64(500_000_000 + rng.below(2_000_000_000))), baseline: baseline)
        }
        let settled = try ResourceCounts.settle(within: baseline)
        if !settled.ok { totals.leaks.append("at the end: \(settled.last) vs baseline \(baseline); \(Inventory.now().added(since: baselineInventory))") }
        XCTAssertTrue(totals.leaks.isEmpty, "seed \(seed): \(totals.leaks)")
        XCTAssertGreaterThan(totals.epochs, 1, "no scheduler was re-created")
        XCTAssertGreaterThan(totals.tasksRun, 0)
    }

    /// One scheduler, with a random policy, until `until`; then shutdown
    /// with fire-and-forget tasks still queued, and the leak checks.
    private func epoch(until: Int64, baseline: ResourceCounts) throws {
        let vps = 1 + rng.below(3)
        let policy = SchedulerPolicy(minConcurrency: vps, maxConcurrency: vps,
                                     localContextCacheSize: rng.below(9),
                                     retakeAfter: rng.below(4) == 0 ? nil : .microseconds(20),
                                     useIORing: rng.below(2) == 0)
        let s = try Scheduler(policy: policy)
        totals.epochs += 1
        while csup_monotonic_ns() < until {
            try batch(s)
        }
        // Shutdown with work in flight: it must wait for these, not drop them.
        let finals = rng.below(32), ranFinal = Counter()
        for i in 0..<finals {
            s.scheduleTask {
                if i % 3 == 0 { try? Blocking.sleep(for: .microseconds(200)) } else { Context.yield() }
                ranFinal.add()
            }
        }
        do {
            try s.shutdown(timeout: .seconds(Int64(stallLimitSeconds)))
        } catch {
            XCTFail("seed \(seed): shutdown: \(error); \(s.statistics)\n\(s.snapshot(backtraces: false))")
            throw error
        }
        XCTAssertEqual(ranFinal.value, finals, "seed \(seed): tasks scheduled before shutdown were lost")
        totals.finalTasks += ranFinal.value
        let st = s.statistics
        totals.blocks += st.blocks; totals.kernelBlocks += st.kernelBlocks; totals.ringOperations += st.ringOperations
        totals.retakes += st.retakes; totals.ringResubmits += st.ringResubmits; totals.timerSleeps += st.timerSleeps; totals.yields += st.yields
        totals.contextsCreated += st.contextsCreated
        if st.liveContexts != 0 { totals.leaks.append("epoch \(totals.epochs): \(st.liveContexts) live contexts after shutdown") }
        // Descriptors and stacks settle at once (the scheduler's own are
        // closed by shutdown); pthreads are checked at the end (idle
        // Dispatch workers of the test harness linger for seconds).
        let now = try ResourceCounts.now()
        if now.fds > baseline.fds || now.stacks > baseline.stacks {
            totals.leaks.append("epoch \(totals.epochs): \(now) vs baseline \(baseline); \(Inventory.now().added(since: baselineInventory))")
        }
    }

    /// One TaskGroup of random tasks, maybe canceled part-way (token or
    /// group), maybe with a task that throws.
    private func batch(_ s: Scheduler) throws {
        totals.batches += 1
        let id = totals.batches
        let n = 8 + rng.below(120)
        let mode = rng.below(8)   // 0: canceled by token, 1: by group.cancel(), 2: a task throws, else none
        let source = CancellationTokenSource()
        let group = TaskGroup(scheduler: s, token: source.token)
        let started = (0..<n).map { _ in Counter() }, finished = (0..<n).map { _ in Counter() }
        let gate = Event()
        let cs = CriticalSection(), csCount = Box(0), csTasks = Counter()
        let thrower = mode == 2 ? rng.below(n) : -1
        var pipes: [Int: (r: Int32, w: Int32)] = [:]
        var kinds: [Int] = []
        for i in 0..<n {
            let k = rng.below(10)
            kinds.append(k)
            if k == 4 || k == 6 {
                var fds: [Int32] = [0, 0]
                guard pipe(&fds) == 0 else { throw SoakSetupError(what: "pipe: errno \(errno)") }
                pipes[i] = (fds[0], fds[1])
            }
        }
        defer { for (_, p) in pipes { close(p.r); close(p.w) } }
        let problems = MigrationSafeMutex<[String]>([])
        let progress = self.progress
        for i in 0..<n {
            let kind = kinds[i], fd = pipes[i]?.r ?? -1, taskSeed = rng.next()
            let started = started[i], finished = finished[i]
            group.run {
                if started.add() != 1 { problems.withLock { $0.append("task \(i) started twice") } }
                defer {
                    finished.add()
                    progress.add()
                }
                var r = TestRNG(seed: taskSeed)
                if i == thrower { throw SoakError(batch: id) }
                switch kind {
                case 0:   // compute, watching for cancellation
                    var x: UInt64 = 0
                    for j in 0..<(1_000 + r.below(20_000)) {
                        x &+= r.next()
                        if j & 1023 == 0 { try checkCancellation() }
                    }
                    if x == 42 { problems.withLock { $0.append("unlikely") } }
                case 1:   // yields
                    for _ in 0..<(1 + r.below(4)) { Context.yield() }
                case 2:   // cooperative block on an Event the driver sets
                    gate.wait()
                case 3:   // CriticalSection (cooperative block when contended)
                    cs.withLock {
                        csCount.value += 1
                        if r.below(4) == 0 { Context.yield() }
                    }
                    csTasks.add()
                case 4:   // kernel block: a pipe read the driver releases
                    var b: UInt8 = 0
                    let got = try withUnsafeMutableBytes(of: &b) { try Blocking.read(fd, into: $0) }
                    if got != 1 || b != UInt8(truncatingIfNeeded: i) { problems.withLock { $0.append("task \(i): read \(got), \(b)") } }
                case 5:   // timer sleep
                    try Blocking.sleep(for: .microseconds(Int64(r.below(500))))
                case 6:   // poll with a timeout, then read
                    var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                    let ready = try Blocking.poll(&p, count: 1, timeoutMilliseconds: 20_000)
                    if ready != 1 { problems.withLock { $0.append("task \(i): poll returned \(ready)") } }
                    var b: UInt8 = 0
                    _ = try withUnsafeMutableBytes(of: &b) { try Blocking.read(fd, into: $0) }
                case 7:   // a blocking call (lazy kernel entry or a kernel thread)
                    Blocking.call { _ = usleep(UInt32(50 + r.below(300))) }
                case 8:   // nested fork/join
                    let (a, b) = parallelInvoke({ (0..<200).reduce(0, +) }, { (0..<100).reduce(0, +) })
                    if a != 19_900 || b != 4_950 { problems.withLock { $0.append("task \(i): parallelInvoke \(a), \(b)") } }
                    let sum = Counter()
                    try parallelFor(0..<64) { k in sum.add(k) }
                    if sum.value != 2_016 && !isTaskCancellationRequested() {
                        problems.withLock { $0.append("task \(i): parallelFor sum \(sum.value)") }
                    }
                default:  // a nested group
                    let inner = TaskGroup()
                    let c = Counter()
                    for _ in 0..<4 { inner.run { c.add(); Context.yield() } }
                    let st = try inner.wait()
                    if st == .completed && c.value != 4 { problems.withLock { $0.append("task \(i): nested group ran \(c.value) of 4") } }
                }
            }
        }
        // Release the cooperative and kernel blocks, and cancel part-way.
        let cancelAt = mode <= 1 ? rng.below(max(1, pipes.count)) : -1
        if rng.below(2) == 0 { usleep(UInt32(rng.below(1_000))) }   // let some reads block first
        for (j, (i, p)) in pipes.sorted(by: { $0.key < $1.key }).enumerated() {
            if j == cancelAt { if mode == 0 { source.cancel() } else { group.cancel() } }
            var b = UInt8(truncatingIfNeeded: i)
            if write(p.w, &b, 1) != 1 { throw SoakSetupError(what: "write: errno \(errno)") }
        }
        if cancelAt >= 0 && pipes.isEmpty { if mode == 0 { source.cancel() } else { group.cancel() } }
        gate.set()
        let outcome = try waitBounded(group, s, batch: id)
        // Accounting.
        var ran = 0
        for i in 0..<n {
            let st = started[i].value, fin = finished[i].value
            if st > 1 || fin != st { XCTFail("seed \(seed) batch \(id) task \(i) (kind \(kinds[i])): started \(st), finished \(fin)") }
            ran += st
        }
        totals.tasksRun += ran
        totals.tasksDiscarded += n - ran
        XCTAssertEqual(problems.withLock { $0 }, [], "seed \(seed) batch \(id)")
        XCTAssertEqual(csCount.value, csTasks.value, "seed \(seed) batch \(id): CriticalSection let two holders in")
        switch outcome {
        case .success(.completed):
            XCTAssertTrue(mode >= 3, "seed \(seed) batch \(id): mode \(mode) completed")
            if ran != n || (0..<n).contains(where: { finished[$0].value != started[$0].value }) {
                XCTFail("seed \(seed) batch \(id): wait() returned .completed with \(n - ran) task(s) not run and "
                        + "\((0..<n).filter { finished[$0].value != started[$0].value }.count) still running; "
                        + "\(s.statistics)\n\(s.snapshot(backtraces: true))")
            }
        case .success(.canceled):
            XCTAssertTrue(mode <= 1, "seed \(seed) batch \(id): canceled in mode \(mode)")
            totals.canceledBatches += 1
        case .failure(let e):
            XCTAssertEqual(e as? SoakError, mode == 2 ? SoakError(batch: id) : nil, "seed \(seed) batch \(id): \(e)")
            totals.failedBatches += 1
        }
    }

    /// group.wait() on a helper pthread, watched: fails with a snapshot
    /// when no task anywhere finished for the stall limit.
    private func waitBounded(_ group: TaskGroup, _ s: Scheduler, batch: Int) throws -> Result<TaskGroupStatus, any Error> {
        let result = Locked<Result<TaskGroupStatus, any Error>?>(nil)
        let done = Event()
        let t = Thread {
            let r = Result { try group.wait() }
            result.value = r
            done.set()
        }
        t.stackSize = 1 << 20
        t.start()
        var last = progress.value, stalled = 0
        while !done.wait(timeout: .seconds(1)) {
            let p = progress.value
            if p != last { last = p; stalled = 0; continue }
            stalled += 1
            if stalled >= stallLimitSeconds {
                XCTFail("seed \(seed) batch \(batch): no task finished for \(stallLimitSeconds) s; "
                        + "\(s.statistics)\n\(s.snapshot(backtraces: true))")
                throw SoakSetupError(what: "stalled")
            }
        }
        return result.value!
    }
}

/// Starts what the process keeps for its lifetime once a scheduler has
/// run (the UMS monitor and watchdog threads, the retake observer's symbol
/// cache, Foundation's and Dispatch's own descriptors), so that a baseline
/// taken afterwards counts only what a run may leak.
func warmUpProcessSingletons() {
    guard let s = try? Scheduler(policy: SchedulerPolicy(minConcurrency: 1, maxConcurrency: 1)) else { return }
    let done = Event()
    s.scheduleTask { Blocking.call { _ = usleep(20_000) } }   // retaken: the monitor's path
    s.scheduleTask { done.set() }
    _ = done.wait(timeout: .seconds(10))
    try? s.shutdown(timeout: .seconds(10))
    onNewThread {}
}

/// What the process holds, for a leak report: descriptor targets and
/// thread names.
struct Inventory {
    var fds: [String], threads: [String]

    static func now() -> Inventory {
        let fm = FileManager.default
        let fds = ((try? fm.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).map {
            (try? fm.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)")) ?? "?"
        }
        let threads = ((try? fm.contentsOfDirectory(atPath: "/proc/self/task")) ?? []).map {
            ((try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8)) ?? "?")
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return Inventory(fds: fds.sorted(), threads: threads.sorted())
    }

    /// Entries here and not in `base` (as multisets).
    func added(since base: Inventory) -> String {
        func minus(_ a: [String], _ b: [String]) -> [String] {
            var left = b
            return a.filter { x in
                if let i = left.firstIndex(of: x) { left.remove(at: i); return false }
                return true
            }
        }
        return "new descriptors \(minus(fds, base.fds)), new threads \(minus(threads, base.threads))"
    }
}

struct SoakSetupError: Error, CustomStringConvertible {
    let what: String
    var description: String { "Soak: \(what)" }
}
