import Foundation
import Synchronization
import XCTest
@testable import ConcRT
import CSupport
import UMS
import TestSupport

/// An actor whose isolated code runs on a SchedulerSerialExecutor.
actor SchedulerActor {
    let executor: SchedulerSerialExecutor
    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
    var count = 0
    init(_ e: SchedulerSerialExecutor) { executor = e }
    func bump() -> Int { count += 1; return count }
    /// Blocks inside isolated code: the actor stays isolated after the
    /// context resumes (possibly after a switch).
    func bumpBlocking() throws -> Int {
        let before = count
        try Blocking.sleep(for: .microseconds(200))
        executor.checkIsolated()
        count = before + 1
        return count
    }
    func onScheduler() -> Bool { Context.current != nil }
}

final class SerialExecutorTests: XCTestCase {
    func testActorOnSerialExecutorIsSerialAndIsolated() async throws {
        let s = try makeScheduler(2)
        defer { try? s.shutdown() }
        let group = s.createScheduleGroup()
        let a = SchedulerActor(SchedulerSerialExecutor(scheduler: s, group: group, drainBudget: 4))
        let onScheduler = await a.onScheduler()
        XCTAssertTrue(onScheduler)
        await withTaskGroup(of: Void.self) { g in
            for i in 0..<200 {
                g.addTask(executorPreference: i % 2 == 0 ? s : nil) {
                    if i % 10 == 0 { _ = try! await a.bumpBlocking() } else { _ = await a.bump() }
                }
            }
        }
        let n = await a.count
        XCTAssertEqual(n, 200)
    }

    func testAssumeIsolatedOnTheRightExecutor() async throws {
        let s = try makeScheduler(2)
        defer { try? s.shutdown() }
        let e = SchedulerSerialExecutor(scheduler: s)
        let a = SchedulerActor(e)
        _ = await a.bump()
        // From a plain ConcRT task: not isolated.
        let outside = s.run { e.isIsolatingCurrentContext() }
        XCTAssertEqual(outside, false)
        // From the actor's own job (through a nonisolated sync helper).
        let inside: Int = await a.withIsolatedCheck()
        XCTAssertEqual(inside, 2)
    }

    /// Wrong executor traps: checked in a subprocess (re-exec of the test
    /// binary with an environment variable).
    func testAssumeIsolatedOnTheWrongExecutorTraps() throws {
        if ProcessInfo.processInfo.environment["CONCRT_TRAP_CHILD"] == "1" {
            let s = try makeScheduler(1)
            let e = SchedulerSerialExecutor(scheduler: s)
            s.run { e.checkIsolated() }   // must trap
            print("CHILD-DID-NOT-TRAP")
            return
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        p.arguments = ["ConcRTTests.SerialExecutorTests/testAssumeIsolatedOnTheWrongExecutorTraps"]
        var env = ProcessInfo.processInfo.environment
        env["CONCRT_TRAP_CHILD"] = "1"
        p.environment = env
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationReason, .uncaughtSignal, out)
        XCTAssertFalse(out.contains("CHILD-DID-NOT-TRAP"))
        #if DEBUG
        // Release builds trap without printing precondition messages.
        XCTAssertTrue(out.contains("not isolated to SchedulerSerialExecutor"), out)
        #endif
    }
}

extension SchedulerActor {
    func withIsolatedCheck() -> Int {
        // assumeIsolated from synchronous code on this actor's executor.
        executor.preconditionIsolated()
        return self.assumeIsolated { $0.bump() }
    }
}
