import ConcRT
import Foundation
import TestSupport
import XCTest
@testable import Agents

/// A scheduler of exactly `vps` virtual processors.
func makeScheduler(_ vps: Int) throws -> Scheduler {
    try Scheduler(policy: SchedulerPolicy(minConcurrency: vps, maxConcurrency: vps))
}

/// Asserts `body` throws exactly `expected`.
func assertThrows<R>(_ expected: AgentsError, _ body: () throws(AgentsError) -> R,
                     file: StaticString = #filePath, line: UInt = #line) {
    do {
        let r = try body()
        XCTFail("expected \(expected), got \(r)", file: file, line: line)
    } catch {
        XCTAssertEqual(error, expected, file: file, line: line)
    }
}

/// Asserts `body` throws a shutDown error.
func assertShutDown<R>(_ body: () throws(AgentsError) -> R, file: StaticString = #filePath, line: UInt = #line) {
    do {
        let r = try body()
        XCTFail("expected shutDown, got \(r)", file: file, line: line)
    } catch {
        guard case .shutDown = error else { return XCTFail("expected shutDown, got \(error)", file: file, line: line) }
    }
}

/// An agent running a closure, which calls done() at the end.
final class ClosureAgent: Agent, @unchecked Sendable {
    let body: @Sendable () -> Void
    init(_ s: Scheduler, _ body: @escaping @Sendable () -> Void) {
        self.body = body
        super.init(scheduler: s)
    }
    override func run() {
        body()
        done()
    }
}
