import Foundation
import Synchronization
import XCTest
@testable import ConcRT
import CSupport
import UMS
import TestSupport

enum ExecutorTestLocals {
    @TaskLocal static var tag: Int = -1
}

final class TaskExecutorTests: XCTestCase {
    /// Jobs of a task preferring the scheduler run on its contexts, and a
    /// Blocking call inside one keeps the task's identity (current task,
    /// task-locals, executor) although it resumes on another pthread.
    func testJobsRunOnContextsAndKeepTaskIdentityAcrossBlocking() async throws {
        let s = try makeScheduler(2)
        defer { try? s.shutdown() }
        let results = try await withThrowingTaskGroup(of: Bool.self) { g in
            for i in 0..<64 {
                g.addTask(executorPreference: s) {
                    try await ExecutorTestLocals.$tag.withValue(i) {
                        guard Context.current?.owningScheduler === s else { return false }
                        let before = withUnsafeCurrentTask { $0?.hashValue }
                        try Blocking.sleep(for: .milliseconds(2))
                        let after = withUnsafeCurrentTask { $0?.hashValue }
                        let seenInCall = Blocking.call { ExecutorTestLocals.tag }
                        await Task.yield()
                        try Blocking.sleep(for: .milliseconds(1))
                        let ok = before == after && ExecutorTestLocals.tag == i && seenInCall == i
                            && Context.current?.owningScheduler === s
                        return ok
                    }
                }
            }
            var all: [Bool] = []
            for try await r in g { all.append(r) }
            return all
        }
        XCTAssertEqual(results.count, 64)
        XCTAssertEqual(results.filter { $0 }.count, 64)
    }
}
