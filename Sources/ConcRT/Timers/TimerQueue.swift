import CSupport
import Synchronization
import UMS

/// Deadlines of timed waits. VPs sleep no longer than the earliest one and
/// fire what has expired; a new earliest deadline wakes one sleeper.
final class TimerQueue: @unchecked Sendable {
    // @unchecked Sendable: `entries` under `lock`; `next` is atomic.
    private struct Entry { var deadline: Int64; var seq: Int; var fire: () -> Void }
    private let lock = MigrationSafeMutex<Void>(())
    private var entries: [Entry] = []
    private var seq = 0
    /// Earliest deadline (ns, monotonic), Int64.max when none. Relaxed
    /// reads are a hint; `fireExpired` re-checks under the lock.
    private let next = Atomic<Int64>(Int64.max)

    /// Calls `fire` (on a VP's primary) once `deadline` passes, unless
    /// ``cancel(_:)`` removes it first. Returns the entry's id, and true
    /// when it became the earliest deadline.
    func add(deadline: Int64, fire: @escaping () -> Void) -> (id: Int, earliest: Bool) {
        lock.withLock { _ in
            seq += 1
            entries.append(Entry(deadline: deadline, seq: seq, fire: fire))
            if deadline < next.load(ordering: .relaxed) {
                next.store(deadline, ordering: .releasing)
                return (seq, true)
            }
            return (seq, false)
        }
    }

    /// Removes an entry that has not fired (a wait that ended early), so
    /// it does not keep its waiter alive until the deadline.
    func cancel(_ id: Int) {
        lock.withLock { _ in
            if let i = entries.firstIndex(where: { $0.seq == id }) { entries.remove(at: i) }
        }
    }

    var hasExpired: Bool { next.load(ordering: .acquiring) <= csup_monotonic_ns() }

    /// Nanoseconds until the earliest deadline (0 if it passed), nil when
    /// none is armed.
    func nanosecondsUntilNextDeadline() -> Int64? {
        let n = next.load(ordering: .acquiring)
        if n == Int64.max { return nil }
        return max(0, n - csup_monotonic_ns())
    }

    func fireExpired() {
        let n = next.load(ordering: .relaxed)
        if n == Int64.max { return }
        let now = csup_monotonic_ns()
        if n > now { return }
        let due: [() -> Void] = lock.withLock { _ in
            var due: [() -> Void] = []
            var keep: [Entry] = []
            var earliest = Int64.max
            for e in entries {
                if e.deadline <= now { due.append(e.fire) } else { keep.append(e); earliest = min(earliest, e.deadline) }
            }
            entries = keep
            next.store(earliest, ordering: .releasing)
            return due
        }
        for f in due { f() }
    }
}

extension Scheduler {
    /// Runs `fire` on a VP once `deadline` (monotonic ns) passes; returns
    /// the timer's id for `timers.cancel`.
    func armTimeout(_ deadline: Int64, _ fire: @escaping () -> Void) -> Int {
        let (id, earliest) = timers.add(deadline: deadline, fire: fire)
        if earliest { idle.notifyWork(force: true) }
        return id
    }
}
