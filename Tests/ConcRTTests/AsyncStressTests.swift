import Foundation
import Synchronization
import XCTest
@testable import ConcRT
import CSupport
import UMS
import TestSupport

final class AsyncStressTests: XCTestCase {
    /// 2,000 async tasks (LONG=1: 10,000) on the executor, each mixing
    /// awaits, a wrapped blocking call, actor hops and task-group children;
    /// each completes exactly once.
    func testManyAsyncTasksMixingEverything() async throws {
        let n = ProcessInfo.processInfo.environment["LONG"] == "1" ? 10_000 : 2_000
        let s = try makeScheduler(2)
        defer { try? s.shutdown() }
        let actor = SchedulerActor(SchedulerSerialExecutor(scheduler: s))
        let done = DoneCounts(n)
        let started = monotonicNow()
        try await withThrowingTaskGroup(of: Void.self) { g in
            for i in 0..<n {
                g.addTask(executorPreference: s) {
                    await Task.yield()
                    if i % 8 == 0 { try Blocking.sleep(for: .microseconds(100)) }
                    _ = await actor.bump()
                    let sum = await withTaskGroup(of: Int.self) { cg in
                        for k in 0..<2 { cg.addTask { k + i } }
                        return await cg.reduce(0, +)
                    }
                    XCTAssertEqual(sum, 2 * i + 1)
                    done.m.withLock { $0[i] += 1 }
                }
            }
            try await g.waitForAll()
        }
        XCTAssertEqual(done.m.withLock { $0.filter { $0 == 1 }.count }, n)
        let bumps = await actor.count
        XCTAssertEqual(bumps, n)
        XCTAssertLessThan(monotonicNow() - started, 120_000_000_000)
    }

    func testRunAsyncReturnsAndThrows() async throws {
        let s = try makeScheduler(2)
        defer { try? s.shutdown() }
        let v = try await s.runAsync { Context.current != nil ? 42 : -1 }
        XCTAssertEqual(v, 42)
        struct Boom: Error {}
        do {
            _ = try await s.runAsync { () throws -> Int in throw Boom() }
            XCTFail("no error")
        } catch is Boom {}
    }

    func testEventWaitAsyncAndCancellation() async throws {
        let s = try makeScheduler(2)
        defer { try? s.shutdown() }
        let e = Event()
        async let waited: Void = e.wait(on: s)
        try await Task.sleep(for: .milliseconds(5))
        e.set()
        try await waited
        let never = Event()
        let t = Task { try await never.wait(on: s) }
        try await Task.sleep(for: .milliseconds(5))
        t.cancel()
        do { try await t.value; XCTFail("not canceled") } catch is CancellationError {}
    }

    /// Shutdown while many jobs are queued: shutdown waits for them (they
    /// count as pending tasks); jobs of tasks that resume after it go to
    /// the default executor. Nothing is lost.
    func testShutdownWithQueuedJobsLosesNothing() async throws {
        let s = try makeScheduler(2)
        let gate = Event()
        let count = Counter()
        // Occupy both VPs so jobs stay queued.
        for _ in 0..<2 { s.scheduleTask { gate.wait() } }
        let tasks = (0..<500).map { _ in
            Task(executorPreference: s) {
                count.add()
                await Task.yield()   // a second job, maybe after the shutdown
                count.add()
            }
        }
        let shutdownDone = Event()
        let t = Thread { try! s.shutdown(); shutdownDone.set() }
        t.start()
        try await Task.sleep(for: .milliseconds(20))
        XCTAssertFalse(s.isShutDown, "shutdown returned with jobs queued")
        gate.set()
        for task in tasks { await task.value }
        shutdownDone.wait(timeout: nil)
        XCTAssertTrue(s.isShutDown)
        XCTAssertEqual(count.value, 1_000)
    }
}

/// Per-task completion counts.
final class DoneCounts: Sendable {
    let m: MigrationSafeMutex<[Int]>
    init(_ n: Int) { m = MigrationSafeMutex(Array(repeating: 0, count: n)) }
}
