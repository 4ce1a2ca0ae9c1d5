import ConcRT
import CSupport
import Foundation
import PPL
import Synchronization

/// `snapshot`: the cost of process reflection. 10,000 contexts (--contexts)
/// blocked on events; the time of one `Scheduler.snapshot()` with and
/// without backtraces, and as symbolized text. Then the disturbance:
/// nullfork's loop (1,000,000 spawn+join) alone, and beside a thread
/// taking snapshots back to back.
enum ReflectionBench {
    static func run(_ h: Harness) throws {
        let n = h.options.contexts ?? 10_000
        let s = try Scheduler()
        defer { try? s.shutdown() }
        let events = (0..<8).map { _ in Event() }
        let parked = Atomic<Int>(0), done = Atomic<Int>(0)
        for i in 0..<n {
            let e = events[i % events.count]
            s.scheduleTask {
                parked.add(1, ordering: .relaxed)
                e.wait()
                done.add(1, ordering: .relaxed)
            }
        }
        while parked.load(ordering: .relaxed) < n { usleep(1_000) }
        usleep(50_000)
        let plain = h.median("snapshot no-backtraces") { () -> Double in
            let t0 = csup_monotonic_ns()
            let snap = s.snapshot(backtraces: false)
            precondition(snap.contexts.count >= n, "snapshot saw \(snap.contexts.count) of \(n) contexts")
            return Double(csup_monotonic_ns() - t0) / 1e6
        }
        h.report("snapshot", "ums-no-backtraces", plain, "ms", "(\(n) contexts waiting on events)")
        let full = h.median("snapshot backtraces") { () -> Double in
            let t0 = csup_monotonic_ns()
            let snap = s.snapshot()
            precondition(snap.contexts.count >= n)
            return Double(csup_monotonic_ns() - t0) / 1e6
        }
        h.report("snapshot", "ums-backtraces", full, "ms", String(format: "(%.1f us per context, frames read with process_vm_readv)", full * 1000 / Double(n)))
        let text = h.median("snapshot text") { () -> Double in
            let t0 = csup_monotonic_ns()
            let out = s.snapshot().description
            precondition(out.count > n)
            return Double(csup_monotonic_ns() - t0) / 1e6
        }
        h.report("snapshot", "ums-backtraces-symbolized-text", text, "ms")
        for e in events { e.set() }
        while done.load(ordering: .relaxed) < n { usleep(1_000) }

        // Disturbance: nullfork's loop alone, then beside a thread taking
        // snapshots back to back.
        let ops = 1_000_000
        func forkLoop() -> Double {
            s.run {
                let t0 = csup_monotonic_ns()
                for _ in 0..<ops { _ = parallelInvoke({}, {}) }
                return Double(csup_monotonic_ns() - t0) / Double(ops)
            }
        }
        let alone = h.median("snapshot nullfork alone") { forkLoop() }
        let stop = Atomic<Bool>(false), taken = Atomic<Int>(0)
        let taker = Thread {
            while !stop.load(ordering: .relaxed) {
                _ = s.snapshot()
                taken.add(1, ordering: .relaxed)
            }
        }
        taker.start()
        let beside = h.median("snapshot nullfork beside snapshots") { forkLoop() }
        stop.store(true, ordering: .relaxed)
        h.report("snapshot-disturbance", "ums-nullfork-alone", alone, "ns/op")
        h.report("snapshot-disturbance", "ums-nullfork-beside-snapshots", beside, "ns/op",
                 "(\(taken.load(ordering: .relaxed)) snapshots with backtraces taken meanwhile)")
    }
}
