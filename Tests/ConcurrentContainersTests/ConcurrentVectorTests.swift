import ConcRT
import ConcurrentContainers
import Foundation
import Synchronization
import TestSupport
import XCTest

final class ConcurrentVectorTests: XCTestCase {
    func testAppendReadCountAcrossSegments() {
        let v = ConcurrentVector<Int>()
        XCTAssertEqual(v.count, 0)
        // 10,000 elements span segments 0 ... 10 (8, 16, 32, ... slots).
        for i in 0..<10_000 { XCTAssertEqual(v.append(i * 3), i) }
        XCTAssertEqual(v.count, 10_000)
        for i in 0..<10_000 { XCTAssertEqual(v[i], i * 3) }
        let first = v.append(contentsOf: [7, 8, 9])
        XCTAssertEqual(first, 10_000)
        XCTAssertEqual([v[10_000], v[10_001], v[10_002]], [7, 8, 9])
        var sum = 0, k = 0
        v.forEach { sum += $0; k += 1 }
        XCTAssertEqual(k, 10_003)
        XCTAssertEqual(sum, 3 * (10_000 * 9_999 / 2) + 24)
    }

    func testElementsNeverMoveAsTheVectorGrows() {
        let v = ConcurrentVector<String>()
        var addresses: [UnsafePointer<String>] = []
        for i in 0..<5_000 {
            v.append("e\(i)")
            addresses.append(v.address(of: i))
        }
        for i in 0..<5_000 {
            XCTAssertEqual(v.address(of: i), addresses[i], "element \(i) moved")
            XCTAssertEqual(addresses[i].pointee, "e\(i)")
        }
    }

    func testElementsDestroyedExactlyOnceAtDeinit() {
        let ledger = Ledger(1000)
        do {
            let v = ConcurrentVector<Tracked>()
            for i in 0..<1000 { v.append(Tracked(i, ledger)) }
            XCTAssertEqual(v[999].id, 999)
            XCTAssertEqual(ledger.totalDestroyed, 0)
        }
        XCTAssertEqual(ledger.notExactlyOnce().count, 0)
    }

    /// 1,000 contexts (3 VPs, yielding and blocking) plus 4 pthreads append
    /// at once and read back what they and others appended; every value
    /// lands at exactly one index, and no element ever moves (the address
    /// each appender recorded is the element's address at the end).
    func testHammeredFromContextsAndPthreadsElementsNeverMove() throws {
        let workers = 1000 + 4
        let per = stressScale(1000, underTSan: 100)
        let total = workers * per
        let v = ConcurrentVector<Int>()
        // Per value (worker * per + j): its index and its address when appended.
        let indexOf = SeenSet(total)   // reused as storage: index + 1
        let addressOf = SeenSet(total)
        let badReads = Counter()
        let finished = try hammer { w, inContext in
            var rng = TestRNG(seed: UInt64(w + 1))
            for j in 0..<per {
                let value = w * per + j
                let i = v.append(value)
                indexOf.flags[value].store(i + 1, ordering: .relaxed)
                addressOf.flags[value].store(Int(bitPattern: v.address(of: i)), ordering: .relaxed)
                if v[i] != value { badReads.add() }
                // Read some index below count: its element is a valid value
                // whose recorded index (if already recorded) is this one.
                let n = v.count
                let r = rng.below(n)
                let x = v[r]
                if x < 0 || x >= total { badReads.add() }
                if j % 60 == 59 { perturb(j / 60, inContext: inContext) }
            }
        }
        XCTAssertTrue(finished, "the hammer did not finish in 120 s")
        XCTAssertEqual(v.count, total)
        XCTAssertEqual(badReads.value, 0)
        let atIndex = SeenSet(total)
        var moved = 0, wrong = 0
        for value in 0..<total {
            let i = indexOf.count(value) - 1
            guard i >= 0 && i < total else { wrong += 1; continue }
            if atIndex.mark(i) != 0 { wrong += 1 }
            if v[i] != value { wrong += 1 }
            if Int(bitPattern: v.address(of: i)) != addressOf.count(value) { moved += 1 }
        }
        XCTAssertEqual(wrong, 0, "values not at exactly one index")
        XCTAssertEqual(moved, 0, "elements moved")
    }

    // MARK: misuse

    private static let misuses: [(name: String, message: String, body: @Sendable () -> Void)] = [
        ("subscriptPastEnd", "ConcurrentVector: index 3 out of range (count 3)", {
            let v = ConcurrentVector<Int>(); v.append(contentsOf: [1, 2, 3]); _ = v[3]
        }),
        ("subscriptNegative", "ConcurrentVector: index -1 out of range (count 1)", {
            let v = ConcurrentVector<Int>(); v.append(1); _ = v[-1]
        }),
        ("addressOfEmpty", "ConcurrentVector: index 0 out of range (count 0)", {
            _ = ConcurrentVector<String>().address(of: 0)
        }),
        ("dictionaryNegativeCapacity", "ConcurrentDictionary: minimumCapacity must be >= 0 (got -1)", {
            _ = ConcurrentDictionary<Int, Int>(minimumCapacity: -1)
        }),
    ]

    func testMisuseTrapsNamingTheMisuse() throws {
        if let which = ProcessInfo.processInfo.environment["CONTAINER_MISUSE"] {
            guard let m = Self.misuses.first(where: { $0.name == which }) else { exit(3) }
            m.body()
            exit(0)   // reaching here is the failure the parent reports
        }
        for m in Self.misuses {
            let (signalled, _, stderr) = try runTestInChildProcess(
                "ConcurrentContainersTests.ConcurrentVectorTests/testMisuseTrapsNamingTheMisuse",
                environment: ["CONTAINER_MISUSE": m.name])
            XCTAssertTrue(signalled, "\(m.name): the misuse did not trap; stderr: \(stderr.suffix(500))")
            if _isDebugAssertConfiguration() {
                XCTAssertTrue(stderr.contains(m.message), "\(m.name): message not found in: \(stderr.suffix(800))")
            }
        }
    }
}
