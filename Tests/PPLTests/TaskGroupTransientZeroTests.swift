import ConcRT
import Foundation
import Synchronization
import TestSupport
import XCTest
@testable import PPL

/// A task group's count can reach zero and rise again while `run` is still
/// adding tasks. A finisher delayed between its decrement to zero and its
/// wake-up (a preempted pthread) must not wake a `wait()` that registered
/// after newer tasks were added. (The soak saw this once: `wait()` returned
/// `.completed` with 92 tasks not started. Model: Tests/Models/taskgroup.pml.)
final class TaskGroupTransientZeroTests: XCTestCase {
    func testStaleZeroDoesNotWakeALaterWaiter() throws {
        let s = try Scheduler(policy: SchedulerPolicy(minConcurrency: 1, maxConcurrency: 1))
        defer { try? s.shutdown(timeout: .seconds(10)) }
        let g = TaskGroup(scheduler: s)
        let atZero = Event(), resume = Event(), gate = Event(), returned = Event()
        let held = Atomic<Bool>(false)
        // Hold the first finisher of `g` at its zero, as a preempted
        // pthread would be held: its context parks until `resume`.
        TaskGroup._afterCountReachedZero = { group in
            guard group === g, !held.exchange(true, ordering: .relaxed) else { return }
            atZero.set()
            resume.wait()
        }
        TaskGroup._zeroHookArmed.store(true, ordering: .releasing)
        defer { TaskGroup._zeroHookArmed.store(false, ordering: .releasing) }

        g.run {}                                      // A: finishes, count 1 -> 0, held
        XCTAssertTrue(atZero.wait(timeout: .seconds(10)), "the first task never finished")
        let bRan = Counter()
        g.run { bRan.add(); gate.wait() }             // B: count 0 -> 1, blocks on the gate
        let status = Locked<Result<TaskGroupStatus, any Error>?>(nil)
        let waiter = Thread {
            status.value = Result { try g.wait() }
            returned.set()
        }
        waiter.start()
        let deadline = Date().addingTimeInterval(10)
        while g._waiterCount == 0 && Date() < deadline { usleep(1_000) }
        XCTAssertEqual(g._waiterCount, 1, "wait() never registered")

        resume.set()                                  // A's finisher goes on to wake waiters
        XCTAssertFalse(returned.wait(timeout: .milliseconds(300)),
                       "wait() returned while B was still running (woken by a stale zero); B ran \(bRan.value) time(s)")
        XCTAssertEqual(bRan.value, 1)
        gate.set()
        XCTAssertTrue(returned.wait(timeout: .seconds(10)), "wait() did not return after the last task")
        XCTAssertEqual(try status.value?.get(), .completed)
    }
}
