import TestSupport
import XCTest
import Foundation
@testable import UMS
import CSupport

/// Every misuse of the UMS API is a thrown error, never a crash or a hang.
final class UMSErrorTests: XCTestCase {
    func testExecuteFromNonPrimaryThrows() throws {
        let list = try UMSCompletionList()
        let t = try UMSThread(completionList: list) {}
        _ = list.dequeue(timeout: .zero)
        XCTAssertThrowsError(try UMS.execute(t)) { XCTAssertEqual($0 as? UMSError, .notAPrimary) }
        // A primary object used from another pthread is refused too.
        var escaped: UMSPrimary?
        try UMS.enterSchedulingMode { p in escaped = p }
        XCTAssertThrowsError(try escaped!.execute(t)) { XCTAssertEqual($0 as? UMSError, .notAPrimary) }
        try UMS.enterSchedulingMode { p in XCTAssertEqual(try p.execute(t), .terminated) }
    }

    func testExecuteStateErrors() throws {
        let list = try UMSCompletionList()
        let t = try UMSThread(completionList: list) {
            // Executing from inside a UMS thread is refused.
            do {
                _ = try UMS.execute(UMSThread.current!)
                XCTFail("execute from inside a UMS thread must throw")
            } catch {
                XCTAssertEqual(error as? UMSError, .executeFromUMSThread)
            }
            try! UMSThread.yield(1)
        }
        try UMS.enterSchedulingMode { p in
            // Still queued: must be dequeued first.
            XCTAssertThrowsError(try p.execute(t)) { XCTAssertEqual($0 as? UMSError, .threadQueuedOnCompletionList) }
            XCTAssertEqual(list.dequeue(timeout: .zero).count, 1)
            XCTAssertEqual(try p.execute(t), .yielded(1))
            XCTAssertEqual(try p.execute(t), .terminated)
            XCTAssertThrowsError(try p.execute(t)) { XCTAssertEqual($0 as? UMSError, .threadTerminated) }
        }
    }

    func testExecuteThreadBlockedInKernelThrows() throws {
        let list = try UMSCompletionList()
        let gate = DispatchSemaphore(value: 0)
        let t = try UMSThread(completionList: list) {
            UMS.blockingCall { gate.wait() }
        }
        try UMS.enterSchedulingMode { p in
            let got = list.dequeue(timeout: .zero)
            XCTAssertEqual(try p.execute(got[0]), .blocked(.systemCall))
            XCTAssertEqual(t.currentState, .inKernel)
            XCTAssertTrue(t.isSuspended)
            XCTAssertThrowsError(try p.execute(t)) { XCTAssertEqual($0 as? UMSError, .threadBlockedInKernel) }
            XCTAssertThrowsError(try list.delete()) {
                XCTAssertEqual($0 as? UMSError, .completionListNotEmpty(queued: 0, inKernel: 1))
            }
            gate.signal()
            let back = list.dequeue(timeout: .seconds(10))
            XCTAssertEqual(back.count, 1)
            XCTAssertEqual(try p.execute(back[0]), .terminated)
        }
        try list.delete()
    }

    func testExecuteThreadRunningOnAnotherPrimaryThrows() throws {
        let list = try UMSCompletionList()
        let started = DispatchSemaphore(value: 0)
        let release = Flag()
        let t = try UMSThread(completionList: list) {
            started.signal()
            while !release.isSet { usleep(100) }
        }
        _ = list.dequeue(timeout: .zero)
        let other = Thread {
            try! UMS.enterSchedulingMode { p in
                XCTAssertEqual(try p.execute(t), .terminated)
            }
        }
        other.start()
        started.wait()
        try UMS.enterSchedulingMode { p in
            XCTAssertThrowsError(try p.execute(t)) { XCTAssertEqual($0 as? UMSError, .threadRunning) }
        }
        release.set()
        XCTAssertTrue(eventually { t.isTerminated })
    }

    func testNestedSchedulingModeThrows() throws {
        try UMS.enterSchedulingMode { _ in
            // One concrete type: a plain typed catch, whatever the body.
            do {
                try UMS.enterSchedulingMode { _ in XCTFail("the nested body must not run") }
                XCTFail("nested enterSchedulingMode must throw")
            } catch UMSError.alreadyInSchedulingMode {
                // expected
            } catch {
                XCTFail("unexpected \(error)")
            }
        }
    }

    func testBodyErrorIsRethrownUnchanged() throws {
        struct Boom: Error, Equatable {}
        XCTAssertThrowsError(try UMS.enterSchedulingMode { _ in throw Boom() }) { e in
            XCTAssertEqual(e as? Boom, Boom(), "the body's own error, not wrapped: \(e)")
            XCTAssertNil(e as? UMSError)
        }
        XCTAssertNil(UMSPrimary.current, "the carrier slot is cleared after an error")
        // A UMSError thrown by the body (a failed execute) comes out as is.
        let list = try UMSCompletionList()
        let t = try UMSThread(completionList: list) {}
        XCTAssertThrowsError(try UMS.enterSchedulingMode { p in _ = try p.execute(t) }) { e in
            XCTAssertEqual(e as? UMSError, .threadQueuedOnCompletionList)
        }
        try UMS.enterSchedulingMode { p in try runScheduler(p, list, until: 1) }
    }

    func testPinningToInvalidCPUThrows() throws {
        XCTAssertThrowsError(try UMS.enterSchedulingMode(cpu: 100_000) { _ in }) { e in
            guard case .affinityFailed(cpu: 100_000, errno: let err)? = e as? UMSError else {
                return XCTFail("unexpected \(e)")
            }
            XCTAssertEqual("\(e)", "UMS: could not pin the primary to CPU 100000: pthread_setaffinity_np: \(UMS.describe(errno: err))")
        }
    }

    func testErrnoDescriptionStyle() {
        XCTAssertEqual(UMS.describe(errno: EBADF), "EBADF (errno \(EBADF)): \(String(cString: strerror(EBADF)))")
        XCTAssertEqual(UMS.describe(errno: ENOMEM), "ENOMEM (errno \(ENOMEM)): \(String(cString: strerror(ENOMEM)))")
        XCTAssertTrue(UMS.describe(errno: 100_000).hasPrefix("E? (errno 100000): "))
        XCTAssertEqual("\(UMSError.systemCallFailed(call: "eventfd", errno: EMFILE))",
                       "UMS: eventfd: EMFILE (errno \(EMFILE)): \(String(cString: strerror(EMFILE)))")
        XCTAssertEqual("\(UMSError.stackAllocationFailed(errno: ENOMEM))",
                       "UMS: could not map a context stack: mmap: \(UMS.describe(errno: ENOMEM))")
    }

    func testPinningToAllowedCPUWorks() throws {
        let cpu = Int(csup_affinity_cpu_at(0))
        try UMS.enterSchedulingMode(cpu: cpu) { p in
            XCTAssertEqual(p.cpu, cpu)
            XCTAssertEqual(Int(csup_current_cpu()), cpu)
        }
        XCTAssertEqual(Int(csup_affinity_count()), ProcessInfo.processInfo.activeProcessorCount)
    }

    func testYieldOutsideUMSThreadThrows() throws {
        XCTAssertThrowsError(try UMSThread.yield(0)) { XCTAssertEqual($0 as? UMSError, .notOnUMSThread) }
        try UMS.enterSchedulingMode { _ in
            XCTAssertThrowsError(try UMSThread.yield(0)) { XCTAssertEqual($0 as? UMSError, .notOnUMSThread) }
        }
        let list = try UMSCompletionList()
        let inside = Box<UMSError?>(nil)
        _ = try UMSThread(completionList: list) {
            UMS.blockingCall {
                do { try UMSThread.yield(0) } catch { inside.value = error as? UMSError }
            }
        }
        try UMS.enterSchedulingMode { p in try runScheduler(p, list, until: 1) }
        XCTAssertEqual(inside.value, .notOnUMSThread)
    }

    func testKernelThreadReservationFailureThrowsAndLeaksNothing() throws {
        let before = try ResourceCounts.now()
        UMS._injectKernelThreadCreationFailures(2)
        XCTAssertThrowsError(try UMSCompletionList(reservingKernelThreads: 3)) { e in
            XCTAssertEqual(e as? UMSError, .kernelThreadCreationFailed(errno: EAGAIN))
            XCTAssertTrue("\(e)".contains("pthread_create"))
        }
        UMS._injectKernelThreadCreationFailures(0)
        let settled = try ResourceCounts.settle(within: before)
        XCTAssertTrue(settled.ok, "\(settled.last) vs \(before)")
        let list = try UMSCompletionList(reservingKernelThreads: 2)
        XCTAssertEqual(list.idleKernelThreads, 2)
    }

    func testBlockingCallStillCompletesWhenNoKernelThreadCanBeCreated() throws {
        let list = try UMSCompletionList()
        let out = Box(0)
        _ = try UMSThread(completionList: list) {
            out.value = UMS.blockingCall { 41 } + 1
        }
        let fallbacks = UMS.statistics.inlineFallbacks
        UMS._injectKernelThreadCreationFailures(1)
        let results = try UMS.enterSchedulingMode { p in try runScheduler(p, list, until: 1) }
        UMS._injectKernelThreadCreationFailures(0)
        XCTAssertEqual(results, [.blocked(.systemCall), .terminated])
        XCTAssertEqual(out.value, 42)
        XCTAssertEqual(UMS.statistics.inlineFallbacks, fallbacks + 1)
    }
}

