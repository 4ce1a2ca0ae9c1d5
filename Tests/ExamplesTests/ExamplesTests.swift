import Foundation
import XCTest

/// Builds are done by `swift test` (every executable target is built);
/// each test runs an example in its short mode and checks its output.
final class ExamplesTests: XCTestCase {
    /// Runs an example built beside the test bundle; returns (status, stdout+stderr).
    func run(_ name: String, _ args: [String], timeout: TimeInterval = 300) throws -> (Int32, String) {
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let bin = exe.deletingLastPathComponent().appendingPathComponent(name)
        guard FileManager.default.isExecutableFile(atPath: bin.path) else {
            XCTFail("example \(name) is not built at \(bin.path)")
            return (-1, "")
        }
        let p = Process()
        p.executableURL = bin
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let deadline = Date().addingTimeInterval(timeout)
        let data = out.fileHandleForReading.readDataToEndOfFile()
        while p.isRunning && Date() < deadline { usleep(10_000) }
        if p.isRunning { p.terminate(); XCTFail("\(name) timed out") }
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    func testFib() throws {
        let (status, out) = try run("fib", ["--short"])
        XCTAssertEqual(status, 0, out)
        XCTAssertTrue(out.contains("fib(27) = 196418"), out)
    }

    func testNQueensCountAndFirst() throws {
        let (status, out) = try run("nqueens", ["--short"])
        XCTAssertEqual(status, 0, out)
        XCTAssertTrue(out.contains("solutions: 724"), out)
        let (s2, first) = try run("nqueens", ["--short", "--first"])
        XCTAssertEqual(s2, 0, first)
    }

    func testSortSortsWithAllThree() throws {
        let (status, out) = try run("sort", ["--short"])
        XCTAssertEqual(status, 0, out)
        XCTAssertGreaterThanOrEqual(out.components(separatedBy: "sorted: true").count - 1, 3, out)
        XCTAssertFalse(out.contains("sorted: false"), out)
    }

    func testGrepCountsMatchesOnAFixtureTree() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ums-grep-\(getpid())")
        try? FileManager.default.removeItem(at: dir)
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("a/b"), withIntermediateDirectories: true)
        var expected = 0
        for f in 0..<12 {
            var text = ""
            for line in 0..<(200 + f * 37) {
                if (line + f) % 17 == 0 { text += "line \(line) has the NEEDLE in it\n"; expected += 1 }
                else { text += "line \(line) is hay hay hay\n" }
            }
            let sub = f % 3 == 0 ? "a/b" : (f % 3 == 1 ? "a" : "")
            try text.write(to: dir.appendingPathComponent(sub).appendingPathComponent("file\(f).txt"), atomically: true, encoding: .utf8)
        }
        defer { try? FileManager.default.removeItem(at: dir) }
        let (status, out) = try run("grep", ["NEEDLE", dir.path])
        XCTAssertEqual(status, 0, out)
        XCTAssertTrue(out.contains("matches: \(expected) files: 12"), "expected \(expected) matches:\n\(out)")
    }

    func testEchoServerEchoesEveryByte() throws {
        let (status, out) = try run("echo-server", ["--self-test", "--connections", "100", "--bytes", "4096"])
        XCTAssertEqual(status, 0, out)
        XCTAssertTrue(out.contains("echoed: OK connections: 100 bytes: \(100 * 4096)"), out)
    }

    func testUMSSample() throws {
        let (status, out) = try run("ums-sample", ["--workers", "8", "--rounds", "2"])
        XCTAssertEqual(status, 0, out)
        XCTAssertTrue(out.contains("terminated   8"), out)
    }
}
