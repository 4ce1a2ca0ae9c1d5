import TestSupport
import XCTest
@testable import PPL
import ConcRT

final class AlgorithmTests: XCTestCase {
    static let sizes = [0, 1, 2, 3, 17, 1001, 100_003]

    func testParallelForEveryPartitionerAndStep() throws {
        let ap = AffinityPartitioner()
        let partitioners: [Partitioner] = [.auto, .static, .simple(chunk: 7), .affinity(ap), .affinity(ap)]
        for n in Self.sizes {
            for p in partitioners {
                for step in [1, 3] {
                    let hits = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: max(1, n))
                    hits.initialize(repeating: 0)
                    defer { hits.deallocate() }
                    let box = UnsafeSendable(hits)
                    try parallelFor(0..<n, step: step, partitioner: p, scheduler: testScheduler) { i in box.value[i] &+= 1 }
                    for i in 0..<n { XCTAssertEqual(hits[i], i % step == 0 ? 1 : 0, "n=\(n) step=\(step) i=\(i)") }
                }
            }
        }
        XCTAssertGreaterThanOrEqual(ap.chunkCount, 1)
    }

    func testParallelForErrorAndCancellation() throws {
        let ran = Counter()
        XCTAssertThrowsError(try parallelFor(0..<100_000, scheduler: testScheduler) { i in
            ran.add()
            if i == 500 { throw Boom(id: i) }
        }) { XCTAssertEqual($0 as? Boom, Boom(id: 500)) }
        XCTAssertLessThan(ran.value, 100_000, "remaining chunks were skipped")
        let src = CancellationTokenSource()
        src.cancel()
        XCTAssertThrowsError(try parallelFor(0..<10, scheduler: testScheduler, token: src.token) { _ in }) {
            XCTAssertTrue($0 is TaskCanceled)
        }
    }

    func testForEachReduceTransformMap() throws {
        var rng = Rng(s: 7)
        for n in Self.sizes {
            let xs = (0..<n).map { _ in Int(rng.next() % 1000) }
            let sum = Counter()
            try parallelForEach(xs, scheduler: testScheduler) { sum.add($0) }
            XCTAssertEqual(sum.value, xs.reduce(0, +))
            XCTAssertEqual(try parallelReduce(xs, identity: 0, scheduler: testScheduler, +), xs.reduce(0, +))
            let r = try parallelReduce(0..<n, identity: 0, scheduler: testScheduler,
                                       map: { $0.reduce(0) { $0 + xs[$1] } }, combine: +)
            XCTAssertEqual(r, xs.reduce(0, +))
            // Non-commutative combine keeps left-to-right order.
            let s = try parallelReduce(0..<min(n, 200), identity: "", scheduler: testScheduler,
                                       map: { $0.map { String($0 % 10) }.joined() }, combine: +)
            XCTAssertEqual(s, (0..<min(n, 200)).map { String($0 % 10) }.joined())
            var out = [Int](repeating: 0, count: n)
            try parallelTransform(xs, into: &out, scheduler: testScheduler) { $0 * 2 }
            XCTAssertEqual(out, xs.map { $0 * 2 })
            XCTAssertEqual(try parallelMap(xs, scheduler: testScheduler) { "\($0)" }, xs.map { "\($0)" })
        }
        XCTAssertThrowsError(try parallelMap(Array(0..<10_000), scheduler: testScheduler) { (x: Int) -> String in
            if x == 7777 { throw Boom(id: x) }
            return "\(x)"
        }) { XCTAssertEqual($0 as? Boom, Boom(id: 7777)) }
    }

    func testSortsMatchSerialSortOnRandomInputs() throws {
        var rng = Rng(s: 99)
        for n in Self.sizes + [300_000] {
            for equalKeys in [false, true] {
                let input = (0..<n).map { _ in equalKeys ? 5 : rng.next() % 1_000_000 }
                let expected = input.sorted()
                testScheduler.run {
                    var a = input; parallelSort(&a); XCTAssertEqual(a, expected, "parallelSort n=\(n)")
                    var b = input; parallelBufferedSort(&b); XCTAssertEqual(b, expected, "buffered n=\(n)")
                    var c = input; parallelRadixSort(&c); XCTAssertEqual(c, expected, "radix n=\(n)")
                    var d = input; parallelSort(&d, by: >); XCTAssertEqual(d, Array(expected.reversed()))
                }
                _ = try XCTUnwrap(Optional(0))
            }
        }
        // Outside the scheduler, non-trivial elements, radix with a key.
        struct Item: Equatable { var key: UInt32; var name: String }
        let items = (0..<5000).map { i in Item(key: UInt32(truncatingIfNeeded: rng.next() % 97), name: "item\(i)") }
        var byKey = items
        parallelRadixSort(&byKey, key: { $0.key })
        XCTAssertEqual(byKey, items.enumerated().sorted { ($0.element.key, $0.offset) < ($1.element.key, $1.offset) }.map(\.element),
                       "radix sort is stable")
        var byName = items
        parallelSort(&byName) { $0.name < $1.name }
        XCTAssertEqual(byName, items.sorted { $0.name < $1.name })
        // A non-contiguous collection (ArraySlice of a slice is contiguous; use a reversed view's base).
        var slice = Array(input5000(&rng))[100..<4000]
        parallelBufferedSort(&slice)
        XCTAssertTrue(zip(slice, slice.dropFirst()).allSatisfy { $0 <= $1 })
    }

    func input5000(_ rng: inout Rng) -> [UInt64] { (0..<5000).map { _ in rng.next() } }

    func testCombinable() throws {
        let c = Combinable<Int> { 0 }
        try parallelFor(0..<100_000, scheduler: testScheduler) { i in c.withLocal { $0 += i } }
        XCTAssertEqual(c.combine(+), (0..<100_000).reduce(0, +))
        var parts = 0
        c.combineEach { _ in parts += 1 }
        XCTAssertGreaterThanOrEqual(parts, 1)
        c.clear()
        XCTAssertEqual(c.combine(+), 0)
        c.withLocal { $0 = 5 }   // outside the scheduler: per-thread slot
        XCTAssertEqual(c.combine(+), 5)
    }

    func testParallelInvokePackAndErrors() throws {
        let (a, b, c, d) = try parallelInvoke({ @Sendable in 1 }, { @Sendable in "two" }, { @Sendable in 3.0 }, { @Sendable in [4] })
        XCTAssertEqual(a, 1); XCTAssertEqual(b, "two"); XCTAssertEqual(c, 3.0); XCTAssertEqual(d, [4])
        XCTAssertThrowsError(try parallelInvoke({ 1 }, { () throws -> Int in throw Boom(id: 2) })) {
            XCTAssertEqual($0 as? Boom, Boom(id: 2))
        }
        let ran = Counter()
        XCTAssertThrowsError(try parallelInvoke({ @Sendable () throws -> Int in throw Boom(id: 1) },
                                                { @Sendable () -> Int in ran.add(); return 0 },
                                                { @Sendable () throws -> Int in throw Boom(id: 3) })) {
            XCTAssertEqual($0 as? Boom, Boom(id: 1), "first by position")
        }
        XCTAssertEqual(ran.value, 1, "every closure runs")
    }

    /// The non-throwing two-way parallelInvoke (inlined, with the scope
    /// looked up only when the task has context-local values): a second
    /// closure taken by a thief runs on another context, inside the
    /// forker's cancellation scope.
    func testStolenInvokeRunsInTheForkersCancellationScope() throws {
        let result = try testScheduler.run { () throws -> (stolen: Bool, canceled: Bool, inlineCanceled: Bool) in
            let g = TaskGroup()
            let out = UnsafeSendable(UnsafeMutablePointer<(Bool, Bool, Bool)>.allocate(capacity: 1))
            defer { out.value.deallocate() }
            try g.runAndWait {
                g.cancel()
                let me = Context.current!.id
                let started = Counter()
                let (inlineCanceled, (stolen, canceled)) = parallelInvoke({ () -> Bool in
                    // Keep `a` busy until a thief has started `b` (the
                    // scheduler has 2 VPs), at most 5 s.
                    let t0 = ContinuousClock.now
                    while started.value == 0 && ContinuousClock.now - t0 < .seconds(5) { sched_yield() }
                    return isTaskCancellationRequested()
                }, { () -> (Bool, Bool) in
                    started.add()
                    return (Context.current!.id != me, isTaskCancellationRequested())
                })
                out.value.pointee = (stolen, canceled, inlineCanceled)
            }
            let r = out.value.pointee
            return (r.0, r.1, r.2)
        }
        XCTAssertTrue(result.stolen, "b was not taken by another context within 5 s")
        XCTAssertTrue(result.canceled, "the stolen b did not see the forker's (canceled) scope")
        XCTAssertTrue(result.inlineCanceled, "a did not see its own scope")
    }

    func testDeepRecursionDoesNotOverflowContextStacks() throws {
        @Sendable func fib(_ n: Int) -> Int {
            if n < 2 { return n }
            let (a, b) = parallelInvoke({ fib(n - 2) }, { fib(n - 1) })
            return a + b
        }
        XCTAssertEqual(testScheduler.run { fib(22) }, 17711)
        // A 35-deep chain of forks (fib(35)'s depth) with stealing at every level.
        @Sendable func chain(_ d: Int) -> Int {
            if d == 0 { return 0 }
            let (x, y) = parallelInvoke({ chain(d - 1) }, { fib(10) })
            return x + y
        }
        XCTAssertEqual(testScheduler.run { chain(35) }, 35 * 55)
    }
}

/// Hands a buffer to concurrent chunks that touch disjoint elements.
struct UnsafeSendable<T>: @unchecked Sendable {
    var value: T
    init(_ v: T) { value = v }
}
