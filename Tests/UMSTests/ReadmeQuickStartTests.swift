import TestSupport
import XCTest
import UMS
#if canImport(Glibc)
import Glibc
#endif

/// README.md's UMS quick start, verbatim between the markers, so the
/// snippet keeps compiling and working (public API only).
final class ReadmeQuickStartTests: XCTestCase {
    func testReadmeUMSQuickStart() throws {
        let before = UMS.statistics
        // --- README: UMS quick start ---
        let list = try UMSCompletionList()
        for i in 0..<4 {
            _ = try UMSThread(completionList: list, name: "worker-\(i)") {
                try! UMSThread.yield(i)                                        // scheduler sees .yielded(i)
                _ = UMS.blockingCall { usleep(1_000) }                         // runs on a kernel thread
            }
        }
        try UMS.enterSchedulingMode { primary in                              // this pthread is now a primary
            var ready: [UMSThread] = [], done = 0
            while done < 4 {
                list.drain(timeout: ready.isEmpty ? nil : .zero) { ready.append($0) }   // completions first
                guard let t = ready.popLast() else { continue }
                switch try primary.execute(t) {
                case .yielded: ready.insert(t, at: 0)
                case .blocked(.systemCall): break                              // comes back through `list`
                case .terminated: done += 1
                }
            }
        }
        // --- end ---
        let after = UMS.statistics
        XCTAssertEqual(after.threadsCreated - before.threadsCreated, 4)
        XCTAssertEqual(after.threadsTerminated - before.threadsTerminated, 4)
        XCTAssertEqual(after.blockingCalls - before.blockingCalls, 4)
        XCTAssertTrue(list.isEmpty)
    }
}
