import XCTest
@testable import PPL
import ConcRT

final class SmokeTests: XCTestCase {
    func testParallelInvokeFromOutsideRunsOnDefaultScheduler() throws {
        let (a, b) = try parallelInvoke({ 1 }, { 2 })
        XCTAssertEqual(a + b, 3)
    }
}
