import CSupport
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A schedule group's VP time: the total (for its **pass**, stride
/// scheduling's virtual time) and the part used in the current cap period.
///
/// Charged by the VP that ran one of the group's tasks, at the task's end,
/// with the task's CPU time (``TaskClock``; only for schedulers whose groups
/// have shares or caps).
///
/// Orderings: all relaxed. These are accounts that steer the choice of the
/// next group; no other memory is published through them. Two VPs that
/// charge across a period boundary at the same moment may lose part of one
/// charge to the reset (at most one task's time per period), which the cap's
/// tolerance absorbs.
final class GroupUsage: Sendable {
    /// Cap period: a capped group may use `cap × period × VPs` of VP time
    /// per period. 20 ms: short enough that a cap shows within a second,
    /// long enough that tasks of 100 µs overrun it by about 1%.
    static let period: Int64 = 20_000_000

    let share: Int
    /// VP nanoseconds a capped group may use per period (0: no cap).
    let budget: Int
    /// VP nanoseconds used in all.
    let used = Atomic<Int>(0)
    /// The period `periodUsed` counts (monotonic time / period).
    private let periodIndex = Atomic<Int64>(0)
    private let periodUsed = Atomic<Int>(0)

    init(share: Int, cap: Double?, virtualProcessors: Int) {
        self.share = share
        budget = cap.map { Int($0 * Double(Self.period) * Double(virtualProcessors)) } ?? 0
    }

    /// Stride scheduling's virtual time: VP time used per unit of share.
    var pass: Int { used.load(ordering: .relaxed) / share }

    /// Moves this group's pass up to `floor` (a group that was idle must
    /// not catch up on the time it did not use).
    func lift(toPass floor: Int) {
        let target = floor &* share
        var u = used.load(ordering: .relaxed)
        while u < target {
            let (done, seen) = used.compareExchange(expected: u, desired: target, ordering: .relaxed)
            if done { break }
            u = seen
        }
    }

    func charge(_ nanoseconds: Int, now: Int64) {
        used.wrappingAdd(nanoseconds, ordering: .relaxed)
        guard budget > 0 else { return }
        let k = now / Self.period
        let seen = periodIndex.load(ordering: .relaxed)
        if seen != k, periodIndex.compareExchange(expected: seen, desired: k, ordering: .relaxed).exchanged {
            periodUsed.store(0, ordering: .relaxed)
        }
        periodUsed.wrappingAdd(nanoseconds, ordering: .relaxed)
    }

    /// False while a capped group has used its budget for this period.
    func withinCap(now: Int64) -> Bool {
        budget == 0 || periodIndex.load(ordering: .relaxed) != now / Self.period
            || periodUsed.load(ordering: .relaxed) < budget
    }

    /// Nanoseconds until the next period starts (when a capped group's
    /// budget is refilled).
    static func untilNextPeriod(now: Int64) -> Int64 { period - now % period }
}

/// How long a group task ran: the CPU time of the pthread that ran it
/// (CLOCK_THREAD_CPUTIME_ID), so time its VP's pthread was preempted by
/// other processes is not charged. A task that blocked and resumed on
/// another pthread is charged its wall time instead (CPU clocks of two
/// threads do not compare). Two clock system calls, about 0.5 µs per task.
struct TaskClock {
    private let thread = pthread_self()
    private let cpu0 = csup_self_cpu_ns()
    private let wall0 = csup_monotonic_ns()

    /// The task's time so far, and the monotonic time now.
    func elapsed() -> (nanoseconds: Int, now: Int64) {
        let now = csup_monotonic_ns()
        if pthread_equal(thread, pthread_self()) != 0 {
            return (Int(max(0, csup_self_cpu_ns() - cpu0)), now)
        }
        return (Int(now - wall0), now)
    }
}
