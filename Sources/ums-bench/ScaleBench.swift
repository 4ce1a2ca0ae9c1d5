import ConcRT
import CSupport
import Foundation
import PPL

/// `scale`: nullfork and signalwait on schedulers of 2, 8, 32 and 64 VPs
/// (minConcurrency = maxConcurrency = VPs), on purpose more VPs than this
/// machine has CPUs. Goal (the topology issue): throughput at 64 VPs at
/// least 0.5x that at 2 VPs, for each workload. Per VP count: the median
/// of --reps runs of nullfork (--iterations, default 200,000 forks) and of
/// signalwait (100,000 round trips).
enum ScaleBench {
    static func run(_ h: Harness) throws {
        let forks = h.options.iterations ?? 200_000
        let trips = 100_000
        var nullfork: [Int: Double] = [:], signalwait: [Int: Double] = [:]
        for vps in [2, 8, 32, 64] {
            let s = try Scheduler(policy: SchedulerPolicy(minConcurrency: vps, maxConcurrency: vps))
            s.run {}
            usleep(20_000)
            nullfork[vps] = try h.median("scale nullfork \(vps) VPs") {
                try s.run { () throws -> Double in
                    let t0 = csup_monotonic_ns()
                    for _ in 0..<forks { _ = parallelInvoke({}, {}) }
                    return Double(csup_monotonic_ns() - t0) / Double(forks)
                }
            }
            signalwait[vps] = h.median("scale signalwait \(vps) VPs") { ConcRTBench.signalwaitRoundTrip(s, trips) }
            try s.shutdown()
            h.report("scale", "ums-nullfork-\(vps)vps", nullfork[vps]!, "ns/op")
            h.report("scale", "ums-signalwait-\(vps)vps", signalwait[vps]!, "ns/roundtrip")
        }
        // Throughput ratio 64 VPs : 2 VPs (time per op inverted).
        h.report("scale", "ums-nullfork-64-vs-2", nullfork[2]! / nullfork[64]!, "x",
                 "(throughput at 64 VPs / at 2 VPs; goal >= 0.5)")
        h.report("scale", "ums-signalwait-64-vs-2", signalwait[2]! / signalwait[64]!, "x",
                 "(throughput at 64 VPs / at 2 VPs; goal >= 0.5)")
    }
}
