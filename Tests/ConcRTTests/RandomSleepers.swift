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
/// before its deadline, or past deadline + tolerance + ``timerSlack``, is
/// recorded (the first 10). ``allDone`` is set when every task finished.
final class RandomSleepers: Sendable {
    let allDone = Event()
    private let recorded = MigrationSafeMutex<[String]>([])

    init(on s: Scheduler, tasks n: Int, seedOffset: Int, deadlineSpread: Int, maxTolerance: Int) {
        let done = Counter()
        for i in 0..<n {
            s.scheduleTask { [self] in
                var rng = TestRNG(seed: UInt64(i + seedOffset))
                for _ in 0..<5 {
                    let d = Int64(1_000_000 + rng.below(deadlineSpread)), tol = Int64(rng.below(maxTolerance))
                    let t0 = csup_monotonic_ns()
                    try! Blocking.sleep(for: .nanoseconds(d), tolerance: .nanoseconds(tol))
                    let slept = csup_monotonic_ns() - t0
                    if slept < d || slept > d + tol + timerSlack {
                        recorded.withLock { if $0.count < 10 { $0.append("slept \(slept) ns for \(d) + \(tol)") } }
                    }
                }
                if done.add() == n { allDone.set() }
            }
        }
    }

    /// The sleeps that ended outside their windows (empty: none).
    var problems: [String] { recorded.withLock { $0 } }
}
