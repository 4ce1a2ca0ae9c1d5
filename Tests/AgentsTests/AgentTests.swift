import ConcRT
import Foundation
import TestSupport
import XCTest
@testable import Agents

final class AgentTests: XCTestCase {
    func testLifeCycle() throws {
        let s = try makeScheduler(2)
        let gate = Event()
        let states = Locked<[Agent.Status]>([])
        let a = ClosureAgent(s) { gate.wait() }
        XCTAssertEqual(a.status, .created)
        XCTAssertTrue(a.start())
        XCTAssertFalse(a.start())
        XCTAssertTrue(eventually { a.status == .started })
        XCTAssertFalse(a.cancel(), "a started agent cannot be canceled")
        states.value.append(a.status)
        assertThrows(.timeout(.milliseconds(10))) { () throws(AgentsError) in try Agent.wait(a, timeout: .milliseconds(10)) }
        gate.set()
        XCTAssertEqual(try Agent.wait(a, timeout: .seconds(5)), .done)
        XCTAssertFalse(a.done())
        try s.shutdown()
    }

    func testCancelBeforeStartAndRunnable() throws {
        let s = try makeScheduler(1)
        let ran = Counter()
        let a = ClosureAgent(s) { ran.add() }
        XCTAssertTrue(a.cancel())
        XCTAssertEqual(a.status, .canceled)
        XCTAssertFalse(a.start())
        XCTAssertEqual(try Agent.wait(a), .canceled)
        // Runnable: hold the only VP so the task cannot begin, then cancel.
        let hold = Event()
        s.scheduleTask { while !hold.isSet { Context.yield() } }
        let b = ClosureAgent(s) { ran.add() }
        XCTAssertTrue(b.start())
        let canceled = b.cancel()
        hold.set()
        if canceled {
            XCTAssertEqual(try Agent.wait(b, timeout: .seconds(5)), .canceled)
            usleep(20_000)
            XCTAssertEqual(ran.value, 0, "a canceled agent never runs")
        } else {
            XCTAssertEqual(try Agent.wait(b, timeout: .seconds(5)), .done)
        }
        try s.shutdown()
    }

    func testWaitForAllAndOne() throws {
        let s = try makeScheduler(2)
        let gates = (0..<4).map { _ in Event() }
        let agents = gates.map { g in ClosureAgent(s) { g.wait() } }
        for a in agents { a.start() }
        assertThrows(.invalidArgument("Agent.waitForOne needs at least one agent")) { () throws(AgentsError) in try Agent.waitForOne([]) }
        assertThrows(.timeout(.milliseconds(10))) { () throws(AgentsError) in try Agent.waitForOne(agents, timeout: .milliseconds(10)) }
        gates[2].set()
        let (i, st) = try Agent.waitForOne(agents, timeout: .seconds(5))
        XCTAssertEqual(i, 2)
        XCTAssertEqual(st, .done)
        assertThrows(.timeout(.milliseconds(10))) { () throws(AgentsError) in try Agent.waitForAll(agents, timeout: .milliseconds(10)) }
        for g in gates { g.set() }
        XCTAssertEqual(try Agent.waitForAll(agents, timeout: .seconds(5)), [.done, .done, .done, .done])
        try s.shutdown()
    }

    func testAgentsPassMessages() throws {
        let s = try makeScheduler(2)
        let inbox = try BoundedBuffer<Int>(capacity: 2), result = SingleAssignment<Int>()
        let producer = ClosureAgent(s) { for i in 1...100 { try! send(inbox, i) }; inbox.shutdown() }
        let consumer = ClosureAgent(s) {
            var sum = 0
            while let x = try? receive(inbox) { sum += x }
            try! result.assign(sum)
        }
        consumer.start()
        producer.start()
        XCTAssertEqual(try receive(result, timeout: .seconds(5)), 5050)
        XCTAssertEqual(try Agent.waitForAll([producer, consumer], timeout: .seconds(5)), [.done, .done])
        try s.shutdown()
    }
}
