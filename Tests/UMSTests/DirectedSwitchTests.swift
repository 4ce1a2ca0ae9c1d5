import TestSupport
import XCTest
import Foundation
import Synchronization
@testable import UMS
import CSupport

/// The directed switch as a UMS primitive: `switchRunning(to:param:)`,
/// `completeSwitchOut()`, `executeReportingThread(_:)`.
final class DirectedSwitchTests: XCTestCase {
    /// Two UMS threads hand one primary straight to each other, round after
    /// round, inside a single `execute`; each completes the other's
    /// switch-out where it resumes, as the primitive's rules ask.
    func testTwoThreadsSwitchStraightToEachOther() throws {
        let rounds = 200
        let list = try UMSCompletionList()
        let threads = Box<[UMSThread]>([])
        let pending = Box<UMSThread?>(nil)       // the switch-out to complete
        let log = Box<[Int]>([])
        let badStates = Box<[String]>([])
        @Sendable func finishPending() {
            guard let p = pending.value else { return }
            if p.currentState != .running { badStates.value.append("pending \(p.currentState)") }
            pending.value = nil
            p.completeSwitchOut()
        }
        func body(_ me: Int, _ other: Int) -> @Sendable () -> Void {
            return {
                for i in 0..<rounds {
                    finishPending()
                    log.value.append(me * 10_000 + i)
                    let self_ = threads.value[me], next = threads.value[other]
                    pending.value = self_
                    if !self_.switchRunning(to: next, param: i) { badStates.value.append("refused in round \(i)") }
                }
                finishPending()
            }
        }
        let t0 = try UMSThread(completionList: list, userContext: UnsafeMutableRawPointer(bitPattern: 0x100), body: body(0, 1))
        let t1 = try UMSThread(completionList: list, userContext: UnsafeMutableRawPointer(bitPattern: 0x200), body: body(1, 0))
        threads.value = [t0, t1]
        try UMS.enterSchedulingMode { p in
            XCTAssertEqual(list.dequeue(timeout: .zero).count, 2)
            let executes = p.executeCount, yields = p.yieldCount
            // t0 runs all its rounds and terminates first; the last switch
            // of t1 went to t0, so the report is about t0.
            let r = try p.executeReportingThread(t0)
            XCTAssertEqual(r.result, .terminated)
            XCTAssertTrue(r.thread.takeUnretainedValue() === t0)
            XCTAssertEqual(r.userContext, UnsafeMutableRawPointer(bitPattern: 0x100))
            XCTAssertEqual(p.executeCount, executes + 1, "2 * \(rounds) switches, one execute")
            XCTAssertEqual(p.yieldCount, yields)
            // t1 was completed by t0 and is ready inside its last switch.
            XCTAssertEqual(t1.currentState, .ready)
            let r1 = try p.executeReportingThread(t1)
            XCTAssertEqual(r1.result, .terminated)
            XCTAssertTrue(r1.thread.takeUnretainedValue() === t1)
        }
        XCTAssertEqual(badStates.value, [])
        XCTAssertEqual(log.value, (0..<rounds).flatMap { [$0, 10_000 + $0] })
        XCTAssertTrue(t0.isTerminated && t1.isTerminated)
    }

    /// A switch to a thread that is not ready is refused (false), changes
    /// nothing, and the caller goes on running: a queued thread, a thread
    /// in the kernel, a terminated one, the caller itself, and a thread
    /// whose own directed switch is not completed yet.
    func testSwitchToAThreadThatIsNotReadyIsRefused() throws {
        let list = try UMSCompletionList()
        let otherList = try UMSCompletionList()
        let queuedList = try UMSCompletionList()
        let gate = DispatchSemaphore(value: 0)
        let queued = try UMSThread(completionList: queuedList) {}
        let inKernel = try UMSThread(completionList: otherList) { UMS.blockingCall { gate.wait() } }
        let done = try UMSThread(completionList: otherList) {}
        let threads = Box<[UMSThread]>([])
        let seen = Box<[String]>([])
        let a = try UMSThread(completionList: list) {
            let me = threads.value[0], b = threads.value[1]
            for (name, target) in [("queued", queued), ("inKernel", inKernel), ("terminated", done), ("self", me)] {
                let before = target.currentState
                seen.value.append("\(name): \(me.switchRunning(to: target, param: 0)) \(target.currentState == before)")
            }
            seen.value.append("a switches to b: \(me.switchRunning(to: b, param: 1))")
            seen.value.append("a resumed")
        }
        let b = try UMSThread(completionList: list) {
            let a = threads.value[0], me = threads.value[1]
            // a's switch-out is not completed: a is still running, refused.
            seen.value.append("b to uncompleted a: \(me.switchRunning(to: a, param: 0)) \(a.currentState)")
            a.completeSwitchOut()
            seen.value.append("b to a: \(me.switchRunning(to: a, param: 2))")
        }
        threads.value = [a, b]
        try UMS.enterSchedulingMode { p in
            // `queued` stays queued; `inKernel` goes into its blocking call;
            // `done` runs to its end.
            XCTAssertEqual(otherList.dequeue(timeout: .zero).count, 2)
            XCTAssertEqual(try p.execute(inKernel), .blocked(.systemCall))
            XCTAssertEqual(try p.execute(done), .terminated)
            XCTAssertEqual(list.dequeue(timeout: .zero).count, 2)
            // a refuses four targets, switches to b; b is refused a, then
            // completes a and switches to it; a ends.
            let r = try p.executeReportingThread(a)
            XCTAssertEqual(r.result, .terminated)
            XCTAssertTrue(r.thread.takeUnretainedValue() === a)
            // b is still running: nobody completed its switch to a. The
            // caller of the primitive owns that; complete it and finish b.
            XCTAssertEqual(b.currentState, .running)
            XCTAssertThrowsError(try p.execute(b)) { XCTAssertEqual($0 as? UMSError, .threadRunning) }
            b.completeSwitchOut()
            XCTAssertEqual(try p.execute(b), .terminated)
            XCTAssertEqual(queued.currentState, .queued)
            XCTAssertEqual(inKernel.currentState, .inKernel)
            XCTAssertEqual(try runScheduler(p, queuedList, until: 1), [.terminated])
            gate.signal()
            XCTAssertEqual(try runScheduler(p, otherList, until: 1), [.terminated])
        }
        XCTAssertEqual(seen.value, [
            "queued: false true", "inKernel: false true", "terminated: false true", "self: false true",
            "b to uncompleted a: false running", "a switches to b: true", "a resumed", "b to a: true",
        ])
    }

    /// A directed switch and an `execute` on another primary race for one
    /// ready thread: exactly one of them runs it (the ready → running step
    /// is one acquire compare-and-exchange on both paths).
    func testRacingDirectedSwitchAndExecuteHaveOneWinner() throws {
        let rounds = StressTests.long ? 5_000 : 300
        let list = try UMSCompletionList()
        let round = Atomic<Int>(-1)        // A -> B: round r is set up (release)
        let bGo = Atomic<Int>(-1)          // B -> caller: about to execute r
        let bDone = Atomic<Int>(-1)        // B -> A: round r finished (release)
        let runs = Counter(), switchWins = Counter(), executeWins = Counter()
        let current = Box<(target: UMSThread?, caller: UMSThread?)>((nil, nil))
        let primaryA = Box<ObjectIdentifier?>(nil)
        let deadline = UMSDeadline(after: .seconds(60))

        let b = Thread {
            try! UMS.enterSchedulingMode { p in
                for r in 0..<rounds {
                    while round.load(ordering: .acquiring) < r { if deadline.hasPassed { return }; sched_yield() }
                    let target = current.value.target!
                    bGo.store(r, ordering: .releasing)
                    // A varying head start for the caller on A, so that
                    // either side wins in some rounds.
                    for _ in 0..<(r % 32) * 64 { csup_cpu_relax() }
                    if (try? p.execute(target)) == .terminated { executeWins.add() }
                    bDone.store(r, ordering: .releasing)
                }
            }
        }
        b.stackSize = 1 << 20
        b.start()

        try UMS.enterSchedulingMode { p in
            primaryA.value = ObjectIdentifier(p)
            for r in 0..<rounds {
                let callerBox = Box<UMSThread?>(nil)
                let target = try UMSThread(completionList: list, stackSize: 32 * 1024) {
                    runs.add()
                    // On A it came through the directed switch: complete it.
                    if ObjectIdentifier(UMSPrimary.current!) == primaryA.value {
                        switchWins.add()
                        callerBox.value!.completeSwitchOut()
                    }
                }
                let caller = try UMSThread(completionList: list, stackSize: 32 * 1024) {
                    while bGo.load(ordering: .acquiring) < r { if deadline.hasPassed { return }; csup_cpu_relax() }
                    _ = callerBox.value!.switchRunning(to: target, param: r)
                }
                callerBox.value = caller
                current.value = (target, caller)
                XCTAssertEqual(list.dequeue(timeout: .zero).count, 2)
                round.store(r, ordering: .releasing)
                let first = try p.executeReportingThread(caller)
                XCTAssertEqual(first.result, .terminated)
                if first.thread.takeUnretainedValue() === target {
                    // The switch won; the caller is ready inside it.
                    XCTAssertEqual(try p.execute(caller), .terminated)
                }
                while bDone.load(ordering: .acquiring) < r { if deadline.hasPassed { break }; sched_yield() }
                XCTAssertTrue(target.isTerminated && caller.isTerminated, "round \(r)")
                XCTAssertEqual(runs.value, r + 1, "the target ran exactly once in round \(r)")
                if deadline.hasPassed { break }
            }
        }
        XCTAssertFalse(deadline.hasPassed, "bounded: 60 s")
        XCTAssertTrue(eventually { b.isFinished })
        XCTAssertEqual(switchWins.value + executeWins.value, rounds)
        print("directed switch vs execute: \(switchWins.value) switch wins, \(executeWins.value) execute wins")
    }
}
