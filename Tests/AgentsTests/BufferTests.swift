import ConcRT
import Foundation
import TestSupport
import XCTest
@testable import Agents

final class BufferTests: XCTestCase {
    func testUnboundedBufferIsFIFOAndTryReceive() throws {
        let b = UnboundedBuffer<Int>()
        XCTAssertNil(tryReceive(b))
        for i in 0..<1000 { XCTAssertTrue(try send(b, i)) }
        XCTAssertEqual(b.count, 1000)
        for i in 0..<1000 { XCTAssertEqual(try receive(b), i) }
        XCTAssertNil(tryReceive(b))
        XCTAssertTrue(try asend(b, 7))
        XCTAssertEqual(tryReceive(b), 7)
    }

    func testReceiveTimesOutWithError() throws {
        let b = UnboundedBuffer<Int>()
        assertThrows(.timeout(.milliseconds(20))) { () throws(AgentsError) in try receive(b, timeout: .milliseconds(20)) }
        assertThrows(.timeout(.zero)) { () throws(AgentsError) in try receive(b, timeout: .zero) }
        // A timed-out receiver is withdrawn: the next message is not lost to it.
        try send(b, 5)
        XCTAssertEqual(try receive(b, timeout: .seconds(1)), 5)
        // On a context too.
        let s = try makeScheduler(2)
        let r: AgentsError? = s.run { () -> AgentsError? in
            do { _ = try receive(b, timeout: .milliseconds(20)); return nil } catch { return error as? AgentsError }
        }
        XCTAssertEqual(r, .timeout(.milliseconds(20)))
        try s.shutdown()
    }

    func testSelfLinkAndBadCapacityAreErrors() throws {
        let b = UnboundedBuffer<Int>()
        assertThrows(.selfLink) { () throws(AgentsError) in try b.link(to: b) }
        assertThrows(.invalidArgument("BoundedBuffer capacity must be >= 1 (got 0)")) { () throws(AgentsError) in
            try BoundedBuffer<Int>(capacity: 0)
        }
        let o = OverwriteBuffer<Int>()
        assertThrows(.selfLink) { () throws(AgentsError) in try o.link(to: o) }
    }

    func testShutdownRefusesSendsDrainsThenThrows() throws {
        let b = UnboundedBuffer<Int>()
        try send(b, 1)
        b.shutdown()
        assertShutDown { () throws(AgentsError) in try send(b, 2) }
        assertShutDown { () throws(AgentsError) in try asend(b, 2) }
        XCTAssertEqual(try receive(b), 1)          // queued messages stay receivable
        assertShutDown { () throws(AgentsError) in try receive(b) }
    }

    func testShutdownReleasesBlockedReceiverAndSender() throws {
        let s = try makeScheduler(2)
        let b = UnboundedBuffer<Int>()
        let got = Locked<String>("")
        let done = Event()
        s.scheduleTask {
            do { _ = try receive(b); got.value = "value" } catch { got.value = "\(error)" }
            done.set()
        }
        usleep(20_000)
        XCTAssertFalse(done.isSet)
        b.shutdown()
        XCTAssertTrue(done.wait(timeout: .seconds(5)))
        XCTAssertTrue(got.value.contains("shut down"), got.value)

        let bb = try BoundedBuffer<Int>(capacity: 1)
        try send(bb, 0)
        let done2 = Event()
        s.scheduleTask {
            do { _ = try send(bb, 1); got.value = "sent" } catch { got.value = "\(error)" }
            done2.set()
        }
        usleep(20_000)
        XCTAssertFalse(done2.isSet)
        bb.shutdown()
        XCTAssertTrue(done2.wait(timeout: .seconds(5)))
        XCTAssertTrue(got.value.contains("shut down"), got.value)
        try s.shutdown()
    }

    func testBoundedSendWaitsWhileFull() throws {
        let s = try makeScheduler(2)
        let b = try BoundedBuffer<Int>(capacity: 4)
        let sent = Counter()
        let finished = Event()
        s.scheduleTask {
            for i in 0..<10 { try! send(b, i); sent.add() }
            finished.set()
        }
        XCTAssertTrue(eventually { sent.value == 4 })
        usleep(20_000)
        XCTAssertEqual(sent.value, 4, "send must wait while the buffer is full")
        XCTAssertEqual(b.count, 4)
        for i in 0..<10 { XCTAssertEqual(try receive(b, timeout: .seconds(5)), i) }
        XCTAssertTrue(finished.wait(timeout: .seconds(5)))
        try s.shutdown()
    }

    func testBoundedAsendPostponesAndKeepsOrder() throws {
        let b = try BoundedBuffer<Int>(capacity: 2)
        XCTAssertTrue(try asend(b, 0))
        XCTAssertTrue(try asend(b, 1))
        XCTAssertFalse(try asend(b, 2))   // postponed, taken later
        XCTAssertFalse(try asend(b, 3))
        XCTAssertEqual(b.count, 2)
        for i in 0..<4 { XCTAssertEqual(try receive(b, timeout: .seconds(1)), i) }
        XCTAssertNil(tryReceive(b))
    }

    func testLinkFilterUnlinkAndOrder() throws {
        let src = UnboundedBuffer<Int>()
        let evens = UnboundedBuffer<Int>(), rest = UnboundedBuffer<Int>()
        try src.link(to: evens, filter: { $0 % 2 == 0 })
        try src.link(to: rest)
        for i in 0..<100 { try send(src, i) }
        XCTAssertEqual((0..<50).map { _ in tryReceive(evens)! }, Array(stride(from: 0, to: 100, by: 2)))
        XCTAssertEqual((0..<50).map { _ in tryReceive(rest)! }, Array(stride(from: 1, to: 100, by: 2)))
        XCTAssertTrue(src.unlink(rest))
        XCTAssertFalse(src.unlink(rest))
        try send(src, 1)                  // nobody takes odd numbers now: it stays
        XCTAssertEqual(src.count, 1)
        XCTAssertNil(tryReceive(rest))
        try src.link(to: rest)            // a new link is offered what is queued
        XCTAssertEqual(tryReceive(rest), 1)
    }

    func testLinkedIntoFullBoundedBufferIsPulledInOrder() throws {
        let src = UnboundedBuffer<Int>()
        let b = try BoundedBuffer<Int>(capacity: 3)
        try src.link(to: b)
        for i in 0..<20 { try send(src, i) }
        XCTAssertEqual(b.count, 3)
        XCTAssertEqual(src.count, 17)     // the head was postponed and put back
        for i in 0..<20 { XCTAssertEqual(try receive(b, timeout: .seconds(1)), i) }
        XCTAssertEqual(src.count, 0)
    }

    func testBlockingFromPlainPthreads() throws {
        let s = try makeScheduler(2)
        // A pthread receives what a context sends later.
        let b = UnboundedBuffer<Int>()
        let got = Locked(-1)
        let t = Thread { got.value = (try? receive(b, timeout: .seconds(10))) ?? -2 }
        t.start()
        usleep(20_000)
        XCTAssertEqual(got.value, -1)
        s.scheduleTask { try! send(b, 42) }
        XCTAssertTrue(eventually { got.value == 42 })
        // A pthread's bounded send waits until a context receives.
        let bb = try BoundedBuffer<Int>(capacity: 1)
        let sent = Counter()
        let t2 = Thread { for i in 0..<3 { try! send(bb, i); sent.add() } }
        t2.start()
        XCTAssertTrue(eventually { sent.value == 1 })
        usleep(20_000)
        XCTAssertEqual(sent.value, 1)
        let received = s.run { (0..<3).map { _ in try! receive(bb, timeout: .seconds(5)) } }
        XCTAssertEqual(received, [0, 1, 2])
        XCTAssertTrue(eventually { sent.value == 3 })
        // A pthread's receive times out with an error.
        onNewThread {
            do { _ = try receive(b, timeout: .milliseconds(10)); XCTFail("no timeout") } catch {
                XCTAssertEqual(error as? AgentsError, .timeout(.milliseconds(10)))
            }
        }
        try s.shutdown()
    }

    func testManyContextsBlockedOnOneBuffer() throws {
        let s = try makeScheduler(2)
        let b = try BoundedBuffer<Int>(capacity: 8)
        let sum = Counter(), count = Counter()
        let n = 200, perSender = 500
        for _ in 0..<n / 2 {
            s.scheduleTask { for i in 0..<perSender { try! send(b, i) } }
            s.scheduleTask { for _ in 0..<perSender { sum.add(try! receive(b)); count.add() } }
        }
        XCTAssertTrue(eventually(timeout: 20) { count.value == n / 2 * perSender })
        XCTAssertEqual(sum.value, n / 2 * (perSender * (perSender - 1) / 2))
        XCTAssertNil(tryReceive(b))
        try s.shutdown()
    }
}
