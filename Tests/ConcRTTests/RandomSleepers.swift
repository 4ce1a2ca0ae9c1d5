import Synchronization
@testable import ConcRT
import CSupport
import TestSupport

/// How late a timer test lets a sleep end past deadline + tolerance
/// (scheduling on a loaded machine): 50 ms, or 250 ms under a sanitizer,
/// where a VP's pthread on a busy 2-core runner was seen 58 ms late
/// (TSan with two CPU hogs beside it). Never earlier than the deadline.
let timerSlack: Int64 = Sanitizer.any ? 250_000_000 : 50_000_000

/// `tasks` tasks on a scheduler, each sleeping 5 times for 1 ms plus a
/// random part of `deadlineSpread` ns, with a random tolerance below
/// `maxTolerance` ns (`Blocking.sleep(for:tolerance:)`). A sleep that ends
/// before its deadline, or more than 1 s past deadline + tolerance, is
/// recorded (the first 10); so is more than 1% of the sleeps ending past
/// deadline + tolerance + ``timerSlack``. (A CI runner was seen to stall
/// the whole process for ~50 ms once: ten sleepers of 10,000 woke 50 ms
/// late together. One stall must not fail the run; a timer that keeps
/// firing late, or never, still does.) ``allDone`` is set when every task
/// finished.
final class RandomSleepers: Sendable {
    let allDone = Event()
    private let recorded = MigrationSafeMutex<[String]>([])

    init(on s: Scheduler, tasks n: Int, seedOffset: Int, deadlineSpread: Int, maxTolerance: Int) {
        sleeps = 5 * n
        let done = Counter()
        for i in 0..<n {
            s.scheduleTask { [self] in
                var rng = TestRNG(seed: UInt64(i + seedOffset))
                for _ in 0..<5 {
                    let d = Int64(1_000_000 + rng.below(deadlineSpread)), tol = Int64(rng.below(maxTolerance))
                    let t0 = csup_monotonic_ns()
                    try! Blocking.sleep(for: .nanoseconds(d), tolerance: .nanoseconds(tol))
                    let slept = csup_monotonic_ns() - t0
                    if slept < d || slept > d + tol + 1_000_000_000 {
                        recorded.withLock { if $0.count < 10 { $0.append("slept \(slept) ns for \(d) + \(tol)") } }
                    } else if slept > d + tol + timerSlack {
                        late.add()
                        lateExamples.withLock { if $0.count < 5 { $0.append("slept \(slept) ns for \(d) + \(tol)") } }
                    }
                }
                if done.add() == n { allDone.set() }
            }
        }
    }

    private let late = Counter()
    private let lateExamples = MigrationSafeMutex<[String]>([])
    private let sleeps: Int

    /// The sleeps that ended outside their windows (empty: none).
    var problems: [String] {
        var all = recorded.withLock { $0 }
        if late.value * 100 > sleeps {
            all.append("\(late.value) of \(sleeps) sleeps ended past deadline + tolerance + timerSlack, e.g. \(lateExamples.withLock { $0 })")
        }
        return all
    }
}
