import CSupport
import Synchronization
import UMS

/// A scheduler's timers: one ``TimerQueue`` per regular virtual processor,
/// and no scheduler-wide lock on arming, cancelling or firing.
/// [the Windows 7 "no global lock" item for the timer queue: the
/// dispatcher lock broken into one lock per object]
///
/// **Arming.** A context arms on the queue of the VP running it (that VP's
/// lock only; others take it only to cancel its entries, to fire them when
/// they are due and the owner is busy or asleep, or to arm from outside
/// or from a temporary VP). A temporary (oversubscription) VP has no queue:
/// it arms on regular queue `index % regularVPCount`, and fires that queue
/// in its loop as its owner does. A plain pthread (or a primary outside a
/// context) arms on a regular queue chosen **round robin** (a relaxed
/// counter): VP 0 would make its queue one scheduler-wide lock again for a
/// program whose outside threads time out a lot (`Task.sleep` under the
/// global executor, timed waits of plain pthreads' parkers).
///
/// **Cancelling.** An id carries its queue's index (``TimerQueue``), so
/// ``cancel(_:)`` from any thread (the woken waiter on another VP, an
/// `Event.set` path) takes that queue's lock only.
///
/// **Firing.** Each pass of a VP's loop reads its own queue's published
/// wake-up time (one acquire load; the clock is read only when a timer is
/// armed) and, when it has come, fires that queue's entries whose deadline
/// passed: a busy VP takes no other queue's lock on its ordinary passes.
/// Every ``busyScanPasses``-th pass it also scans the other queues'
/// wake-up times (N lock-free loads amortised over the passes) and fires
/// those that are **overdue** (wake-up time come, owner not there yet), so
/// the timers of a VP whose pthread the kernel preempted, or that is stuck
/// in a long task, fire while every other VP is busy. A VP that found
/// nothing to run (its idle path, which precedes every idle sleep, and
/// which a VP woken for a due timer reaches at once) scans every queue: when any wake-up time has
/// come, it fires every entry whose deadline passed in every queue whose
/// published earliest deadline passed, so coalescing spans queues for an
/// idle VP, which is awake anyway. Queues are locked one at a time (never
/// two at once); one call counts as one batch in ``firings``. A fired
/// callback runs on the firing VP (the context it wakes is queued there);
/// the lock of a sweep that lost a race finds nothing and costs one
/// acquire.
///
/// **Sleeping, and why no wake-up is lost.** An idle VP registers on the
/// completion list's futex (ticket), then re-checks every source, including
/// ``hasExpired`` (any queue), then sleeps no longer than
/// ``nanosecondsUntilNextDeadline()``: the minimum over all queues of the
/// wake-up times it read (acquire) after the ticket. The rule of the
/// shared queue is kept **per queue**: `add` that lowers its queue's
/// wake-up time returns `earliest`, and ``Scheduler/armTimeout(_:tolerance:_:)``
/// then calls `notifyWork(force: true)`. Claim: every entry's latest time is
/// >= the sleeper's timeout, or a notify after the ticket ends the sleep.
/// An entry present when the sleeper read its queue has latest >= that
/// queue's wake-up time then >= the timeout. An entry added later either
/// lowered its queue's wake-up time (a notify, after the sleeper's read
/// and so after its ticket: the list's rule ends the wait), or has latest
/// >= its queue's wake-up time when it was added, which either was not
/// lowered since the sleeper's read (>= the timeout) or was lowered by a
/// later add, which notified. Fires and cancels only raise a queue's
/// wake-up time (a sleeper then wakes early, harmlessly). The stored
/// wake-up time is released under the queue lock before the notify, and
/// the notify and the ticket are ordered through the futex word, so a
/// sleeper registered before the notify and reading after it sees the new
/// time. The per-queue rule may wake a sleeper whose timeout was already
/// earlier (another queue's); it never misses one, and comparing against a
/// global minimum would need a scan on every arm.
final class TimerQueues: @unchecked Sendable {
    // @unchecked Sendable: `queues` is immutable after init; the rest are atomics.

    /// One per regular VP, indexed by VP index. Immutable.
    let queues: [TimerQueue]
    /// Sweeps that fired at least one entry (relaxed: a statistic).
    let firings = Atomic<Int>(0)
    /// Round-robin cursor for arming from outside the scheduler (relaxed:
    /// any spread will do).
    private let outsideCursor = Atomic<Int>(0)
    /// A busy VP also scans the other queues every this many loop passes.
    static let busyScanPasses = 16
    /// Loop passes per VP slot (regular and temporary). Written by that
    /// VP's carrier with a relaxed load and store, not an RMW: one carrier
    /// at a time, and a lost count in the rare overlap of a retake only
    /// shifts when the next scan happens.
    private let passes: [PassCounter]

    /// `count` queues (one per regular VP); `virtualProcessors`: every VP
    /// slot, temporary ones included (for the pass counters).
    init(count: Int, virtualProcessors: Int) {
        precondition(count > 0 && count <= TimerQueue.maxQueues,
                     "TimerQueues: \(count) virtual processors (1...\(TimerQueue.maxQueues) supported)")
        precondition(virtualProcessors >= count, "TimerQueues: \(virtualProcessors) VP slots for \(count) queues")
        queues = (0..<count).map { TimerQueue(index: $0) }
        passes = (0..<virtualProcessors).map { _ in PassCounter() }
    }

    /// The queue VP `index` arms on and fires in its loop (temporary VPs
    /// share the regular ones).
    @inline(__always)
    func queue(forVirtualProcessor index: Int) -> TimerQueue { queues[index % queues.count] }

    /// The queue for an arm from outside the scheduler's contexts.
    func outsideQueue() -> TimerQueue {
        let i = outsideCursor.wrappingAdd(1, ordering: .relaxed).oldValue
        return queues[Int(UInt(bitPattern: i) % UInt(queues.count))]
    }

    /// Cancels the entry `id` (from any queue) if it has not fired.
    func cancel(_ id: Int) {
        let q = TimerQueue.queueIndex(of: id)
        precondition(q < queues.count, "TimerQueues.cancel: id \(id) names queue \(q) of \(queues.count)")
        queues[q].cancel(id)
    }

    /// Entries armed and not fired or cancelled, over all queues (takes
    /// each queue's lock in turn: for tests and reflection).
    var count: Int { queues.reduce(0) { $0 + $1.count } }

    /// True when some queue's wake-up time has come (lock-free scan).
    var hasExpired: Bool {
        let e = earliestWakeUp
        return e != Int64.max && e <= csup_monotonic_ns()
    }

    /// The earliest wake-up time over all queues (lock-free scan).
    var earliestWakeUp: Int64 {
        var e = Int64.max
        for q in queues { e = min(e, q.nextWakeUp) }
        return e
    }

    /// Nanoseconds until the earliest latest firing time over all queues
    /// (0 if it passed), nil when none is armed. Lock-free.
    func nanosecondsUntilNextDeadline() -> Int64? {
        let n = earliestWakeUp
        if n == Int64.max { return nil }
        return max(0, n - csup_monotonic_ns())
    }

    /// Fires due entries on `vp` (callbacks run on its primary, outside any
    /// lock): its own queue's when its wake-up time has come, overdue
    /// queues every ``busyScanPasses``-th call, and with `idle` (nothing to
    /// run) every queue's passed deadlines once any wake-up time has come.
    /// Returns how many fired.
    @discardableResult
    func fireExpired(on vp: VirtualProcessor, idle: Bool) -> Int {
        let own = queue(forVirtualProcessor: vp.index)
        var wake = own.nextWakeUp
        var scan = idle
        if !idle && queues.count > 1 {
            let n = passes[vp.index].count.load(ordering: .relaxed) &+ 1
            passes[vp.index].count.store(n, ordering: .relaxed)
            scan = n % Self.busyScanPasses == 0
        }
        if scan { for q in queues where q !== own { wake = min(wake, q.nextWakeUp) } }
        if wake == Int64.max { return 0 }
        let now = csup_monotonic_ns()
        if wake > now { return 0 }
        // Everything whose deadline passed in a queue being fired fires
        // now, including entries whose own latest time is still ahead:
        // that is the coalescing.
        var due: [(VirtualProcessor) -> Void] = []
        if own.nextWakeUp <= now || idle && own.earliestDeadline <= now { own.takeDue(now, into: &due) }
        if scan {
            for q in queues where q !== own && (idle ? q.earliestDeadline : q.nextWakeUp) <= now {
                q.takeDue(now, into: &due)
            }
        }
        if due.isEmpty { return 0 }
        firings.add(1, ordering: .relaxed)
        for f in due { f(vp) }
        return due.count
    }
}

/// A VP's loop-pass count, alone on its cache line (the padding keeps two
/// VPs' counters from sharing one).
final class PassCounter: Sendable {
    let count = Atomic<Int>(0)
    private let padding: (Int, Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0, 0)
}

extension Scheduler {
    /// Runs `fire` on a VP (given to it) once `deadline` (monotonic ns)
    /// passes, within `tolerance` after it; returns the timer's id for
    /// `timers.cancel`. Arms on the calling context's VP's queue, or a
    /// round-robin one from outside (``TimerQueues``).
    func armTimeout(_ deadline: Int64, tolerance: Int64 = 0, _ fire: @escaping (VirtualProcessor) -> Void) -> Int {
        let q: TimerQueue
        if let vp = Context.currentVirtualProcessor(of: ObjectIdentifier(self)) {
            q = timers.queue(forVirtualProcessor: vp._withUnsafeGuaranteedRef { $0.index })
        } else {
            q = timers.outsideQueue()
        }
        let (id, earliest) = q.add(deadline: deadline, tolerance: tolerance, fire: fire)
        if earliest { idle.notifyWork(force: true) }
        return id
    }

    /// The VP loop's timer step: fires due timers of `vp`'s queue, and with
    /// `idlePath` (nothing to run) of every queue (``TimerQueues``); a batch of
    /// several wakes a sleeping VP to share the contexts queued here.
    /// Returns how many fired.
    @inline(__always)
    func fireTimers(on vp: VirtualProcessor, idlePath: Bool) -> Int {
        let fired = timers.fireExpired(on: vp, idle: idlePath)
        if fired > 0 {
            vp.trace(.timers, fired)
            if fired > 1 { idle.notifyWork() }
        }
        return fired
    }
}
