import CMallocCounter
import ConcRT
import CSupport
import Dispatch
import Foundation
import PPL

/// `nullfork` and `fib` (WORKLOADS.md), with heap allocations per task,
/// and Swift TaskGroup / Dispatch baselines.
enum ForkJoinBench {
    // MARK: nullfork

    static func nullfork(_ h: Harness) throws {
        let n = h.options.iterations ?? 1_000_000
        let s = Scheduler.default
        var allocsPerOp = 0.0
        let ns = try h.traced(s) { try h.median("nullfork ums") {
            try s.run { () throws -> Double in
                let a0 = ums_malloc_count()
                let t = timeNs {
                    for _ in 0..<n { _ = parallelInvoke({}, {}) }
                }
                allocsPerOp = Double(ums_malloc_count() - a0) / Double(n)
                return t / Double(n)
            }
        } }
        h.report("nullfork", "ums", ns, "ns/op", String(format: "(heap allocations per task: %.3f)", allocsPerOp))

        let bn = h.options.baselineIterations ?? 50_000
        let tg = h.median("nullfork taskgroup", reps: 1) { swiftTaskGroupNullfork(bn) }
        h.report("nullfork", "baseline-swift-taskgroup", tg, "ns/op")
        let al = h.median("nullfork async-let", reps: 1) { swiftAsyncLetNullfork(bn) }
        h.report("nullfork", "baseline-swift-async-let", al, "ns/op")
        let dg = h.median("nullfork dispatch", reps: 1) { dispatchNullfork(bn) }
        h.report("nullfork", "baseline-dispatch", dg, "ns/op")
    }

    static func swiftTaskGroupNullfork(_ n: Int) -> Double {
        blockingAsync {
            let t0 = csup_monotonic_ns()
            for _ in 0..<n {
                await withTaskGroup(of: Void.self) { g in
                    g.addTask {}
                    await g.waitForAll()
                }
            }
            return Double(csup_monotonic_ns() - t0) / Double(n)
        }
    }

    static func swiftAsyncLetNullfork(_ n: Int) -> Double {
        blockingAsync {
            let t0 = csup_monotonic_ns()
            for _ in 0..<n {
                async let x: Void = ()
                await x
            }
            return Double(csup_monotonic_ns() - t0) / Double(n)
        }
    }

    static func dispatchNullfork(_ n: Int) -> Double {
        let q = DispatchQueue.global()
        let g = DispatchGroup()
        let t0 = csup_monotonic_ns()
        for _ in 0..<n {
            q.async(group: g) {}
            g.wait()
        }
        return Double(csup_monotonic_ns() - t0) / Double(n)
    }

    // MARK: fib

    /// UMS_BENCH_REP_STATS=1: each measured run's time and scheduler
    /// counters on standard error (for a bimodal workload: which runs are
    /// slow, and what they did differently).
    static let perRepStats = ProcessInfo.processInfo.environment["UMS_BENCH_REP_STATS"] == "1"

    @inline(never)
    static func fib(_ n: Int) -> Int {
        if n < 2 { return n }
        // Spawn fib(n-1), compute fib(n-2) inline, wait, add.
        let (b, a) = parallelInvoke({ fib(n - 2) }, { fib(n - 1) })
        return a + b
    }

    static func run(_ h: Harness) throws {
        let n = h.options.n ?? 30
        let expected = fibSerial(n)
        let s = Scheduler.default
        var allocs = 0.0
        let tasks = Double(fibCalls(n))
        let ms = try h.traced(s) { try h.median("fib ums") {
            try s.run { () throws -> Double in
                let a0 = ums_malloc_count()
                let st0 = perRepStats ? s.statistics : nil
                var r = 0
                let t = timeNs { r = fib(n) }
                allocs = Double(ums_malloc_count() - a0) / tasks
                if let st0 { h.progress(String(format: "  fib rep: %.2f ms, ", t / 1e6) + s.statistics.difference(from: st0)) }
                guard r == expected else { throw BenchFailure(description: "fib(\(n)) = \(r), expected \(expected)") }
                return t / 1e6
            }
        } }
        h.report("fib", "ums", ms, "ms", String(format: "(fib(%d)=%d, heap allocations per task: %.3f)", n, expected, allocs))
        h.progress("  scheduler: \(s.statistics)")

        if h.options.baselines {
            let tg = try h.median("fib taskgroup", reps: 1) { () throws -> Double in
                let (r, t) = blockingAsync { () async -> (Int, Double) in
                    let t0 = csup_monotonic_ns()
                    let r = await fibTaskGroup(n)
                    return (r, Double(csup_monotonic_ns() - t0) / 1e6)
                }
                guard r == expected else { throw BenchFailure(description: "taskgroup fib wrong: \(r)") }
                return t
            }
            h.report("fib", "baseline-swift-taskgroup", tg, "ms", "(fib(\(n))=\(expected))")
        }
    }

    static func fibTaskGroup(_ n: Int) async -> Int {
        if n < 2 { return n }
        return await withTaskGroup(of: Int.self) { g in
            g.addTask { await fibTaskGroup(n - 1) }
            let b = await fibTaskGroup(n - 2)
            let a = await g.next()!
            return a + b
        }
    }

    static func fibSerial(_ n: Int) -> Int { n < 2 ? n : fibSerial(n - 1) + fibSerial(n - 2) }
    /// Tasks spawned by fib(n): one per call with n >= 2.
    static func fibCalls(_ n: Int) -> Int { n < 2 ? 0 : 1 + fibCalls(n - 1) + fibCalls(n - 2) }
}

/// Runs an async closure to completion from synchronous code.
func blockingAsync<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
    let box = Box<T?>(nil)
    let sem = DispatchSemaphore(value: 0)
    Task.detached {
        box.value = await body()
        sem.signal()
    }
    sem.wait()
    return box.value!
}
