import Foundation
import TestSupport
import XCTest
@testable import PPL
import ConcRT

// The async waits on PPL work (`Future.value`, `TaskGroup.waitAsync()`):
// they suspend the Swift task and hold no cooperative thread; errors and
// cancellation cross in both directions (AsyncWaits.swift's contract).

/// Polls `cond` every millisecond without holding a thread; false when
/// 30 s pass first.
private func soon(_ cond: () -> Bool) async throws -> Bool {
    let t0 = Date()
    while !cond() {
        if Date().timeIntervalSince(t0) > 30 { return false }
        try await Task.sleep(for: .milliseconds(1))
    }
    return true
}

/// Starts a pthread that runs `rescue` if `finished` is still 0 after
/// 30 s, so that a wait which never ends (the failure under test) ends
/// and the test's assertions report it instead of a hang.
private func rescueAfter30Seconds(unless finished: Counter, _ rescue: @escaping @Sendable () -> Void) {
    Thread {
        let t0 = Date()
        while finished.value == 0 && Date().timeIntervalSince(t0) < 30 { usleep(1000) }
        if finished.value == 0 { rescue() }
    }.start()
}

/// In a PPL task: spins until its cancellation is requested, for at most
/// 30 s. True when it was.
private func spinUntilCancellationRequested() -> Bool {
    let t0 = Date()
    while !isTaskCancellationRequested() && Date().timeIntervalSince(t0) < 30 { usleep(500) }
    return isTaskCancellationRequested()
}

final class AsyncWaitsTests: XCTestCase {
    /// More awaits on unfinished futures than the cooperative pool has
    /// threads, then a pool task completes them. If an await held its
    /// thread, the pool would be full of blocked awaiters and the
    /// completing task could not run: a watchdog pthread then completes the
    /// futures after 30 s (so the test ends), and the count of futures the
    /// pool task completed says so.
    func testFutureValueSuspendsWithoutHoldingAThread() async throws {
        let width = 2 * ProcessInfo.processInfo.activeProcessorCount + 2
        let promises = (0..<width).map { _ in Promise<Int>(scheduler: testScheduler) }
        let waiting = Counter(), finished = Counter(), setByPool = Counter()
        rescueAfter30Seconds(unless: finished) {
            for (i, p) in promises.enumerated() { p.set(i * 10) }
        }
        defer { finished.add() }
        let sum = try await withThrowingTaskGroup(of: Int.self) { g in
            for (i, p) in promises.enumerated() {
                g.addTask {
                    waiting.add()
                    return try await p.future.value + i
                }
            }
            g.addTask {
                // Every awaiter has started; give them time to suspend.
                let started = try await soon { waiting.value == width }
                XCTAssertTrue(started, "awaiters that never started")
                try await Task.sleep(for: .milliseconds(20))
                for (i, p) in promises.enumerated() where p.set(i * 10) { setByPool.add() }
                return 0
            }
            return try await g.reduce(0, +)
        }
        XCTAssertEqual(setByPool.value, width, "a pool task could not run while the awaits were pending")
        XCTAssertEqual(sum, (0..<width).reduce(0) { $0 + $1 * 11 })
    }

    /// A future's error, and a future canceled through its PPL token, reach
    /// the awaiting Swift task as thrown errors.
    func testFutureValueThrowsTheTasksErrorAndTaskCanceled() async throws {
        let failing = Future<Int>(scheduler: testScheduler) { throw Boom(id: 12) }
        do { _ = try await failing.value; XCTFail("no error") } catch let e as Boom { XCTAssertEqual(e, Boom(id: 12)) }
        let source = CancellationTokenSource()
        source.cancel()
        let canceled = Future<Int>(scheduler: testScheduler, token: source.token) { 1 }
        do { _ = try await canceled.value; XCTFail("no error") } catch is TaskCanceled {}
        let fine = Future(scheduler: testScheduler) { 6 * 7 }
        let v = try await fine.value
        XCTAssertEqual(v, 42)
    }

    /// Canceling the awaiting Swift task ends its wait at once with
    /// `CancellationError`; the future is not the awaiter's to cancel and
    /// completes later as usual.
    func testCancelingTheAwaiterEndsItsWaitAndTheFutureRunsOn() async throws {
        let p = Promise<Int>(scheduler: testScheduler)
        let entered = Counter(), finished = Counter()
        // If the wait ignored cancellation it would last forever: after
        // 30 s this completes the future, and the wait returns a value.
        rescueAfter30Seconds(unless: finished) { p.set(-1) }
        defer { finished.add() }
        let awaiter = Task {
            entered.add()
            return try await p.future.value
        }
        let started = try await soon { entered.value > 0 }
        XCTAssertTrue(started)
        try await Task.sleep(for: .milliseconds(20))
        awaiter.cancel()
        do { _ = try await awaiter.value; XCTFail("the wait did not end") } catch is CancellationError {}
        finished.add()
        XCTAssertFalse(p.future.isDone)
        XCTAssertTrue(p.set(5))
        XCTAssertEqual(try p.future.get(), 5)
    }

    /// `waitAsync` returns `.completed` after every task ran, and rethrows
    /// a task's error.
    func testGroupWaitAsyncCompletesAndRethrows() async throws {
        let g = TaskGroup(scheduler: testScheduler)
        let ran = Counter()
        for _ in 0..<1000 { g.run { ran.add() } }
        let status = try await g.waitAsync()
        XCTAssertEqual(status, .completed)
        XCTAssertEqual(ran.value, 1000)
        let bad = TaskGroup(scheduler: testScheduler)
        bad.run { throw Boom(id: 21) }
        for _ in 0..<10 { bad.run {} }
        do { try await bad.waitAsync(); XCTFail("no error") } catch let e as Boom { XCTAssertEqual(e, Boom(id: 21)) }
    }

    /// Canceling the Swift task that awaits a group cancels the group: a
    /// running task sees the request and stops, tasks not started are
    /// discarded, and the wait returns `.canceled`. Without the
    /// propagation the running task would spin its full 30 s and the wait
    /// would return `.completed`.
    func testCancelingTheAwaiterCancelsTheGroup() async throws {
        let g = TaskGroup(scheduler: testScheduler)
        let spinning = Counter(), sawRequest = Counter(), late = Counter()
        g.run {
            spinning.add()
            if spinUntilCancellationRequested() { sawRequest.add() }
        }
        let started = try await soon { spinning.value > 0 }
        XCTAssertTrue(started)
        let awaiter = Task { try await g.waitAsync() }
        try await Task.sleep(for: .milliseconds(20))
        awaiter.cancel()
        let status = try await awaiter.value
        XCTAssertEqual(status, .canceled)
        XCTAssertEqual(sawRequest.value, 1, "the running task did not see the cancellation")
        XCTAssertTrue(g.isCanceling)
        g.run { late.add() }
        XCTAssertEqual(try g.wait(), .canceled)
        XCTAssertEqual(late.value, 0, "a task run on a canceled group started")
    }

    /// The reverse: a group canceled on the PPL side ends an awaiting
    /// Swift task's wait with `.canceled`, and that Swift task is not
    /// itself canceled.
    func testGroupCanceledOnThePPLSideEndsTheAwait() async throws {
        let g = TaskGroup(scheduler: testScheduler)
        let spinning = Counter()
        g.run {
            spinning.add()
            _ = spinUntilCancellationRequested()
        }
        let awaiter = Task { () -> (TaskGroupStatus, Bool) in
            let s = try await g.waitAsync()
            return (s, Task.isCancelled)
        }
        let started = try await soon { spinning.value > 0 }
        XCTAssertTrue(started)
        let t0 = Date()
        g.cancel()
        let (status, swiftCanceled) = try await awaiter.value
        XCTAssertEqual(status, .canceled)
        XCTAssertFalse(swiftCanceled)
        XCTAssertLessThan(Date().timeIntervalSince(t0), 25, "the running task did not see the group's cancellation")
    }
}
