import Agents
import ConcRT
import CSupport
import Synchronization

/// pipeline (WORKLOADS.md): producer → transformer → consumer, joined by
/// two bounded buffers of capacity 64 (Agents' BoundedBuffer); the
/// producer sends 0..<N, the transformer sends 2x+1, the consumer sums.
/// The sum must be N². Each stage is an Agent on the default scheduler
/// (`--vps N`: on a scheduler of N virtual processors, impl `ums-Nvp`);
/// end of stream is the buffer's shutdown() (a receive then throws).
enum PipelineBench {
    static func run(_ h: Harness) throws {
        let n = h.options.n ?? 1_000_000
        let vps = h.options.vps ?? 0
        let s = vps > 0 ? try Scheduler(policy: SchedulerPolicy(minConcurrency: vps, maxConcurrency: vps)) : Scheduler.default
        var failure: String?
        let ms = h.median("pipeline ums") { () -> Double in
            let (elapsed, sum) = once(n: n, scheduler: s)
            if sum != n * n { failure = "pipeline: sum \(sum), expected \(n * n)" }
            return elapsed
        }
        if let failure { throw BenchFailure(description: failure) }
        h.report("pipeline", vps > 0 ? "ums-\(vps)vp" : "ums", ms, "ms", "(agents: 3 stages, BoundedBuffer(64) x2, N=\(n), \(s.virtualProcessorCount) VPs)")
        h.progress("  scheduler: \(s.statistics)")
        if vps > 0 { try s.shutdown() }
    }

    /// One run: milliseconds and the consumer's sum.
    static func once(n: Int, scheduler: Scheduler) -> (Double, Int) {
        let a = try! BoundedBuffer<Int>(capacity: 64)
        let b = try! BoundedBuffer<Int>(capacity: 64)
        let result = Atomic<Int>(0)
        let done = Event()
        let t0 = csup_monotonic_ns()
        let producer = Stage(scheduler) {
            for x in 0..<n { try! send(a, x) }
            a.shutdown()
        }
        let transformer = Stage(scheduler) {
            while let x = try? receive(a) { try! send(b, 2 &* x &+ 1) }
            b.shutdown()
        }
        let consumer = Stage(scheduler) {
            var sum = 0
            while let y = try? receive(b) { sum &+= y }
            result.store(sum, ordering: .releasing)
            done.set()
        }
        consumer.start()
        transformer.start()
        producer.start()
        done.wait()
        let elapsed = Double(csup_monotonic_ns() - t0) / 1e6
        _ = try? Agent.waitForAll([producer, transformer, consumer])
        return (elapsed, result.load(ordering: .acquiring))
    }

    /// One pipeline stage as an agent.
    final class Stage: Agent, @unchecked Sendable {
        let body: @Sendable () -> Void
        init(_ s: Scheduler, _ body: @escaping @Sendable () -> Void) {
            self.body = body
            super.init(scheduler: s)
        }
        override func run() {
            body()
            done()
        }
    }
}
