import TestSupport
import XCTest
@testable import PPL
import ConcRT

final class FutureTests: XCTestCase {
    func testGetWaitValueAndError() throws {
        let f = Future(scheduler: testScheduler) { 21 * 2 }
        XCTAssertEqual(try f.get(), 42)
        XCTAssertEqual(f.wait(), .completed)
        XCTAssertTrue(f.isDone)
        let e = Future<Int>(scheduler: testScheduler) { throw Boom(id: 3) }
        XCTAssertThrowsError(try e.get()) { XCTAssertEqual($0 as? Boom, Boom(id: 3)) }
        XCTAssertEqual(e.wait(), .completed)
        XCTAssertEqual(try Future(value: 7).get(), 7)
        XCTAssertThrowsError(try Future<Int>(error: Boom(id: 9)).get()) { XCTAssertEqual($0 as? Boom, Boom(id: 9)) }
    }

    func testThenAndContinueWith() throws {
        let f = Future(scheduler: testScheduler) { 10 }
        let g = f.then { $0 + 1 }.then { "\($0)" }
        XCTAssertEqual(try g.get(), "11")
        // Value-based continuation is skipped after an error; result-based runs.
        let ran = Counter()
        let bad = Future<Int>(scheduler: testScheduler) { throw Boom(id: 5) }
        let skipped = bad.then { v -> Int in ran.add(); return v }
        XCTAssertThrowsError(try skipped.get()) { XCTAssertEqual($0 as? Boom, Boom(id: 5)) }
        XCTAssertEqual(ran.value, 0)
        let recovered = bad.continueWith { r -> Int in (try? r.get()) ?? -1 }
        XCTAssertEqual(try recovered.get(), -1)
    }

    func testContinuationOnAlreadyCompletedFuture() throws {
        let done = Future(value: 5)
        XCTAssertTrue(done.isDone)
        XCTAssertEqual(try done.then { $0 * 3 }.get(), 15)
        XCTAssertEqual(try done.continueWith { try $0.get() + 1 }.get(), 6)
    }

    func testWhenAllAndWhenAny() throws {
        let fs = (0..<20).map { i in Future(scheduler: testScheduler) { i * i } }
        XCTAssertEqual(try Future.whenAll(fs).get(), (0..<20).map { $0 * $0 })
        XCTAssertEqual(try Future<Int>.whenAll([]).get(), [])
        let withError = fs + [Future<Int>(scheduler: testScheduler) { throw Boom(id: 1) }]
        XCTAssertThrowsError(try Future.whenAll(withError).get()) { XCTAssertEqual($0 as? Boom, Boom(id: 1)) }
        // whenAny: failures are skipped while another can succeed.
        let slow = Future(scheduler: testScheduler) { () -> Int in usleep(20_000); return 7 }
        let failing = Future<Int>(scheduler: testScheduler) { throw Boom(id: 2) }
        let any = try Future.whenAny([failing, slow]).get()
        XCTAssertEqual(any.index, 1)
        XCTAssertEqual(any.value, 7)
        // All fail: the first error wins.
        let allFail = [Future<Int>(error: Boom(id: 3)), Future<Int>(error: Boom(id: 4))]
        XCTAssertThrowsError(try Future.whenAny(allFail).get()) { XCTAssertTrue($0 is Boom) }
    }

    /// whenAll over futures that complete at the same moment on both
    /// virtual processors: their completions store into the results box
    /// concurrently. It used to keep them in an Array property, which
    /// ThreadSanitizer reported as a race (`ums.sh test` runs this under
    /// TSan); the values must also come out in order.
    func testWhenAllWithConcurrentCompletions() throws {
        let rounds = longMode ? 500 : 60
        for round in 0..<rounds {
            let gate = Promise<Int>(scheduler: testScheduler)
            let fs = (0..<16).map { i in gate.future.then { $0 + i } }
            let all = Future.whenAll(fs)
            XCTAssertTrue(gate.set(round))
            XCTAssertEqual(try all.get(), (0..<16).map { round + $0 })
        }
    }

    func testPromiseCompletesFuture() throws {
        let p = Promise<String>(scheduler: testScheduler)
        let chained = p.future.then { $0.uppercased() }
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.01) { p.set("done") }
        XCTAssertEqual(try chained.get(), "DONE")
        XCTAssertFalse(p.set("again"))
        XCTAssertFalse(p.fail(Boom(id: 1)))
        let q = Promise<Int>()
        XCTAssertTrue(q.fail(Boom(id: 8)))
        XCTAssertThrowsError(try q.future.get()) { XCTAssertEqual($0 as? Boom, Boom(id: 8)) }
    }

    func testCancellationTokenBeforeStartAndRegistration() throws {
        let src = CancellationTokenSource()
        let calls = Counter()
        let reg = src.token.register { calls.add() }
        let reg2 = src.token.register { calls.add(100) }
        XCTAssertTrue(reg2.deregister())
        XCTAssertFalse(src.token.isCanceled)
        src.cancel()
        src.cancel()
        XCTAssertTrue(src.token.isCanceled)
        XCTAssertEqual(calls.value, 1)
        XCTAssertFalse(reg.deregister(), "already ran")
        src.token.register { calls.add(10) }   // runs at once
        XCTAssertEqual(calls.value, 11)
        let f = Future(scheduler: testScheduler, token: src.token) { 1 }
        XCTAssertEqual(f.wait(), .canceled)
        XCTAssertThrowsError(try f.get()) { XCTAssertTrue($0 is TaskCanceled) }
        XCTAssertFalse(CancellationToken.none.isCanceled)
    }

    func testCancellationStormWithTenThousandFutures() throws {
        let src = CancellationTokenSource()
        let started = Counter()
        // The first 100 wait (blocking only their contexts) until after the
        // cancel, so some are canceled however fast the rest run.
        let gate = Event()
        let fs = (0..<10_000).map { i in
            Future(scheduler: testScheduler, token: src.token) { () throws -> Int in
                started.add()
                if i < 100 { gate.wait() }
                try checkCancellation()
                return i
            }
        }
        src.cancel()
        gate.set()
        var completed = 0, canceled = 0
        for (i, f) in fs.enumerated() {
            switch f.wait() {
            case .completed: XCTAssertEqual(try f.get(), i); completed += 1
            case .canceled: canceled += 1
            }
        }
        XCTAssertEqual(completed + canceled, 10_000)
        XCTAssertGreaterThan(canceled, 0)
    }
}
