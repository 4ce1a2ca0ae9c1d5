import TestSupport
import Foundation
import Synchronization
import XCTest
@testable import ConcRT
import CSupport
import UMS
#if canImport(Glibc)
import Glibc
#endif

// Faults injected part-way through a stress run (issue 13, item 4): a stack
// mmap that fails (a VP making a new context when its cache is empty),
// pthread_create failing for kernel threads (hand-off calls), and for the
// spare carriers a retake needs (lazy kernel entry). The single-call cases
// are in UMSThreadTests, UMSErrorTests and LazyKernelEntryTests; here the
// failures land in the middle of many tasks that block cooperatively
// (Event, CriticalSection), in the kernel (Blocking.read on pipes,
// Blocking.call), or compute and yield.
//
// Each run checks: every task ran exactly once (a counter per task), no
// Blocking call failed (a thrown BlockingError is collected with its task
// number), nothing hung (every wait is bounded and fails with the counts
// and a scheduler snapshot), the fault was really hit (its failure
// counter moved), the scheduler recovered (work of the same kind succeeded
// after the injected failures ran out), and the process's pthreads,
// descriptors and context stacks are back within their baseline after
// shutdown, with no live context left.

final class FaultInjectionTests: XCTestCase {
    /// Process-wide threads and descriptors that the first scheduler of a
    /// process starts for good (the UMS monitor, the watchdog, Foundation's
    /// and Dispatch's own) must exist before a baseline is taken.
    private static let warmedUp: Void = {
        guard let s = try? makeScheduler(1, ring: true) else { return }
        let done = Event()
        s.scheduleTask { Blocking.call { _ = usleep(20_000) } }   // retaken: the monitor's path
        s.scheduleTask { done.set() }
        _ = done.wait(timeout: .seconds(10))
        try? s.shutdown(timeout: .seconds(10))
        onNewThread {}
    }()

    override func setUp() {
        super.setUp()
        Self.warmedUp
    }

    override func tearDown() {
        UMS._injectStackAllocationFailures(0)
        UMS._injectKernelThreadCreationFailures(0)
        Scheduler._injectSpareCarrierFailures(0)
        super.tearDown()
    }

    /// Stack mappings fail while a VP needs new contexts: many tasks are
    /// blocked at once (events, pipe reads parked on the ring), the stack
    /// cache is emptied, and the next mappings fail. The VP naps and tries
    /// again; every task still runs once.
    func testStackMappingFailsPartWayThroughAStressRun() throws {
        let before = try ResourceCounts.now()
        let s = try makeScheduler(2, cache: 1)
        let failuresBefore = s.statistics.contextCreationFailures
        let run = FaultRun(s, tasksPerHalf: Sanitizer.scaled(300, underTSan: 120))
        try run.half(0)
        // Part-way: no cached stack is left, and the next 40 mappings fail.
        UMS.trimStackCache()
        UMS._injectStackAllocationFailures(40)
        try run.half(1)
        UMS._injectStackAllocationFailures(0)
        let failures = s.statistics.contextCreationFailures - failuresBefore
        XCTAssertGreaterThan(failures, 0, "no context creation failed: the injection was not reached; \(s.statistics)")
        try run.half(2)   // after the failures: new contexts again
        try run.finish(before: before)
        print("FaultInjectionTests (stack mmap): \(failures) context creations failed; "
              + "\(s.statistics.ringResubmits) ring operations resubmitted; \(s.statistics)")
    }

    /// With no stack to be had at all, a queued task cannot run: the
    /// failure shows as a bounded shutdown that throws, naming the pending
    /// task, and in the statistics; once mappings work again the task runs
    /// and everything is released.
    func testStackMappingFailingForEverReportsThePendingTask() throws {
        let before = try ResourceCounts.now()
        let s = try makeScheduler(1, cache: 0)
        // A task holds the VP's only context (blocked on an event), so the
        // next task needs a new one.
        let gate = Event(), holding = Flag()
        let blocker = runAsTask(s) { holding.set(); gate.wait() }
        XCTAssertTrue(eventually { holding.isSet })
        UMS.trimStackCache()
        UMS._injectStackAllocationFailures(Int(Int32.max))
        let failuresBefore = s.statistics.contextCreationFailures
        let ran = Counter()
        s.scheduleTask { ran.add() }
        XCTAssertTrue(eventually(timeout: 10) { s.statistics.contextCreationFailures >= failuresBefore + 3 }, "\(s.statistics)")
        XCTAssertThrowsError(try s.shutdown(timeout: .milliseconds(100))) { e in
            XCTAssertEqual(e as? ConcRTError, .shutdownTimedOut(pendingTasks: 2))
            XCTAssertTrue("\(e)".contains("2 task(s) still pending"), "the error does not count the pending tasks: \(e)")
        }
        XCTAssertEqual(ran.value, 0)
        UMS._injectStackAllocationFailures(0)
        XCTAssertTrue(eventually(timeout: 10) { ran.value == 1 }, "the task did not run once stacks could be mapped; \(s.statistics)")
        gate.set()
        XCTAssertTrue(blocker.wait(timeout: .seconds(10)))
        try s.shutdown(timeout: .seconds(20))
        XCTAssertEqual(ran.value, 1)
        XCTAssertEqual(s.statistics.liveContexts, 0)
        let settled = try ResourceCounts.settle(within: before)
        XCTAssertTrue(settled.ok, "leaked: \(settled.last) vs baseline \(before)")
    }

    /// Kernel threads cannot be created part-way: hand-off calls (no lazy
    /// kernel entry, no ring) fall back to running on the primary, which
    /// the pipe writes from outside release. Every call completes once.
    func testKernelThreadCreationFailsPartWayThroughAStressRun() throws {
        let before = try ResourceCounts.now()
        let s = try Scheduler(policy: SchedulerPolicy(minConcurrency: 2, maxConcurrency: 2, localContextCacheSize: 4,
                                                      retakeAfter: nil, useIORing: false))
        let umsBefore = UMS.statistics
        let run = FaultRun(s, tasksPerHalf: Sanitizer.scaled(300, underTSan: 120))
        try run.half(0)
        let ktMid = UMS.statistics
        // Part-way: the next 8 kernel-thread creations fail. More calls are
        // in the kernel at once in the next half than KTs sit idle, so the
        // pool must grow and meets the failures.
        UMS._injectKernelThreadCreationFailures(8)
        try run.half(1, concurrentReaders: true)
        UMS._injectKernelThreadCreationFailures(0)
        let fallbacks = UMS.statistics.inlineFallbacks - ktMid.inlineFallbacks
        XCTAssertGreaterThan(fallbacks, 0, "no kernel thread creation failed: the injection was not reached; \(UMS.statistics)")
        let created = UMS.statistics.kernelThreadsCreated
        try run.half(2, concurrentReaders: true)
        XCTAssertGreaterThan(UMS.statistics.blockingCalls, umsBefore.blockingCalls)
        try run.finish(before: before)
        print("FaultInjectionTests (kernel threads): \(fallbacks) calls ran inline on their primary; "
              + "\(created - umsBefore.kernelThreadsCreated) KTs created; \(s.statistics)")
    }

    /// The spare carriers a retake needs cannot be created part-way: the
    /// monitor gives up those retakes (the VP waits for its call), counts
    /// them, and retakes again once pthreads can be had.
    func testSpareCarrierCreationFailsPartWayThroughAStressRun() throws {
        let before = try ResourceCounts.now()
        let s = try makeScheduler(2, cache: 4, ring: false, retake: true)
        let run = FaultRun(s, tasksPerHalf: Sanitizer.scaled(300, underTSan: 120))
        try run.half(0)
        let failuresBefore = s.statistics.retakeCarrierFailures
        // No parked spare left to take: only new pthreads, which now fail.
        s.stopSpareCarriers()
        Scheduler._injectSpareCarrierFailures(Int(Int32.max))
        try run.half(1, concurrentReaders: true)
        Scheduler._injectSpareCarrierFailures(0)
        let failures = s.statistics.retakeCarrierFailures - failuresBefore
        XCTAssertGreaterThan(failures, 0, "no spare carrier creation failed: the injection was not reached; \(s.statistics)")
        let retakesBefore = s.statistics.retakes
        try run.half(2, concurrentReaders: true)
        XCTAssertGreaterThan(s.statistics.retakes, retakesBefore, "no retake after the failures stopped; \(s.statistics)")
        try run.finish(before: before)
        print("FaultInjectionTests (spare carriers): \(failures) retakes without a carrier; \(s.statistics)")
    }
}

/// One stress run in halves (numbered from 0), each `tasksPerHalf` tasks
/// of five kinds (task number mod 5): wait on the half's gate Event; read a
/// byte from its own pipe (Blocking.read; the test thread writes it once
/// the reader has started); lock a shared CriticalSection and yield inside
/// it; compute and yield; a kernel block (`Blocking.call { usleep }`).
final class FaultRun: @unchecked Sendable {
    // @unchecked Sendable: `ran` and `readerStarted` are fixed arrays of
    // thread-safe counters and flags; `problems` is under its mutex.
    let s: Scheduler
    let perHalf: Int
    private var ran: [Counter] = []
    private var readerStarted: [Flag] = []
    private let problems = MigrationSafeMutex<[String]>([])
    private let lock = CriticalSection()
    private let inLock = Atomic<Int>(0)

    init(_ s: Scheduler, tasksPerHalf: Int) {
        self.s = s
        perHalf = tasksPerHalf
    }

    /// Runs half `h`. With `concurrentReaders`, each pipe's byte is written
    /// only once all the half's readers have started or 200 ms passed (so
    /// many reads are in the kernel at once); otherwise as each starts.
    func half(_ h: Int, concurrentReaders: Bool = false, file: StaticString = #filePath, line: UInt = #line) throws {
        let base = ran.count
        for _ in 0..<perHalf { ran.append(Counter()); readerStarted.append(Flag()) }
        let ran = self.ran, readerStarted = self.readerStarted   // fixed for this half
        let gate = Event(), finished = Counter(), allDone = Event()
        var pipes: [Int: (r: Int32, w: Int32)] = [:]
        for i in 0..<perHalf where i % 5 == 1 { pipes[i] = ioPipe() }
        defer { for (_, p) in pipes { close(p.r); close(p.w) } }
        let n = perHalf
        for i in 0..<perHalf {
            let idx = base + i, kind = i % 5, fd = pipes[i]?.r ?? -1
            s.scheduleTask { [self] in
                var rng = TestRNG(seed: UInt64(idx + 1))
                switch kind {
                case 0:
                    gate.wait()
                case 1:
                    readerStarted[idx].set()
                    var b: UInt8 = 0
                    do {
                        let got = try withUnsafeMutableBytes(of: &b) { try Blocking.read(fd, into: $0) }
                        if got != 1 || b != UInt8(truncatingIfNeeded: idx) { note("task \(idx): read \(got) byte(s), value \(b)") }
                    } catch { note("task \(idx): \(error)") }
                case 2:
                    lock.withLock {
                        if inLock.wrappingAdd(1, ordering: .relaxed).newValue != 1 { note("task \(idx): two holders of the lock") }
                        Context.yield()
                        inLock.wrappingSubtract(1, ordering: .relaxed)
                    }
                case 3:
                    var x: UInt64 = 0
                    for _ in 0..<(500 + rng.below(2_000)) { x &+= rng.next() }
                    if x == 1 { note("impossible") }   // keeps the loop
                    Context.yield()
                default:
                    Blocking.call { _ = usleep(UInt32(100 + rng.below(400))) }
                }
                if ran[idx].add() != 1 { note("task \(idx) ran twice") }
                if finished.add() == n { allDone.set() }
            }
        }
        // Release the readers (each byte once its reader started) and the gate.
        var unwritten = Set(pipes.keys)
        let deadline = csup_monotonic_ns() + 30_000_000_000
        let allStartedBy = csup_monotonic_ns() + 200_000_000
        while !unwritten.isEmpty && csup_monotonic_ns() < deadline {
            let started = unwritten.filter { readerStarted[base + $0].isSet }
            if concurrentReaders && started.count < unwritten.count && csup_monotonic_ns() < allStartedBy {
                usleep(1_000); continue
            }
            usleep(2_000)   // let them block first
            for i in started {
                var b = UInt8(truncatingIfNeeded: base + i)
                if write(pipes[i]!.w, &b, 1) != 1 { note("write to reader \(base + i): errno \(errno)") }
                unwritten.remove(i)
            }
        }
        gate.set()
        let ok = allDone.wait(timeout: .seconds(60))
        if !ok || !unwritten.isEmpty {
            XCTFail("half \(h): \(finished.value) of \(n) tasks finished, \(unwritten.count) readers never started; "
                    + "\(s.statistics)\n\(s.snapshot(backtraces: false))", file: file, line: line)
            throw FaultRunHung()
        }
        for i in 0..<perHalf where ran[base + i].value != 1 {
            XCTFail("task \(base + i) ran \(ran[base + i].value) times", file: file, line: line)
        }
        let p = problems.withLock { p in defer { p.removeAll() }; return p }
        XCTAssertEqual(p, [], "half \(h)", file: file, line: line)
    }

    /// Shuts the scheduler down (bounded) and checks that no context is
    /// live and pthreads, descriptors and stacks are within `before`.
    func finish(before: ResourceCounts, file: StaticString = #filePath, line: UInt = #line) throws {
        try s.shutdown(timeout: .seconds(30))
        XCTAssertEqual(s.statistics.liveContexts, 0, "\(s.statistics)", file: file, line: line)
        XCTAssertTrue(s.spareCarriers.withLock { $0.isEmpty }, file: file, line: line)
        let settled = try ResourceCounts.settle(within: before)
        XCTAssertTrue(settled.ok, "leaked: \(settled.last) vs baseline \(before)", file: file, line: line)
    }

    private func note(_ s: String) { problems.withLock { $0.append(s) } }
}

/// A half did not finish in time (the failure message says how far it got).
struct FaultRunHung: Error {}
