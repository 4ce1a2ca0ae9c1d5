import TestSupport
import XCTest
@testable import PPL
import ConcRT
import Glibc

/// The parameter-pack parallelInvoke: results in stack buffers, laid out
/// per result type, closures forked over the stack-record fork/join. These
/// tests fail if a slot is laid out, moved or destroyed wrongly, or if a
/// stolen closure misses the caller's scope.
final class ParallelInvokePackTests: XCTestCase {
    /// Counts its deinits (values must be released once, also on errors).
    final class Tracked: Sendable {
        let released: Counter
        let id: Int
        init(_ c: Counter, _ id: Int) { released = c; self.id = id }
        deinit { released.add() }
    }

    /// Mixed sizes and alignments (1, 16, 8 and existential-sized
    /// results) come back in order, from a context and from outside.
    func testMixedResultTypesInOrder() throws {
        struct Wide: Equatable, Sendable { var a: SIMD4<Float>; var b: UInt8 }
        @Sendable func run() throws -> (UInt8, Wide, String, [Int], Bool, any Sendable) {
            try parallelInvoke({ @Sendable in UInt8(7) }, { @Sendable in Wide(a: [1, 2, 3, 4], b: 9) },
                               { @Sendable in "three" }, { @Sendable in [4, 4] }, { @Sendable in true },
                               { @Sendable () -> any Sendable in 6.5 })
        }
        for r in [try run(), try testScheduler.run { try run() }] {
            XCTAssertEqual(r.0, 7)
            XCTAssertEqual(r.1, Wide(a: [1, 2, 3, 4], b: 9))
            XCTAssertEqual(r.2, "three")
            XCTAssertEqual(r.3, [4, 4])
            XCTAssertEqual(r.4, true)
            XCTAssertEqual(r.5 as? Double, 6.5)
        }
    }

    /// On an error every closure still runs, the first error by position
    /// is rethrown, and every value the others produced is released once.
    func testErrorReleasesTheOtherResults() throws {
        let released = Counter()
        let ran = Counter()
        XCTAssertThrowsError(try testScheduler.run { () throws -> Void in
            _ = try parallelInvoke({ @Sendable () -> Tracked in ran.add(); return Tracked(released, 0) },
                                   { @Sendable () throws -> Tracked in ran.add(); throw Boom(id: 1) },
                                   { @Sendable () -> Tracked in ran.add(); return Tracked(released, 2) },
                                   { @Sendable () throws -> Tracked in ran.add(); throw Boom(id: 3) },
                                   { @Sendable () -> Tracked in ran.add(); return Tracked(released, 4) })
        }) { XCTAssertEqual($0 as? Boom, Boom(id: 1), "first error by position") }
        XCTAssertEqual(ran.value, 5, "every closure runs")
        XCTAssertEqual(released.value, 3, "the three values made were not each released once")
        // Success: the values are moved out, not copied or leaked.
        let r = try testScheduler.run {
            try parallelInvoke({ @Sendable in Tracked(released, 10) }, { @Sendable in Tracked(released, 11) },
                               { @Sendable in Tracked(released, 12) })
        }
        XCTAssertEqual([r.0.id, r.1.id, r.2.id], [10, 11, 12])
        XCTAssertEqual(released.value, 3)
    }

    /// A closure taken by the other virtual processor runs on another
    /// context inside the caller's (canceled) cancellation scope.
    func testStolenClosureRunsInTheCallersScope() throws {
        let result = try testScheduler.run { () throws -> (Bool, Bool) in
            let g = TaskGroup()
            let out = Locked<(Bool, Bool)>((false, false))
            try g.runAndWait {
                g.cancel()
                let me = Context.current!.id
                let started = Counter()
                _ = try parallelInvoke({ @Sendable () -> Int in
                    // Keep the first closure busy until a thief started the
                    // second (at most 5 s).
                    let t0 = ContinuousClock.now
                    while started.value == 0 && ContinuousClock.now - t0 < .seconds(5) { sched_yield() }
                    return 0
                }, { @Sendable () -> Int in
                    started.add()
                    out.value = (Context.current!.id != me, isTaskCancellationRequested())
                    return 1
                }, { @Sendable () -> Int in 2 })   // three closures: the pack form (1 and 2 are the forked half)
            }
            return out.value
        }
        XCTAssertTrue(result.0, "the second closure was not taken by another context within 5 s")
        XCTAssertTrue(result.1, "the stolen closure did not see the caller's (canceled) scope")
    }
}
