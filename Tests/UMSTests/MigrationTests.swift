import TestSupport
import XCTest
import Foundation
@testable import UMS
import CSupport

final class Holder: @unchecked Sendable {
    var values: [Int] = []
    var counter = 0
}

@inline(never)
func appendAcrossBlockingCall(_ a: inout [Int], tids: Box<[Int64]>, gate: DispatchSemaphore) {
    a.append(1)
    tids.value.append(csup_gettid())
    UMS.blockingCall { gate.wait() }
    tids.value.append(csup_gettid())
    a.append(2)
}

final class MigrationTests: XCTestCase {
    /// A thread holds a dynamic exclusive access (a class property passed
    /// inout) across a blocking call and resumes on another primary.
    func testExclusiveAccessSurvivesMigration() throws {
        let list = try UMSCompletionList()
        let holder = Holder()
        let tids = Box<[Int64]>([])
        let gate = DispatchSemaphore(value: 0)
        let t = try UMSThread(completionList: list) {
            appendAcrossBlockingCall(&holder.values, tids: tids, gate: gate)
        }
        // Primary A runs it until it blocks, then touches the same property
        // (no false "simultaneous access": the access set left with the thread).
        try UMS.enterSchedulingMode { p in
            XCTAssertEqual(try p.execute(list.dequeue(timeout: .zero)[0]), .blocked(.systemCall))
            holder.counter += 1
        }
        gate.signal()
        // Primary B (another pthread) resumes it; the access ends there.
        onNewThread {
            try! UMS.enterSchedulingMode { p in
                let back = list.dequeue(timeout: .seconds(10))
                XCTAssertEqual(back.count, 1)
                XCTAssertEqual(try p.execute(back[0]), .terminated)
            }
        }
        XCTAssertTrue(t.isTerminated)
        XCTAssertEqual(holder.values, [1, 2])
        XCTAssertEqual(tids.value.count, 2)
        XCTAssertNotEqual(tids.value[0], tids.value[1], "the thread resumed on another pthread")
    }

    /// The same, many times, with two primaries racing for the list.
    func testExclusiveAccessAcrossManyMigrations() throws {
        let list = try UMSCompletionList()
        let holders = (0..<200).map { _ in Holder() }
        for h in holders {
            _ = try UMSThread(completionList: list) {
                func work(_ a: inout [Int]) {
                    for i in 0..<5 {
                        a.append(i)
                        _ = UMS.blockingCall { usleep(UInt32.random(in: 0...200)) }
                        try! UMSThread.yield(i)
                    }
                }
                work(&h.values)
            }
        }
        let remaining = Counter()
        remaining.add(holders.count)
        let g = DispatchGroup()
        for _ in 0..<2 {
            g.enter()
            Thread {
                try! UMS.enterSchedulingMode { p in
                    var ready: [UMSThread] = []
                    while remaining.value > 0 {
                        list.drain(timeout: ready.isEmpty ? .milliseconds(2) : .zero) { ready.append($0) }
                        guard let t = ready.popLast() else { continue }
                        switch try p.execute(t) {
                        case .terminated: remaining.add(-1)
                        case .yielded: ready.insert(t, at: 0)
                        case .blocked: break
                        }
                    }
                }
                g.leave()
            }.start()
        }
        XCTAssertEqual(g.wait(timeout: .now() + 120), .success)
        for h in holders { XCTAssertEqual(h.values, [0, 1, 2, 3, 4]) }
    }

    /// errno read inside the blocking call is that call's errno, even though
    /// the thread resumes elsewhere.
    func testErrnoOfBlockingCallIsThatCalls() throws {
        let list = try UMSCompletionList()
        let results = Box<[Int32]>([])
        _ = try UMSThread(completionList: list) {
            var buf = [UInt8](repeating: 0, count: 4)
            // By value from the C wrapper.
            let r1 = UMS.blockingCall { csup_sys_read(-1, &buf, 4) }
            results.value.append(r1.err)
            // Or Glibc's errno, read inside the closure on the kernel thread.
            let e2: Int32 = UMS.blockingCall {
                _ = open("/nonexistent/ums-test", O_RDONLY)
                return errno
            }
            results.value.append(e2)
            let r3 = UMS.blockingCall { csup_sys_close(-5) }
            results.value.append(r3.err)
        }
        try UMS.enterSchedulingMode { p in
            // Pollute this pthread's errno between executions.
            try runScheduler(p, list, until: 1) { _, _ in csup_errno_set(EPIPE) }
        }
        XCTAssertEqual(results.value, [EBADF, ENOENT, EBADF])
    }

    /// A blocking call that throws rethrows on the UMS thread.
    func testBlockingCallRethrows() throws {
        struct Oops: Error, Equatable { let code: Int }
        let list = try UMSCompletionList()
        let caught = Box<Oops?>(nil)
        _ = try UMSThread(completionList: list) {
            do {
                try UMS.blockingCall { () throws(Oops) in throw Oops(code: 7) }
            } catch {
                caught.value = error as? Oops
            }
        }
        try UMS.enterSchedulingMode { p in try runScheduler(p, list, until: 1) }
        XCTAssertEqual(caught.value, Oops(code: 7))
    }

    func testBlockingCallOutsideUMSThreadJustRuns() throws {
        XCTAssertEqual(UMS.blockingCall { 5 }, 5)
        try UMS.enterSchedulingMode { _ in XCTAssertEqual(UMS.blockingCall { 6 }, 6) }
    }
}
