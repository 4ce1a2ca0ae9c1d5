import TestSupport
import XCTest
import Foundation
@testable import UMS
import CSupport

final class CompletionListTests: XCTestCase {
    func testDequeueTimeoutReturnsEmpty() throws {
        let list = try UMSCompletionList()
        let t0 = DispatchTime.now()
        XCTAssertEqual(list.dequeue(timeout: .milliseconds(50)).count, 0)
        let ms = Double(DispatchTime.now().uptimeNanoseconds - t0.uptimeNanoseconds) / 1e6
        XCTAssertGreaterThanOrEqual(ms, 45)
        XCTAssertLessThan(ms, 5000)
        XCTAssertEqual(list.dequeue(timeout: .zero).count, 0)
    }

    func testDequeueReturnsAllOldestFirst() throws {
        let list = try UMSCompletionList()
        var made: [UMSThread] = []
        for _ in 0..<10 { made.append(try UMSThread(completionList: list) {}) }
        let got = list.dequeue(timeout: nil)
        XCTAssertEqual(got.count, 10)
        for (a, b) in zip(made, got) { XCTAssertTrue(a === b) }
        try UMS.enterSchedulingMode { p in for t in got { XCTAssertEqual(try p.execute(t), .terminated) } }
    }

    func testForeverDequeueWakesOnCompletion() throws {
        let list = try UMSCompletionList()
        _ = try UMSThread(completionList: list) {
            _ = UMS.blockingCall { usleep(20_000) }
        }
        try UMS.enterSchedulingMode { p in
            let t = list.dequeue(timeout: nil)[0]
            XCTAssertEqual(try p.execute(t), .blocked(.systemCall))
            // nil: waits however long it takes for the KT to queue it.
            let back = list.dequeue(timeout: nil)
            XCTAssertEqual(back.count, 1)
            XCTAssertTrue(back[0] === t)
            XCTAssertEqual(try p.execute(t), .terminated)
        }
    }

    /// The last reference to a completion list can be dropped on one of its
    /// own kernel threads: the KT holds the list while it queues a thread
    /// whose call returned, and meanwhile that thread may run, terminate
    /// and everyone else let go of the list. The list's deinit then runs on
    /// that KT, and its pool's trim used to pthread_join the KT itself
    /// (EDEADLK, ignored): the KT ended unjoined, its stack leaked, and
    /// ThreadSanitizer reported a thread leak. Now it is detached. The
    /// delay hook holds the KT in that spot so the test drops the list
    /// first every time.
    func testListReleasedLastOnItsOwnKernelThreadEndsThatThread() throws {
        let baseline = try ResourceCounts.now()
        let detachedBefore = UMS._kernelThreadsSelfDetached
        UMS._delayKernelThreadCompletions(nanoseconds: 100_000_000)
        defer { UMS._delayKernelThreadCompletions(nanoseconds: 0) }
        try {
            let list = try UMSCompletionList()
            _ = try UMSThread(completionList: list) { _ = UMS.blockingCall { 42 } }
            try UMS.enterSchedulingMode { p in try runScheduler(p, list, until: 1) }
            // `list` goes here, while its KT still sleeps holding it.
        }()
        XCTAssertTrue(eventually { UMS._kernelThreadsSelfDetached == detachedBefore + 1 },
                      "the kernel thread released the list last and detached itself")
        let settled = try ResourceCounts.settle(within: baseline)
        XCTAssertTrue(settled.ok, "the kernel thread ended: \(settled.last) vs \(baseline)")
    }

    func testEventDescriptorBecomesReadable() throws {
        let list = try UMSCompletionList()
        let fd = try list.eventDescriptor()
        XCTAssertEqual(try list.eventDescriptor(), fd, "one descriptor per list")
        XCTAssertFalse(pollReadable(fd, ms: 0))
        let t = try UMSThread(completionList: list) { _ = UMS.blockingCall { usleep(5_000) } }
        XCTAssertTrue(pollReadable(fd, ms: 0), "a new thread queued on an empty list")
        try UMS.enterSchedulingMode { p in
            XCTAssertEqual(list.dequeue(timeout: .zero).count, 1)
            XCTAssertFalse(pollReadable(fd, ms: 0), "dequeue clears it")
            XCTAssertEqual(try p.execute(t), .blocked(.systemCall))
            XCTAssertTrue(pollReadable(fd, ms: 5_000), "the blocking call's return queues it")
            XCTAssertEqual(list.dequeue(timeout: .zero).count, 1)
            XCTAssertEqual(try p.execute(t), .terminated)
        }
    }

    func testEventDescriptorCreatedAfterQueueingIsReadable() throws {
        let list = try UMSCompletionList()
        let t = try UMSThread(completionList: list) {}
        let fd = try list.eventDescriptor()
        XCTAssertTrue(pollReadable(fd, ms: 0))
        try UMS.enterSchedulingMode { p in
            XCTAssertEqual(try p.execute(list.dequeue(timeout: .zero)[0]), .terminated)
        }
        XCTAssertTrue(t.isTerminated)
    }

    func testDeleteNonEmptyThrowsAndEmptySucceeds() throws {
        let list = try UMSCompletionList()
        let t = try UMSThread(completionList: list) {}
        XCTAssertThrowsError(try list.delete()) { e in
            XCTAssertEqual(e as? UMSError, .completionListNotEmpty(queued: 1, inKernel: 0))
            XCTAssertTrue("\(e)".contains("drain"))
        }
        try UMS.enterSchedulingMode { p in
            XCTAssertEqual(try p.execute(list.dequeue(timeout: .zero)[0]), .terminated)
        }
        XCTAssertTrue(t.isTerminated)
        try list.delete()
        try list.delete()  // idempotent
    }

    func testKernelThreadsArePooledNotPerThread() throws {
        // 2,000 threads that each make 3 blocking calls, run by one primary
        // that executes one at a time: one KT serves them all.
        let list = try UMSCompletionList()
        let before = UMS.statistics.kernelThreadsCreated
        let n = 2_000
        for _ in 0..<n {
            _ = try UMSThread(completionList: list, stackSize: 32 * 1024) {
                for _ in 0..<3 { UMS.blockingCall { _ = csup_gettid() } }
            }
        }
        try UMS.enterSchedulingMode { p in
            var done = 0
            var ready = list.dequeue(timeout: .zero)
            while done < n {
                if ready.isEmpty { ready = list.dequeue(timeout: .seconds(10)) }
                let t = ready.removeLast()
                var r = try p.execute(t)
                while r == .blocked(.systemCall) {
                    // Wait for this one to come back before running another.
                    var back = list.dequeue(timeout: .seconds(10))
                    let i = back.firstIndex { $0 === t }!
                    back.remove(at: i)
                    ready += back
                    r = try p.execute(t)
                }
                XCTAssertEqual(r, .terminated)
                done += 1
            }
        }
        XCTAssertLessThanOrEqual(UMS.statistics.kernelThreadsCreated - before, 2)
    }
}

func pollReadable(_ fd: Int32, ms: Int32) -> Bool {
    var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    return poll(&p, 1, ms) == 1 && (p.revents & Int16(POLLIN)) != 0
}
