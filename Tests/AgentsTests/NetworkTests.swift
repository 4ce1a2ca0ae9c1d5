import ConcRT
import Foundation
import TestSupport
import XCTest
@testable import Agents

/// A network of 8 linked blocks:
///
///   source (UnboundedBuffer) ─┬─ evens ─▶ T1 (×3) ─▶ B1 (BoundedBuffer 64) ─▶ join input 0 ─┐
///                             └─ odds  ─▶ T2 (×3) ─▶ B2 (BoundedBuffer 64) ─▶ join input 1 ─┤
///                                                       Join ─▶ T3 (pair → k) ─▶ sink (Call)
///
/// Fan-out by link filters, transforms, fan-in through a join. Every block
/// on the way promises order (one propagator per source, ordered
/// transformers, FIFO buffers, per-input FIFO in the join), so row k of the
/// join must be [3·2k, 3·(2k+1)] and the sink must see k = 0, 1, 2, ... :
/// each message arrived exactly once and in order.
final class NetworkTests: XCTestCase {
    /// Under ThreadSanitizer 4,000: on 2 VPs everything there runs 10-30x slower
    /// (20,000 took 29 s greedy and over 60 s non-greedy on 2 VPs, 2-4 s on 4).
    static var messages: Int { longMode ? 1_000_000 : Sanitizer.scaled(100_000, underTSan: 4_000) }

    func runNetwork(vps: Int, kind: Join<Int>.Kind, file: StaticString = #filePath, line: UInt = #line) throws {
        let n = Self.messages
        let s = try makeScheduler(vps)
        let source = UnboundedBuffer<Int>()
        let t1 = Transformer<Int, Int>(scheduler: s) { $0 * 3 }
        let t2 = Transformer<Int, Int>(scheduler: s) { $0 * 3 }
        let b1 = try BoundedBuffer<Int>(capacity: 64), b2 = try BoundedBuffer<Int>(capacity: 64)
        let join = try Join<Int>(inputs: 2, kind: kind)
        let t3 = Transformer<[Int], Int>(scheduler: s) { row in
            // -1 marks a row that is not [3·2k, 3·(2k+1)].
            row.count == 2 && row[0] % 6 == 0 && row[1] == row[0] + 3 ? row[0] / 6 : -1
        }
        let next = Locked(0)
        let bad = Locked<String?>(nil)
        let finished = Event()
        let sink = Call<Int>(scheduler: s) { k in
            let expected = next.value
            if k != expected, bad.value == nil { bad.value = "row \(k) arrived where \(expected) was due" }
            next.value = expected + 1
            if expected + 1 == n / 2 { finished.set() }
        }
        try source.link(to: t1, filter: { $0 % 2 == 0 })
        try source.link(to: t2, filter: { $0 % 2 != 0 })
        try t1.link(to: b1)
        try t2.link(to: b2)
        try b1.link(to: join.inputs[0])
        try b2.link(to: join.inputs[1])
        try join.link(to: t3)
        try t3.link(to: sink)
        let t0 = Date()
        // Two producers: evens and odds each come from one of them, in order.
        for p in 0..<2 {
            s.scheduleTask { for x in stride(from: p, to: n, by: 2) { try! send(source, x) } }
        }
        XCTAssertTrue(finished.wait(timeout: .seconds(longMode ? 300 : 60)), "only \(next.value) of \(n / 2) rows arrived",
                      file: file, line: line)
        XCTAssertNil(bad.value, file: file, line: line)
        usleep(10_000)
        XCTAssertEqual(next.value, n / 2, "extra rows arrived", file: file, line: line)
        for (name, b) in [("source", source), ("b1", b1), ("b2", b2), ("t1", t1), ("t2", t2)] as [(String, QueueBlock<Int>)] {
            XCTAssertEqual(b.count, 0, "\(name) still holds messages", file: file, line: line)
        }
        XCTAssertNil(tryReceive(join), file: file, line: line)
        print("network vps=\(vps) \(kind) n=\(n): \(String(format: "%.2f", Date().timeIntervalSince(t0))) s; \(s.statistics)")
        try s.shutdown()
    }

    func testNetworkOn2VPsGreedyJoin() throws { try runNetwork(vps: 2, kind: .greedy) }
    func testNetworkOn4VPsGreedyJoin() throws { try runNetwork(vps: 4, kind: .greedy) }
    func testNetworkOn2VPsNonGreedyJoin() throws { try runNetwork(vps: 2, kind: .nonGreedy) }
    func testNetworkOn4VPsNonGreedyJoin() throws { try runNetwork(vps: 4, kind: .nonGreedy) }
}

/// A 3-input non-greedy join fed through three bounded buffers by three
/// producers at once, on 2 and 4 VPs: every row complete and in order, and
/// no stall (a lost origin stalls the join: a source stops offering once
/// postponed). The stall that the lost-untried-origin bug caused showed in
/// the LONG=1 network test (1,000,000 messages, 2 VPs, non-greedy: stuck at
/// 25,508 rows); this smaller test did not reproduce it in 3 debug runs.
final class NonGreedyJoinStressTests: XCTestCase {
    func testThreeInputsNoStall() throws {
        let n = longMode ? 200_000 : Sanitizer.scaled(30_000, underTSan: 2_000)
        for vps in [2, 4] {
            let s = try makeScheduler(vps)
            let join = try Join<Int>(inputs: 3, kind: .nonGreedy)
            let buffers = try (0..<3).map { _ in try BoundedBuffer<Int>(capacity: 4) }
            for (b, input) in zip(buffers, join.inputs) { try b.link(to: input) }
            for (i, b) in buffers.enumerated() {
                s.scheduleTask { for x in 0..<n { try! send(b, x * 3 + i) } }
            }
            for k in 0..<n {
                guard let row = try? receive(join, timeout: .seconds(20)) else {
                    return XCTFail("vps=\(vps): the join stalled after \(k) of \(n) rows; buffers hold \(buffers.map(\.count))")
                }
                if row != [k * 3, k * 3 + 1, k * 3 + 2] { return XCTFail("vps=\(vps): row \(k) is \(row)") }
            }
            XCTAssertNil(tryReceive(join))
            try s.shutdown()
        }
    }
}
