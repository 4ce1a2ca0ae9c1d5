import TestSupport
import XCTest
@testable import PPL
import ConcRT
import CSupport
import Synchronization

/// `.auto` splits adaptively (ParallelFor.swift, SplitBudget): a loop
/// nobody helps with is cut into a few chunks, and a range another VP
/// steals is split again.
final class AdaptivePartitionTests: XCTestCase {
    /// Records each chunk's range and context.
    final class Chunks: Sendable {
        let list = MigrationSafeMutex<[(lo: Int, hi: Int, context: Int)]>([])
        func add(_ lo: Int, _ hi: Int) { list.withLock { $0.append((lo, hi, Context.current?.id ?? -1)) } }
        var all: [(lo: Int, hi: Int, context: Int)] { list.withLock { $0 } }
    }

    /// Every index in `0..<n` is covered exactly once.
    func assertCovers(_ chunks: [(lo: Int, hi: Int, context: Int)], _ n: Int, file: StaticString = #filePath, line: UInt = #line) {
        let sorted = chunks.sorted { $0.lo < $1.lo }
        var next = 0
        for c in sorted {
            XCTAssertEqual(c.lo, next, "chunks \(sorted.map { "\($0.lo)..<\($0.hi)" })", file: file, line: line)
            XCTAssertLessThan(c.lo, c.hi, file: file, line: line)
            next = c.hi
        }
        XCTAssertEqual(next, n, file: file, line: line)
    }

    /// On one VP nobody can help: the budget of one split per VP gives two
    /// chunks, not one per grain (the old `.auto` made n / 16).
    func testLoopNobodyHelpsWithIsCutIntoFewChunks() throws {
        let s = try Scheduler(policy: SchedulerPolicy(minConcurrency: 1, maxConcurrency: 1))
        defer { try? s.shutdown() }
        let chunks = Chunks()
        try s.run { try runChunked(10_000, partitioner: .auto, scheduler: nil, token: .none) { lo, hi in chunks.add(lo, hi) } }
        assertCovers(chunks.all, 10_000)
        XCTAssertEqual(chunks.all.count, 2, "\(chunks.all.map { "\($0.lo)..<\($0.hi)" })")
        // The other partitioners still split to their grain.
        let simple = Chunks()
        try s.run { try runChunked(100, partitioner: .simple(chunk: 10), scheduler: nil, token: .none) { lo, hi in simple.add(lo, hi) } }
        assertCovers(simple.all, 100)
        XCTAssertGreaterThanOrEqual(simple.all.count, 10)
        XCTAssertTrue(simple.all.allSatisfy { $0.hi - $0.lo <= 10 }, "\(simple.all.map { "\($0.lo)..<\($0.hi)" })")
    }

    /// On two VPs, a range the other VP steals is split again (its budget
    /// resets): more chunks than an unhelped run's four, some on the thief.
    func testStolenRangeIsSplitAgain() throws {
        let chunks = Chunks()
        let n = 1024
        try testScheduler.run {
            try runChunked(n, partitioner: .auto, scheduler: nil, token: .none) { lo, hi in
                chunks.add(lo, hi)
                // About 100 µs an index: 100 ms in all, time for the thief.
                let end = csup_monotonic_ns() + Int64(hi - lo) * 100_000
                while csup_monotonic_ns() < end { csup_cpu_relax() }
            }
        }
        let all = chunks.all
        assertCovers(all, n)
        let contexts = Set(all.map(\.context))
        XCTAssertGreaterThan(contexts.count, 1, "no range was stolen in 100 ms of work: \(all)")
        XCTAssertGreaterThan(all.count, 4, "a stolen range was not split again: \(all.map { "\($0.lo)..<\($0.hi)" })")
    }

    /// A loop nested in every iteration of another (skynet's shape) gives
    /// the right sum with the adaptive budget at every level.
    func testNestedLoopsSum() throws {
        XCTAssertEqual(try testScheduler.run { try Self.node(0, 100_000) }, 100_000 * 99_999 / 2)
    }

    static func node(_ num: Int, _ size: Int) throws -> Int {
        if size == 1 { return num }
        let sub = size / 10
        let slots = UnsafeSendable(UnsafeMutablePointer<Int>.allocate(capacity: 10))
        defer { slots.value.deallocate() }
        try parallelFor(0..<10) { i in slots.value[i] = try node(num + i * sub, sub) }
        return (0..<10).reduce(0) { $0 + slots.value[$1] }
    }
}
