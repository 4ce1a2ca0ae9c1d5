import TestSupport
import Foundation
import XCTest
@testable import ConcRT
import CSupport
import UMS

/// Compensation as the answer to a wrapped call that blocks while other
/// work waits (`SchedulerPolicy.retakeBlockedCalls` false). A temporary
/// VP runs beside the blocked one; the context keeps its pthread.
final class WrappedCallCompensationTests: XCTestCase {
    /// A wrapped read on the only VP blocks until a task queued behind it
    /// runs: that task runs on a temporary VP, the reader keeps its
    /// pthread, and nothing is retaken.
    func testBlockedWrappedReadIsCompensatedForAndKeepsItsPThread() throws {
        let s = try makeScheduler(1, ring: false, retake: false)
        let rounds = longMode ? 200 : 20
        for round in 0..<rounds {
            var fds: [Int32] = [0, 0]
            XCTAssertEqual(pipe(&fds), 0)
            let r = fds[0], w = fds[1]
            let got = Box<Int>(-1), sameThread = Box(false)
            let done = runAsTask(s) {
                s.scheduleTask {
                    var b: UInt8 = 5
                    _ = Glibc.write(w, &b, 1)
                }
                let tid = csup_gettid()
                var b: UInt8 = 0
                let n = Blocking.call { Glibc.read(r, &b, 1) }
                sameThread.value = csup_gettid() == tid
                got.value = n == 1 ? Int(b) : -2
            }
            XCTAssertTrue(done.wait(timeout: .seconds(20)), "round \(round): the wrapped read held the only VP: \(s.statistics)")
            close(r); close(w)
            XCTAssertEqual(got.value, 5)
            XCTAssertTrue(sameThread.value, "round \(round): the reader changed pthread across a compensated call")
        }
        XCTAssertGreaterThan(s.statistics.compensations, 0, "\(s.statistics)")
        XCTAssertEqual(s.statistics.retakes, 0, "a wrapped call was retaken with retakeBlockedCalls false: \(s.statistics)")
        XCTAssertTrue(temporaryVPsRetire(s), "a temporary VP never retired: \(s.statistics)")
        try s.shutdown()
    }

    /// After its call returns, a context that computes for long without
    /// entering the runtime does not keep its temporary VP: the monitor
    /// sees its CPU clock move and ends the compensation (the bound on the
    /// oversubscription window).
    func testComputingAfterTheCallEndsTheCompensation() throws {
        let s = try makeScheduler(1, ring: false, retake: false)
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        defer { close(fds[0]); close(fds[1]) }
        let r = fds[0], w = fds[1]
        let endedBefore = UMS.statistics.compensationsEndedComputing
        let retiredWhileComputing = Box(false)
        let done = runAsTask(s) {
            s.scheduleTask {
                var b: UInt8 = 1
                _ = Glibc.write(w, &b, 1)
            }
            var b: UInt8 = 0
            _ = Blocking.call { Glibc.read(r, &b, 1) }
            // Compute, with no runtime entry, until the temporary VP is
            // gone (or 5 s: then the assertion below fails).
            let end = monotonicNow() + 5_000_000_000
            var x: UInt64 = 1
            while monotonicNow() < end {
                for _ in 0..<1_000 { x = x &* 6364136223846793005 &+ 1 }
                if s.temporarySlotsInUse == 0 { retiredWhileComputing.value = true; break }
            }
            blackHole(x)
        }
        XCTAssertTrue(done.wait(timeout: .seconds(20)))
        XCTAssertGreaterThan(s.statistics.compensations, 0, "the read was not compensated for: \(s.statistics)")
        XCTAssertTrue(retiredWhileComputing.value,
                      "the temporary VP stayed while the context computed for 5 s: \(s.statistics), \(UMS.statistics)")
        XCTAssertGreaterThan(UMS.statistics.compensationsEndedComputing, endedBefore, "\(UMS.statistics)")
        try s.shutdown()
    }
}
