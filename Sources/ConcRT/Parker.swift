import CSupport
import UMS

/// A one-shot parking slot for blocking primitives built above ConcRT (the
/// Agents library's message blocks): the party that creates it (a context of
/// a scheduler, or a plain pthread outside any) parks on it, and exactly one
/// waker, or the timeout, wakes it. [no direct ConcRT equivalent: what
/// `Context::Block`/`Unblock` plus a timer give a message block in agents.h]
///
/// Protocol (the internal `Waiter`'s): a waker first wins ``claim()`` (one
/// acquire-release exchange), then calls ``wake(result:)`` once. A timed
/// ``park(timeout:)`` arms a timer that also claims; whoever loses the claim
/// does nothing, so the owner is woken exactly once. A context parks with
/// the runtime block protocol (an unblock that lands before the park is
/// kept: no lost wake-up) and so blocks only itself, not its pthread; a
/// pthread parks on a futex word.
///
/// Orderings: everything the waker writes before ``wake(result:)`` is
/// visible to the owner after its park returns (the unblock's
/// acquire-release CAS and the run queue's release/acquire for a context;
/// the futex word's store-release / load-acquire for a pthread).
///
/// Use: create it on the party that will park (it records the current
/// context), publish it (for example under a lock), park once. A Parker is
/// not reusable.
open class Parker: @unchecked Sendable {
    // @unchecked Sendable: the Waiter's claim word and wake are atomic; the
    // result is written before the wake and read after the park.
    private let waiter = Waiter()

    public init() {}

    /// True for exactly one caller: the one that may ``wake(result:)``.
    @inline(__always)
    public final func claim() -> Bool { waiter.claim() }

    /// Wakes the owner. Call once, and only after winning ``claim()``.
    /// `result` must be >= 0 (negative values are reserved for the timeout).
    public final func wake(result: Int = 0) {
        precondition(result >= 0, "Parker.wake: result \(result) is negative (reserved for the timeout)")
        waiter.wake(result: result)
    }

    /// Parks the owner until a waker wakes it; returns the waker's result.
    public final func park() -> Int {
        waiter.park()
        return waiter.result
    }

    /// Parks the owner until a waker wakes it or `timeout` passes. Returns
    /// the waker's result, or nil when the timeout won the claim (then no
    /// waker will ever wake this parker; the owner should withdraw it from
    /// wherever it was published).
    public final func park(timeout: Duration) -> Int? {
        let deadline = UMSDeadline(after: timeout).nanoseconds
        if let c = waiter.context {
            let w = waiter
            let id = c.scheduler.armTimeout(deadline) { vp in
                if w.claim() { w.wake(result: Event.timeoutResult, onto: vp) }
            }
            waiter.park()
            c.scheduler.timers.cancel(id)
        } else {
            while true {
                let left = deadline - csup_monotonic_ns()
                if left <= 0 {
                    if waiter.claim() { return nil }
                    waiter.park()   // a waker claimed first: take its wake
                    break
                }
                if waiter.waitThread(nanoseconds: left) { break }
            }
        }
        return waiter.result < 0 ? nil : waiter.result
    }
}
