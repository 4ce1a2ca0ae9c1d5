import ConcRT
import CSupport
import Foundation
import Synchronization

/// `fairshare`: schedule groups with CPU shares and caps (fair share
/// scheduling), on a scheduler of 2 VPs (`--vps`). Each busy group is kept
/// busy by 8 self-rescheduling chains of 100 µs CPU-bound tasks; a group's
/// VP time is ``ScheduleGroup/timeUsed`` (CPU time) over the window; cap
/// and alone are percent of the window's VP wall time (run it on a quiet
/// machine).
///
/// - `shares-3-1`: groups with shares 3 and 1, both busy for 1 s: the
///   first one's percent of the VP time the two used (goal 75 ± 5).
/// - `cap-25`: a group capped at 0.25 busy alone for 1 s (a second,
///   uncapped group exists and is idle): its percent of the window's VP
///   time (goal at most 27).
/// - `alone`: one uncapped group busy alone for 1 s beside an idle one
///   with share 3: its percent (work conservation: about 100).
enum FairShareBench {
    /// A group kept busy until stopped.
    final class Chains: @unchecked Sendable {
        // @unchecked Sendable: an atomic and immutable references.
        let group: ScheduleGroup
        let stop = Atomic<Bool>(false)
        init(_ g: ScheduleGroup, chains: Int) {
            group = g
            for _ in 0..<chains { step() }
        }
        private func step() {
            group.scheduleTask { [self] in
                if stop.load(ordering: .relaxed) { return }
                let end = csup_monotonic_ns() + 100_000
                while csup_monotonic_ns() < end { csup_cpu_relax() }
                step()
            }
        }
    }

    /// Runs `busy` groups for `window`, returns each group's percent of the
    /// window's VP time (vps × window).
    static func measure(_ s: Scheduler, busy: [ScheduleGroup], window: Int64) -> [Double] {
        let chains = busy.map { Chains($0, chains: 8) }
        usleep(50_000)   // settled
        let used0 = busy.map { $0.timeUsed }
        let t0 = csup_monotonic_ns()
        usleep(UInt32(window / 1_000))
        let t1 = csup_monotonic_ns()
        let used1 = busy.map { $0.timeUsed }
        for c in chains { c.stop.store(true, ordering: .relaxed) }
        while busy.contains(where: { $0.pendingTasks > 0 }) { usleep(1_000) }
        let vpTime = Double(t1 - t0) * Double(s.virtualProcessorCount)
        return zip(used0, used1).map { a, b in
            let d = b - a
            return 100 * (Double(d.components.seconds) * 1e9 + Double(d.components.attoseconds) / 1e9) / vpTime
        }
    }

    static func run(_ h: Harness) throws {
        let vps = h.options.vps ?? 2
        let window: Int64 = 1_000_000_000
        let s = try Scheduler(policy: SchedulerPolicy(minConcurrency: vps, maxConcurrency: vps))
        defer { try? s.shutdown() }
        let three = try s.createScheduleGroup(share: 3), one = try s.createScheduleGroup(share: 1)
        let split = measure(s, busy: [three, one], window: window)
        h.report("fairshare", "ums-shares-3-1", 100 * split[0] / (split[0] + split[1]), "percent",
                 "(share-3 group's part of the VP time both used over 1 s: goal 75 ± 5; of the \(vps) VPs' wall time: \(String(format: "%.1f", split[0])) + \(String(format: "%.1f", split[1])))")
        let capped = try s.createScheduleGroup(share: 1, cap: 0.25)
        _ = try s.createScheduleGroup(share: 1)   // exists, idle
        let c = measure(s, busy: [capped], window: window)
        h.report("fairshare", "ums-cap-25", c[0], "percent", "(a group capped at 0.25, busy alone for 1 s: goal <= 27)")
        let alone = s.createScheduleGroup()
        let a = measure(s, busy: [alone], window: window)
        h.report("fairshare", "ums-alone", a[0], "percent", "(one uncapped group busy alone beside idle weighted ones: work conservation, about 100)")
    }
}
