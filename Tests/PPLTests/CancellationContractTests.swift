import TestSupport
import XCTest
@testable import PPL
import ConcRT

/// The cancellation contract (PPL's task_group::wait): `wait()` returns
/// `.canceled` when the group was canceled, whether its tasks returned
/// early or ended with `TaskCanceled` through `checkCancellation()`; other
/// errors are rethrown. Each path is checked with tasks that throw.
final class CancellationContractTests: XCTestCase {
    /// A task that waits for cancellation and then ends through
    /// checkCancellation(); `started` is set once it runs.
    private func cancellationAwareTask(_ started: Event, _ reached: Counter) -> @Sendable () throws -> Void {
        return {
            started.set()
            while !isTaskCancellationRequested() { usleep(100) }
            reached.add()
            try checkCancellation()
            XCTFail("checkCancellation() returned although cancellation was requested")
        }
    }

    /// Starts `cancellationAwareTask` with `run`; returns once it is running.
    private func startCancellationAwareTask(_ run: (@escaping @Sendable () throws -> Void) -> Void,
                                            reached: Counter) {
        let started = Event()
        run(cancellationAwareTask(started, reached))
        XCTAssertTrue(started.wait(timeout: .seconds(30)))
    }

    func testGroupCancelWithCheckCancellationReturnsCanceled() throws {
        let g = TaskGroup(scheduler: testScheduler)
        let reached = Counter()
        startCancellationAwareTask({ g.run($0) }, reached: reached)
        g.cancel()
        XCTAssertEqual(try g.wait(), .canceled)
        XCTAssertEqual(reached.value, 1)
    }

    func testTokenCancelWithCheckCancellationReturnsCanceled() throws {
        let src = CancellationTokenSource()
        let g = TaskGroup(scheduler: testScheduler, token: src.token)
        let reached = Counter()
        startCancellationAwareTask({ g.run($0) }, reached: reached)
        src.cancel()
        XCTAssertEqual(try g.wait(), .canceled)
        XCTAssertEqual(reached.value, 1)
    }

    func testNestedGroupsCanceledFromOutsideReturnCanceledAtEveryLevel() throws {
        let outer = TaskGroup(scheduler: testScheduler)
        let innerStatus = MigrationSafeMutex<TaskGroupStatus?>(nil)
        let innerThrew = Counter()
        let started = Event()
        outer.run {
            let inner = TaskGroup()
            inner.run {
                started.set()
                while !isTaskCancellationRequested() { usleep(100) }
                try checkCancellation()
            }
            do {
                let st = try inner.wait()
                innerStatus.withLock { $0 = st }
            } catch {
                innerThrew.add()
            }
            try checkCancellation()   // the outer task ends the same way
        }
        XCTAssertTrue(started.wait(timeout: .seconds(30)))
        outer.cancel()
        XCTAssertEqual(try outer.wait(), .canceled)
        XCTAssertEqual(innerThrew.value, 0, "the inner wait threw instead of returning .canceled")
        XCTAssertEqual(innerStatus.withLock { $0 }, .canceled)
    }

    func testStructuredGroupCancelWithCheckCancellationReturnsCanceled() throws {
        let reached = Counter()
        let g = StructuredTaskGroup(scheduler: testScheduler)
        let started = Event()
        g.run(cancellationAwareTask(started, reached))
        XCTAssertTrue(started.wait(timeout: .seconds(30)))
        g.cancel()
        let st0 = try g.wait()
        XCTAssertEqual(st0, .canceled)
        // And through a token, with runAndWait.
        let src = CancellationTokenSource()
        let g2 = StructuredTaskGroup(scheduler: testScheduler, token: src.token)
        let started2 = Event()
        g2.run(cancellationAwareTask(started2, reached))
        XCTAssertTrue(started2.wait(timeout: .seconds(30)))
        let st = try g2.runAndWait {
            src.cancel()
            try checkCancellation()
        }
        XCTAssertEqual(st, .canceled)
        XCTAssertEqual(reached.value, 2)
    }

    func testRunAndWaitBodyEndingWithCheckCancellationReturnsCanceled() throws {
        let g = TaskGroup(scheduler: testScheduler)
        let ran = Counter()
        let st = try g.runAndWait {
            g.cancel()
            try checkCancellation()
            ran.add()
        }
        XCTAssertEqual(st, .canceled)
        XCTAssertEqual(ran.value, 0)
        // From a context too.
        let st2 = try testScheduler.run { () throws -> TaskGroupStatus in
            let g = TaskGroup()
            for _ in 0..<10 { g.run { try checkCancellation() } }
            return try g.runAndWait { g.cancel(); try checkCancellation() }
        }
        XCTAssertEqual(st2, .canceled)
    }

    /// A task ending with TaskCanceled (say, from a canceled future's get())
    /// cancels its group like PPL's task_canceled: tasks not yet started are
    /// discarded and wait returns .canceled.
    func testTaskCanceledFromATaskCancelsTheGroup() throws {
        let src = CancellationTokenSource()
        src.cancel()
        let canceledFuture = Future<Int>(scheduler: testScheduler, token: src.token) { 1 }
        XCTAssertEqual(canceledFuture.wait(), .canceled)
        let g = TaskGroup(scheduler: testScheduler)
        g.run { _ = try canceledFuture.get() }
        XCTAssertEqual(try g.wait(), .canceled)
        XCTAssertTrue(g.isCanceling)
        let ran = Counter()
        g.run { ran.add() }
        XCTAssertEqual(try g.wait(), .canceled)
        XCTAssertEqual(ran.value, 0, "a canceled group discards new tasks")
    }

    /// Other errors are still rethrown, also from a canceled group.
    func testOtherErrorsAreRethrownEvenWhenCanceled() throws {
        let g = TaskGroup(scheduler: testScheduler)
        let started = Event()
        g.run {
            started.set()
            while !isTaskCancellationRequested() { usleep(100) }
            throw Boom(id: 4)
        }
        XCTAssertTrue(started.wait(timeout: .seconds(30)))
        g.run { throw TaskCanceled() }   // cancels the group, is not the error
        XCTAssertThrowsError(try g.wait()) { XCTAssertEqual($0 as? Boom, Boom(id: 4)) }
    }
}
