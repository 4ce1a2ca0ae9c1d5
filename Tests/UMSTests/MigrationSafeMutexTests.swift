import TestSupport
import Foundation
import XCTest
@testable import UMS
import CSupport

final class MigrationSafeMutexTests: XCTestCase {
    /// Mutual exclusion under contention (the futex path): 4 pthreads x
    /// 50,000 non-atomic increments of a shared value end exact.
    func testContendedIncrementsAreExact() {
        let m = MigrationSafeMutex<Int>(0)
        let per = 50_000
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            for _ in 0..<per { m.withLock { $0 += 1 } }
        }
        XCTAssertEqual(m.withLock { $0 }, 4 * per)
    }

    /// UMS threads take the lock, block in the kernel (so they resume on
    /// another primary), and take it again; two primaries; the total is
    /// exact and nothing traps.
    func testLockAcrossMigrationsOnTwoPrimaries() throws {
        let list = try UMSCompletionList()
        let m = MigrationSafeMutex<Int>(0)
        let threads = 64, rounds = 20
        for _ in 0..<threads {
            _ = try UMSThread(completionList: list) {
                for _ in 0..<rounds {
                    m.withLock { $0 += 1 }
                    UMS.blockingCall { _ = csup_sys_nanosleep(10_000) }
                    m.withLock { $0 += 1 }
                }
            }
        }
        let remaining = Box(threads)
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: 2) { _ in
            try! UMS.enterSchedulingMode { p in
                while true {
                    lock.lock(); let left = remaining.value; lock.unlock()
                    if left == 0 { break }
                    for t in list.dequeue(timeout: .milliseconds(5)) {
                        if case .terminated = try p.execute(t) {
                            lock.lock(); remaining.value -= 1; lock.unlock()
                        }
                    }
                }
            }
        }
        XCTAssertEqual(m.withLock { $0 }, threads * rounds * 2)
    }
}
