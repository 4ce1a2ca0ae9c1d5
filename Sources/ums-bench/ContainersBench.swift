import ConcRT
import ConcurrentContainers
import CSupport
import PPL
import Synchronization
import UMS

/// `queue` and `hashmap` (WORKLOADS.md), on the ConcurrentContainers module,
/// as ConcRT tasks on the default scheduler.
///   - queue `ums`: 2 producer tasks push 2,000,000 Ints each into one
///     ``ConcurrentQueue`` while 2 consumer tasks pop until all are taken
///     (a consumer that finds the queue empty yields its virtual processor,
///     `Context.yield()`, and a producer yields after every 4,096 pushes:
///     tasks are cooperative, so without it a producer would run to the
///     end before a consumer on its VP starts, as a full bounded channel
///     would stop it); sum and count checked. `--n` sets the item count.
///   - hashmap `ums`: 4 tasks insert 1,000,000 distinct UInt64 keys
///     (i × 0x9E3779B97F4A7C15, value i), each every 4th i, into one
///     ``ConcurrentDictionary``; then 4 tasks look each key up and check its
///     value; makespan of both phases. `baseline-mutex-dictionary`: the same
///     on a `MigrationSafeMutex<[UInt64: Int]>`. `--n` sets the key count.
enum ContainersBench {
    static func queue(_ h: Harness) throws {
        let n = h.options.n ?? 4_000_000
        guard n >= 2, n % 2 == 0 else { throw BenchFailure(description: "queue: --n must be even and >= 2 (got \(n))") }
        let vps = h.options.vps ?? 0
        let s = vps > 0 ? try Scheduler(policy: SchedulerPolicy(minConcurrency: vps, maxConcurrency: vps)) : Scheduler.default
        let ms = try h.median("queue ums") { () throws -> Double in
            let q = ConcurrentQueue<Int>()
            let producersDone = Tally(), taken = Tally(), sum = Tally()
            let g = TaskGroup(scheduler: s)
            let per = n / 2
            let t0 = csup_monotonic_ns()
            for p in 0..<2 {
                g.run {
                    for i in 0..<per {
                        q.push(p * per + i)
                        if i & 4095 == 4095 { Context.yield() }
                    }
                    producersDone.v.wrappingAdd(1, ordering: .releasing)
                }
            }
            for _ in 0..<2 {
                g.run {
                    var s = 0, k = 0
                    while true {
                        if let x = q.tryPop() { s &+= x; k += 1; continue }
                        // Empty: done once both producers have finished and
                        // the queue is still empty after that.
                        if producersDone.v.load(ordering: .acquiring) == 2 {
                            if let x = q.tryPop() { s &+= x; k += 1; continue }
                            break
                        }
                        // A producer on the other VP delivers within a few
                        // hundred ns: look again briefly before giving the
                        // VP to a producer that may share it.
                        var spins = 0
                        while q.isEmpty && spins < 32 { csup_cpu_relax(); spins += 1 }
                        if q.isEmpty { Context.yield() }
                    }
                    taken.v.wrappingAdd(k, ordering: .relaxed)
                    sum.v.wrappingAdd(s, ordering: .relaxed)
                }
            }
            try g.wait()
            let t = Double(csup_monotonic_ns() - t0) / 1e6
            let k = taken.v.load(ordering: .relaxed), s = sum.v.load(ordering: .relaxed)
            guard k == n, s == n * (n - 1) / 2 else {
                throw BenchFailure(description: "queue: took \(k) items summing to \(s); expected \(n) summing to \(n * (n - 1) / 2)")
            }
            return t
        }
        h.report("queue", "ums", ms, "ms", "(2 producers, 2 consumers, \(n) items, ConcurrentQueue<Int>, \(s.virtualProcessorCount) VPs)")
        h.progress("  scheduler: \(s.statistics)")
        if vps > 0 { try s.shutdown() }
    }

    static func hashmap(_ h: Harness) throws {
        let n = h.options.n ?? 1_000_000
        guard n >= 1 else { throw BenchFailure(description: "hashmap: --n must be >= 1 (got \(n))") }
        let ums = try h.median("hashmap ums") { () throws -> Double in
            let m = ConcurrentDictionary<UInt64, Int>()
            return try hashmapRun(n, name: "ums",
                                  insert: { k, v in m.insert(v, forKey: k) },
                                  lookup: { k in m[k] })
        }
        h.report("hashmap", "ums", ums, "ms", "(ConcurrentDictionary<UInt64, Int>: striped shards, one lock each)")
        if !h.options.baselines { return }
        let base = try h.median("hashmap baseline") { () throws -> Double in
            let m = MigrationSafeMutex<[UInt64: Int]>([:])
            return try hashmapRun(n, name: "baseline-mutex-dictionary",
                                  insert: { k, v in m.withLock { $0[k] = v } },
                                  lookup: { k in m.withLock { $0[k] } })
        }
        h.report("hashmap", "baseline-mutex-dictionary", base, "ms", "(MigrationSafeMutex<[UInt64: Int]>)")
    }

    /// Both phases of hashmap as ConcRT tasks; ms; throws on a missing or
    /// wrong value.
    static func hashmapRun(_ n: Int, name: String,
                           insert: @escaping @Sendable (UInt64, Int) -> Void,
                           lookup: @escaping @Sendable (UInt64) -> Int?) throws -> Double {
        let found = Tally()
        let t0 = csup_monotonic_ns()
        let g1 = TaskGroup(scheduler: .default)
        for t in 0..<4 {
            g1.run { for i in stride(from: t, to: n, by: 4) { insert(UInt64(i) &* 0x9E37_79B9_7F4A_7C15, i) } }
        }
        try g1.wait()
        let g2 = TaskGroup(scheduler: .default)
        for t in 0..<4 {
            g2.run {
                var f = 0
                for i in stride(from: t, to: n, by: 4) where lookup(UInt64(i) &* 0x9E37_79B9_7F4A_7C15) == i { f += 1 }
                found.v.wrappingAdd(f, ordering: .relaxed)
            }
        }
        try g2.wait()
        let t = Double(csup_monotonic_ns() - t0) / 1e6
        let f = found.v.load(ordering: .relaxed)
        guard f == n else { throw BenchFailure(description: "hashmap \(name): found \(f) of \(n) keys with their value") }
        return t
    }
}

/// A shared counter for the tasks above.
final class Tally: Sendable {
    let v = Atomic<Int>(0)
}
