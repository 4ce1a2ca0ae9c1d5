import ConcRT
import Foundation
import Synchronization
import TestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// The bookkeeping of a pipe-pair stress test: `count` pipes, a reader
/// task and a writer task per pipe (task `2i` reads pipe `i`, task `2i+1`
/// writes it), each counted when it starts and when it is done, and the
/// problems the tasks found.
final class PipePairs: @unchecked Sendable {
    // @unchecked Sendable: the pipes are immutable; the rest is locked or atomic.
    let count: Int
    let pipes: [(r: Int32, w: Int32)]
    private let ran: MigrationSafeMutex<[Int]>
    private let failures = MigrationSafeMutex<[String]>([])
    private let done = Counter()
    private let allDone = Event()

    init(_ count: Int) {
        self.count = count
        var p: [(Int32, Int32)] = []
        for _ in 0..<count {
            var fds: [Int32] = [0, 0]
            XCTAssertEqual(pipe(&fds), 0, "pipe: errno \(errno)")
            p.append((fds[0], fds[1]))
        }
        pipes = p
        ran = MigrationSafeMutex(Array(repeating: 0, count: 2 * count))
    }

    /// Task `index` started.
    func started(_ index: Int) { ran.withLock { $0[index] += 1 } }
    /// A task found a problem.
    func fail(_ what: String) { failures.withLock { $0.append(what) } }
    /// A task is done.
    func finished() { if done.add() == 2 * count { allDone.set() } }

    /// Every task ran exactly once, within `timeout`, and none failed.
    func check(_ s: Scheduler, timeout: Duration = .seconds(60), file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertTrue(allDone.wait(timeout: timeout), "\(done.value) of \(2 * count) done; \(s.statistics)", file: file, line: line)
        XCTAssertEqual(failures.withLock { $0 }, [], file: file, line: line)
        XCTAssertEqual(ran.withLock { $0 }, Array(repeating: 1, count: 2 * count), file: file, line: line)
    }

    func close() { for (r, w) in pipes { Glibc.close(r); Glibc.close(w) } }
}
