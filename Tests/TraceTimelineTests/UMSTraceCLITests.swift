import Foundation
@testable import TraceTimeline
import XCTest

/// Runs the `ums-trace` executable that `swift test` builds beside the
/// test bundle.
final class UMSTraceCLITests: XCTestCase {
    func run(_ args: [String]) throws -> (Int32, String) {
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let bin = exe.deletingLastPathComponent().appendingPathComponent("ums-trace")
        guard FileManager.default.isExecutableFile(atPath: bin.path) else {
            XCTFail("ums-trace is not built at \(bin.path)")
            return (-1, "")
        }
        let p = Process()
        p.executableURL = bin
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    private func write(_ text: String, _ name: String) throws -> String {
        let path = NSTemporaryDirectory() + "ums-trace-\(getpid())-\(name)"
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func testCheckAndPNG() throws {
        let input = try write(TimelineTests.sample, "ok.json")
        let (status, out) = try run(["check", input])
        XCTAssertEqual(status, 0, out)
        XCTAssertTrue(out.contains("VP 0 (pid 1 tid 0): 3 spans"), out)
        XCTAssertTrue(out.contains("runtime (pid 1 tid 1000): 0 spans [], depth 0, 1 instants [retake 1]"), out)
        XCTAssertTrue(out.contains("OK: 15 events, 3 tracks, 1.500 ms"), out)
        XCTAssertFalse(out.contains("dropped"), out)
        let dropped = try write(#"{"otherData":{"dropped":2},"traceEvents":[{"ph":"i","name":"a","pid":1,"tid":0,"ts":1}]}"#, "dropped.json")
        let (sd, od) = try run(["check", dropped])
        XCTAssertEqual(sd, 0, od)
        XCTAssertTrue(od.contains("note: the trace reports 2 dropped event(s) (otherData.dropped)"), od)

        let png = NSTemporaryDirectory() + "ums-trace-\(getpid())-out.png"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: png) }
        let (s2, o2) = try run(["png", input, png, "--width", "700", "--start-us", "100", "--end-us", "1200"])
        XCTAssertEqual(s2, 0, o2)
        XCTAssertTrue(o2.hasPrefix("wrote \(png): 700x"), o2)
        let file = try PNGFile([UInt8](Data(contentsOf: URL(fileURLWithPath: png))))
        XCTAssertEqual(file.width, 700)
        XCTAssertGreaterThan(Set(try file.pixels()).count, 10, "an image of one colour")
    }

    func testCheckRejectsWithAClearMessage() throws {
        let unbalanced = try write(#"{"traceEvents":[{"ph":"B","name":"task","pid":1,"tid":0,"ts":5}]}"#, "open.json")
        let (s1, o1) = try run(["check", unbalanced])
        XCTAssertEqual(s1, 1, o1)
        XCTAssertTrue(o1.contains("Error: \(unbalanced): invalid trace: tid 0 (pid 1 tid 0): span \"task\" opened by event #0 at 5.000 us is never closed"), o1)
        let back = try write(#"{"traceEvents":[{"ph":"i","name":"a","pid":1,"tid":2,"ts":5},{"ph":"i","name":"b","pid":1,"tid":2,"ts":4}]}"#, "back.json")
        let (s2, o2) = try run(["check", back])
        XCTAssertEqual(s2, 1, o2)
        XCTAssertTrue(o2.contains("event #1 (i \"b\") at 4.000 us goes back in time: event #0 was at 5.000 us"), o2)
        let bad = try write("{\"traceEvents\":[", "bad.json")
        let (s3, o3) = try run(["check", bad])
        XCTAssertEqual(s3, 1, o3)
        XCTAssertTrue(o3.contains("not valid JSON: unexpected end of input, expected a value at line 1, column 17"), o3)
        // A PNG is not written from an invalid trace.
        let png = NSTemporaryDirectory() + "ums-trace-\(getpid())-never.png"
        let (s4, _) = try run(["png", unbalanced, png])
        XCTAssertEqual(s4, 1)
        XCTAssertFalse(FileManager.default.fileExists(atPath: png))
        // --lenient draws it anyway and warns.
        addTeardownBlock { try? FileManager.default.removeItem(atPath: png) }
        let (s5, o5) = try run(["png", unbalanced, png, "--lenient"])
        XCTAssertEqual(s5, 0, o5)
        XCTAssertTrue(o5.contains("warning: \(unbalanced): 1 violation(s) passed over (--lenient)"), o5)
        XCTAssertTrue(FileManager.default.fileExists(atPath: png))
    }
}
