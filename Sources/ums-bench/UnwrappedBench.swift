import ConcRT
import CSupport
import Foundation
import PPL
import UMS

/// Lazy kernel entry's unwrapped side: calls the runtime never sees.
/// - `blockmix-unwrapped`: blockmix (WORKLOADS.md) with a plain
///   `nanosleep(2)`, no wrapper: the UMS monitor must notice each blocked
///   call by itself (thread CPU clock still, /proc state S) and retake the
///   virtual processor.
/// - `detect`: on a one-VP scheduler, the time from a task entering a plain
///   `read(2)` on an empty pipe to another task starting on that VP (the
///   other task then writes the byte that releases the read). Median and
///   p99 over the iterations.
enum UnwrappedBench {
    static func blockmix(_ h: Harness) throws {
        let shape = ConcRTBench.BlockmixShape(h)
        let (tasks, rounds, cpuUs, blockUs, ideal, note) = (shape.tasks, shape.rounds, shape.cpuUs, shape.blockUs,
                                                            shape.ideal, shape.note)
        let s = try Scheduler(policy: SchedulerPolicy(detectUnwrappedBlocking: true))
        defer { try? s.shutdown() }
        let before = s.statistics
        let ums = try h.median("blockmix-unwrapped ums") { () throws -> Double in
            let g = TaskGroup(scheduler: s)
            let t0 = csup_monotonic_ns()
            for _ in 0..<tasks {
                g.run {
                    for _ in 0..<rounds {
                        ConcRTBench.spin(microseconds: cpuUs)
                        _ = csup_sys_nanosleep(blockUs * 1000)   // unwrapped: the runtime is not told
                    }
                }
            }
            try g.wait()
            return Double(csup_monotonic_ns() - t0) / 1e6
        }
        let st = s.statistics
        h.progress("  scheduler: \(st); UMS: \(UMS.statistics)")
        h.report("blockmix-unwrapped", "ums", ums, "ms", note + String(format: " (%.2fx ideal; compensations %d, failed %d)", ums / ideal,
                                                                      st.compensations - before.compensations,
                                                                      st.compensationFailures - before.compensationFailures))
    }

    static func detect(_ h: Harness) throws {
        let n = h.options.iterations ?? 300
        let s = try Scheduler(policy: SchedulerPolicy(minConcurrency: 1, maxConcurrency: 1, detectUnwrappedBlocking: true))
        defer { try? s.shutdown() }
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw BenchFailure(description: "detect: pipe failed") }
        defer { close(fds[0]); close(fds[1]) }
        let r = fds[0], w = fds[1]
        let samples = MigrationSafeMutex<[Double]>([])
        for _ in 0..<n {
            let done = Event()
            s.scheduleTask {
                let t0 = Box(Int64(0))
                // Queued on this VP's deque behind the reader: it can start
                // only once the VP is taken back from the blocked read.
                s.scheduleTask {
                    let t1 = csup_monotonic_ns()
                    samples.withLock { $0.append(Double(t1 - t0.value) / 1_000) }
                    var b: UInt8 = 1
                    _ = Glibc.write(w, &b, 1)
                }
                var b: UInt8 = 0
                t0.value = csup_monotonic_ns()
                _ = Glibc.read(r, &b, 1)   // unwrapped, blocks until the other task writes
                done.set()
            }
            done.wait()
        }
        let sorted = samples.withLock { $0 }.sorted()
        guard !sorted.isEmpty else { throw BenchFailure(description: "detect: no samples") }
        let median = sorted[sorted.count / 2]
        let p99 = sorted[min(sorted.count - 1, Int(Double(sorted.count) * 0.99))]
        h.report("detect", "ums-median", median, "us", "(unwrapped read(2) blocks; another task starts on the only VP; \(n) iterations)")
        h.report("detect", "ums-p99", p99, "us", "(goal <= 200)")
    }
}
