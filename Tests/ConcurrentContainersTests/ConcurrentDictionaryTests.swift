import ConcRT
import ConcurrentContainers
import Foundation
import Synchronization
import TestSupport
import XCTest

final class ConcurrentDictionaryTests: XCTestCase {
    func testInsertLookupUpdateRemoveSnapshot() {
        let d = ConcurrentDictionary<String, Int>(minimumCapacity: 1)
        XCTAssertTrue(d.isEmpty)
        XCTAssertNil(d["a"])
        XCTAssertTrue(d.insert(1, forKey: "a"))
        XCTAssertFalse(d.insert(2, forKey: "a"), "a second insert of a present key must fail")
        XCTAssertEqual(d["a"], 1)
        // Enough keys to make the table resize (from 1 bucket).
        for i in 0..<5_000 { XCTAssertTrue(d.insert(i, forKey: "k\(i)")) }
        XCTAssertEqual(d.count, 5_001)
        for i in 0..<5_000 { XCTAssertEqual(d["k\(i)"], i) }
        XCTAssertNil(d["k5000"])
        XCTAssertEqual(d.updateValue(10, forKey: "a"), 1)
        XCTAssertEqual(d["a"], 10)
        XCTAssertNil(d.updateValue(7, forKey: "b"))
        XCTAssertEqual(d["b"], 7)
        XCTAssertEqual(d.count, 5_002)
        XCTAssertEqual(d.removeValue(forKey: "b"), 7)
        XCTAssertNil(d.removeValue(forKey: "b"))
        XCTAssertNil(d["b"])
        XCTAssertEqual(d.count, 5_001)
        let snap = d.snapshot()
        XCTAssertEqual(snap.count, 5_001)
        XCTAssertEqual(Set(snap.map(\.key)).count, 5_001)
        XCTAssertEqual(Dictionary(uniqueKeysWithValues: snap.map { ($0.key, $0.value) })["k42"], 42)
        var n = 0
        d.forEach { _ in n += 1 }
        XCTAssertEqual(n, 5_001)
    }

    /// Keys whose hashes collide still are distinct entries.
    func testCollidingHashes() {
        struct Bad: Hashable { let v: Int; func hash(into h: inout Hasher) { h.combine(v % 3) } }
        let d = ConcurrentDictionary<Bad, Int>()
        for i in 0..<300 { XCTAssertTrue(d.insert(i, forKey: Bad(v: i))) }
        for i in 0..<300 { XCTAssertEqual(d[Bad(v: i)], i) }
        XCTAssertFalse(d.insert(0, forKey: Bad(v: 299)))
        XCTAssertEqual(d.removeValue(forKey: Bad(v: 150)), 150)
        XCTAssertNil(d[Bad(v: 150)])
        XCTAssertEqual(d[Bad(v: 153)], 153)
    }

    /// Keys and values are destroyed exactly once: rejected duplicates at
    /// once, replaced and removed ones when they leave the map, the
    /// rest at deinit.
    func testEntriesDestroyedExactlyOnce() {
        let n = 600
        let ledger = Ledger(n + 200)
        do {
            let d = ConcurrentDictionary<Int, Tracked>()
            for i in 0..<n { XCTAssertTrue(d.insert(Tracked(i, ledger), forKey: i)) }
            for i in 0..<100 { XCTAssertFalse(d.insert(Tracked(n + i, ledger), forKey: i)) }  // rejected
            for i in 0..<100 { XCTAssertEqual(d.updateValue(Tracked(n + 100 + i, ledger), forKey: 100 + i)?.id, 100 + i) }
            for i in 200..<300 { XCTAssertEqual(d.removeValue(forKey: i)?.id, i) }
            XCTAssertEqual(d.count, n - 100)
            // Rejected, replaced and removed ones at once.
            XCTAssertTrue(eventually(timeout: 10) { ledger.totalDestroyed == 300 },
                          "destroyed \(ledger.totalDestroyed) of 300 before deinit")
        }
        XCTAssertTrue(eventually(timeout: 10) { ledger.totalDestroyed == n + 200 })
        let (bad, sample) = ledger.notExactlyOnce()
        XCTAssertEqual(bad, 0, "not destroyed exactly once: \(sample)")
    }

    /// 1,000 contexts (3 VPs, yielding and blocking) plus 4 pthreads: each
    /// inserts its own keys, tries to insert a neighbour's (exactly one
    /// insert per key wins), looks keys up (a found value is the key's), and
    /// some take snapshots (no key twice). At the end every key is found
    /// exactly once.
    func testHammeredFromContextsAndPthreadsEveryKeyExactlyOnce() throws {
        let workers = 1000 + 4
        let per = stressScale(150, underTSan: 30)
        let total = workers * per
        let d = ConcurrentDictionary<Int, Int>()
        let wins = SeenSet(total)
        let badValues = Counter(), duplicateInSnapshot = Counter()
        let finished = try hammer { w, inContext in
            let neighbour = (w + 1) % workers
            for j in 0..<per {
                let key = w * per + j
                if d.insert(key &* 7, forKey: key) { wins.mark(key) }
                let other = neighbour * per + j
                if d.insert(other &* 7, forKey: other) { wins.mark(other) }
                if let x = d[key], x != key &* 7 { badValues.add() }
                if let x = d[other], x != other &* 7 { badValues.add() }
                if d[key] == nil { badValues.add() }   // inserted by one of us, never removed
                if j % 50 == 49 { perturb(j / 50, inContext: inContext) }
            }
            if w % 250 == 0 {
                let snap = d.snapshot()
                if Set(snap.map(\.key)).count != snap.count { duplicateInSnapshot.add() }
                for e in snap where e.value != e.key &* 7 { badValues.add() }
            }
        }
        XCTAssertTrue(finished, "the hammer did not finish in 120 s")
        XCTAssertEqual(badValues.value, 0)
        XCTAssertEqual(duplicateInSnapshot.value, 0)
        var notOnce = 0
        for k in 0..<total where wins.count(k) != 1 { notOnce += 1 }
        XCTAssertEqual(notOnce, 0, "keys whose insert won other than exactly once")
        XCTAssertEqual(d.count, total)
        let seen = SeenSet(total)
        for e in d.snapshot() { seen.mark(e.key) }
        var wrong = 0
        for k in 0..<total where seen.count(k) != 1 || d[k] != k &* 7 { wrong += 1 }
        XCTAssertEqual(wrong, 0, "keys not found exactly once")
    }

    /// Concurrent removal beside lookups (pthreads): a lookup never sees a
    /// destroyed value (values are Tracked objects whose ids are checked),
    /// and every value is destroyed exactly once.
    func testConcurrentRemoveBesideLookups() {
        let n = stressScale(4_000, underTSan: 1_000)
        let ledger = Ledger(n)
        let bad = Counter(), removed = Counter()
        do {
            let d = ConcurrentDictionary<Int, Tracked>()
            for i in 0..<n { d.insert(Tracked(i, ledger), forKey: i) }
            DispatchQueue.concurrentPerform(iterations: 4) { w in
                if w < 2 {
                    for i in stride(from: w, to: n, by: 2) where d.removeValue(forKey: i) != nil { removed.add() }
                } else {
                    for _ in 0..<3 { for i in 0..<n { if let t = d[i], t.id != i { bad.add() } } }
                }
            }
            XCTAssertEqual(removed.value, n)
            XCTAssertTrue(d.isEmpty)
        }
        XCTAssertEqual(bad.value, 0)
        XCTAssertTrue(eventually(timeout: 10) { ledger.totalDestroyed == n })
        XCTAssertEqual(ledger.notExactlyOnce().count, 0)
    }
}
