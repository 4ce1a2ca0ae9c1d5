import ConcRT
import CSupport
import Foundation
import PPL
import Synchronization
import UMS

/// `pthread-changes`: how often a task resumes on another pthread after a
/// blocking call (the "before and after" for lazy kernel entry).
/// blockmix's shape (256 tasks x 10 rounds of 500 µs CPU then a 2 ms
/// nanosleep), each task comparing its kernel thread id before and after each
/// sleep, on three schedulers:
/// - `handoff`: `retakeAfter: nil`: every wrapped call goes to a kernel
///   thread and the task resumes on whatever primary dequeues it (the
///   Windows UMS shape, and this runtime before lazy kernel entry);
/// - `lazy-retake`: the default policy: wrapped calls run inline; a call
///   that blocks while other work waits is retaken and its task resumes
///   through the completion list;
/// - `lazy-compensate`: the same with `retakeBlockedCalls: false`: a
///   blocked call is compensated for (a temporary VP beside it);
/// - `unwrapped`: a plain nanosleep with `detectUnwrappedBlocking`: blocks
///   are compensated for, so the task keeps its pthread.
/// Reports the percentage of calls after which the pthread changed.
enum PThreadChangesBench {
    /// Shared by the tasks (relaxed, independent counters).
    final class Counts: Sendable {
        let changed = Atomic<Int>(0), calls = Atomic<Int>(0)
    }

    static func run(_ h: Harness) throws {
        let shape = ConcRTBench.BlockmixShape(h)
        for (impl, policy, wrapped) in [
            ("handoff", SchedulerPolicy(retakeAfter: nil), true),
            ("lazy-retake", SchedulerPolicy(retakeBlockedCalls: true), true),
            ("lazy-compensate", SchedulerPolicy(retakeBlockedCalls: false), true),
            ("unwrapped", SchedulerPolicy(detectUnwrappedBlocking: true), false),
        ] {
            let s = try Scheduler(policy: policy)
            defer { try? s.shutdown() }
            let counts = Counts()
            let ticks0 = UMS.statistics.monitorTicks, cpu0 = csup_process_cpu_ns()
            let t0 = csup_monotonic_ns()
            let g = TaskGroup(scheduler: s)
            for _ in 0..<shape.tasks {
                g.run {
                    for _ in 0..<shape.rounds {
                        ConcRTBench.spin(microseconds: shape.cpuUs)
                        let before = csup_gettid()   // a system call: pthread_self() is `const` and would be reused across the sleep
                        if wrapped {
                            _ = Blocking.call { csup_sys_nanosleep(shape.blockUs * 1000) }
                        } else {
                            _ = csup_sys_nanosleep(shape.blockUs * 1000)
                        }
                        if csup_gettid() != before { counts.changed.add(1, ordering: .relaxed) }
                        counts.calls.add(1, ordering: .relaxed)
                    }
                }
            }
            try g.wait()
            let ms = Double(csup_monotonic_ns() - t0) / 1e6
            h.progress("  \(impl): monitor ticks \(UMS.statistics.monitorTicks - ticks0), process CPU \((csup_process_cpu_ns() - cpu0) / 1_000_000) ms; \(s.statistics)")
            let n = counts.calls.load(ordering: .relaxed), c = counts.changed.load(ordering: .relaxed)
            h.report("pthread-changes", impl, 100 * Double(c) / Double(max(1, n)), "%",
                     String(format: "(%d of %d blocking calls resumed on another pthread; run %.1f ms, ideal %.1f)", c, n, ms, shape.ideal))
        }
    }
}
