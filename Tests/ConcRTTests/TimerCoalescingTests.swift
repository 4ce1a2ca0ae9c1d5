import TestSupport
import Foundation
import Synchronization
import XCTest
@testable import ConcRT
import CSupport
import UMS

// Timer coalescing: Blocking.sleep(for:tolerance:) and
// Event.wait(timeout:tolerance:). Each sleeper records when it woke; the
// scheduler counts the timer batches it fired. Slack for scheduling on a
// loaded machine: a sleeper may wake up to timerSlack (50 ms) after
// deadline + tolerance, never before its deadline.


final class TimerCoalescingTests: XCTestCase {
    /// Two sleepers whose windows [20, 30] ms and [25, 35] ms overlap wake
    /// in one batch (at 30 ms); with no tolerance they need two (20, 25).
    func testOverlappingWindowsFireInOneBatch() throws {
        let coalesced = try twoSleepers(tolerance: .milliseconds(10))
        XCTAssertEqual(coalesced.batches, 1, "overlapping windows should fire together: \(coalesced)")
        let exact = try twoSleepers(tolerance: .zero)
        XCTAssertEqual(exact.batches, 2, "without tolerance each deadline fires on its own: \(exact)")
    }

    private func twoSleepers(tolerance: Duration) throws -> (batches: Int, late: [String]) {
        let s = try makeScheduler(1)
        let problems = MigrationSafeMutex<[String]>([])
        let ready = Counter(), go = Event(), done = Counter(), allDone = Event()
        let delays: [Int64] = [20_000_000, 25_000_000]
        let tol = tolerance.saturatingNanoseconds
        for d in delays {
            s.scheduleTask {
                ready.add()
                go.wait()
                let t0 = csup_monotonic_ns()
                try! Blocking.sleep(for: .nanoseconds(d), tolerance: tolerance)
                let slept = csup_monotonic_ns() - t0
                if slept < d { problems.withLock { $0.append("woke after \(slept) ns, before its \(d) ns deadline") } }
                if slept > d + tol + timerSlack { problems.withLock { $0.append("woke after \(slept) ns, past \(d + tol) + timerSlack") } }
                if done.add() == delays.count { allDone.set() }
            }
        }
        XCTAssertTrue(eventually { ready.value == delays.count && s.statistics.blocks >= delays.count })
        let before = s.statistics.timerFirings
        go.set()
        XCTAssertTrue(allDone.wait(timeout: .seconds(10)))
        let batches = s.statistics.timerFirings - before
        try s.shutdown(timeout: .seconds(10))
        XCTAssertEqual(problems.withLock { $0 }, [])
        return (batches, problems.withLock { $0 })
    }

    /// An Event wait's timeout coalesces with a sleep: windows [20, 30] and
    /// [25, 35] ms fire in one batch; the wait reports the timeout and
    /// never ends before it.
    func testEventWaitTimeoutCoalescesWithASleep() throws {
        let s = try makeScheduler(1)
        let problems = MigrationSafeMutex<[String]>([])
        let ready = Counter(), go = Event(), done = Counter(), allDone = Event()
        let never = Event()
        s.scheduleTask {
            ready.add(); go.wait()
            let t0 = csup_monotonic_ns()
            if never.wait(timeout: .milliseconds(20), tolerance: .milliseconds(10)) { problems.withLock { $0.append("wait: signaled") } }
            let waited = csup_monotonic_ns() - t0
            if waited < 20_000_000 { problems.withLock { $0.append("wait ended after \(waited) ns") } }
            if done.add() == 2 { allDone.set() }
        }
        s.scheduleTask {
            ready.add(); go.wait()
            let t0 = csup_monotonic_ns()
            try! Blocking.sleep(for: .milliseconds(25), tolerance: .milliseconds(10))
            if csup_monotonic_ns() - t0 < 25_000_000 { problems.withLock { $0.append("sleep ended early") } }
            if done.add() == 2 { allDone.set() }
        }
        XCTAssertTrue(eventually { ready.value == 2 && s.statistics.blocks >= 2 })
        let before = s.statistics.timerFirings
        go.set()
        XCTAssertTrue(allDone.wait(timeout: .seconds(10)))
        XCTAssertEqual(s.statistics.timerFirings - before, 1, "\(s.statistics)")
        try s.shutdown(timeout: .seconds(10))
        XCTAssertEqual(problems.withLock { $0 }, [])
    }

    /// Many sleepers with random deadlines and tolerances on 2 VPs: none
    /// wakes before its deadline or past deadline + tolerance + timerSlack, and
    /// there are fewer batches than sleeps.
    func testManySleepersNeverEarlyNeverPastTheirWindow() throws {
        let s = try makeScheduler(2)
        let n = longMode ? 20_000 : 2_000
        let sleepers = RandomSleepers(on: s, tasks: n, seedOffset: 1, deadlineSpread: 10_000_000, maxTolerance: 3_000_000)
        XCTAssertTrue(sleepers.allDone.wait(timeout: .seconds(60)))
        try s.shutdown(timeout: .seconds(10))
        XCTAssertEqual(sleepers.problems, [])
        let st = s.statistics
        XCTAssertEqual(st.timerSleeps, 5 * n)
        XCTAssertLessThan(st.timerFirings, st.timerSleeps, "\(st)")
    }
}
