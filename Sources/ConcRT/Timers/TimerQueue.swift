import CSupport
import Synchronization
import UMS

/// One virtual processor's deadlines of timed waits and sleeps (the
/// scheduler has one per regular VP: ``TimerQueues``, which states the
/// arming, firing and wake-up protocol across queues).
///
/// Coalescing ("the application specifies a tolerable delay; the timer
/// system shifts timer firing"): an entry may fire anywhere in
/// [deadline, deadline + tolerance]. The queue's wake-up time is the
/// earliest `deadline + tolerance` (``nextWakeUp``); when it comes, every
/// entry whose deadline has passed fires, so timers whose windows overlap
/// fire in one wake-up. An entry never fires before its deadline.
///
/// Storage: entries live in slots (reused through a free list); two binary
/// heaps index them, by deadline (what may fire now) and by latest time
/// (when the queue must wake). A fired or cancelled entry leaves its heap
/// records behind; they are recognised by the slot's sequence number and
/// dropped when they reach a heap's top. Add, cancel and each firing are
/// O(log n); 10,000 sleepers cost no scans.
///
/// Ids: queue index (16 bits) | slot (24 bits) | sequence (24 bits), so
/// that ``TimerQueues/cancel(_:)`` finds the queue from the id alone. The
/// sequence tells a live entry from a later one in the same slot; a stale
/// cancel (the entry fired) comes right after its waiter wakes, long before
/// the slot could see 2^24 more entries of the queue.
///
/// Concurrency: everything under this queue's own `lock` (no other lock is
/// ever taken while it is held, and callbacks run outside it). Two values
/// are also published atomically, stored (release) under the lock after
/// every change and read without it (acquire) as hints that the lock
/// re-checks: ``nextWakeUp`` (earliest live latest time) and
/// ``earliestDeadline`` (earliest live deadline; may be stale-low after a
/// cancel until the dead record reaches the heap top, never stale-high).
final class TimerQueue: @unchecked Sendable {
    // @unchecked Sendable: the storage is touched only under `lock`.
    private struct Slot { var seq: UInt32; var deadline: Int64; var fire: ((VirtualProcessor) -> Void)? }
    private struct Key { var time: Int64; var slot: Int32; var seq: UInt32 }
    static let queueBits = 16, slotBits = 24, seqBits = 24
    static let maxQueues = 1 << queueBits
    private static let slotMask = (1 << slotBits) - 1
    private static let seqMask = UInt32((1 << seqBits) - 1)

    /// This queue's index in its ``TimerQueues`` (the top bits of its ids).
    let index: Int
    private let lock = MigrationSafeMutex<Void>(())
    private var slots: [Slot] = []
    private var freeSlots: [Int32] = []
    private var byDeadline: [Key] = []
    private var byLatest: [Key] = []
    private var seq: UInt32 = 0
    private var live = 0
    private let next = Atomic<Int64>(Int64.max)
    private let due = Atomic<Int64>(Int64.max)

    init(index: Int) {
        precondition(index >= 0 && index < Self.maxQueues, "TimerQueue: index \(index) out of 0..<\(Self.maxQueues)")
        self.index = index
    }

    /// The queue of an id from ``add(deadline:tolerance:fire:)``.
    static func queueIndex(of id: Int) -> Int {
        Int(UInt(bitPattern: id) >> UInt(slotBits + seqBits))
    }

    /// Calls `fire` (on a VP's primary, given that VP) once `deadline`
    /// passes, no later than `deadline + tolerance` (scheduling aside),
    /// unless ``cancel(_:)`` removes it first. Returns the entry's id, and
    /// true when it became this queue's earliest wake-up time.
    func add(deadline: Int64, tolerance: Int64 = 0, fire: @escaping (VirtualProcessor) -> Void) -> (id: Int, earliest: Bool) {
        let tol = max(0, tolerance)
        // Saturating, below Int64.max (which publishes "none armed").
        let latest = deadline >= Int64.max - 1 - tol ? Int64.max - 1 : deadline + tol
        return lock.withLock { _ in
            seq = (seq &+ 1) & Self.seqMask
            let s: Int32
            if let f = freeSlots.popLast() {
                s = f
                slots[Int(s)] = Slot(seq: seq, deadline: deadline, fire: fire)
            } else {
                precondition(slots.count <= Self.slotMask,
                             "TimerQueue: more than \(Self.slotMask + 1) timers armed at once on virtual processor \(index)")
                s = Int32(slots.count)
                slots.append(Slot(seq: seq, deadline: deadline, fire: fire))
            }
            live += 1
            Self.push(&byDeadline, Key(time: deadline, slot: s, seq: seq))
            Self.push(&byLatest, Key(time: latest, slot: s, seq: seq))
            let bits = UInt(index) << UInt(Self.slotBits + Self.seqBits) | UInt(s) << UInt(Self.seqBits) | UInt(seq)
            if deadline < due.load(ordering: .relaxed) { due.store(deadline, ordering: .releasing) }
            if latest < next.load(ordering: .relaxed) {
                next.store(latest, ordering: .releasing)
                return (Int(bitPattern: bits), true)
            }
            return (Int(bitPattern: bits), false)
        }
    }

    /// Removes an entry that has not fired (a wait that ended early), so
    /// it does not keep its waiter alive until the deadline. Any thread.
    func cancel(_ id: Int) {
        let bits = UInt(bitPattern: id)
        assert(Self.queueIndex(of: id) == index, "TimerQueue.cancel: id of queue \(Self.queueIndex(of: id)) given to queue \(index)")
        let s = Int(bits >> UInt(Self.seqBits)) & Self.slotMask
        let q = UInt32(truncatingIfNeeded: bits) & Self.seqMask
        lock.withLock { _ in
            guard s < slots.count, slots[s].seq == q, slots[s].fire != nil else { return }
            release(s)
            publish()
        }
    }

    /// Entries armed and not fired or cancelled.
    var count: Int { lock.withLock { _ in live } }

    /// Earliest latest firing time of a live entry (Int64.max: none).
    /// Lock-free (acquire); exact after the last change under the lock.
    @inline(__always)
    var nextWakeUp: Int64 { next.load(ordering: .acquiring) }

    /// Earliest deadline of a live entry, or lower (a cancelled entry not
    /// yet dropped); Int64.max when none. Lock-free (acquire).
    @inline(__always)
    var earliestDeadline: Int64 { due.load(ordering: .acquiring) }

    /// Removes every entry whose deadline is `<= now` and appends its
    /// callback to `out` (to be run by the caller, outside the lock).
    /// Returns how many it took.
    @discardableResult
    func takeDue(_ now: Int64, into out: inout [(VirtualProcessor) -> Void]) -> Int {
        lock.withLock { _ in
            var n = 0
            while let top = byDeadline.first, top.time <= now {
                Self.pop(&byDeadline)
                let s = Int(top.slot)
                guard slots[s].seq == top.seq, let f = slots[s].fire else { continue }   // cancelled
                out.append(f)
                release(s)
                n += 1
            }
            publish()
            assert((byDeadline.first?.time ?? .max) > now && next.load(ordering: .relaxed) > now,
                   "TimerQueue.takeDue: queue \(index) left an entry due at \(now)")
            return n
        }
    }

    // MARK: Under the lock

    private func release(_ s: Int) {
        slots[s].fire = nil   // heap records of this entry are dead from now on
        freeSlots.append(Int32(s))
        live -= 1
    }

    private func isDead(_ k: Key) -> Bool {
        let s = Int(k.slot)
        return slots[s].seq != k.seq || slots[s].fire == nil
    }

    /// Drops dead records from the top of both heaps and publishes the
    /// earliest live times.
    private func publish() {
        while let top = byLatest.first, isDead(top) { Self.pop(&byLatest) }
        while let top = byDeadline.first, isDead(top) { Self.pop(&byDeadline) }
        if live == 0 { byDeadline.removeAll(keepingCapacity: true); byLatest.removeAll(keepingCapacity: true) }
        assert((live == 0) == byLatest.isEmpty && (live == 0) == byDeadline.isEmpty,
               "TimerQueue.publish: queue \(index) has \(live) live entries and \(byLatest.count)/\(byDeadline.count) heap records at the tops")
        due.store(byDeadline.first?.time ?? Int64.max, ordering: .releasing)
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
