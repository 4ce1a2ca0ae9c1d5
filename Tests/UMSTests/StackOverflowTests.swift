import TestSupport
import XCTest
import Foundation

/// Runs `ums-sample --overflow-demo` (built beside the test bundle) in a
/// subprocess: the overflow must produce the clear report and SIGABRT, not
/// a bare SIGSEGV.
final class StackOverflowTests: XCTestCase {
    func testOverflowIntoGuardPagePrintsClearMessage() throws {
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let sample = exe.deletingLastPathComponent().appendingPathComponent("ums-sample")
        guard FileManager.default.isExecutableFile(atPath: sample.path) else {
            return XCTFail("ums-sample is not built at \(sample.path); run `swift build` first")
        }
        let p = Process()
        p.executableURL = sample
        p.arguments = ["--overflow-demo"]
        var env = ProcessInfo.processInfo.environment
        env["SWIFT_BACKTRACE"] = "enable=no"
        p.environment = env
        let err = Pipe()
        p.standardError = err
        p.standardOutput = Pipe()
        try p.run()
        let data = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        XCTAssertEqual(p.terminationReason, .uncaughtSignal)
        XCTAssertEqual(p.terminationStatus, SIGABRT, "abort after the report, not SIGSEGV; stderr: \(text)")
        XCTAssertTrue(text.contains("stack overflow in context 'overflow-demo'"), text)
        XCTAssertTrue(text.contains("stack size 65536 bytes"), text)
        XCTAssertTrue(text.contains("Raise the stack size"), text)
    }
}
