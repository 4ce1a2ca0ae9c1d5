import TestSupport
import XCTest
@testable import PPL
import ConcRT

final class TaskGroupTests: XCTestCase {
    func testRunAndWaitCompletes() throws {
        let c = Counter()
        let g = TaskGroup(scheduler: testScheduler)
        for _ in 0..<1000 { g.run { c.add() } }
        XCTAssertEqual(try g.wait(), .completed)
        XCTAssertEqual(c.value, 1000)
        // From inside the scheduler too, nested.
        let inner = try testScheduler.run { () throws -> Int in
            let g2 = TaskGroup()
            let c2 = Counter()
            for _ in 0..<100 { g2.run { c2.add() } }
            try g2.runAndWait { c2.add(10) }
            return c2.value
        }
        XCTAssertEqual(inner, 110)
    }

    func testFirstErrorCancelsAndIsRethrown() throws {
        let g = TaskGroup(scheduler: testScheduler)
        let started = Counter()
        g.run { throw Boom(id: 1) }
        for _ in 0..<2000 { g.run { started.add(); usleep(10) } }
        XCTAssertThrowsError(try g.wait()) { XCTAssertEqual($0 as? Boom, Boom(id: 1)) }
        XCTAssertTrue(g.isCanceling)
        XCTAssertLessThan(started.value, 2000, "tasks not yet started were discarded")
    }

    func testCancelBeforeDuringAndAfter() throws {
        // Before start: nothing runs.
        let ran = Counter()
        let g1 = TaskGroup(scheduler: testScheduler)
        g1.cancel()
        for _ in 0..<100 { g1.run { ran.add() } }
        XCTAssertEqual(try g1.wait(), .canceled)
        XCTAssertEqual(ran.value, 0)
        // During: running tasks see it.
        let sawCancel = Counter()
        let g2 = TaskGroup(scheduler: testScheduler)
        let started = Event()
        g2.run {
            started.set()
            while !isTaskCancellationRequested() { usleep(100) }
            sawCancel.add()
            try checkCancellation()
        }
        started.wait()
        g2.cancel()
        XCTAssertEqual(try g2.wait(), .canceled, "TaskCanceled from checkCancellation() is reported as .canceled")
        XCTAssertEqual(sawCancel.value, 1)
        // After completion: status stays canceled, nothing breaks.
        let g3 = TaskGroup(scheduler: testScheduler)
        g3.run {}
        XCTAssertEqual(try g3.wait(), .completed)
        g3.cancel()
        XCTAssertEqual(try g3.wait(), .canceled)
    }

    func testErrorFromDeepInsideNestedGroups() throws {
        @Sendable func level(_ d: Int) throws {
            let g = TaskGroup()
            for i in 0..<3 {
                g.run {
                    if d == 0 {
                        if i == 2 { throw Boom(id: 42) }
                        return
                    }
                    try level(d - 1)
                }
            }
            try g.wait()
        }
        XCTAssertThrowsError(try testScheduler.run { try level(4) }) { XCTAssertEqual($0 as? Boom, Boom(id: 42)) }
    }

    func testCancellingOuterGroupReachesNestedTasks() throws {
        let outer = TaskGroup(scheduler: testScheduler)
        let observed = Event()
        outer.run {
            let inner = TaskGroup()
            inner.run {
                while !isTaskCancellationRequested() { usleep(100) }
                observed.set()
            }
            _ = try? inner.wait()
        }
        usleep(5_000)
        outer.cancel()
        XCTAssertTrue(observed.wait(timeout: .seconds(10)))
        XCTAssertEqual(try outer.wait(), .canceled)
    }

    func testTokenCancelsGroup() throws {
        let src = CancellationTokenSource()
        let g = TaskGroup(scheduler: testScheduler, token: src.token)
        src.cancel()
        let ran = Counter()
        g.run { ran.add() }
        XCTAssertEqual(try g.wait(), .canceled)
        XCTAssertEqual(ran.value, 0)
    }

    func testStructuredTaskGroupIsConsumedByWait() throws {
        let c = Counter()
        let g = StructuredTaskGroup(scheduler: testScheduler)
        for _ in 0..<50 { g.run { c.add() } }
        let st = try g.wait()
        XCTAssertEqual(st, .completed)
        XCTAssertEqual(c.value, 50)
        let g2 = StructuredTaskGroup(scheduler: testScheduler)
        g2.run { c.add() }
        let st2 = try g2.runAndWait { c.add() }
        XCTAssertEqual(st2, .completed)
        XCTAssertEqual(c.value, 52)
    }

    func testNestedParallelismFourLevelsDeep() throws {
        @Sendable func sum(_ lo: Int, _ hi: Int, _ depth: Int) throws -> Int {
            if depth == 0 { return (lo..<hi).reduce(0, +) }
            let mid = (lo + hi) / 2
            let (a, b) = try parallelInvoke({ try sum(lo, mid, depth - 1) }, { try sum(mid, hi, depth - 1) })
            return a + b
        }
        let total = try testScheduler.run { () throws -> Int in
            let g = TaskGroup()
            let parts = Combinable<Int> { 0 }
            for k in 0..<4 {
                g.run {
                    let v = try sum(k * 25_000, (k + 1) * 25_000, 4)
                    parts.withLocal { $0 += v }
                }
            }
            try g.wait()
            return parts.combine(+)
        }
        XCTAssertEqual(total, (0..<100_000).reduce(0, +))
    }
}

final class TaskGroupHelpTests: XCTestCase {
    /// A group's wait must not run an unrelated task inline: that task can
    /// block on something the waiter's caller does only after the wait.
    func testWaitDoesNotRunUnrelatedTasksInline() throws {
        let done = Event()
        testScheduler.scheduleTask {
            let gate = Event()
            let g = TaskGroup()
            g.run { try Blocking.sleep(for: .milliseconds(20)) }
            let other = TaskGroup()
            other.run { gate.wait() }
            try! g.wait()
            gate.set()
            try! other.wait()
            done.set()
        }
        XCTAssertTrue(done.wait(timeout: .seconds(30)), "deadlock: the wait ran an unrelated blocking task inline")
    }

    /// Same for a join on a stolen fork.
    func testStolenJoinDoesNotRunUnrelatedTasksInline() throws {
        let done = Event()
        testScheduler.scheduleTask {
            let gate = Event()
            let other = TaskGroup()
            for _ in 0..<8 { other.run { gate.wait() } }
            for _ in 0..<200 {
                _ = parallelInvoke({ usleep(50) }, { usleep(50) })
            }
            gate.set()
            try! other.wait()
            done.set()
        }
        XCTAssertTrue(done.wait(timeout: .seconds(30)))
    }
}
