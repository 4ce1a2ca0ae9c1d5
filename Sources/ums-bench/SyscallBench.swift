import ConcRT
import CSupport
import UMS

/// `syscall`: lazy kernel entry's fast path. A task makes a wrapped
/// blocking call that does not block (`Blocking.call { gettid }`):
/// - `ums` runs it inline (the default policy: an atomic store and a CAS
///   around the call);
/// - `ums-handoff` hands every call to a kernel thread (`retakeAfter: nil`,
///   the Windows UMS shape);
/// - `baseline-direct` makes the same call directly on a plain pthread.
/// Then a wrapped call that blocks for 100 µs (`nanosleep`), inline on a
/// VP with nothing else to run, beside the same sleep made directly: the
/// goal is at most 5 µs over the direct call.
enum SyscallBench {
    static func run(_ h: Harness) throws {
        let n = h.options.iterations ?? 1_000_000
        let inline = try h.median("syscall ums") { try wrapped(n, retakeAfter: .microseconds(20)) }
        h.report("syscall", "ums", inline, "ns/op", "(Blocking.call { gettid } on a context, inline: lazy kernel entry)")
        let handoff = try h.median("syscall ums-handoff") { try wrapped(n / 10, retakeAfter: nil) }
        h.report("syscall", "ums-handoff", handoff, "ns/op", "(the same call handed to a kernel thread: retakeAfter nil)")
        let onContext = try h.median("syscall direct on a context") { () throws -> Double in
            let s = try Scheduler(policy: SchedulerPolicy(minConcurrency: 1, maxConcurrency: 1))
            defer { try? s.shutdown() }
            return s.run { directCalls(n) }
        }
        h.report("syscall", "baseline-direct-on-context", onContext, "ns/op", "(gettid called directly by a task on a context)")
        let direct = h.median("syscall direct") { directCalls(n) }
        h.report("syscall", "baseline-direct", direct, "ns/op", "(gettid called directly on a plain pthread)")
        h.report("syscall", "ums-overhead", inline - direct, "ns/op", "(inline wrapped call minus the direct call; goal <= 30)")
        let sleeps = max(200, n / 2_000)
        let blocked = try h.median("syscall 100us ums") { try wrappedSleep(sleeps) }
        let blockedDirect = h.median("syscall 100us direct") { directSleep(sleeps) }
        h.report("syscall", "ums-100us", blocked / 1_000, "us/op", "(Blocking.call { nanosleep 100 us } inline, nothing else to run)")
        h.report("syscall", "baseline-direct-100us", blockedDirect / 1_000, "us/op", "(nanosleep 100 us on a plain pthread)")
        h.report("syscall", "ums-100us-overhead", (blocked - blockedDirect) / 1_000, "us/op", "(goal <= 5)")
    }

    static func wrapped(_ n: Int, retakeAfter: Duration?) throws -> Double {
        let s = try Scheduler(policy: SchedulerPolicy(minConcurrency: 1, maxConcurrency: 1, retakeAfter: retakeAfter))
        defer { try? s.shutdown() }
        return s.run {
            timeNs { for _ in 0..<n { _ = Blocking.call { csup_gettid() } } } / Double(n)
        }
    }

    static func directCalls(_ n: Int) -> Double {
        var x: Int64 = 0
        let ns = timeNs { for _ in 0..<n { x &+= Int64(csup_gettid()) } }
        withExtendedLifetime(x) {}
        return ns / Double(n)
    }

    static func wrappedSleep(_ n: Int) throws -> Double {
        let s = try Scheduler(policy: SchedulerPolicy(minConcurrency: 1, maxConcurrency: 1))
        defer { try? s.shutdown() }
        return s.run {
            timeNs { for _ in 0..<n { _ = Blocking.call { csup_sys_nanosleep(100_000) } } } / Double(n)
        }
    }

    static func directSleep(_ n: Int) -> Double {
        timeNs { for _ in 0..<n { _ = csup_sys_nanosleep(100_000) } } / Double(n)
    }
}
