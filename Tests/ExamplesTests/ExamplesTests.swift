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

    /// Every command's --help exits 0 and documents its options.
    func testHelpListsOptions() throws {
        let expected: [(String, [String])] = [
            ("fib", ["--n <N>", "--cutoff <C>", "--short"]),
            ("nqueens", ["--n <N>", "--depth <D>", "--first", "--short"]),
            ("sort", ["--n <N>", "--seed <S>", "--dist <D>", "--short"]),
            ("grep", ["PATTERN", "DIR", "--max-print <N>", "--max-files <N>", "--buffer <BYTES>", "--serial"]),
            ("echo-server", ["--self-test", "--serve <PORT>", "--client <PORT>", "--connections <N>", "--bytes <B>", "--chunk <C>"]),
            ("ums-sample", ["--workers <N>", "--rounds <R>", "--overflow-demo"]),
            ("ums-bench", ["--reps <N>", "--warmup <N>", "--json <FILE>", "--iterations <N>", "--busy", "idle-busy"]),
        ]
        for (name, options) in expected {
            let (status, out) = try run(name, ["--help"])
            XCTAssertEqual(status, 0, "\(name) --help: \(out)")
            for option in options { XCTAssertTrue(out.contains(option), "\(name) --help lacks \(option):\n\(out)") }
        }
    }

    /// Bad input is a usage error (non-zero) that names the problem.
    func testBadArgumentsAreRejected() throws {
        let (s1, o1) = try run("ums-bench", ["no-such-workload"])
        XCTAssertNotEqual(s1, 0, o1)
        XCTAssertTrue(o1.contains("unknown workload 'no-such-workload'") && o1.contains("switch handoff") && o1.contains("nullfork"), o1)
        let (s2, o2) = try run("ums-bench", ["fib", "--busy"])
        XCTAssertNotEqual(s2, 0, o2)
        XCTAssertTrue(o2.contains("--busy"), o2)
        let (s3, o3) = try run("ums-sample", ["--workers", "3"])
        XCTAssertNotEqual(s3, 0, o3)
        XCTAssertTrue(o3.contains("--workers must be an even number"), o3)
        let (s4, o4) = try run("fib", ["--n", "93"])
        XCTAssertNotEqual(s4, 0, o4)
        XCTAssertTrue(o4.contains("0...92"), o4)
    }

    /// The async-* workloads at toy sizes: every figure in the output
    /// contract, both impls (and ums-wrapped) per workload, positive values,
    /// the work done as asked (fib's result checked by the bench itself,
    /// which exits non-zero when wrong; pingpong's message count; wrapped
    /// sleeps went through Blocking).
    func testBenchAsyncWorkloads() throws {
        let (status, out) = try run("ums-bench", ["async-blockmix", "async-nullfork", "async-fib", "async-pingpong",
                                                  "--reps", "1", "--warmup", "0", "--iterations", "1000", "--n", "12",
                                                  "--tasks", "8", "--rounds", "2", "--cpu-us", "100", "--block-us", "200"])
        XCTAssertEqual(status, 0, out)
        let expected: [(String, [String], String)] = [
            ("async-blockmix", ["ums", "ums-wrapped", "baseline-swift-default"], "ms"),
            ("async-nullfork", ["ums", "baseline-swift-default"], "ns/op"),
            ("async-fib", ["ums", "baseline-swift-default"], "ms"),
            ("async-pingpong", ["ums", "baseline-swift-default"], "ns/msg"),
        ]
        let lines = out.split(separator: "\n").map(String.init)
        for (workload, impls, unit) in expected {
            for impl in impls {
                let matching = lines.filter { $0.hasPrefix("\(workload) \(impl) ") }
                XCTAssertEqual(matching.count, 1, "\(workload) \(impl):\n\(out)")
                let fields = matching.first?.split(separator: " ") ?? []
                XCTAssertGreaterThanOrEqual(fields.count, 4, out)
                guard fields.count >= 4 else { continue }
                XCTAssertGreaterThan(Double(fields[2]) ?? 0, 0, "\(workload) \(impl) value:\n\(out)")
                XCTAssertEqual(String(fields[3]), unit, out)
            }
        }
        XCTAssertTrue(out.contains("async-fib ums") && out.contains("fib(12)=144"), out)
        XCTAssertEqual(lines.filter { $0.hasPrefix("async-pingpong ") && $0.contains("(1000 messages") }.count, 2, out)
        let wrapped = lines.first { $0.hasPrefix("async-blockmix ums-wrapped ") } ?? ""
        let blocks = wrapped.components(separatedBy: "kernelBlocks ").dropFirst().first?.prefix { $0.isNumber } ?? ""
        XCTAssertGreaterThan(Int(blocks) ?? 0, 0, "wrapped sleeps did not go through Blocking:\n\(out)")
    }

    /// `ums-bench idle --busy` prints one figure in the shared output
    /// contract: `idle-busy ums <value> cpu-ms/s (... idleSleeps +N)`.
    func testBenchIdleBusyFigure() throws {
        let (status, out) = try run("ums-bench", ["idle", "--busy"])
        XCTAssertEqual(status, 0, out)
        let lines = out.split(separator: "\n").filter { $0.hasPrefix("idle-busy ") }
        XCTAssertEqual(lines.count, 1, out)
        let fields = lines.first?.split(separator: " ") ?? []
        XCTAssertGreaterThanOrEqual(fields.count, 5, out)
        guard fields.count >= 5 else { return }
        XCTAssertEqual(fields[1], "ums", out)
        let value = Double(fields[2])
        XCTAssertNotNil(value, out)
        // Idle VPs beside a busy one cannot burn more than their own CPUs'
        // worth (1000 cpu-ms/s each), nor less than nothing (by more than
        // clock granularity).
        if let value { XCTAssertTrue((-5.0...1000.0).contains(value), out) }
        XCTAssertEqual(fields[3], "cpu-ms/s", out)
        XCTAssertTrue(lines.first?.contains("idleSleeps +") == true, out)
    }
}
