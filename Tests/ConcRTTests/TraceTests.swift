import TestSupport
import Foundation
import Synchronization
import XCTest
@testable import ConcRT
import CSupport
import UMS

/// The timeline trace and its Chrome trace JSON export.
final class TraceTests: XCTestCase {
    /// Runs a short mixed workload: fork/join, event ping-pong, timer
    /// sleeps and blocking calls, so every kind of state appears.
    static func shortMixedRun(_ s: Scheduler) {
        let done = Counter()
        let n = 40
        for i in 0..<n {
            let a = Event()
            s.scheduleTask {
                Context.withLabel("waiter-\(i)") { a.wait() }
                done.add()
            }
            s.scheduleTask {
                try? Blocking.sleep(for: .microseconds(200))
                Blocking.call { _ = usleep(100) }
                var x = 0
                for k in 0..<2_000 { x &+= k }
                a.set()
                done.add(x == -1 ? 2 : 1)
            }
        }
        XCTAssertTrue(eventually(timeout: 30) { done.value == 2 * n })
    }

    /// A trace of a short run is valid JSON, with balanced begin/end events
    /// per VP and timestamps that never go backwards within a VP.
    func testTraceIsValidChromeJSONWithBalancedTracks() throws {
        let s = try makeScheduler(2)
        try s.startTrace()
        Self.shortMixedRun(s)
        let trace = try s.stopTrace()
        try s.shutdown()
        XCTAssertEqual(trace.dropped, 0)
        let kinds = Set(trace.events.map(\.kind))
        for k in [Trace.Kind.taskBegin, .taskEnd, .switchIn, .block, .unblock, .kernelEnter, .kernelExit, .sleepBegin, .sleepEnd, .timers] {
            XCTAssertTrue(kinds.contains(k), "no \(k) event in \(trace.events.count) events")
        }
        let json = trace.chromeTraceJSON()
        let root = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let events = try XCTUnwrap(root["traceEvents"] as? [[String: Any]])
        var open: [Int: [String]] = [:]
        var lastTS: [Int: Double] = [:]
        var begins = 0
        for e in events {
            guard let ph = e["ph"] as? String, ph != "M" else { continue }
            let tid = try XCTUnwrap(e["tid"] as? Int)
            let ts = try XCTUnwrap(e["ts"] as? Double)
            XCTAssertGreaterThanOrEqual(ts, lastTS[tid] ?? 0, "time went backwards on VP \(tid)")
            lastTS[tid] = ts
            let name = try XCTUnwrap(e["name"] as? String)
            switch ph {
            case "B":
                open[tid, default: []].append(name)
                begins += 1
            case "E":
                XCTAssertEqual(open[tid]?.popLast(), name, "unbalanced E \(name) on VP \(tid)")
            case "i":
                break
            default:
                XCTFail("unexpected phase \(ph)")
            }
        }
        for (tid, stack) in open { XCTAssertTrue(stack.isEmpty, "VP \(tid) left \(stack) open") }
        XCTAssertGreaterThan(begins, 80)
        XCTAssertTrue(json.contains("\"label\":\"waiter-"), "labels reach the trace")
    }

    /// Misuse is refused with a clear error; a stopped trace records nothing more.
    func testTraceMisuse() throws {
        let s = try makeScheduler(1)
        XCTAssertThrowsError(try s.stopTrace()) { XCTAssertTrue("\($0)".contains("no trace is running"), "\($0)") }
        XCTAssertThrowsError(try s.startTrace(eventsPerVirtualProcessor: 0)) { XCTAssertTrue("\($0)".contains("eventsPerVirtualProcessor"), "\($0)") }
        try s.startTrace(eventsPerVirtualProcessor: 64)
        XCTAssertThrowsError(try s.startTrace()) { XCTAssertTrue("\($0)".contains("already running"), "\($0)") }
        Self.shortMixedRun(s)
        let t = try s.stopTrace()
        // 64 per VP: the run's blocked calls may be compensated for by
        // temporary VPs, each with its own buffer.
        let perVP = Dictionary(grouping: t.events, by: \.virtualProcessor).mapValues(\.count)
        XCTAssertTrue(perVP.values.allSatisfy { $0 <= 64 }, "\(perVP)")
        XCTAssertLessThanOrEqual(perVP[0] ?? 0, 64)
        XCTAssertGreaterThan(t.dropped, 0, "64 slots cannot hold this run")
        Self.shortMixedRun(s)   // not traced
        try s.startTrace()
        let empty = try s.stopTrace()
        XCTAssertLessThan(empty.events.count, 10)
        try s.shutdown()
    }
}
