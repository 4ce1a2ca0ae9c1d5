import TestSupport
import Foundation
import XCTest
@testable import ConcRT
import CSupport
import UMS

final class SchedulerTests: XCTestCase {
    func testPolicyDefaultsAndValidation() throws {
        let p = SchedulerPolicy()
        XCTAssertEqual(p.maxConcurrency, SchedulerPolicy.availableConcurrency)
        XCTAssertEqual(p.minConcurrency, 1, "ConcRT's default MinConcurrency")
        XCTAssertEqual(p.virtualProcessorCount, SchedulerPolicy.availableConcurrency)
        XCTAssertNoThrow(try p.validate())
        func bad(_ p: SchedulerPolicy, _ needle: String) {
            XCTAssertThrowsError(try Scheduler(policy: p)) { e in
                guard case .invalidPolicy(let s)? = e as? ConcRTError else { return XCTFail("\(e)") }
                XCTAssertTrue(s.contains(needle), s)
            }
        }
        bad(SchedulerPolicy(minConcurrency: 4, maxConcurrency: 2), "exceeds")
        bad(SchedulerPolicy(minConcurrency: 0, maxConcurrency: 2), "minConcurrency")
        bad(SchedulerPolicy(maxConcurrency: 0), "maxConcurrency")
        bad(SchedulerPolicy(contextStackSize: 4096), "safe minimum")
        bad(SchedulerPolicy(targetOversubscriptionFactor: 0), "targetOversubscriptionFactor")
        bad(SchedulerPolicy(localContextCacheSize: -1), "localContextCacheSize")
    }

    func testRunReturnsAndRethrows() throws {
        let s = try makeScheduler(2)
        XCTAssertEqual(s.run { 6 * 7 }, 42)
        struct Oops: Error, Equatable {}
        XCTAssertThrowsError(try s.run { () throws(Oops) -> Int in throw Oops() }) { XCTAssertEqual($0 as? Oops, Oops()) }
        // Inside, it runs inline on the same scheduler.
        let nested = s.run { () -> Bool in
            let inner = s.run { Context.current != nil }
            return inner && Scheduler.current === s
        }
        XCTAssertTrue(nested)
        XCTAssertNil(Scheduler.current)
        try s.shutdown()
    }

    func testRunFromDispatchQueueAndManyThreads() throws {
        let s = try makeScheduler(2)
        let sum = Counter()
        DispatchQueue.concurrentPerform(iterations: 16) { i in
            sum.add(s.run { i })
        }
        XCTAssertEqual(sum.value, (0..<16).reduce(0, +))
        try s.shutdown()
    }

    func testScheduleTaskRunsEveryTaskOnceAndShutdownWaits() throws {
        let s = try makeScheduler(2)
        let n = 10_000
        let runs = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: n)
        runs.initialize(repeating: 0)
        defer { runs.deallocate() }
        let rb = Box(runs)
        for i in 0..<n {
            s.scheduleTask {
                rb.value[i] &+= 1
                if i % 100 == 0 {
                    // Tasks spawning tasks go to the local deque.
                    s.scheduleTask { rb.value[i] &+= 1 }
                }
            }
        }
        try s.shutdown()   // waits for all of them
        for i in 0..<n { XCTAssertEqual(runs[i], i % 100 == 0 ? 2 : 1, "task \(i)") }
        XCTAssertTrue(s.isShutDown)
        try s.shutdown()   // idempotent
    }

    func testShutdownTimeoutThrowsAndKeepsWork() throws {
        let s = try makeScheduler(1)
        let gate = Event()
        let done = Counter()
        s.scheduleTask { gate.wait(); done.add() }
        XCTAssertThrowsError(try s.shutdown(timeout: .milliseconds(50))) { e in
            XCTAssertEqual(e as? ConcRTError, .shutdownTimedOut(pendingTasks: 1))
        }
        XCTAssertFalse(s.isShutDown)
        gate.set()
        try s.shutdown()
        XCTAssertEqual(done.value, 1)
    }

    func testShutdownReleasesThreadsStacksAndDescriptors() throws {
        let baseline = try ResourceCounts.now()
        do {
            let s = try makeScheduler(2)
            let c = Counter()
            for _ in 0..<200 {
                s.scheduleTask {
                    try! Blocking.sleep(for: .microseconds(200))
                    c.add()
                }
            }
            try s.shutdown()
            XCTAssertEqual(c.value, 200)
        }
        let settled = try ResourceCounts.settle(within: baseline)
        XCTAssertTrue(settled.ok, "\(settled.last) vs \(baseline)")
    }

    func testStatisticsCount() throws {
        let s = try makeScheduler(2)
        for _ in 0..<100 { s.scheduleTask {} }
        s.run { try! Blocking.sleep(for: .milliseconds(1)) }
        try s.shutdown()
        let st = s.statistics
        XCTAssertGreaterThanOrEqual(st.tasksRun, 101)
        // The sleep parked the context on the timers.
        XCTAssertGreaterThanOrEqual(st.timerSleeps, 1, "\(st)")
        XCTAssertGreaterThanOrEqual(st.timerFirings, 1, "\(st)")
        XCTAssertGreaterThan(st.contextSwitches, 0)
        XCTAssertEqual(st.liveContexts, 0)
    }

    func testScheduleGroupsRunTheirTasks() throws {
        for proto in [SchedulerPolicy.SchedulingProtocol.enhanceScheduleGroupLocality, .enhanceForwardProgress] {
            let s = try Scheduler(policy: SchedulerPolicy(minConcurrency: 2, maxConcurrency: 2, schedulingProtocol: proto))
            let g1 = s.createScheduleGroup(), g2 = s.createScheduleGroup()
            XCTAssertNotEqual(g1.id, g2.id)
            let a = Counter(), b = Counter()
            let ids = Box<Set<Int>>([])
            let lock = CriticalSection()
            for _ in 0..<500 {
                g1.scheduleTask { a.add(); _ = lock.withLock { ids.value.insert(Context.current!.scheduleGroupID) } }
                g2.scheduleTask { b.add() }
            }
            try s.shutdown()
            XCTAssertEqual(a.value, 500)
            XCTAssertEqual(b.value, 500)
            XCTAssertEqual(g1.pendingTasks, 0)
            XCTAssertEqual(ids.value, [g1.id])
        }
    }

    func testIdleSchedulerSleeps() throws {
        let s = try makeScheduler(2)
        s.run {}
        usleep(100_000)  // let the spin window pass
        let cpu0 = csup_process_cpu_ns()
        usleep(300_000)
        let used = Double(csup_process_cpu_ns() - cpu0) / 1e6
        XCTAssertLessThan(used, 30, "an idle scheduler must not spin: \(used) ms CPU in 300 ms")
        try s.shutdown()
    }

    func testDefaultSchedulerExists() {
        XCTAssertEqual(Scheduler.default.run { 1 }, 1)
        XCTAssertGreaterThanOrEqual(Scheduler.default.virtualProcessorCount, 1)
    }

    /// A task on scheduler A that calls `B.run` blocks its context, not
    /// A's only virtual processor: another task on A can still run (here it
    /// releases B's body; with A's VP parked this would deadlock, so the
    /// body's wait has a timeout that reports it).
    func testRunFromAnotherSchedulersTaskBlocksTheContextNotTheVirtualProcessor() throws {
        let a = try makeScheduler(1), b = try makeScheduler(1)
        let release = Event()
        let released = Box<Bool>(false)
        let done = runAsTask(a) {
            released.value = b.run { release.wait(timeout: .seconds(10)) }
        }
        XCTAssertTrue(eventually { a.statistics.blocks >= 1 }, "A's task should block its context in B.run")
        runAsTask(a) { release.set() }.wait()
        done.wait()
        XCTAssertTrue(released.value, "B's body was not released: A's virtual processor was held by B.run")
        try a.shutdown()
        try b.shutdown()
    }

    /// An idle VP beside one that runs a single long task wakes rarely: its
    /// watch timeout backs off to 10 ms (the idle protocol). The 1 ms poll
    /// it replaces woke it about 300 times in these 300 ms.
    func testIdleVirtualProcessorBesideABusyOneStaysAsleep() throws {
        let s = try makeScheduler(2)
        // Let both VPs settle asleep first.
        runAsTask(s) {}.wait()
        usleep(20_000)
        let before = s.statistics
        runAsTask(s) {
            let end = monotonicNow() + 300_000_000
            while monotonicNow() < end {}
        }.wait()
        let after = s.statistics
        try s.shutdown()
        let wakes = (after.idleSleeps - before.idleSleeps) + (after.idleWatchExpiries - before.idleWatchExpiries)
        XCTAssertLessThan(wakes, 100, "the idle VP woke \(wakes) times in 300 ms beside a busy one")
    }
}
