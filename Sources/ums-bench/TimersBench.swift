import ConcRT
import CSupport
import Foundation
import Synchronization

/// `timers`: 10,000 contexts each sleep 10 ms in a loop for 1 s
/// (`Blocking.sleep(for:tolerance:)`: they park on the scheduler's timers).
/// Reported twice, with no tolerance and with 1 ms: the timer wake-ups per
/// second (batches of timers fired: each is one VP waking, or interrupting
/// its work, for timers), the VPs' returns from an idle sleep per second
/// (any cause), and the process CPU per second of wall time. Timer
/// coalescing should cut the timer wake-ups by 10x or more.
enum TimersBench {
    static let contexts = 10_000
    static let period = Duration.milliseconds(10)

    static func run(_ h: Harness) throws {
        for (label, tolerance) in [("none", Duration.zero), ("1ms", Duration.milliseconds(1))] {
            let s = try Scheduler()
            defer { try? s.shutdown() }
            let r = try once(s, tolerance: tolerance)
            h.report("timers", "ums-tolerance-\(label)", r.firings, "timer-wakeups/s",
                     "(\(contexts) contexts sleeping 10 ms in a loop for 1 s on \(s.virtualProcessorCount) VPs: "
                     + "batches of timers fired; \(String(format: "%.0f", r.sleeps)) sleeps/s)")
            h.report("timers-idle-wakeups", "ums-tolerance-\(label)", r.wakeUps, "wakeups/s", "(returns from an idle sleep, any cause)")
            h.report("timers-cpu", "ums-tolerance-\(label)", r.cpu, "cpu-ms/s")
            h.progress("timers \(label): \(s.statistics)")
        }
    }

    struct Result { var wakeUps: Double; var firings: Double; var sleeps: Double; var cpu: Double }

    static func once(_ s: Scheduler, tolerance: Duration) throws -> Result {
        let stop = Atomic<Bool>(false)
        let started = Atomic<Int>(0), finished = Atomic<Int>(0)
        let allStarted = Event(), allDone = Event()
        let failures = Atomic<Int>(0)
        for _ in 0..<contexts {
            s.scheduleTask {
                if started.add(1, ordering: .relaxed).newValue == contexts { allStarted.set() }
                while !stop.load(ordering: .relaxed) {
                    do { try Blocking.sleep(for: period, tolerance: tolerance) } catch { failures.add(1, ordering: .relaxed) }
                }
                if finished.add(1, ordering: .relaxed).newValue == contexts { allDone.set() }
            }
        }
        allStarted.wait()
        usleep(100_000)   // past the start-up burst
        let st0 = s.statistics, cpu0 = csup_process_cpu_ns(), t0 = csup_monotonic_ns()
        usleep(1_000_000)
        let st1 = s.statistics, cpu1 = csup_process_cpu_ns(), t1 = csup_monotonic_ns()
        stop.store(true, ordering: .relaxed)
        allDone.wait()
        guard failures.load(ordering: .relaxed) == 0 else { throw BenchFailure(description: "timers: sleeps failed") }
        let secs = Double(t1 - t0) / 1e9
        return Result(wakeUps: Double(st1.idleWakeUps - st0.idleWakeUps) / secs,
                      firings: Double(st1.timerFirings - st0.timerFirings) / secs,
                      sleeps: Double(st1.timerSleeps - st0.timerSleeps) / secs,
                      cpu: Double(cpu1 - cpu0) / 1e6 / secs)
    }
}
