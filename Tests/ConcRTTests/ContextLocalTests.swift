import TestSupport
import Foundation
import Synchronization
import XCTest
@testable import ConcRT
import CSupport
import UMS

/// Keys shared by the tests (keys are made once, like real ones).
private let intKey = ContextLocal<Int>(default: -1)
private let nameKey = ContextLocal<String?>(default: nil)

/// Counts its deinits, to check values are released.
private final class Tracked: Sendable {
    let released: Counter
    init(_ c: Counter) { released = c }
    deinit { released.add() }
}
private let trackedKey = ContextLocal<Tracked?>(default: nil)

/// A value whose deinit stores the next link in the same key.
private final class Chained: Sendable {
    static let key = ContextLocal<Chained?>(default: nil)
    let released: Counter
    let depth: Int
    init(_ c: Counter, _ d: Int) { released = c; depth = d }
    deinit {
        released.add()
        if depth > 0 { Chained.key.set(Chained(released, depth - 1)) }
    }
}

final class ContextLocalTests: XCTestCase {
    // MARK: Off a context: per pthread

    func testOffContextGetSetResetWithValue() throws {
        XCTAssertEqual(intKey.value, -1)
        intKey.set(5)
        XCTAssertEqual(intKey.value, 5)
        XCTAssertEqual(intKey.withValue(7) { intKey.value }, 7)
        XCTAssertEqual(intKey.value, 5, "withValue restores the previous value")
        struct Oops: Error {}
        XCTAssertThrowsError(try intKey.withValue(9) { () throws -> Void in
            XCTAssertEqual(intKey.value, 9)
            throw Oops()
        })
        XCTAssertEqual(intKey.value, 5, "withValue restores when its body throws")
        // Another pthread has its own value.
        let seen = Box<Int>(0)
        runOnNewThread {
            seen.value = intKey.value
            intKey.set(100)
        }.wait()
        XCTAssertEqual(seen.value, -1)
        XCTAssertEqual(intKey.value, 5)
        intKey.reset()
        XCTAssertEqual(intKey.value, -1)
        // Optional values: nil default, and a set nil is distinct from a default.
        let k = ContextLocal<Int?>(default: 3)
        k.set(nil)
        XCTAssertNil(k.value)
        k.reset()
        XCTAssertEqual(k.value, 3)
    }

    func testPThreadValuesAreReleasedWhenThePThreadExits() {
        let released = Counter()
        runOnNewThread { trackedKey.set(Tracked(released)) }.wait()
        XCTAssertTrue(eventually { released.value == 1 }, "the pthread key's destructor releases the value")
    }

    // MARK: On contexts

    func testTasksStartEmptyAndTheirValuesAreReleasedWhenTheyReturn() throws {
        // One VP: every task runs on the same few contexts, one after another.
        let s = try makeScheduler(1)
        defer { try? s.shutdown() }
        let released = Counter()
        let dirty = Counter()
        let n = 200
        let all = Counter()
        let done = Event()
        for i in 0..<n {
            s.scheduleTask {
                if intKey.value != -1 || nameKey.value != nil || trackedKey.value != nil { dirty.add() }
                intKey.set(i)
                nameKey.set("task \(i)")
                trackedKey.set(Tracked(released))
                if all.add() == n { done.set() }
            }
        }
        XCTAssertTrue(done.wait(timeout: .seconds(30)))
        XCTAssertTrue(eventually { released.value == n }, "released \(released.value) of \(n)")
        XCTAssertEqual(dirty.value, 0, "a task saw a value set by an earlier task")
    }

    func testNestedTaskRunOnAnotherTasksFrameStartsEmptyAndRestoresTheOuterValues() throws {
        let s = try makeScheduler(1)
        defer { try? s.shutdown() }
        let innerSaw = Box<Int?>(nil)
        let outerAfter = Box<Int?>(nil)
        let ranInline = Box<Bool>(false)
        runAsTask(s) {
            intKey.set(1)
            let ctx = Context.current!
            Context.forkJoin(ctx, {
                // Pushed above the fork: the join pops and runs it nested, on this frame.
                s.scheduleTask {
                    ranInline.value = Context.current === ctx
                    innerSaw.value = intKey.value
                    intKey.set(2)
                }
            }, {})
            outerAfter.value = intKey.value
        }.wait()
        XCTAssertTrue(ranInline.value, "the scheduled task was expected to run nested on the joiner")
        XCTAssertEqual(innerSaw.value, -1, "a nested task starts with no values")
        XCTAssertEqual(outerAfter.value, 1, "the enclosing task's value is back after the nested task")
    }

    /// Nested task runs reuse one spare table (no table, box or array per
    /// nested task): each still starts empty, its values are released when
    /// it returns, and the enclosing task's values come back.
    func testNestedTasksReuseAnEmptiedSpareTable() throws {
        let s = try makeScheduler(1)
        defer { try? s.shutdown() }
        let released = Counter()
        let sawInt = Box<[Int]>([])
        let sawTracked = Box<[Bool]>([])
        let releasedAfter = Box<[Int]>([])
        let outerAfter = Box<[Int]>([])
        let spares = Box<[Int]>([])
        runAsTask(s) {
            intKey.set(1)
            let ctx = Context.current!
            for round in 0..<3 {
                Context.forkJoin(ctx, {
                    s.scheduleTask {
                        sawInt.value.append(intKey.value)
                        sawTracked.value.append(trackedKey.value != nil)
                        intKey.set(100 + round)
                        trackedKey.set(Tracked(released))
                    }
                }, {})
                releasedAfter.value.append(released.value)
                outerAfter.value.append(intKey.value)
                spares.value.append(ctx.spareContextLocals.count)
            }
        }.wait()
        XCTAssertEqual(sawInt.value, [-1, -1, -1], "a nested task (on a reused table) starts with no values")
        XCTAssertEqual(sawTracked.value, [false, false, false], "a reused table showed a released value")
        XCTAssertEqual(releasedAfter.value, [1, 2, 3], "a nested task's value was not released when it returned")
        XCTAssertEqual(outerAfter.value, [1, 1, 1], "the enclosing task's value is back after each nested task")
        XCTAssertEqual(spares.value, [1, 1, 1], "the nested tasks' table was not kept and reused as a spare")
    }

    /// Values follow the context across a blocking wait that moves it to
    /// another virtual processor (another pthread) of a 2-VP scheduler,
    /// while other tasks on other contexts store their own values meanwhile.
    func testValueSurvivesBlockingWaitThatMigratesTheContext() throws {
        let s = try makeScheduler(2)
        defer { try? s.shutdown() }
        let waiters = 32
        let wrong = Counter()
        let migrated = Counter()
        let dirty = Counter()
        let start = Date()
        var rounds = 0
        // Bounded: stop once a migration was seen (and a few rounds ran).
        while rounds < (longMode ? 200 : 3) || (migrated.value == 0 && Date().timeIntervalSince(start) < 20) {
            rounds += 1
            let round = rounds
            let gates = (0..<waiters).map { _ in Event() }
            let parked = Counter()
            let allParked = Event()
            let finished = Counter()
            let allFinished = Event()
            for i in 0..<waiters {
                s.scheduleTask {
                    if intKey.value != -1 { dirty.add() }
                    intKey.set(1000 * round + i)
                    let vp0 = Context.current!.virtualProcessorID
                    let tid0 = csup_gettid()
                    if parked.add() == waiters { allParked.set() }
                    gates[i].wait()
                    // Other tasks ran on this VP meanwhile, on other contexts.
                    if intKey.value != 1000 * round + i { wrong.add() }
                    if Context.current!.virtualProcessorID != vp0 && csup_gettid() != tid0 { migrated.add() }
                    if finished.add() == waiters { allFinished.set() }
                }
            }
            XCTAssertTrue(allParked.wait(timeout: .seconds(30)))
            // Polluters: fresh tasks on other contexts, storing other values.
            let polluted = Counter()
            let pollutersDone = Event()
            for _ in 0..<64 {
                s.scheduleTask {
                    if intKey.value != -1 { dirty.add() }
                    intKey.set(-7)
                    if polluted.add() == 64 { pollutersDone.set() }
                }
            }
            XCTAssertTrue(pollutersDone.wait(timeout: .seconds(30)))
            // Wake every waiter from one task: woken contexts are queued on
            // the waker's VP, so the ones parked on the other VP move.
            runAsTask(s) { for g in gates { g.set() } }.wait()
            XCTAssertTrue(allFinished.wait(timeout: .seconds(30)))
        }
        XCTAssertEqual(wrong.value, 0, "a context's value changed across a blocking wait")
        XCTAssertEqual(dirty.value, 0, "a task saw a value set by an earlier task")
        XCTAssertGreaterThan(migrated.value, 0, "no context resumed on another VP in \(rounds) rounds: the test did not exercise migration")
    }

    /// Values survive a kernel blocking call (the context returns through
    /// the completion list, maybe on another VP); inside the call's
    /// closure the kernel thread's own table is used.
    func testValueSurvivesBlockingCallAndIsNotVisibleInsideIt() throws {
        let s = try makeScheduler(2)
        defer { try? s.shutdown() }
        let inside = Box<Int?>(nil)
        let insideScoped = Box<Int?>(nil)
        let after = Box<Int?>(nil)
        runAsTask(s) {
            intKey.set(42)
            _ = UMS.blockingCall {
                inside.value = intKey.value
                insideScoped.value = intKey.withValue(8) { intKey.value }
                _ = csup_sys_nanosleep(1_000_000)
            }
            after.value = intKey.value
        }.wait()
        XCTAssertEqual(inside.value, -1, "inside the blocking closure the kernel thread's table is used")
        XCTAssertEqual(insideScoped.value, 8)
        XCTAssertEqual(after.value, 42)
    }

    func testValueDeinitThatStoresIsReleasedToo() throws {
        // A value whose deinit stores another value: the end-of-task release
        // must release that one as well, and not corrupt the table.
        let chainKey = Chained.key
        let s = try makeScheduler(1)
        defer { try? s.shutdown() }
        let released = Counter()
        let sawDefault = Box<Bool>(false)
        runAsTask(s) { chainKey.set(Chained(released, 3)) }.wait()
        runAsTask(s) { sawDefault.value = chainKey.value == nil }.wait()
        XCTAssertTrue(eventually { released.value == 4 }, "released \(released.value) of 4")
        XCTAssertTrue(sawDefault.value)
    }

    func testWorkerSlot() throws {
        XCTAssertNil(Context.currentWorkerSlot, "no worker slot off a context")
        let s = try makeScheduler(2)
        defer { try? s.shutdown() }
        let slots = MigrationSafeMutex<Set<Int>>([])
        let g = Counter()
        let done = Event()
        for _ in 0..<200 {
            s.scheduleTask {
                let a = Context.currentWorkerSlot!
                XCTAssertEqual(a, Context.current!.workerSlot)
                slots.withLock { _ = $0.insert(a) }
                usleep(100)
                if g.add() == 200 { done.set() }
            }
        }
        XCTAssertTrue(done.wait(timeout: .seconds(30)))
        let seen = slots.withLock { $0 }
        XCTAssertTrue(seen.allSatisfy { $0 >= 0 && $0 < 64 }, "small indices: \(seen)")
        XCTAssertLessThanOrEqual(seen.count, 2, "one slot per VP of a 2-VP scheduler: \(seen)")
    }
}
