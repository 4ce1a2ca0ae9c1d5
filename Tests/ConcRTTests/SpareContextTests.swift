import TestSupport
import Foundation
import XCTest
@testable import ConcRT
import CSupport
import UMS

/// The scheduler-wide pool of idle contexts (VirtualProcessor/SpareContexts.swift).
final class SpareContextTests: XCTestCase {
    /// Fork/join where joins on stolen forks block: each blocked joiner is
    /// resumed on the thief's VP, so idle contexts move between VPs. With
    /// the shared pool a VP whose cache is empty takes another VP's spare
    /// instead of creating one, so once warm the runs create (almost) no
    /// contexts; and every context still ends at shutdown.
    func testMigratingJoinersReuseSpareContextsInsteadOfCreatingNew() throws {
        // Lazily started process-wide threads (the UMS monitor, the kernel
        // thread pool) are part of the baseline, not of this test's count.
        let warm = try makeScheduler(2)
        _ = try warm.run { Self.fib(12) }
        try warm.shutdown(timeout: .seconds(30))
        let baseline = try ResourceCounts.now()
        do {
            let s = try makeScheduler(2)
            let depth = Sanitizer.any ? 16 : 20
            let wantBlocks = Sanitizer.scaled(longMode ? 400 : 60, underTSan: 20)
            let deadline = monotonicNow() + 30_000_000_000
            var createdWarm = 0, endedWarm = 0, blocksWarm = 0, round = 0
            while blocksWarm < wantBlocks && monotonicNow() < deadline {
                let before = s.statistics
                let r = try s.run { () -> Int in Self.fib(depth) }
                XCTAssertEqual(r, Self.fibSerial(depth))
                let after = s.statistics
                if round >= 8 {   // the caches have filled
                    let created = after.contextsCreated - before.contextsCreated
                    createdWarm += created
                    // Ended = created - growth of the live count.
                    endedWarm += created - (after.liveContexts - before.liveContexts)
                    blocksWarm += after.blocks - before.blocks
                }
                round += 1
            }
            XCTAssertGreaterThanOrEqual(blocksWarm, wantBlocks, "too few blocked joins in 30 s: \(s.statistics)")
            // Without the pool this workload ends one context for every
            // three to five blocked joins, however warm (the thieves' caches
            // overflow while the joiners' run dry, and new ones are made).
            // With it, contexts are only made for a new peak of blocked
            // joiners, and none is ended while the pool has room.
            XCTAssertLessThanOrEqual(endedWarm, 2,
                                     "\(endedWarm) contexts ended (\(createdWarm) created) for \(blocksWarm) blocked joins once warm: \(s.statistics)")
            try s.shutdown(timeout: .seconds(30))
            print("SpareContextTests: \(createdWarm) contexts created, \(endedWarm) ended, for \(blocksWarm) blocked joins in \(round - 8) warm runs")
            XCTAssertEqual(s.spareContexts.count, 0, "spare contexts left after shutdown")
            XCTAssertEqual(s.statistics.liveContexts, 0, "contexts alive after shutdown: \(s.statistics)")
        }
        let (ok, last) = try ResourceCounts.settle(within: baseline)
        XCTAssertTrue(ok, "resources did not return to baseline \(baseline): \(last)")
    }

    /// fib with one fork per call; a stolen fork's joiner spins briefly,
    /// then blocks (ForkJoin.swift).
    static func fib(_ n: Int) -> Int {
        if n < 2 { return n }
        let ctx = Context.current!
        let (a, b) = Context.forkJoinOn(ctx, { fib(n - 2) }, { fib(n - 1) })
        return a + b
    }

    static func fibSerial(_ n: Int) -> Int { n < 2 ? n : fibSerial(n - 1) + fibSerial(n - 2) }
}
