import CSupport
import Synchronization
import UMS

/// A manual-reset event that blocks the waiting context, not its thread.
/// [concurrency::event]
///
/// Waiters are a list under the event's own lock. `set()` marks the event
/// signaled and wakes every waiter it can claim (see ``Waiter``); `reset()`
/// clears it. A wait from a plain pthread parks that pthread on a futex.
public final class Event: @unchecked Sendable {
    // @unchecked Sendable: all state is under `state`'s mutex.
    private struct State {
        var signaled = false
        /// Plain `wait()`ers: an intrusive list through `Waiter.next`, held
        /// unretained (each waiter is kept alive by its parked owner until
        /// set() has woken it), so registering costs no reference counting.
        var single: Unmanaged<Waiter>?
        var waiters: [(Waiter, Int)] = []   // (waiter, index in a multi-wait)
    }
    private let state = Mutex<State>(State())

    /// The value `wait(timeout:)` returns when the timeout passed.
    /// [COOPERATIVE_WAIT_TIMEOUT]
    public static let timeoutResult = -1

    public init() {}

    /// Signals the event and releases every waiter. [event::set]
    public func set() {
        var multi: [(Waiter, Int)] = []
        let single: Unmanaged<Waiter>? = state.withLock { s in
            s.signaled = true
            swap(&multi, &s.waiters)
            defer { s.single = nil }
            return s.single
        }
        var w = single
        while let u = w {
            // Read the link before the wake: once woken, the owner may reuse
            // or free the waiter.
            w = u._withUnsafeGuaranteedRef { x in
                let next = x.next
                x.next = nil
                if x.claim() { x.wake(result: 0) }
                return next
            }
        }
        for (x, i) in multi where x.claim() { x.wake(result: i) }
    }

    /// Clears the signal. [event::reset]
    public func reset() { state.withLock { $0.signaled = false } }

    /// True while signaled.
    public var isSet: Bool { state.withLock { $0.signaled } }

    /// Waits until the event is signaled. [event::wait]
    public func wait() {
        // A context reuses its own waiter record for plain waits: set()
        // unlinks the list and claims each waiter once, and nothing else
        // can reach it, so it is free again when park returns.
        let w: Waiter
        if let pw = Context.withCurrent({ $0?.plainWaiter }) {
            w = pw
            w.reset()
        } else {
            if isSet { return }   // a pthread: skip the futex word allocation
            w = Waiter()
        }
        // One lock round trip: check and register together.
        let mustPark = state.withLock { s -> Bool in
            if s.signaled { return false }
            w.next = s.single
            s.single = Unmanaged.passUnretained(w)
            return true
        }
        // set() unlinks the whole list before waking, so nothing refers to
        // `w` once park returns.
        if mustPark { w.park() }
    }

    /// Waits until the event is signaled or the timeout passes. Returns true
    /// when signaled. [event::wait(timeout)]
    @discardableResult
    public func wait(timeout: Duration?) -> Bool {
        Event.waitForMultiple([self], waitAll: false, timeout: timeout) != Event.timeoutResult
    }

    /// Waits for any (or all) of `events`. Returns the index of a signaled
    /// event (with `waitAll`, 0), or ``timeoutResult``. [event::wait_for_multiple]
    ///
    /// `waitAll` waits until every event is signaled at the same moment: it
    /// waits on each unsignaled one in turn and re-checks them all.
    public static func waitForMultiple(_ events: [Event], waitAll: Bool, timeout: Duration?) -> Int {
        precondition(!events.isEmpty, "ConcRT: waitForMultiple needs at least one event")
        let deadline = timeout.map { UMSCompletionList.deadline(after: $0) }
        if waitAll {
            while true {
                guard let pending = events.firstIndex(where: { !$0.isSet }) else { return 0 }
                let remaining = deadline.map { Duration.nanoseconds(max(0, $0 - csup_monotonic_ns())) }
                if waitAny([events[pending]], deadline: deadline, timeoutHint: remaining) == timeoutResult {
                    return timeoutResult
                }
            }
        }
        return waitAny(events, deadline: deadline, timeoutHint: timeout)
    }

    private static func waitAny(_ events: [Event], deadline: Int64?, timeoutHint: Duration?) -> Int {
        let waiter = Waiter()
        // Register on every event, unless one is already signaled.
        for (i, e) in events.enumerated() {
            let signaled = e.state.withLock { s -> Bool in
                if s.signaled { return true }
                s.waiters.append((waiter, i))
                return false
            }
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
                let id = c.scheduler.armTimeout(deadline) {
                    if waiter.claim() { waiter.wake(result: timeoutResult) }
                }
                timer = (c.scheduler, id)
            } else {
                return parkThreadWaiter(waiter, events: events, deadline: deadline)
            }
        }
        waiter.park()
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
        for e in events { e.state.withLock { s in s.waiters.removeAll { $0.0 === waiter } } }
    }
}

extension Scheduler {
    /// Runs `fire` on a VP once `deadline` (monotonic ns) passes; returns
    /// the timer's id for `timers.cancel`.
    func armTimeout(_ deadline: Int64, _ fire: @escaping () -> Void) -> Int {
        let (id, earliest) = timers.add(deadline: deadline, fire: fire)
        if earliest { notifyWork(force: true) }
        return id
    }
}
