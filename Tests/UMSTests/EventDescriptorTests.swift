import TestSupport
import XCTest
@testable import UMS
import CSupport

/// The completion list's event descriptor: readable when something is
/// queued, reset by every dequeue (the owner never reads it).
final class EventDescriptorTests: XCTestCase {
    /// A kernel thread queues a thread, then signals the eventfd; a
    /// primary can take the thread between the two, and the signal then
    /// arrives with nothing queued (too rare to provoke reliably, so the
    /// late signal is replayed with a test hook). The next poll-only
    /// dequeue finds the list empty and must still reset the descriptor;
    /// otherwise a scheduler that sleeps in poll(2) spins on a readable
    /// descriptor with nothing to do.
    func testAnEmptyPollResetsALateSignal() throws {
        let list = try UMSCompletionList()
        let fd = try list.eventDescriptor()
        csup_clist_test_late_signal(list.clist)
        XCTAssertTrue(pollReadable(fd, ms: 0))
        XCTAssertTrue(list.isEmpty)
        XCTAssertEqual(list.drain(timeout: .zero) { _ in XCTFail("nothing is queued") }, 0)
        XCTAssertFalse(pollReadable(fd, ms: 0), "an empty poll resets the late signal")
        // dequeue(timeout: .zero) too.
        csup_clist_test_late_signal(list.clist)
        XCTAssertEqual(list.dequeue(timeout: .zero).count, 0)
        XCTAssertFalse(pollReadable(fd, ms: 0))
        // And the descriptor still works afterwards.
        let t = try UMSThread(completionList: list) {}
        XCTAssertTrue(pollReadable(fd, ms: 0))
        try UMS.enterSchedulingMode { p in try runScheduler(p, list, until: 1) }
        XCTAssertTrue(t.isTerminated)
        XCTAssertFalse(pollReadable(fd, ms: 0))
    }

    /// The documented loop: poll the descriptor, then dequeue. It never
    /// sleeps with a thread queued, and never needs to read the eventfd.
    func testPollThenDequeueLoopNeedsNoRead() throws {
        let list = try UMSCompletionList()
        let fd = try list.eventDescriptor()
        let n = 50
        for _ in 0..<n {
            _ = try UMSThread(completionList: list, stackSize: 64 * 1024) { _ = UMS.blockingCall { usleep(200) } }
        }
        var terminated = 0
        try UMS.enterSchedulingMode { p in
            while terminated < n {
                XCTAssertTrue(pollReadable(fd, ms: 10_000), "a thread is queued or coming back")
                for t in list.dequeue(timeout: .zero) where try p.execute(t) == .terminated {
                    terminated += 1
                }
            }
        }
        XCTAssertEqual(terminated, n)
        XCTAssertFalse(pollReadable(fd, ms: 0))
    }
}
