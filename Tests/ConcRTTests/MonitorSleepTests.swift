import TestSupport
import Foundation
import XCTest
@testable import ConcRT
import CSupport
import UMS

/// The UMS monitor's sleep (Sources/UMS/LazyKernelEntry/Monitor.swift):
/// while no primary runs a thread it sleeps, with no timeout where
/// membarrier(2) is available. The first execute and the first call entry
/// after a quiet spell must wake it; if either wake were lost, the blocked
/// read below would hold the only VP forever.
final class MonitorSleepTests: XCTestCase {
    /// Waits (bounded) until the monitor sleeps: no scheduler in the
    /// process may have a running thread meanwhile.
    private func waitForMonitorSleep(_ what: String) {
        let deadline = monotonicNow() + 5_000_000_000
        while !UMS._monitorIsAsleep && monotonicNow() < deadline { usleep(2_000) }
        XCTAssertTrue(UMS._monitorIsAsleep, "the monitor never went to sleep \(what) (ticks \(UMS.statistics.monitorTicks))")
    }

    /// One round: the monitor asleep, then a task whose unwrapped read can
    /// only end if a task queued behind it runs (compensation), or whose
    /// wrapped read can only end if the VP is retaken.
    private func blockedReadRound(_ s: Scheduler, wrapped: Bool, round: Int) throws {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        defer { close(fds[0]); close(fds[1]) }
        let r = fds[0], w = fds[1]
        waitForMonitorSleep("before round \(round)")
        let got = Box<Int>(-1)
        let done = runAsTask(s) {
            s.scheduleTask {   // behind the reader on its VP's deque
                var b: UInt8 = 7
                _ = Glibc.write(w, &b, 1)
            }
            var b: UInt8 = 0
            let n: Int
            if wrapped {
                n = Blocking.call { Glibc.read(r, &b, 1) }
            } else {
                n = Glibc.read(r, &b, 1)
            }
            got.value = n == 1 ? Int(b) : -2
        }
        XCTAssertTrue(done.wait(timeout: .seconds(10)),
                      "round \(round) (\(wrapped ? "wrapped" : "unwrapped")): the read held the only VP after the monitor slept; untimed sleep \(UMS.monitorSleepsUntimed), \(s.statistics), \(UMS.statistics)")
        XCTAssertEqual(got.value, 7)
    }

    func testFirstExecuteAndFirstCallAfterAQuietSpellWakeTheMonitor() throws {
        let s = try Scheduler(policy: SchedulerPolicy(minConcurrency: 1, maxConcurrency: 1, detectUnwrappedBlocking: true))
        let compensations = UMS.statistics.unwrappedCompensations
        let retakes = s.statistics.retakes, pinned = UMS.statistics.wrappedCallCompensations
        let rounds = longMode ? 20 : 4
        for i in 0..<rounds {
            try blockedReadRound(s, wrapped: i % 2 == 1, round: i)
        }
        XCTAssertGreaterThan(UMS.statistics.unwrappedCompensations, compensations)
        XCTAssertGreaterThan(s.statistics.retakes - retakes + UMS.statistics.wrappedCallCompensations - pinned, 0,
                             "no wrapped read was retaken or compensated for: \(s.statistics)")
        try s.shutdown()
    }
}
