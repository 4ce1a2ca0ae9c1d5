import ConcRT
import ConcurrentContainers
import Foundation
import Synchronization
import TestSupport
import XCTest

final class ConcurrentQueueTests: XCTestCase {
    func testFIFOAcrossManySegments() {
        let q = ConcurrentQueue<Int>()
        XCTAssertTrue(q.isEmpty)
        XCTAssertEqual(q.count, 0)
        XCTAssertNil(q.tryPop())
        // 1,000 elements cross 15 segments (63 slots each).
        for i in 0..<1000 { q.push(i) }
        XCTAssertFalse(q.isEmpty)
        XCTAssertEqual(q.count, 1000)
        for i in 0..<1000 {
            XCTAssertEqual(q.tryPop(), i)
            XCTAssertEqual(q.count, 999 - i)
        }
        XCTAssertNil(q.tryPop())
        XCTAssertTrue(q.isEmpty)
        // Interleaved, so head and tail meet at every offset.
        var next = 0, expect = 0
        for round in 0..<300 {
            for _ in 0..<(round % 5 + 1) { q.push(next); next += 1 }
            for _ in 0..<(round % 3 + 1) {
                guard let x = q.tryPop() else { break }
                XCTAssertEqual(x, expect); expect += 1
            }
            XCTAssertEqual(q.count, next - expect)
        }
        while let x = q.tryPop() { XCTAssertEqual(x, expect); expect += 1 }
        XCTAssertEqual(expect, next)
    }

    func testEachElementDestroyedExactlyOnceIncludingLeftovers() {
        let n = 500
        let ledger = Ledger(n)
        do {
            let q = ConcurrentQueue<Tracked>()
            for i in 0..<n { q.push(Tracked(i, ledger)) }
            for i in 0..<200 {
                let t = q.tryPop()
                XCTAssertEqual(t?.id, i)
            }
            // The 200 popped are gone; 300 are still in the queue.
            XCTAssertEqual(ledger.totalDestroyed, 200)
            XCTAssertEqual(q.count, 300)
        }
        let (bad, sample) = ledger.notExactlyOnce()
        XCTAssertEqual(bad, 0, "ids not destroyed exactly once: \(sample)")
        XCTAssertEqual(ledger.totalDestroyed, n)
    }

    func testNonTrivialValuesMoveThrough() {
        let q = ConcurrentQueue<String>()
        for i in 0..<200 { q.push(String(repeating: "x", count: i % 40) + "\(i)") }
        for i in 0..<200 { XCTAssertEqual(q.tryPop(), String(repeating: "x", count: i % 40) + "\(i)") }
        XCTAssertNil(q.tryPop())
    }

    /// 1,000 contexts (3 VPs; they yield and block now and then) plus 4
    /// pthreads: half push, half pop; no item is lost or duplicated, every
    /// element is destroyed exactly once, and one producer's items come out
    /// in its order.
    func testHammeredFromContextsAndPthreadsNoLossNoDuplicate() throws {
        let workers = 1000 + 4
        let perProducer = stressScale(1000, underTSan: 100)
        let producers = workers / 2
        let total = producers * perProducer
        let q = ConcurrentQueue<Tracked>()
        let ledger = Ledger(total)
        let seen = SeenSet(total)
        let consumed = Counter()
        let orderViolations = Counter()
        let t0 = Date()
        let finished = try hammer { w, inContext in
            if w % 2 == 0 {
                let p = w / 2
                for i in 0..<perProducer {
                    q.push(Tracked(p * perProducer + i, ledger))
                    if i % 50 == 49 { perturb(i / 50, inContext: inContext) }
                }
            } else {
                // A consumer keeps, per producer, the last index it saw: one
                // consumer must see each producer's items in push order.
                var last = [Int: Int]()
                var idle = 0
                while consumed.value < total {
                    if let t = q.tryPop() {
                        let p = t.id / perProducer, i = t.id % perProducer
                        if let l = last[p], l >= i { orderViolations.add() }
                        last[p] = i
                        seen.mark(t.id)
                        consumed.add()
                    } else {
                        idle += 1
                        perturb(idle, inContext: inContext)
                    }
                }
            }
        }
        XCTAssertTrue(finished, "the hammer did not finish in 120 s")
        XCTAssertEqual(consumed.value, total)
        var missing = 0, duplicated = 0
        for i in 0..<total {
            let c = seen.count(i)
            if c == 0 { missing += 1 } else if c > 1 { duplicated += 1 }
        }
        XCTAssertEqual(missing, 0, "items lost")
        XCTAssertEqual(duplicated, 0, "items popped twice")
        XCTAssertEqual(orderViolations.value, 0, "a consumer saw one producer's items out of order")
        XCTAssertTrue(q.isEmpty)
        XCTAssertNil(q.tryPop())
        let (bad, sample) = ledger.notExactlyOnce()
        XCTAssertEqual(bad, 0, "elements not destroyed exactly once: \(sample)")
        print("queue hammer: \(total) items, \(String(format: "%.2f", Date().timeIntervalSince(t0))) s")
    }

    /// Pushers and poppers on plain pthreads only, with the queue left
    /// half full at the end: the leftovers are destroyed by deinit.
    func testConcurrentLeftoversDestroyedAtDeinit() {
        let n = stressScale(20_000, underTSan: 4_000)
        let ledger = Ledger(4 * n)
        let popped = Counter()
        do {
            let q = ConcurrentQueue<Tracked>()
            DispatchQueue.concurrentPerform(iterations: 6) { w in
                if w < 4 {
                    for i in 0..<n { q.push(Tracked(w * n + i, ledger)) }
                } else {
                    for _ in 0..<n { if q.tryPop() != nil { popped.add() } }
                }
            }
            XCTAssertEqual(q.count, 4 * n - popped.value)
        }
        XCTAssertEqual(ledger.notExactlyOnce().count, 0)
    }
}
