import XCTest
@testable import PPL
import ConcRT
import TestSupport

/// parallelRadixSort's MSD paths: every digit skip, the insertion-sort and
/// parallel thresholds, buckets large enough for a nested parallel pass,
/// stability under the generic `key:` form, and non-trivial elements.
final class RadixSortTests: XCTestCase {
    /// Sizes around each threshold: the insertion sort (24), the parallel
    /// pass (65,536), and one that gives nested parallel passes (a bucket
    /// of 65,536 or more after the top pass: "one top bucket" and "all
    /// equal" below). Under a sanitizer (10-20x slower here) that one is
    /// 2.2x the threshold instead of 4.6x: still nested, half the time.
    static let sizes = [0, 1, 2, radixInsertionMax - 1, radixInsertionMax, radixInsertionMax + 1, 300, 4097,
                        radixParallelMin - 1, radixParallelMin, radixParallelMin + 1,
                        Sanitizer.any ? 140_001 : 300_001]

    /// Named key distributions; each maps (index, n, rng) to a key.
    static let distributions: [(String, @Sendable (Int, Int, inout Rng) -> UInt64)] = [
        ("uniform", { _, _, r in r.next() }),
        ("all equal", { _, _, _ in 0xDEAD_BEEF }),
        ("all zero", { _, _, _ in 0 }),
        ("three values", { _, _, r in [UInt64(7), 1 << 63, 1 << 20][Int(r.next() % 3)] }),
        ("sorted", { i, _, _ in UInt64(i) &* 0x1_0000_0001 }),
        ("reverse", { i, n, _ in UInt64(n - i) << 40 }),
        ("small range", { _, _, r in r.next() % 1000 }),
        ("one top bucket", { _, _, r in 0xAB00_0000_0000_0000 | (r.next() >> 8) }),
        ("99% one top bucket", { _, _, r in r.next() % 100 == 0 ? r.next() : 0x1200_0000_0000_0000 | (r.next() >> 8) }),
        ("top and low bits only", { _, _, r in (r.next() & (1 << 63)) | (r.next() & 0xFF) }),
        ("many duplicates", { _, _, r in (r.next() % 50) << 30 }),
        ("one key differs", { i, _, _ in i == 3 ? 1 : 2 }),
    ]

    func testEveryDistributionAndSizeMatchesArraySort() {
        var rng = Rng(s: 16)
        for (name, make) in Self.distributions {
            for n in Self.sizes {
                let input = (0..<n).map { make($0, n, &rng) }
                let expected = input.sorted()
                var inside = input
                testScheduler.run { parallelRadixSort(&inside) }
                XCTAssertEqual(inside, expected, "\(name) n=\(n) (on the scheduler)")
                if n <= 4097 {   // outside any scheduler: runs on the default one
                    var outside = input
                    parallelRadixSort(&outside)
                    XCTAssertEqual(outside, expected, "\(name) n=\(n) (outside)")
                }
            }
        }
    }

    /// A buffer of 4 MiB or more is mapped (huge-page advice), not allocated.
    func testMappedBufferSizes() {
        var rng = Rng(s: 21)
        // Just below and just above the mapping threshold; under a
        // sanitizer only above (the path this test is for).
        for n in Sanitizer.any ? [(4 << 20) / 8 + 1] : [(4 << 20) / 8 - 1, (4 << 20) / 8 + 1] {
            let input = (0..<n).map { i in i % 2 == 0 ? rng.next() : 0x7700_0000_0000_0000 | (rng.next() >> 8) }
            var a = input
            testScheduler.run { parallelRadixSort(&a) }
            XCTAssertEqual(a, input.sorted(), "n=\(n)")
        }
    }

    struct Item: Equatable { var key: UInt32; var seq: Int }

    func testGenericKeyIsStable() {
        var rng = Rng(s: 7)
        for n in Self.sizes {
            for spread in [UInt64(3), 1000, 1 << 32] {
                let items = (0..<n).map { i in Item(key: UInt32(truncatingIfNeeded: rng.next() % spread), seq: i) }
                var sorted = items
                testScheduler.run { parallelRadixSort(&sorted, key: { $0.key }) }
                let expected = items.sorted { ($0.key, $0.seq) < ($1.key, $1.seq) }
                XCTAssertEqual(sorted, expected, "stable by key, n=\(n) spread=\(spread)")
            }
        }
    }

    func testNarrowKeysAndElements() {
        var rng = Rng(s: 3)
        for n in [50, 5000, radixParallelMin + 7] {
            var bytes = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let expectedBytes = bytes.sorted()
            testScheduler.run { parallelRadixSort(&bytes) }
            XCTAssertEqual(bytes, expectedBytes, "UInt8 n=\(n)")
            var halves = (0..<n).map { _ in UInt16(truncatingIfNeeded: rng.next()) }
            let expectedHalves = halves.sorted()
            testScheduler.run { parallelRadixSort(&halves) }
            XCTAssertEqual(halves, expectedHalves, "UInt16 n=\(n)")
            // A 64-bit element by an 8-bit key: only 8 bits to sort on.
            let wide = (0..<n).map { _ in rng.next() }
            var byLowByte = wide
            testScheduler.run { parallelRadixSort(&byLowByte, key: { UInt8(truncatingIfNeeded: $0) }) }
            let expectedWide = wide.enumerated()
                .sorted { (UInt8(truncatingIfNeeded: $0.element), $0.offset) < (UInt8(truncatingIfNeeded: $1.element), $1.offset) }
                .map(\.element)
            XCTAssertEqual(byLowByte, expectedWide, "UInt64 by low byte, stable, n=\(n)")
        }
    }

    /// Reference-counted elements are moved, never copied or dropped:
    /// every element comes out once, and a slice (not the whole array)
    /// is sorted in place.
    func testNonTrivialElementsAndSlices() {
        final class Box { let v: Int; init(_ v: Int) { self.v = v } }
        var rng = Rng(s: 11)
        for n in [radixInsertionMax + 1, 3000, radixParallelMin * 2 + 3] {
            struct Weak { weak var box: Box? }
            var weaks: [Weak] = []
            do {
                let boxes = (0..<n).map { _ in Box(Int(rng.next() % 5000)) }
                weaks = boxes.map { Weak(box: $0) }
                var sorted = boxes
                testScheduler.run { parallelRadixSort(&sorted, key: { UInt64($0.v) }) }
                XCTAssertEqual(sorted.map(\.v), boxes.map(\.v).sorted(), "n=\(n)")
                XCTAssertEqual(Set(sorted.map { ObjectIdentifier($0) }).count, n, "each box once, n=\(n)")
            }
            // A copied (retained) element that was never released would survive.
            XCTAssertEqual(weaks.filter { $0.box != nil }.count, 0, "no box leaked, n=\(n)")
            var keys = (0..<n).map { _ in rng.next() }
            let head = Array(keys[..<10]), tail = Array(keys[(n - 10)...])
            testScheduler.run { parallelRadixSort(&keys[10..<(n - 10)]) }
            XCTAssertEqual(Array(keys[..<10]), head)
            XCTAssertEqual(Array(keys[(n - 10)...]), tail)
            XCTAssertTrue(keys[10..<(n - 10)].elementsEqual(keys[10..<(n - 10)].sorted()), "slice n=\(n)")
        }
    }
}
