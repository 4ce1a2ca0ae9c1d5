import TestSupport
import XCTest
import UMS

/// The shared test support must fail loudly, not pass trivially.
final class TestSupportTests: XCTestCase {
    func testResourceCountsAreRealAndUnreadableProcThrows() throws {
        let c = try ResourceCounts.now()
        XCTAssertGreaterThanOrEqual(c.threads, 1, "this pthread at least")
        XCTAssertGreaterThanOrEqual(c.fds, 3, "stdin, stdout, stderr")
        XCTAssertThrowsError(try ResourceCounts.countEntries(in: "/proc/self/no-such-directory")) { e in
            XCTAssertTrue("\(e)".contains("cannot read /proc/self/no-such-directory"), "\(e)")
        }
        // A pthread that is alive is counted, and a leak is not "within".
        let release = Flag(), started = Flag()
        let t = Thread { started.set(); while !release.isSet { usleep(1000) } }
        t.start()
        XCTAssertTrue(eventually { started.isSet })
        let more = try ResourceCounts.now()
        XCTAssertFalse(more.isWithin(c), "\(more) vs \(c)")
        release.set()
        let settled = try ResourceCounts.settle(within: c)
        XCTAssertTrue(settled.ok, "\(settled.last) vs \(c)")
    }
}
