import CSupport
import Synchronization
import UMS

/// A manual-reset event that blocks the waiting context, not its thread.
/// [concurrency::event]
///
/// State: one atomic word, so that `set`, `reset` and a plain `wait` take no
/// lock:
///
///     bit 0   signaled
///     bit 1   the wait-for-multiple list (under `multi`'s mutex) may be non-empty
///     rest    head of the plain waiters' stack: an unretained ``Waiter``
///             (objects are at least 16-byte aligned, so bits 0-1 are free)
///
/// Protocol:
/// - A plain `wait()` from a context does not register itself: it switches
///   to its primary with the `.park` reason, and the primary pushes the
///   context's waiter onto the word after the switch has saved the context
///   (``commitPark(_:)``, a CAS that fails when the event became signaled:
///   then the context is resumed at once). So every waiter a setter finds is
///   fully parked, and waking it is just making it runnable: no per-context
///   block state, no claim. This is Go's `gopark` with an unlock function.
/// - A plain `wait()` from a pthread pushes a fresh waiter itself and parks
///   on that waiter's futex word.
/// - `set()` replaces the word with `signaled` in one CAS, which takes the
///   whole plain-waiter stack (push-only plus take-all has no ABA), then
///   wakes each waiter, reading its link first (a woken context may reuse
///   its waiter at once).
/// - Wait-for-multiple waiters (and timed waits) register under the mutex
///   and set bit 1 with an RMW that also tells them whether the event was
///   signaled meanwhile. A `set()` that sees bit 1 signals and takes both
///   lists under the mutex. The RMWs are on the same word, so of a set and
///   a registration one always sees the other: no lost wake-up.
/// - `reset()` clears bit 0 (plain waiters cannot be present while it is
///   set: pushes expect it clear).
///
/// Orderings: every RMW on the word is acquire-release. A waiter's push
/// releases its link and (for a context) the saved context; the setter's
/// CAS acquires them, and hands the context to a runnable queue, whose own
/// release/acquire carries them to the VP that runs it.
public final class Event: @unchecked Sendable {
    // @unchecked Sendable: `word` is atomic; the multi list is under its mutex.
    private let word = Atomic<UInt>(0)
    private let multi = MigrationSafeMutex<[(Waiter, Int)]>([])

    static let signaledBit: UInt = 1
    static let multiBit: UInt = 2
    static let pointerMask: UInt = ~UInt(3)

    /// The value `wait(timeout:)` returns when the timeout passed.
    /// [COOPERATIVE_WAIT_TIMEOUT]
    public static let timeoutResult = -1

    public init() {}

    /// Signals the event and releases every waiter. [event::set]
    public func set() {
        var old = word.load(ordering: .acquiring)
        while true {
            // Already signaled: no plain waiter can be registered, and any
            // multi-waiter that registered after that set saw the bit.
            if old & Self.signaledBit != 0 { return }
            if old & Self.multiBit != 0 {
                setWithMultiWaiters()
                return
            }
            let (done, seen) = word.compareExchange(expected: old, desired: Self.signaledBit,
                                                    ordering: .acquiringAndReleasing)
            if done { break }
            old = seen
        }
        Self.wakePlainWaiters(old)
    }

    /// Wakes the plain waiters of a stack taken from the word.
    private static func wakePlainWaiters(_ taken: UInt) {
        var p = taken & pointerMask
        while p != 0 {
            // Why this is sound: a waiter on the stack is kept alive by its
            // parked owner (a context's own waiter, or a pthread's local)
            // until this wake; its link is read before the wake.
            p = Unmanaged<Waiter>.fromOpaque(UnsafeRawPointer(bitPattern: p)!)._withUnsafeGuaranteedRef { w in
                let next = w.nextBits
                w.wakeParked()
                return next
            }
        }
    }

    /// set() while wait-for-multiple waiters may be registered: signal and
    /// take both lists under the mutex, so no registration falls between
    /// the signal and the take (a waiter that registers after a later
    /// reset() must not be woken by this set).
    private func setWithMultiWaiters() {
        let (plain, taken): (UInt, [(Waiter, Int)]) = multi.withLock { list in
            var old = word.load(ordering: .acquiring)
            while true {
                if old & Self.signaledBit != 0 { return (0, []) }
                let (done, seen) = word.compareExchange(expected: old, desired: Self.signaledBit,
                                                        ordering: .acquiringAndReleasing)
                if done { break }
                old = seen
            }
            var t: [(Waiter, Int)] = []
            swap(&t, &list)
            return (old, t)
        }
        Self.wakePlainWaiters(plain)
        for (x, i) in taken where x.claim() { x.wake(result: i) }
    }

    /// Clears the signal. [event::reset]
    public func reset() {
        if word.load(ordering: .relaxed) & Self.signaledBit != 0 {
            word.bitwiseAnd(~Self.signaledBit, ordering: .acquiringAndReleasing)
        }
    }

    /// True while signaled.
    public var isSet: Bool { word.load(ordering: .acquiring) & Self.signaledBit != 0 }

    /// Waits until the event is signaled. [event::wait]
    public func wait() {
        if word.load(ordering: .acquiring) & Self.signaledBit != 0 { return }
        if let me = UMSThread.currentOnPrimaryUserContext {
            Context.park(me, on: self)
            return
        }
        // A pthread outside any scheduler: push a waiter with its own futex
        // word, then sleep on it.
        let w = Waiter()
        if pushPlainWaiter(Unmanaged.passUnretained(w)) { w.park() }
        withExtendedLifetime(w) {}
    }

    /// Pushes a plain waiter onto the word's stack unless the event is
    /// signaled (then returns false). The release half of the CAS publishes
    /// the waiter's link (and, for a context, its saved state) to the setter.
    private func pushPlainWaiter(_ w: Unmanaged<Waiter>) -> Bool {
        let bits = UInt(bitPattern: w.toOpaque())
        var old = word.load(ordering: .acquiring)
        while true {
            if old & Self.signaledBit != 0 { return false }
            w._withUnsafeGuaranteedRef { $0.nextBits = old & Self.pointerMask }
            let (done, seen) = word.compareExchange(expected: old, desired: bits | (old & Self.multiBit),
                                                    ordering: .acquiringAndReleasing)
            if done { return true }
            old = seen
        }
    }

    /// Primary side of a context's plain wait, after the switch saved it:
    /// push its waiter unless the event is signaled by now. False: signaled,
    /// resume the context.
    static func commitPark(_ c: Context, on e: Event) -> Bool {
        // Set before the push: once pushed, a setter may resume the
        // context, which clears the flag.
        c.parkedOnEvent.store(true, ordering: .relaxed)
        if e.pushPlainWaiter(c.parkWaiter) { return true }
        c.parkedOnEvent.store(false, ordering: .relaxed)
        return false
    }

    /// Waits until the event is signaled or the timeout passes. Returns true
    /// when signaled. [event::wait(timeout)]
    ///
    /// `tolerance`: how much later than `timeout` the wait may end when it
    /// times out, so that timers whose windows overlap fire in one wake-up
    /// of a virtual processor (timer coalescing). It never ends earlier.
    @discardableResult
    public func wait(timeout: Duration?, tolerance: Duration = .zero) -> Bool {
        Event.waitForMultiple([self], waitAll: false, timeout: timeout, tolerance: tolerance) != Event.timeoutResult
    }

    /// Waits for any (or all) of `events`. Returns the index of a signaled
    /// event (with `waitAll`, 0), or ``timeoutResult``. [event::wait_for_multiple]
    ///
    /// `waitAll` waits until every event is signaled at the same moment: it
    /// waits on each unsignaled one in turn and re-checks them all.
    /// `tolerance`: as in ``wait(timeout:tolerance:)``.
    public static func waitForMultiple(_ events: [Event], waitAll: Bool, timeout: Duration?,
                                       tolerance: Duration = .zero) -> Int {
        let slack = tolerance.saturatingNanoseconds
        precondition(!events.isEmpty, "ConcRT: waitForMultiple needs at least one event")
        let deadline = timeout.map { UMSDeadline(after: $0).nanoseconds }
        if waitAll {
            while true {
                guard let pending = events.firstIndex(where: { !$0.isSet }) else { return 0 }
                let remaining = deadline.map { Duration.nanoseconds(max(0, $0 - csup_monotonic_ns())) }
                if waitAny([events[pending]], deadline: deadline, tolerance: slack, timeoutHint: remaining) == timeoutResult {
                    return timeoutResult
                }
            }
        }
        return waitAny(events, deadline: deadline, tolerance: slack, timeoutHint: timeout)
    }

    private static func waitAny(_ events: [Event], deadline: Int64?, tolerance: Int64, timeoutHint: Duration?) -> Int {
        let waiter = Waiter()
        // Register on every event, unless one is already signaled.
        for (i, e) in events.enumerated() {
            let signaled = e.registerMulti(waiter, index: i)
            if signaled {
                if waiter.claim() {
                    deregister(waiter, from: events)
                    return i
                }
                break   // someone else claimed it: park to consume the wake
            }
        }
        var timer: (Scheduler, Int)?
        if let deadline {
            if let c = waiter.context {
                let id = c.scheduler.armTimeout(deadline, tolerance: tolerance) { vp in
                    if waiter.claim() { waiter.wake(result: timeoutResult, onto: vp) }
                }
                timer = (c.scheduler, id)
            } else {
                return parkThreadWaiter(waiter, events: events, deadline: deadline)
            }
        }
        waiter.park(events.count == 1 ? .event : .multipleEvents, events.count == 1 ? events[0] : nil)
        if let (s, id) = timer { s.timers.cancel(id) }
        deregister(waiter, from: events)
        return waiter.result
    }

    /// A pthread outside any scheduler: futex wait with the deadline.
    private static func parkThreadWaiter(_ waiter: Waiter, events: [Event], deadline: Int64) -> Int {
        while true {
            let left = deadline - csup_monotonic_ns()
            if left <= 0 {
                if waiter.claim() {
                    deregister(waiter, from: events)
                    return timeoutResult
                }
                waiter.park()   // a waker claimed it first: take its wake
                break
            }
            if waiter.waitThread(nanoseconds: left) { break }
        }
        deregister(waiter, from: events)
        return waiter.result
    }

    private static func deregister(_ waiter: Waiter, from events: [Event]) {
        for e in events {
            e.multi.withLock { list in
                list.removeAll { $0.0 === waiter }
                // Keep set() off the mutex when nobody multi-waits.
                if list.isEmpty { e.word.bitwiseAnd(~multiBit, ordering: .acquiringAndReleasing) }
            }
        }
    }

    /// Adds a wait-for-multiple waiter; true (and not added) when the event
    /// is signaled.
    private func registerMulti(_ waiter: Waiter, index: Int) -> Bool {
        multi.withLock { list in
            if word.load(ordering: .acquiring) & Self.signaledBit != 0 { return true }
            list.append((waiter, index))
            // The RMW orders this registration against set()'s CAS: if the
            // set came first, the old value shows it and we undo.
            let old = word.bitwiseOr(Self.multiBit, ordering: .acquiringAndReleasing).oldValue
            if old & Self.signaledBit != 0 {
                list.removeLast()
                if list.isEmpty { word.bitwiseAnd(~Self.multiBit, ordering: .acquiringAndReleasing) }
                return true
            }
            return false
        }
    }
}
