import ConcRT
import CSupport
import UMS

/// `syscall`: lazy kernel entry's fast path. A task makes a wrapped
/// blocking call that does not block (`Blocking.call { gettid }`):
/// - `ums` runs it inline (the default policy: a CAS on entry and one on
///   exit around the call);
/// - `ums-handoff` hands every call to a kernel thread (`retakeAfter: nil`,
///   the Windows UMS shape);
/// - `baseline-direct-on-context` makes the same call directly, on the
///   same context, in blocks that alternate with `ums`'s; `ums-overhead`
///   is the median of the per-pair differences;
/// - `baseline-direct` makes the same call directly on a plain pthread.
/// Then a wrapped call that blocks for 100 µs (`nanosleep`), inline on a
/// VP with nothing else to run, beside the same sleep made directly: the
/// goal is at most 5 µs over the direct call.
enum SyscallBench {
    static func run(_ h: Harness) throws {
        let n = h.options.iterations ?? 1_000_000
        // Inline and direct, interleaved in blocks on one context: the
        // overhead is the median of the paired differences, so a noisy
        // neighbour (another process, a host steal) that slows one block
        // slows its pair too instead of landing in the difference.
        let (inline, onContext, overhead) = try pairedOnContext(n, reps: max(5, h.reps * 3))
        h.report("syscall", "ums", inline, "ns/op", "(Blocking.call { gettid } on a context, inline: lazy kernel entry)")
        let handoff = try h.median("syscall ums-handoff") { try wrapped(n / 10, retakeAfter: nil) }
        h.report("syscall", "ums-handoff", handoff, "ns/op", "(the same call handed to a kernel thread: retakeAfter nil; the only VP sleeps meanwhile, so each call pays two thread wake-ups; ums-bench handoff is the bare round trip)")
        h.report("syscall", "baseline-direct-on-context", onContext, "ns/op", "(gettid called directly by a task on a context, in blocks alternating with ums's)")
        let direct = h.median("syscall direct") { directCalls(n) }
        h.report("syscall", "baseline-direct", direct, "ns/op", "(gettid called directly on a plain pthread)")
        h.report("syscall", "ums-overhead", overhead, "ns/op", "(median over block pairs of inline wrapped minus direct, same context; goal <= 30)")
        let sleeps = max(200, n / 2_000)
        // Paired the same way: blocks of wrapped sleeps alternate with
        // blocks of direct ones on the same context.
        let (blocked, blockedDirect, blockedOverhead) = try pairedSleepsOnContext(sleeps, reps: max(5, h.reps * 3))
        h.report("syscall", "ums-100us", blocked / 1_000, "us/op", "(Blocking.call { nanosleep 100 us } inline, nothing else to run)")
        h.report("syscall", "baseline-direct-100us", blockedDirect / 1_000, "us/op", "(nanosleep 100 us made directly by the same context, in alternating blocks)")
        h.report("syscall", "ums-100us-overhead", blockedOverhead / 1_000, "us/op", "(median over block pairs; goal <= 5)")
    }

    static func wrapped(_ n: Int, retakeAfter: Duration?) throws -> Double {
        let s = try Scheduler(policy: SchedulerPolicy(minConcurrency: 1, maxConcurrency: 1, retakeAfter: retakeAfter))
        defer { try? s.shutdown() }
        return s.run {
            timeNs { for _ in 0..<n { _ = Blocking.call { csup_gettid() } } } / Double(n)
        }
    }

    /// `reps` pairs of blocks of `n / reps` calls (at least 100,000 each)
    /// on one context of a one-VP scheduler: wrapped inline, then direct.
    /// Returns the medians of each, and the median of the per-pair
    /// differences.
    static func pairedOnContext(_ n: Int, reps: Int) throws -> (Double, Double, Double) {
        let block = max(100_000, n / reps)
        return try paired(reps: reps, retakeAfter: .microseconds(20), warm: { _ = directCalls(block / 10) },
                          wrapped: { timeNs { for _ in 0..<block { _ = Blocking.call { csup_gettid() } } } / Double(block) },
                          direct: { directCalls(block) })
    }

    /// Runs `wrapped` then `direct`, `reps` times, on one context of a
    /// one-VP scheduler; returns the median of each and of their
    /// per-pair differences.
    static func paired(reps: Int, retakeAfter: Duration?, warm: () -> Void,
                       wrapped: () -> Double, direct: () -> Double) throws -> (Double, Double, Double) {
        let s = try Scheduler(policy: SchedulerPolicy(minConcurrency: 1, maxConcurrency: 1, retakeAfter: retakeAfter))
        defer { try? s.shutdown() }
        return s.run { () -> (Double, Double, Double) in
            var wrappedNs: [Double] = [], directNs: [Double] = [], diffs: [Double] = []
            warm()
            for _ in 0..<reps {
                let w = wrapped(), d = direct()
                wrappedNs.append(w)
                directNs.append(d)
                diffs.append(w - d)
            }
            func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }
            return (median(wrappedNs), median(directNs), median(diffs))
        }
    }

    static func directCalls(_ n: Int) -> Double {
        var x: Int64 = 0
        let ns = timeNs { for _ in 0..<n { x &+= Int64(csup_gettid()) } }
        withExtendedLifetime(x) {}
        return ns / Double(n)
    }

    /// As `pairedOnContext`, for 100 µs sleeps (`n` per block).
    static func pairedSleepsOnContext(_ n: Int, reps: Int) throws -> (Double, Double, Double) {
        try paired(reps: reps, retakeAfter: .microseconds(20), warm: {},
                   wrapped: { timeNs { for _ in 0..<n { _ = Blocking.call { csup_sys_nanosleep(100_000) } } } / Double(n) },
                   direct: { directSleep(n) })
    }

    static func directSleep(_ n: Int) -> Double {
        timeNs { for _ in 0..<n { _ = csup_sys_nanosleep(100_000) } } / Double(n)
    }
}
