import ConcRT
import CSupport
import Foundation
import Synchronization

/// `rm`: two schedulers with the default policy (minConcurrency 1, every
/// CPU as maxConcurrency) share the machine's cores through
/// `ResourceManager.shared`. Each is kept busy by self-rescheduling chains
/// of 50 µs CPU-bound tasks (2 × cores chains). Per round:
///
/// 1. B runs alone and holds every core.
/// 2. **reclaim**: A's chains start. Time from A's first submission to
///    A's first task body running: B gives a core back between two of its
///    tasks and A's waiting VP takes it.
/// 3. **share**: both run for 200 ms; A's fraction of the tasks run.
/// 4. **handover**: A's chains stop. Time from A's last task body ending
///    to B running task bodies on every core: A's VPs go idle, give their
///    cores back, and B's waiting VPs take them.
///
/// Figures: the median over the rounds of reclaim and handover (µs; p90
/// and max in the note), A's mean share (percent of the tasks), and the
/// most task bodies that ever ran at once across both schedulers (at most
/// the number of cores: no oversubscription between them).
enum ResourceManagerBench {
    /// Task bodies running now across both loads, and the most seen.
    final class Concurrency: @unchecked Sendable {
        // @unchecked Sendable: atomics only.
        let now = Atomic<Int>(0)
        let most = Atomic<Int>(0)
        func enter() {
            let n = now.wrappingAdd(1, ordering: .relaxed).newValue
            var m = most.load(ordering: .relaxed)
            while n > m {
                let (done, seen) = most.compareExchange(expected: m, desired: n, ordering: .relaxed)
                if done { break }
                m = seen
            }
        }
        func leave() { now.wrappingSubtract(1, ordering: .relaxed) }
    }

    /// One scheduler's busy chains and their timestamps.
    final class Load: @unchecked Sendable {
        // @unchecked Sendable: atomics and immutable references.
        let scheduler: Scheduler
        let all: Concurrency
        let cores: Int
        let stop = Atomic<Bool>(false)
        let chainsLeft = Atomic<Int>(0)
        let running = Atomic<Int>(0)
        let tasks = Atomic<Int>(0)
        /// When the last chain ended (ns; 0: not yet).
        let lastEnd = Atomic<Int64>(0)
        /// When the first task body started (ns; 0: not yet).
        let firstStart = Atomic<Int64>(0)
        /// When task bodies first ran on every core at once (ns; 0: not yet).
        let everyCoreAt = Atomic<Int64>(0)

        init(_ s: Scheduler, cores: Int, all: Concurrency) {
            scheduler = s
            self.cores = cores
            self.all = all
        }

        func start(chains: Int) {
            stop.store(false, ordering: .relaxed)
            lastEnd.store(0, ordering: .relaxed)
            firstStart.store(0, ordering: .relaxed)
            chainsLeft.store(chains, ordering: .relaxed)
            for _ in 0..<chains { step() }
        }

        private func step() {
            scheduler.scheduleTask { [self] in
                if stop.load(ordering: .relaxed) {
                    if chainsLeft.wrappingSubtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
                        lastEnd.store(csup_monotonic_ns(), ordering: .releasing)
                    }
                    return
                }
                let t = csup_monotonic_ns()
                _ = firstStart.compareExchange(expected: 0, desired: t, ordering: .relaxed)
                if running.wrappingAdd(1, ordering: .relaxed).newValue >= cores {
                    _ = everyCoreAt.compareExchange(expected: 0, desired: t, ordering: .relaxed)
                }
                all.enter()
                let end = t + 50_000
                while csup_monotonic_ns() < end { csup_cpu_relax() }
                all.leave()
                running.wrappingSubtract(1, ordering: .relaxed)
                tasks.wrappingAdd(1, ordering: .relaxed)
                step()
            }
        }
    }

    static func run(_ h: Harness) throws {
        let cores = ResourceManager.shared.coreCount
        let rounds = h.options.rounds ?? 20
        let a = try Scheduler(), b = try Scheduler()
        let all = Concurrency()
        let loadA = Load(a, cores: cores, all: all), loadB = Load(b, cores: cores, all: all)
        let chains = 2 * cores
        loadB.start(chains: chains)
        func waitFor(_ what: String, _ cond: () -> Bool) throws {
            let deadline = csup_monotonic_ns() + 10_000_000_000
            while !cond() {
                if csup_monotonic_ns() > deadline {
                    throw BenchFailure(description: "rm: timed out waiting for \(what): \(ResourceManager.shared.allocations())")
                }
                usleep(1_000)
            }
        }
        var reclaim: [Double] = [], handover: [Double] = [], share: [Double] = []
        for _ in 0..<rounds {
            try waitFor("B to hold every core") { b.allocatedCores == Double(cores) }
            // 2. reclaim
            let t0 = csup_monotonic_ns()
            loadA.start(chains: chains)
            try waitFor("A's first task") { loadA.firstStart.load(ordering: .relaxed) != 0 }
            reclaim.append(Double(loadA.firstStart.load(ordering: .relaxed) - t0) / 1e3)
            // 3. share
            try waitFor("the fair split") { a.allocatedCores >= 1 && b.allocatedCores >= 1 }
            let a0 = loadA.tasks.load(ordering: .relaxed), b0 = loadB.tasks.load(ordering: .relaxed)
            usleep(200_000)
            let da = loadA.tasks.load(ordering: .relaxed) - a0, db = loadB.tasks.load(ordering: .relaxed) - b0
            share.append(100 * Double(da) / Double(max(1, da + db)))
            // 4. handover
            loadB.everyCoreAt.store(0, ordering: .relaxed)
            loadA.stop.store(true, ordering: .relaxed)
            try waitFor("A's chains to end") { loadA.lastEnd.load(ordering: .acquiring) != 0 }
            try waitFor("B on every core") { loadB.everyCoreAt.load(ordering: .relaxed) != 0 }
            handover.append(Double(loadB.everyCoreAt.load(ordering: .relaxed) - loadA.lastEnd.load(ordering: .relaxed)) / 1e3)
        }
        loadB.stop.store(true, ordering: .relaxed)
        try a.shutdown()
        try b.shutdown()
        func pct(_ xs: [Double], _ p: Double) -> Double {
            let s = xs.sorted()
            return s[min(s.count - 1, Int(Double(s.count - 1) * p + 0.5))]
        }
        h.report("rm", "ums-reclaim", pct(reclaim, 0.5), "us",
                 "(busy B gives a core to newly busy A: submit -> A's first task; p90 \(String(format: "%.0f", pct(reclaim, 0.9))), max \(String(format: "%.0f", reclaim.max()!)); \(rounds) rounds, \(cores) cores)")
        h.report("rm", "ums-handover", pct(handover, 0.5), "us",
                 "(idle A's cores to busy B: A's last task ends -> B on every core; p90 \(String(format: "%.0f", pct(handover, 0.9))), max \(String(format: "%.0f", handover.max()!)))")
        h.report("rm", "ums-share-a", share.reduce(0, +) / Double(share.count), "percent",
                 "(A's part of the tasks while both are busy; fair = 50)")
        h.report("rm", "ums-most-running", Double(all.most.load(ordering: .relaxed)), "tasks",
                 "(most task bodies at once across both schedulers; \(cores) cores)")
    }
}
