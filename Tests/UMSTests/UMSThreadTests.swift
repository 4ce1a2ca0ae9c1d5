import TestSupport
import XCTest
@testable import UMS
import CSupport

final class UMSThreadTests: XCTestCase {
    func testThreadStartsQueuedAndRunsToTermination() throws {
        let list = try UMSCompletionList()
        let ran = Box(0)
        let t = try UMSThread(completionList: list) { ran.value += 1 }
        XCTAssertEqual(t.currentState, .queued)
        XCTAssertTrue(t.isSuspended)
        XCTAssertFalse(t.isTerminated)
        XCTAssertFalse(list.isEmpty)
        try UMS.enterSchedulingMode { p in
            let got = list.dequeue(timeout: .zero)
            XCTAssertEqual(got.count, 1)
            XCTAssertTrue(got[0] === t)
            XCTAssertEqual(t.currentState, .ready)
            XCTAssertEqual(try p.execute(t), .terminated)
        }
        XCTAssertEqual(ran.value, 1)
        XCTAssertTrue(t.isTerminated)
        XCTAssertFalse(t.isSuspended)
        XCTAssertTrue(list.isEmpty)
    }

    func testYieldPassesParameterAndResumes() throws {
        let list = try UMSCompletionList()
        let steps = Box<[Int]>([])
        let t = try UMSThread(completionList: list) {
            steps.value.append(1)
            try! UMSThread.yield(42)
            steps.value.append(2)
            try! UMSThread.yield(-7)
            steps.value.append(3)
        }
        try UMS.enterSchedulingMode { p in
            let t2 = list.dequeue(timeout: .zero)[0]
            XCTAssertEqual(try p.execute(t2), .yielded(42))
            XCTAssertEqual(t.currentState, .ready)
            XCTAssertEqual(try p.execute(t2), .yielded(-7))
            XCTAssertEqual(try p.execute(t2), .terminated)
        }
        XCTAssertEqual(steps.value, [1, 2, 3])
    }

    func testCurrentAndUserContext() throws {
        let list = try UMSCompletionList()
        XCTAssertNil(UMSThread.current)
        let seen = Box<[Bool]>([])
        let holder = Box<UMSThread?>(nil)
        let t = try UMSThread(completionList: list) {
            seen.value.append(UMSThread.current === holder.value)
            UMS.blockingCall {
                seen.value.append(UMSThread.current === holder.value)
            }
            seen.value.append(UMSThread.current === holder.value)
        }
        holder.value = t
        let marker = UnsafeMutableRawPointer(bitPattern: 0x1234)
        t.userContext = marker
        XCTAssertEqual(t.userContext, marker)
        try UMS.enterSchedulingMode { p in
            XCTAssertNil(UMSThread.current)
            try runScheduler(p, list, until: 1)
        }
        XCTAssertEqual(seen.value, [true, true, true])
    }

    /// A directed switch: T1 hands its primary straight to T2; T2 finishes
    /// T1's switch-out; the primary's execute(T1) reports T2's yield; T1
    /// then runs again from where it switched. A thread that is not ready
    /// is refused and nothing changes.
    func testDirectedSwitchHandsThePrimaryToAnotherThread() throws {
        let list = try UMSCompletionList()
        let steps = Box<[String]>([])
        let threads = Box<[UMSThread]>([])
        let otherList = try UMSCompletionList()
        let queued = try UMSThread(completionList: otherList) {}
        let t1 = try UMSThread(completionList: list, userContext: UnsafeMutableRawPointer(bitPattern: 0x10)) {
            let me = UMSThread.current!
            // Not ready: itself (running), and a thread still queued.
            XCTAssertFalse(me.switchRunning(to: me, param: 0))
            XCTAssertFalse(me.switchRunning(to: threads.value[2], param: 0))
            steps.value.append("t1 before")
            XCTAssertTrue(me.switchRunning(to: threads.value[1], param: 5))
            steps.value.append("t1 after")
        }
        let t2 = try UMSThread(completionList: list, userContext: UnsafeMutableRawPointer(bitPattern: 0x20)) {
            let t1 = threads.value[0]
            // Running on the primary now, as the current thread.
            XCTAssertTrue(UMSThread.current === threads.value[1])
            XCTAssertEqual(UMSThread.currentOnPrimaryUserContext, UnsafeMutableRawPointer(bitPattern: 0x20))
            XCTAssertEqual(t1.currentState, .running, "t1 stays running until its switch-out is completed")
            t1.completeSwitchOut()
            XCTAssertEqual(t1.currentState, .ready)
            steps.value.append("t2")
            try! UMSThread.yield(7)
            steps.value.append("t2 again")
        }
        threads.value = [t1, t2, queued]
        try UMS.enterSchedulingMode { p in
            XCTAssertEqual(list.dequeue(timeout: .zero).count, 2)
            let r = try p.executeReportingThread(t1)
            XCTAssertEqual(r.result, .yielded(7))
            XCTAssertTrue(r.thread.takeUnretainedValue() === t2)
            XCTAssertEqual(r.userContext, UnsafeMutableRawPointer(bitPattern: 0x20))
            XCTAssertEqual(try p.execute(t1), .terminated)
            XCTAssertEqual(try p.execute(t2), .terminated)
            XCTAssertEqual(queued.currentState, .queued)
            XCTAssertTrue(otherList.dequeue(timeout: .zero).first === queued)
            XCTAssertEqual(try p.execute(queued), .terminated)
        }
        XCTAssertEqual(steps.value, ["t1 before", "t2", "t1 after", "t2 again"])
    }

    func testInvalidStackSizeThrows() throws {
        let list = try UMSCompletionList()
        XCTAssertThrowsError(try UMSThread(completionList: list, stackSize: 100) {}) { e in
            XCTAssertEqual(e as? UMSError, .invalidStackSize(requested: 100, minimum: UMS.minimumStackSize))
        }
        XCTAssertThrowsError(try UMSThread(completionList: list, stackSize: -1) {})
        XCTAssertTrue(list.isEmpty)
    }

    func testStackAllocationFailureThrowsAndLeaksNothing() throws {
        let list = try UMSCompletionList()
        UMS.trimStackCache()
        let before = csup_stack_mapped_count()
        UMS._injectStackAllocationFailures(1)
        XCTAssertThrowsError(try UMSThread(completionList: list) {}) { e in
            XCTAssertEqual(e as? UMSError, .stackAllocationFailed(errno: ENOMEM))
            XCTAssertTrue("\(e)".contains("mmap"))
        }
        XCTAssertEqual(csup_stack_mapped_count(), before)
        XCTAssertTrue(list.isEmpty)
        // The next creation works again.
        let t = try UMSThread(completionList: list) {}
        try UMS.enterSchedulingMode { p in try runScheduler(p, list, until: 1) }
        XCTAssertTrue(t.isTerminated)
    }

    func testBothBackendsRunTheSameProgram() throws {
        for backend in UMSContextBackend.allCases {
            let list = try UMSCompletionList()
            let sum = Box(0)
            for i in 0..<20 {
                _ = try UMSThread(completionList: list, backend: backend) {
                    for k in 0..<5 {
                        sum.value += i * k
                        try! UMSThread.yield(k)
                    }
                }
            }
            try UMS.enterSchedulingMode { p in try runScheduler(p, list, until: 20) }
            XCTAssertEqual(sum.value, (0..<20).reduce(0) { $0 + $1 * 10 }, "backend \(backend)")
        }
    }

    func testFloatingPointControlStateIsPerContext() throws {
        // MXCSR is saved per context: a rounding mode set inside a thread
        // must not leak into the primary.
        let list = try UMSCompletionList()
        let before = fegetround()
        _ = try UMSThread(completionList: list) {
            fesetround(FE_TOWARDZERO)
            try! UMSThread.yield(0)
            XCTAssertEqual(fegetround(), FE_TOWARDZERO)
        }
        try UMS.enterSchedulingMode { p in
            let t = list.dequeue(timeout: .zero)[0]
            XCTAssertEqual(try p.execute(t), .yielded(0))
            XCTAssertEqual(fegetround(), before)
            XCTAssertEqual(try p.execute(t), .terminated)
            XCTAssertEqual(fegetround(), before)
        }
    }
}
