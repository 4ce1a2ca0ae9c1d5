import UMS
import ConcRT
import CSupport
import Foundation

/// `idle`: the CPU time a scheduler burns while it has nothing to do.
///
/// - `idle`: every virtual processor idle for 1 s; reports the whole
///   process's CPU time per second of wall time.
/// - `idle --busy` (`idle-busy`): one virtual processor runs a single task
///   that spins for 1 s while the others have nothing to do; reports the
///   CPU time of everything except that task, per second of the window:
///   what the idle virtual processors (and anything else in the process)
///   burn beside a busy one.
///
/// How idle-busy is measured: the spinning task reads, at its start and at
/// its end, the process CPU clock (CLOCK_PROCESS_CPUTIME_ID), its own
/// thread's CPU clock (CLOCK_THREAD_CPUTIME_ID) and the monotonic clock, in
/// that order at the start and the reverse at the end, so the process
/// window contains the thread window. The task never blocks, yields or
/// waits, so nothing switches it off its virtual processor's pthread: the
/// thread clock is the task's own CPU time (checked: the kernel thread id
/// must be the same at both ends, else the run fails). Then
/// `idle-busy = (process CPU - task CPU) / window`, in CPU ms per second.
enum IdleBench {
    static func run(_ h: Harness) throws {
        if h.options.busy { try busy(h) } else { try allIdle(h) }
    }

    // MARK: idle

    static func allIdle(_ h: Harness) throws {
        let s = try Scheduler()
        s.run {}
        for _ in 0..<100 { s.scheduleTask {} }
        usleep(200_000)   // past every spin window
        let cpu0 = csup_process_cpu_ns(), t0 = csup_monotonic_ns()
        usleep(1_000_000)
        let cpuMs = Double(csup_process_cpu_ns() - cpu0) / 1e6
        let wallS = Double(csup_monotonic_ns() - t0) / 1e9
        try s.shutdown()
        h.report("idle", "ums", cpuMs / wallS, "cpu-ms/s", "(\(s.virtualProcessorCount) virtual processors idle for 1 s)")
    }

    // MARK: idle --busy

    /// The spinning task's clock readings (written by the task before it
    /// sets `done`, read by the main thread after `done.wait()`: the
    /// event's set/wait orders them).
    final class Window: @unchecked Sendable {
        var process0: Int64 = 0, thread0: Int64 = 0, wall0: Int64 = 0, tid0: Int64 = 0
        var process1: Int64 = 0, thread1: Int64 = 0, wall1: Int64 = 0, tid1: Int64 = 0
    }

    /// CPU time of the calling pthread, in nanoseconds.
    static func threadCPUNanoseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    static func busy(_ h: Harness) throws {
        let vps = h.options.vps ?? 2
        let spinNs: Int64 = 1_000_000_000
        let s = try Scheduler(policy: SchedulerPolicy(minConcurrency: vps, maxConcurrency: vps))
        s.run {}
        usleep(200_000)   // every VP started and past its spin window
        let w = Window(), done = Event()
        let before = s.statistics
        let ticksBefore = UMS.statistics.monitorTicks
        s.scheduleTask {
            w.process0 = csup_process_cpu_ns()
            w.thread0 = threadCPUNanoseconds()
            w.tid0 = csup_gettid()
            w.wall0 = csup_monotonic_ns()
            var x = 0
            while csup_monotonic_ns() - w.wall0 < spinNs { x &+= 1 }
            withExtendedLifetime(x) {}
            w.wall1 = csup_monotonic_ns()
            w.tid1 = csup_gettid()
            w.thread1 = threadCPUNanoseconds()
            w.process1 = csup_process_cpu_ns()
            done.set()
        }
        done.wait()
        let after = s.statistics
        try s.shutdown()
        guard w.tid0 == w.tid1 else {
            throw BenchFailure(description: "idle --busy: the spinning task moved from thread \(w.tid0) to \(w.tid1); its thread CPU clock does not measure it")
        }
        let windowS = Double(w.wall1 - w.wall0) / 1e9
        let taskMs = Double(w.thread1 - w.thread0) / 1e6
        let othersMs = Double((w.process1 - w.process0) - (w.thread1 - w.thread0)) / 1e6
        let idle = vps - 1 == 1 ? "1 idle virtual processor" : "\(vps - 1) idle virtual processors"
        let note = "(\(idle) beside 1 spinning for " + String(format: "%.2f s; spinning task %.1f cpu-ms", windowS, taskMs)
            + "; idleSleeps +\(after.idleSleeps - before.idleSleeps)"
            + ", watchExpiries +\(after.idleWatchExpiries - before.idleWatchExpiries)"
            + ", monitor ticks +\(UMS.statistics.monitorTicks - ticksBefore))"
        h.report("idle-busy", "ums", othersMs / windowS, "cpu-ms/s", note)
    }
}
