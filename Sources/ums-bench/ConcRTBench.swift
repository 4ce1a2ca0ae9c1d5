import ConcRT
import CSupport
import Dispatch
import Foundation
import PPL

/// ConcRT-layer workloads: signalwait, blockmix (WORKLOADS.md) and
/// contexts. (idle is in IdleBench.swift.)
enum ConcRTBench {
    // MARK: signalwait

    static func signalwait(_ h: Harness) throws {
        let n = h.options.iterations ?? 1_000_000
        let vps = h.options.vps ?? 0
        let s = vps > 0 ? try Scheduler(policy: SchedulerPolicy(minConcurrency: vps, maxConcurrency: vps)) : Scheduler.default
        let ns = h.median("signalwait ums") { signalwaitRoundTrip(s, n) }
        h.report("signalwait", "ums", ns, "ns/roundtrip")
        h.progress("  scheduler: \(s.statistics)")
        let bn = h.options.baselineIterations ?? 100_000
        let cv = h.median("signalwait condvar", reps: 1) { condvarPingPong(bn) }
        h.report("signalwait", "baseline-pthread-condvar", cv, "ns/roundtrip")
    }

    /// Two tasks on `s` alternate `n` times waiting on two events; ns per
    /// round trip (WORKLOADS.md's signalwait).
    static func signalwaitRoundTrip(_ s: Scheduler, _ n: Int) -> Double {
        let evA = Event(), evB = Event(), done = Event()
        let t0 = csup_monotonic_ns()
        s.scheduleTask {
            for _ in 0..<n { evB.wait(); evB.reset(); evA.set() }
        }
        s.scheduleTask {
            for _ in 0..<n { evB.set(); evA.wait(); evA.reset() }
            done.set()
        }
        done.wait()
        return Double(csup_monotonic_ns() - t0) / Double(n)
    }

    static func condvarPingPong(_ n: Int) -> Double {
        final class PingPong: @unchecked Sendable {
            var m = pthread_mutex_t(), c = pthread_cond_t(), turn = 0
            init() { pthread_mutex_init(&m, nil); pthread_cond_init(&c, nil) }
        }
        let pp = PingPong()
        let other = Thread {
            for _ in 0..<n {
                pthread_mutex_lock(&pp.m)
                while pp.turn != 1 { pthread_cond_wait(&pp.c, &pp.m) }
                pp.turn = 0
                pthread_cond_signal(&pp.c)
                pthread_mutex_unlock(&pp.m)
            }
        }
        other.start()
        let t0 = csup_monotonic_ns()
        for _ in 0..<n {
            pthread_mutex_lock(&pp.m)
            pp.turn = 1
            pthread_cond_signal(&pp.c)
            while pp.turn != 0 { pthread_cond_wait(&pp.c, &pp.m) }
            pthread_mutex_unlock(&pp.m)
        }
        return Double(csup_monotonic_ns() - t0) / Double(n)
    }

    // MARK: blockmix

    static func spin(microseconds us: Int64) {
        let end = csup_monotonic_ns() + us * 1000
        var x = 0
        while csup_monotonic_ns() < end { x &+= 1 }
        withExtendedLifetime(x) {}
    }

    /// blockmix's parameters (WORKLOADS.md) and its ideal makespan, shared
    /// with blockmix-unwrapped.
    struct BlockmixShape {
        let tasks: Int, rounds: Int, cpuUs: Int64, blockUs: Int64
        /// max(tasks*rounds*cpu/cores, rounds*(cpu+block)), in ms.
        let ideal: Double
        var note: String { String(format: "(ideal %.1f ms)", ideal) }

        init(_ h: Harness) {
            tasks = h.options.tasks ?? 256
            rounds = h.options.rounds ?? 10
            cpuUs = Int64(h.options.cpuUs ?? 500)
            blockUs = Int64(h.options.blockUs ?? 2000)
            let cores = Double(SchedulerPolicy.availableConcurrency)
            ideal = max(Double(tasks * rounds) * Double(cpuUs) / cores, Double(rounds) * Double(cpuUs + blockUs)) / 1000
        }
    }

    static func blockmix(_ h: Harness) throws {
        let shape = BlockmixShape(h)
        let (tasks, rounds, cpuUs, blockUs, ideal, note) = (shape.tasks, shape.rounds, shape.cpuUs, shape.blockUs,
                                                            shape.ideal, shape.note)
        let ums = try h.traced(Scheduler.default) { try h.median("blockmix ums") { () throws -> Double in
            let g = TaskGroup(scheduler: .default)
            let t0 = csup_monotonic_ns()
            for _ in 0..<tasks {
                g.run {
                    for _ in 0..<rounds {
                        spin(microseconds: cpuUs)
                        try Blocking.sleep(for: .microseconds(blockUs))
                    }
                }
            }
            try g.wait()
            return Double(csup_monotonic_ns() - t0) / 1e6
        } }
        h.report("blockmix", "ums", ums, "ms", note + String(format: " (%.2fx ideal)", ums / ideal))
        if !h.options.baselines { return }
        let tg = h.median("blockmix taskgroup", reps: 1) { () -> Double in
            blockingAsync {
                let t0 = csup_monotonic_ns()
                await withTaskGroup(of: Void.self) { g in
                    for _ in 0..<tasks {
                        g.addTask {
                            for _ in 0..<rounds {
                                spin(microseconds: cpuUs)
                                _ = csup_sys_nanosleep(blockUs * 1000)
                            }
                        }
                    }
                }
                return Double(csup_monotonic_ns() - t0) / 1e6
            }
        }
        h.report("blockmix", "baseline-swift-taskgroup", tg, "ms", note + String(format: " (%.2fx ideal)", tg / ideal))
        let dq = h.median("blockmix dispatch", reps: 1) { () -> Double in
            let t0 = csup_monotonic_ns()
            DispatchQueue.concurrentPerform(iterations: tasks) { _ in
                for _ in 0..<rounds {
                    spin(microseconds: cpuUs)
                    _ = csup_sys_nanosleep(blockUs * 1000)
                }
            }
            return Double(csup_monotonic_ns() - t0) / 1e6
        }
        h.report("blockmix", "baseline-dispatch", dq, "ms", note + String(format: " (%.2fx ideal)", dq / ideal))
    }

    // MARK: contexts

    static func rssBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let parts = text.split(separator: " ")
        return (Int(parts.count > 1 ? parts[1] : "0") ?? 0) * Int(csup_page_size())
    }

    static func contexts(_ h: Harness) throws {
        let n = h.options.contexts ?? 100_000
        let s = try Scheduler(policy: SchedulerPolicy(contextStackSize: 64 * 1024))
        s.run {}
        let gate = Event(), arrived = Event(), finished = Event()
        let count = CounterBox(), done = CounterBox()
        let rss0 = rssBytes()
        let t0 = csup_monotonic_ns()
        for _ in 0..<n {
            s.scheduleTask {
                if count.add() == n { arrived.set() }
                gate.wait()
                if done.add() == n { finished.set() }
            }
        }
        arrived.wait()
        let blockMs = Double(csup_monotonic_ns() - t0) / 1e6
        let rss1 = rssBytes()
        let threads = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count) ?? 0
        let live = s.statistics.liveContexts
        let t1 = csup_monotonic_ns()
        gate.set()
        finished.wait()
        let unblockMs = Double(csup_monotonic_ns() - t1) / 1e6
        try s.shutdown()
        let perCtx = Double(rss1 - rss0) / Double(n) / 1024
        h.report("contexts", "ums-rss-per-blocked-context", perCtx, "KiB",
                 "(\(n) contexts blocked on an event, \(live) live contexts, \(threads) pthreads, 64 KiB stacks committed lazily)")
        h.report("contexts", "ums-block", blockMs, "ms", "(time to start \(n) tasks that each block)")
        h.report("contexts", "ums-unblock", unblockMs, "ms", "(time to unblock all \(n) and let them finish)")
    }
}

/// A relaxed shared counter for benchmark tasks.
final class CounterBox: @unchecked Sendable {
    private var v = 0
    private var lock = pthread_mutex_t()
    init() { pthread_mutex_init(&lock, nil) }
    func add() -> Int {
        pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }
        v += 1
        return v
    }
}
