import TestSupport
import XCTest
@testable import PPL
import ConcRT

/// Counts deinits of the values captured by a chain's continuations.
private final class Link: Sendable {
    let released: Counter
    init(_ c: Counter) { released = c }
    deinit { released.add() }
}

/// Builds `n` continuations on a promise that is never set (each captures a
/// Link) and drops the whole chain; returns how many links were released.
private func buildAndDropChain(_ n: Int, continueWith: Bool = false) -> Int {
    let released = Counter()
    do {
        let p = Promise<Int>(scheduler: testScheduler)
        var f = p.future
        for i in 0..<n {
            let link = Link(released)
            if continueWith && i % 2 == 1 {
                f = f.continueWith { r in _ = link; return (try? r.get()) ?? 0 }
            } else {
                f = f.then { v in _ = link; return v + 1 }
            }
        }
        XCTAssertFalse(f.isDone)
        // p (the head) and f (the tail) go out of scope here.
    }
    return released.value
}

final class FutureChainTeardownTests: XCTestCase {
    /// Used to recurse once per link through Future.deinit and crash the
    /// main thread (SIGSEGV) at about this length.
    func testDroppingHundredThousandLinkUnsetChainOnMainThread() {
        let n = longMode ? 1_000_000 : 100_000
        XCTAssertEqual(buildAndDropChain(n, continueWith: true), n, "every link is released")
    }

    /// Used to overflow a context's 256 KiB stack at about 600 links.
    func testDroppingTenThousandLinkChainInsideATask() throws {
        let n = 10_000
        XCTAssertEqual(testScheduler.policy.contextStackSize, 256 * 1024)
        let released = try testScheduler.run { () throws -> Int in
            XCTAssertNotNil(Context.current)
            return buildAndDropChain(n)
        }
        XCTAssertEqual(released, n)
    }

    /// whenAll over pending futures: its continuations own the result
    /// future too; dropping a chain of whenAlls is iterative as well.
    func testDroppingChainOfWhenAllsInsideATask() throws {
        let n = 5_000
        let released = try testScheduler.run { () throws -> Int in
            let released = Counter()
            do {
                let p = Promise<Int>(scheduler: testScheduler)
                var f = p.future.then { [$0] }
                for _ in 0..<n {
                    let link = Link(released)
                    f = Future.whenAll([f]).then { v in _ = link; return v[0] }
                }
            }
            return released.value
        }
        XCTAssertEqual(released, n)
    }

    /// A chain that completes still runs every continuation (the teardown
    /// change only affects futures dropped while pending).
    func testCompletedChainStillRunsEveryContinuation() throws {
        let p = Promise<Int>(scheduler: testScheduler)
        var f = p.future
        for _ in 0..<1_000 { f = f.then { $0 + 1 } }
        p.set(0)
        XCTAssertEqual(try f.get(), 1_000)
    }
}
