import TestSupport
import Foundation
import XCTest
@testable import ConcRT
import CSupport
import UMS
#if canImport(Glibc)
import Glibc
#endif

// Regression (found by FaultInjectionTests): io_uring cancels the requests
// a thread submitted when that thread exits (-ECANCELED). A VP's ring
// operations are submitted by whichever carrier pthread runs the VP at the
// time; after a retake that carrier leaves the VP, and it ends when the
// spare list is full or its spares are stopped. A context still parked on
// an operation it submitted then got ECANCELED from a Blocking.read nobody
// interrupted. Now such a cancel (no interruption asked, no shutdown, no
// deadline passed) is resubmitted.
final class IORingCarrierExitTests: XCTestCase {
    func testRingReadSurvivesTheExitOfTheCarrierThatSubmittedIt() throws {
        let s = try ringScheduler(1, retake: true)
        guard s.ioPath == .ring else { return }   // ringScheduler has failed the test
        let p = ioPipe()
        defer { close(p.r); close(p.w) }
        let got = Locked<String>("")
        // 1. A read parks on the ring; the VP's first carrier submits it.
        let submitsBefore = s.statistics.ringSubmits
        let reader = runAsTask(s) {
            var b: UInt8 = 0
            do {
                let n = try withUnsafeMutableBytes(of: &b) { try Blocking.read(p.r, into: $0) }
                got.value = "\(n) byte(s): \(b)"
            } catch {
                got.value = "\(error)"
            }
        }
        XCTAssertTrue(eventually { s.statistics.ringSubmits > submitsBefore && s.statistics.ringOperations >= 1 }, "\(s.statistics)")
        // 2. A call that blocks while other work waits: the monitor retakes
        //    the VP; a new carrier runs it, the first one parks as a spare.
        let retakesBefore = s.statistics.retakes
        let blocker = runAsTask(s) { Blocking.call { _ = usleep(200_000) } }
        usleep(20_000)
        let other = runAsTask(s) {}
        XCTAssertTrue(other.wait(timeout: .seconds(10)), "\(s.statistics)")
        XCTAssertTrue(blocker.wait(timeout: .seconds(10)))
        XCTAssertGreaterThan(s.statistics.retakes, retakesBefore, "no retake: \(s.statistics)")
        XCTAssertTrue(eventually { s.spareCarriers.withLock { !$0.isEmpty } }, "the retaken carrier did not park")
        // 3. The first carrier ends (as it does when the spare list is full).
        s.stopSpareCarriers()
        usleep(50_000)
        XCTAssertFalse(reader.isSet, "the read returned before any byte was written: \(got.value)")
        // 4. The byte arrives: the read must see it.
        var b: UInt8 = 7
        XCTAssertEqual(write(p.w, &b, 1), 1)
        XCTAssertTrue(reader.wait(timeout: .seconds(10)), "\(s.statistics)\n\(s.snapshot(backtraces: false))")
        XCTAssertEqual(got.value, "1 byte(s): 7")
        XCTAssertGreaterThanOrEqual(s.statistics.ringResubmits, 1, "the cancel was not seen: \(s.statistics)")
        try s.shutdown(timeout: .seconds(20))
    }

    /// An interruption still ends a parked ring call with ECANCELED (the
    /// resubmission is only for cancels nobody asked for).
    func testInterruptIOStillEndsAParkedRingCall() throws {
        let s = try ringScheduler(1)
        guard s.ioPath == .ring else { return }   // ringScheduler has failed the test
        let p = ioPipe()
        defer { close(p.r); close(p.w) }
        let got = Locked<String>(""), ctx = Locked<Context?>(nil)
        let reader = runAsTask(s) {
            ctx.value = Context.current
            var b: UInt8 = 0
            do {
                _ = try withUnsafeMutableBytes(of: &b) { try Blocking.read(p.r, into: $0) }
                got.value = "read"
            } catch {
                got.value = "\((error as? BlockingError)?.errno ?? 0)"
            }
        }
        XCTAssertTrue(eventually { ctx.value != nil && s.statistics.ringOperations >= 1 })
        usleep(10_000)
        XCTAssertTrue(ctx.value!.interruptIO())
        XCTAssertTrue(reader.wait(timeout: .seconds(10)))
        XCTAssertEqual(got.value, "\(ECANCELED)")
        XCTAssertEqual(s.statistics.ringResubmits, 0)
        ctx.value = nil
        try s.shutdown(timeout: .seconds(20))
    }
}
