import ConcRT
import Foundation
import TestSupport
import XCTest
@testable import Agents

final class BlockTests: XCTestCase {
    func testOverwriteBufferKeepsLatestAndBroadcasts() throws {
        let o = OverwriteBuffer<Int>()
        XCTAssertNil(tryReceive(o))
        let a = UnboundedBuffer<Int>(), b = UnboundedBuffer<Int>()
        try o.link(to: a)
        try o.link(to: b)
        for i in 1...3 { try send(o, i) }
        XCTAssertEqual(try receive(o), 3)
        XCTAssertEqual(try receive(o), 3)          // not consumed
        for t in [a, b] { XCTAssertEqual((0..<3).map { _ in tryReceive(t)! }, [1, 2, 3]) }
        let late = UnboundedBuffer<Int>()
        try o.link(to: late)                       // a late link gets the current value
        XCTAssertEqual(tryReceive(late), 3)
        o.shutdown()
        assertShutDown { () throws(AgentsError) in try send(o, 4) }
        XCTAssertEqual(tryReceive(o), 3)
    }

    func testOverwriteBufferWakesEveryWaiter() throws {
        let s = try makeScheduler(2)
        let o = OverwriteBuffer<Int>()
        let got = Counter()
        for _ in 0..<10 { s.scheduleTask { got.add(try! receive(o)) } }
        usleep(20_000)
        XCTAssertEqual(got.value, 0)
        try send(o, 5)
        XCTAssertTrue(eventually { got.value == 50 })
        try s.shutdown()
    }

    func testSingleAssignmentRefusesSecondValue() throws {
        let sa = SingleAssignment<String>()
        assertThrows(.timeout(.milliseconds(5))) { () throws(AgentsError) in try receive(sa, timeout: .milliseconds(5)) }
        XCTAssertTrue(try send(sa, "first"))
        assertThrows(.alreadyAssigned) { () throws(AgentsError) in try send(sa, "second") }
        assertThrows(.alreadyAssigned) { () throws(AgentsError) in try asend(sa, "second") }
        assertThrows(.alreadyAssigned) { () throws(AgentsError) in try sa.assign("third") }
        XCTAssertEqual(try receive(sa), "first")
        XCTAssertEqual(try receive(sa), "first")
        // From a linked source, a second value is just not taken.
        let src = UnboundedBuffer<String>()
        try src.link(to: sa)
        try send(src, "x")
        XCTAssertEqual(tryReceive(src), "x")
    }

    func testCallRunsInOrderAndFilters() throws {
        let s = try makeScheduler(2)
        let seen = Locked<[Int]>([])
        let c = Call<Int>(scheduler: s, filter: { $0 >= 0 }) { x in seen.value.append(x) }
        for i in 0..<1000 { XCTAssertTrue(try send(c, i)) }
        XCTAssertFalse(try send(c, -1))            // declined by the filter
        XCTAssertTrue(eventually { seen.value.count == 1000 && !c.isBusy })
        XCTAssertEqual(seen.value, Array(0..<1000))
        c.shutdown()
        assertShutDown { () throws(AgentsError) in try send(c, 1) }
        try s.shutdown()
    }

    func testTransformerMapsInOrderAndEndsStream() throws {
        let s = try makeScheduler(2)
        let t = Transformer<Int, String>(scheduler: s) { "<\($0)>" }
        let out = UnboundedBuffer<String>()
        try t.link(to: out)
        for i in 0..<500 { try send(t, i) }
        t.shutdown()
        assertShutDown { () throws(AgentsError) in try send(t, 1) }
        for i in 0..<500 { XCTAssertEqual(try receive(out, timeout: .seconds(5)), "<\(i)>") }
        // Output shuts down after the last result.
        XCTAssertTrue(eventually { t.isShutDown })
        assertShutDown { () throws(AgentsError) in try receive(t, timeout: .seconds(1)) }
        try s.shutdown()
    }

    func testGreedyJoin() throws {
        let j = try Join<Int>(inputs: 3)
        assertThrows(.invalidArgument("Join needs at least one input (got 0)")) { () throws(AgentsError) in try Join<Int>(inputs: 0) }
        try send(j.inputs[0], 1)
        try send(j.inputs[0], 10)                  // greedy: accepted and queued
        try send(j.inputs[2], 3)
        XCTAssertNil(tryReceive(j))
        try send(j.inputs[1], 2)
        XCTAssertEqual(tryReceive(j), [1, 2, 3])
        try send(j.inputs[1], 20)
        try send(j.inputs[2], 30)
        XCTAssertEqual(try receive(j, timeout: .seconds(1)), [10, 20, 30])
        j.shutdown()
        assertShutDown { () throws(AgentsError) in try send(j.inputs[0], 1) }
    }

    func testNonGreedyJoinTakesNothingUntilComplete() throws {
        let j = try Join<Int>(inputs: 2, kind: .nonGreedy)
        let a = UnboundedBuffer<Int>(), b = UnboundedBuffer<Int>()
        try a.link(to: j.inputs[0])
        try b.link(to: j.inputs[1])
        try send(a, 1)
        try send(a, 2)
        XCTAssertEqual(a.count, 2, "a non-greedy join must leave messages with their source")
        XCTAssertEqual(tryReceive(a), 1)           // still the source's to give away
        try send(b, 100)
        XCTAssertEqual(tryReceive(j), [2, 100])
        XCTAssertEqual(a.count, 0)
        XCTAssertEqual(b.count, 0)
        // Direct sends wait until used; asend registers and returns.
        XCTAssertFalse(try asend(j.inputs[0], 5))
        let s = try makeScheduler(2)
        let sent = Flag()
        s.scheduleTask { try! send(j.inputs[1], 6); sent.set() }
        XCTAssertEqual(try receive(j, timeout: .seconds(5)), [5, 6])
        XCTAssertTrue(eventually { sent.isSet })
        // A pending non-greedy send is released by shutdown.
        let err = Locked<String>("")
        s.scheduleTask { do { try send(j.inputs[0], 7) } catch { err.value = "\(error)" } }
        usleep(20_000)
        j.shutdown()
        XCTAssertTrue(eventually { err.value.contains("shut down") }, err.value)
        try s.shutdown()
    }

    func testChoiceTakesFirstOnly() throws {
        let a = UnboundedBuffer<Int>(), b = UnboundedBuffer<Int>()
        let c = try Choice<Int>([a, b])
        assertThrows(.invalidArgument("Choice needs at least one source")) { () throws(AgentsError) in try Choice<Int>([]) }
        XCTAssertNil(c.index)
        try send(b, 7)
        try send(a, 1)
        let sel = try receive(c, timeout: .seconds(1))
        XCTAssertEqual(sel.index, 1)
        XCTAssertEqual(sel.value, 7)
        XCTAssertEqual(c.index, 1)
        XCTAssertEqual(tryReceive(a), 1, "the other source keeps its message")
        try send(b, 8)
        XCTAssertEqual(tryReceive(b), 8, "after the choice, its sources are unlinked")
    }

    func testChoiceWaitsAcrossContexts() throws {
        let s = try makeScheduler(2)
        let a = UnboundedBuffer<Int>(), b = UnboundedBuffer<Int>()
        let c = try Choice<Int>([a, b])
        s.scheduleTask { usleep(5_000); try! send(a, 3) }
        let sel = s.run { try! receive(c, timeout: .seconds(5)) }
        XCTAssertEqual(sel.index, 0)
        XCTAssertEqual(sel.value, 3)
        try s.shutdown()
    }

    func testTimerBlock() throws {
        let s = try makeScheduler(2)
        assertThrows(.invalidArgument("TimerBlock interval must be > 0 (got 0.0 seconds)")) { () throws(AgentsError) in
            try TimerBlock(interval: .zero, value: 1, repeating: false, scheduler: s)
        }
        let once = try TimerBlock(interval: .milliseconds(5), value: "tick", repeating: false, scheduler: s)
        XCTAssertTrue(once.start())
        XCTAssertEqual(try receive(once, timeout: .seconds(5)), "tick")
        assertThrows(.timeout(.milliseconds(30))) { () throws(AgentsError) in try receive(once, timeout: .milliseconds(30)) }

        let rep = try TimerBlock(interval: .milliseconds(2), value: 1, repeating: true, scheduler: s)
        let sink = UnboundedBuffer<Int>()
        try rep.link(to: sink)
        XCTAssertTrue(rep.start())
        XCTAssertFalse(rep.start())                // already running
        for _ in 0..<5 { XCTAssertEqual(try receive(sink, timeout: .seconds(5)), 1) }
        rep.pause()
        usleep(20_000)
        while tryReceive(sink) != nil {}
        usleep(20_000)
        XCTAssertNil(tryReceive(sink), "a paused timer produces nothing")
        XCTAssertTrue(rep.start())                 // resumes
        XCTAssertEqual(try receive(sink, timeout: .seconds(5)), 1)
        rep.stop()
        XCTAssertFalse(rep.start())                // stopped for good
        try s.shutdown()
    }
}
