import TestSupport
import XCTest
@testable import PPL
import ConcRT
import Glibc

/// TaskGroup.run from a context of the group's scheduler pushes one node
/// that holds the group and the body (ConcRT's TaskOwner); the group runs
/// the body in its scope. These tests run `run` on a context, so they go
/// through that path (the other TaskGroup tests mostly run from outside).
final class TaskGroupOwnedTaskTests: XCTestCase {
    /// Tasks run in the group's scope whether the waiter runs them inline
    /// or the other virtual processor steals them; the first error cancels
    /// the rest and is rethrown.
    func testOwnedTasksRunInTheGroupsScopeInlineAndStolen() throws {
        let seenCanceled = Counter()
        let ranElsewhere = Counter()
        let total = Counter()
        let othersStarted = Counter()
        XCTAssertThrowsError(try testScheduler.run { () throws -> Void in
            let me = Context.current!.id
            let g = TaskGroup()
            // Task 0 waits (at most 5 s) until a task ran on another
            // context and another task has started (on a loaded machine
            // the thief can take task 0 before the waiter starts any: then
            // its error would come before anyone could see it), then
            // throws; the others wait (at most 5 s) until they see the
            // group canceled through their scope.
            for i in 0..<64 {
                g.run {
                    total.add()
                    if Context.current!.id != me { ranElsewhere.add() }
                    if i == 0 {
                        let t0 = ContinuousClock.now
                        while (ranElsewhere.value == 0 || othersStarted.value == 0)
                                && ContinuousClock.now - t0 < .seconds(5) { sched_yield() }
                        throw Boom(id: 0)
                    }
                    othersStarted.add()
                    let t0 = ContinuousClock.now
                    while !isTaskCancellationRequested() && ContinuousClock.now - t0 < .seconds(5) { sched_yield() }
                    if isTaskCancellationRequested() { seenCanceled.add() }
                }
            }
            try g.wait()
        }) { XCTAssertEqual($0 as? Boom, Boom(id: 0)) }
        XCTAssertGreaterThan(ranElsewhere.value, 0, "no task was taken by the other virtual processor")
        XCTAssertGreaterThan(seenCanceled.value, 0, "no task saw the group's cancellation through its scope")
        XCTAssertLessThan(total.value, 64, "tasks not yet started when the error came were not discarded")
    }

    /// A group dropped without wait: its pushed tasks still run (each node
    /// holds the group), and their error has nowhere to go but is harmless.
    func testGroupDroppedWithoutWaitStillRunsItsTasks() throws {
        let ran = Counter()
        let done = Event()
        testScheduler.run {
            var g: TaskGroup? = TaskGroup()
            for _ in 0..<100 {
                g!.run {
                    if ran.add() == 100 { done.set() }
                }
            }
            g = nil
        }
        done.wait()
        XCTAssertEqual(ran.value, 100)
    }
}
