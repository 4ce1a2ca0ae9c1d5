import TestSupport
import XCTest
import UMS
#if canImport(Glibc)
import Glibc
#endif

final class DeadlineTests: XCTestCase {
    func testSaturatingNanoseconds() {
        XCTAssertEqual(Duration.zero.saturatingNanoseconds, 0)
        XCTAssertEqual(Duration.nanoseconds(1).saturatingNanoseconds, 1)
        XCTAssertEqual(Duration.seconds(2).saturatingNanoseconds, 2_000_000_000)
        XCTAssertEqual(Duration.milliseconds(1.5).saturatingNanoseconds, 1_500_000)
        XCTAssertEqual(Duration.seconds(-1).saturatingNanoseconds, 0)
        XCTAssertEqual(Duration.nanoseconds(-1).saturatingNanoseconds, 0)
        XCTAssertEqual(Duration.seconds(Int64.max).saturatingNanoseconds, Int64.max)
        XCTAssertEqual((Duration.seconds(Int64.max) * 4).saturatingNanoseconds, Int64.max)
        XCTAssertEqual((Duration.seconds(Int64.min)).saturatingNanoseconds, 0)
    }

    func testDeadlines() {
        XCTAssertEqual(UMSDeadline(after: .seconds(Int64.max)), .never)
        XCTAssertFalse(UMSDeadline.never.hasPassed)
        XCTAssertEqual(UMSDeadline.never.remainingNanoseconds, Int64.max)
        let past = UMSDeadline(after: .seconds(-5))
        XCTAssertTrue(past.hasPassed)
        XCTAssertEqual(past.remaining, .zero)
        XCTAssertTrue(UMSDeadline(after: .zero).hasPassed)
        let soon = UMSDeadline(after: .milliseconds(30))
        XCTAssertTrue(past < soon && soon < .never)
        XCTAssertFalse(soon.hasPassed)
        XCTAssertGreaterThan(soon.remainingNanoseconds, 0)
        XCTAssertLessThanOrEqual(soon.remaining, .milliseconds(30))
        XCTAssertLessThanOrEqual(UMSDeadline.now, soon)
        usleep(40_000)
        XCTAssertTrue(soon.hasPassed)
        XCTAssertEqual(soon.remainingNanoseconds, 0)
        XCTAssertEqual("\(UMSDeadline.never)", "never")
    }
}
