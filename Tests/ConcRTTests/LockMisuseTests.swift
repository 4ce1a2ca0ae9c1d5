import TestSupport
import Foundation
import XCTest
@testable import ConcRT

/// Lock misuse is a programming error: it traps, and (in debug builds) the
/// message names the misuse. Each case runs in a child process (this test
/// binary, filtered to this test, with LOCK_MISUSE naming the case), since
/// a trap ends the process.
final class LockMisuseTests: XCTestCase {
    /// Each misuse, performed in the child; none may return.
    private static let misuses: [(name: String, message: String, body: @Sendable () -> Void)] = [
        ("csRelock", "CriticalSection.lock: the owner locked it again", {
            let cs = CriticalSection(); cs.lock(); cs.lock()
        }),
        ("csUnlockFree", "CriticalSection.unlock: the lock is not held", {
            CriticalSection().unlock()
        }),
        ("csUnlockByOther", "CriticalSection.unlock: the lock is held by another context or thread", {
            let cs = CriticalSection(); cs.lock()
            _ = runOnNewThread { cs.unlock() }.wait(timeout: .seconds(30))
        }),
        ("rwRelock", "ReaderWriterLock.lock: the writer locked it again", {
            let rw = ReaderWriterLock(); rw.lock(); rw.lock()
        }),
        ("rwReadByWriter", "ReaderWriterLock.lockRead: the writer asked for a read lock", {
            let rw = ReaderWriterLock(); rw.lock(); rw.lockRead()
        }),
        ("rwUnlockFree", "ReaderWriterLock.unlock: the lock is not held", {
            ReaderWriterLock().unlock()
        }),
        ("rwUnlockByOtherWriter", "ReaderWriterLock.unlock: the lock is held by another writer", {
            let rw = ReaderWriterLock(); rw.lock()
            _ = runOnNewThread { rw.unlock() }.wait(timeout: .seconds(30))
        }),
    ]

    func testMisuseTrapsNamingTheMisuse() throws {
        if let which = ProcessInfo.processInfo.environment["LOCK_MISUSE"] {
            // Child: perform the misuse. Reaching the exit is the failure
            // the parent reports.
            guard let m = Self.misuses.first(where: { $0.name == which }) else { exit(3) }
            m.body()
            exit(0)
        }
        for m in Self.misuses {
            let (signalled, status, stderr) = try runTestInChildProcess(
                "ConcRTTests.LockMisuseTests/testMisuseTrapsNamingTheMisuse", environment: ["LOCK_MISUSE": m.name])
            XCTAssertTrue(signalled, "\(m.name): the misuse did not trap (status \(status)); stderr: \(stderr.suffix(500))")
            if _isDebugAssertConfiguration() {
                // -O builds trap without printing the message.
                XCTAssertTrue(stderr.contains(m.message), "\(m.name): message not found in: \(stderr.suffix(800))")
            }
        }
    }
}
