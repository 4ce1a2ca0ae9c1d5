import TestSupport
import XCTest
@testable import PPL
import ConcRT
import Glibc

/// parallelFor's cancellation scope: set once per run on the caller's
/// context (chunks run inline there are plain calls) and by a thief around
/// each half it steals. These tests fail if either place is missed.
final class ParallelForScopeTests: XCTestCase {
    /// Runs `parallelFor(0..<2)` on the 2-VP test scheduler so that
    /// iteration 1 (the forked upper half, grain 1) is taken by the other
    /// virtual processor while iteration 0 waits for it to start (at most
    /// 5 s). `stolen` counts 1 when iteration 1 ran on another context.
    private func stealSecond(token: CancellationToken = .none, stolen: Counter,
                             first: @escaping @Sendable () throws -> Void,
                             second: @escaping @Sendable () throws -> Void) throws {
        let started = Counter()
        try testScheduler.run { () throws -> Void in
            let me = Context.current!.id
            try parallelFor(0..<2, token: token) { i in
                if i == 0 {
                    let t0 = ContinuousClock.now
                    while started.value == 0 && ContinuousClock.now - t0 < .seconds(5) { sched_yield() }
                    try first()
                } else {
                    if Context.current!.id != me { stolen.add() }
                    started.add()
                    try second()
                }
            }
        }
    }

    /// A stolen chunk sees the loop's scope: the token is canceled from
    /// the thief, and the thief's own isTaskCancellationRequested() must
    /// say so (it is false without a scope set on the thief's context).
    func testStolenChunkRunsInTheLoopsScope() throws {
        let src = CancellationTokenSource()
        let sawCancel = Counter()
        let stolen = Counter()
        XCTAssertThrowsError(try stealSecond(token: src.token, stolen: stolen, first: {}, second: {
            src.cancel()
            if isTaskCancellationRequested() { sawCancel.add() }
        })) { XCTAssertTrue($0 is TaskCanceled, "a canceled token ends the loop with TaskCanceled, got \($0)") }
        XCTAssertEqual(stolen.value, 1, "iteration 1 was not taken by the other virtual processor within 5 s")
        XCTAssertEqual(sawCancel.value, 1, "the stolen chunk did not see the loop's scope")
    }

    /// The first error, thrown by a stolen chunk, cancels the loop's scope:
    /// the chunk still running inline on the caller's context sees it, and
    /// the loop rethrows the error (not TaskCanceled).
    func testFirstErrorIsSeenByTheInlineChunkAndRethrown() throws {
        let sawCancel = Counter()
        let stolen = Counter()
        XCTAssertThrowsError(try stealSecond(stolen: stolen, first: {
            let t0 = ContinuousClock.now
            while !isTaskCancellationRequested() && ContinuousClock.now - t0 < .seconds(5) { sched_yield() }
            if isTaskCancellationRequested() { sawCancel.add() }
        }, second: {
            throw Boom(id: 1)
        })) { XCTAssertEqual($0 as? Boom, Boom(id: 1)) }
        XCTAssertEqual(stolen.value, 1, "iteration 1 was not taken by the other virtual processor within 5 s")
        XCTAssertEqual(sawCancel.value, 1, "the inline chunk did not see the loop's first error")
    }

    /// Nested loops (skynet's shape): every level sums right, a leaf's
    /// error comes out of the outermost loop, and an inner loop sees the
    /// outer loop's cancellation as its own.
    func testNestedLoopsSumPropagateErrorsAndInheritCancellation() throws {
        @Sendable func node(_ num: Int, _ size: Int, failAt: Int?) throws -> Int {
            if size == 1 {
                if num == failAt { throw Boom(id: num) }
                return num
            }
            let sub = size / 10
            let slots = UnsafeSendable(UnsafeMutablePointer<Int>.allocate(capacity: 10))
            defer { slots.value.deallocate() }
            try parallelFor(0..<10) { i in slots.value[i] = try node(num + i * sub, sub, failAt: failAt) }
            return (0..<10).reduce(0) { $0 + slots.value[$1] }
        }
        XCTAssertEqual(try testScheduler.run { try node(0, 10_000, failAt: nil) }, 10_000 * 9_999 / 2)
        XCTAssertThrowsError(try testScheduler.run { try node(0, 10_000, failAt: 4_321) }) {
            XCTAssertEqual($0 as? Boom, Boom(id: 4_321))
        }
        // An inner loop inside a canceled group's task: its scope's parent
        // is the group's, so the inner loop ends with TaskCanceled.
        let inner = Counter()
        let status = try testScheduler.run { () throws -> TaskGroupStatus in
            let g = TaskGroup()
            return try g.runAndWait {
                g.cancel()
                try parallelFor(0..<10) { _ in inner.add() }
            }
        }
        XCTAssertEqual(status, .canceled)
        XCTAssertEqual(inner.value, 0, "iterations ran in a loop whose enclosing group was canceled")
    }

    /// From a context of another scheduler the loop runs on `scheduler`,
    /// with the caller's scope as its parent.
    func testFromAnotherSchedulersContextKeepsTheCallersScope() throws {
        let other = try Scheduler(policy: SchedulerPolicy(minConcurrency: 1, maxConcurrency: 1))
        defer { try? other.shutdown() }
        let ranOn = Counter()
        let status = try other.run { () throws -> TaskGroupStatus in
            let g = TaskGroup()
            return try g.runAndWait {
                try parallelFor(0..<4, scheduler: testScheduler) { _ in
                    if Scheduler.current === testScheduler { ranOn.add() }
                }
                g.cancel()
                try parallelFor(0..<4, scheduler: testScheduler) { _ in XCTFail("ran in a canceled group") }
            }
        }
        XCTAssertEqual(ranOn.value, 4, "the iterations did not run on the loop's scheduler")
        XCTAssertEqual(status, .canceled)
    }
}
