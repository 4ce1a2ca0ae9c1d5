import CSupport
import Synchronization
import UMS

/// Deadlines of timed waits and sleeps. VPs sleep no longer than the
/// earliest *latest* firing time and fire what has expired; a new earliest
/// one wakes one sleeper.
///
/// Coalescing ("the application specifies a tolerable delay; the timer
/// system shifts timer firing"): an entry may fire anywhere in
/// [deadline, deadline + tolerance]. The queue's wake-up time is the
/// earliest `deadline + tolerance` (``next``); when it comes, every entry
/// whose deadline has passed fires, so timers whose windows overlap fire in
/// one wake-up. An entry never fires before its deadline.
///
/// Storage: entries live in slots (reused through a free list); two binary
/// heaps index them, by deadline (what may fire now) and by latest time
/// (when the queue must wake). A fired or cancelled entry leaves its heap
/// records behind; they are recognised by the slot's sequence number and
/// dropped when they reach a heap's top. Add, cancel and each firing are
/// O(log n); 10,000 sleepers cost no scans.
///
/// Concurrency: everything under `lock`; ``next`` is also published
/// atomically (release) so that VPs read it without the lock (acquire) as a
/// hint, re-checked under the lock in ``fireExpired(on:)``.
final class TimerQueue: @unchecked Sendable {
    // @unchecked Sendable: the storage is touched only under `lock`.
    private struct Slot { var seq: UInt32; var deadline: Int64; var fire: ((VirtualProcessor) -> Void)? }
    private struct Key { var time: Int64; var slot: Int32; var seq: UInt32 }
    private let lock = MigrationSafeMutex<Void>(())
    private var slots: [Slot] = []
    private var freeSlots: [Int32] = []
    private var byDeadline: [Key] = []
    private var byLatest: [Key] = []
    private var seq: UInt32 = 0
    private var live = 0
    private let next = Atomic<Int64>(Int64.max)
    /// Times ``fireExpired(on:)`` fired a batch (relaxed: a statistic).
    let firings = Atomic<Int>(0)

    /// Calls `fire` (on a VP's primary, given that VP) once `deadline`
    /// passes, no later than `deadline + tolerance` (scheduling aside),
    /// unless ``cancel(_:)`` removes it first. Returns the entry's id, and
    /// true when it became the earliest.
    func add(deadline: Int64, tolerance: Int64 = 0, fire: @escaping (VirtualProcessor) -> Void) -> (id: Int, earliest: Bool) {
        let latest = deadline &+ max(0, tolerance)
        return lock.withLock { _ in
            seq &+= 1
            let s: Int32
            if let f = freeSlots.popLast() {
                s = f
                slots[Int(s)] = Slot(seq: seq, deadline: deadline, fire: fire)
            } else {
                s = Int32(slots.count)
                slots.append(Slot(seq: seq, deadline: deadline, fire: fire))
            }
            live += 1
            Self.push(&byDeadline, Key(time: deadline, slot: s, seq: seq))
            Self.push(&byLatest, Key(time: latest, slot: s, seq: seq))
            let id = Int(s) << 32 | Int(seq)
            if latest < next.load(ordering: .relaxed) {
                next.store(latest, ordering: .releasing)
                return (id, true)
            }
            return (id, false)
        }
    }

    /// Removes an entry that has not fired (a wait that ended early), so
    /// it does not keep its waiter alive until the deadline.
    func cancel(_ id: Int) {
        lock.withLock { _ in
            let s = id >> 32, q = UInt32(truncatingIfNeeded: id)
            guard s < slots.count, slots[s].seq == q, slots[s].fire != nil else { return }
            release(s)
            publishNext()
        }
    }

    /// Entries armed and not fired or cancelled.
    var count: Int { lock.withLock { _ in live } }

    var hasExpired: Bool { next.load(ordering: .acquiring) <= csup_monotonic_ns() }

    /// Nanoseconds until the earliest latest firing time (0 if it passed),
    /// nil when none is armed.
    func nanosecondsUntilNextDeadline() -> Int64? {
        let n = next.load(ordering: .acquiring)
        if n == Int64.max { return nil }
        return max(0, n - csup_monotonic_ns())
    }

    /// Fires every entry whose deadline passed, once the earliest latest
    /// time has come; the callbacks run on `vp`'s primary, outside the lock.
    /// Returns how many fired.
    @discardableResult
    func fireExpired(on vp: VirtualProcessor) -> Int {
        let n = next.load(ordering: .acquiring)
        if n == Int64.max { return 0 }
        let now = csup_monotonic_ns()
        if n > now { return 0 }
        // Everything whose deadline passed fires now, including entries
        // whose own latest time is still ahead: that is the coalescing.
        let due: [(VirtualProcessor) -> Void] = lock.withLock { _ in
            var due: [(VirtualProcessor) -> Void] = []
            while let top = byDeadline.first, top.time <= now {
                Self.pop(&byDeadline)
                let s = Int(top.slot)
                guard slots[s].seq == top.seq, let f = slots[s].fire else { continue }   // cancelled
                due.append(f)
                release(s)
            }
            publishNext()
            return due
        }
        if due.isEmpty { return 0 }
        firings.add(1, ordering: .relaxed)
        for f in due { f(vp) }
        return due.count
    }

    // MARK: Under the lock

    private func release(_ s: Int) {
        slots[s].fire = nil   // heap records of this entry are dead from now on
        freeSlots.append(Int32(s))
        live -= 1
    }

    /// Drops dead records from the top of the latest-time heap and
    /// publishes its earliest live time.
    private func publishNext() {
        while let top = byLatest.first {
            let s = Int(top.slot)
            if slots[s].seq == top.seq && slots[s].fire != nil { break }
            Self.pop(&byLatest)
        }
        if live == 0 { byDeadline.removeAll(keepingCapacity: true); byLatest.removeAll(keepingCapacity: true) }
        next.store(byLatest.first?.time ?? Int64.max, ordering: .releasing)
    }

    private static func push(_ h: inout [Key], _ k: Key) {
        h.append(k)
        var i = h.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if h[p].time <= h[i].time { break }
            h.swapAt(p, i)
            i = p
        }
    }

    private static func pop(_ h: inout [Key]) {
        let last = h.removeLast()
        if h.isEmpty { return }
        h[0] = last
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < h.count && h[l].time < h[m].time { m = l }
            if r < h.count && h[r].time < h[m].time { m = r }
            if m == i { break }
            h.swapAt(i, m)
            i = m
        }
    }
}

extension Scheduler {
    /// Runs `fire` on a VP (given to it) once `deadline` (monotonic ns)
    /// passes, within `tolerance` after it; returns the timer's id for
    /// `timers.cancel`.
    func armTimeout(_ deadline: Int64, tolerance: Int64 = 0, _ fire: @escaping (VirtualProcessor) -> Void) -> Int {
        let (id, earliest) = timers.add(deadline: deadline, tolerance: tolerance, fire: fire)
        if earliest { idle.notifyWork(force: true) }
        return id
    }
}
