import CSupport
import UMS

/// Directed switches and fair turns.
///
/// **Directed switch.** A context that parks on an event or blocks while
/// its VP's `runnext` holds a context switches straight to that one
/// (``takeDirectSwitchTarget(from:)`` then `UMSThread.switchRunning`): one
/// user-mode switch instead of two through the primary, and no pass of the
/// primary loop. The context switched to finishes the other's suspension
/// first thing after its own switch returns (``finishDirectSwitch(into:)``):
/// only then are the other's registers saved, so only then may it be
/// registered on its event or marked blocked, where a waker could resume
/// it. `switchedOut` carries the one to finish; it is owner-only (set and
/// cleared on this VP's pthread, with one context running at a time).
///
/// **Fair turns.** `runnext` lets a ping-pong pair run back to back. So
/// that such a pair cannot starve the ring or queued tasks, a directed
/// switch is refused while completions wait and at ``runnextLimit`` takes
/// in a row; the primary loop then drains completions, fires timers and
/// gives one turn to the ring's front or to one queued task
/// (``takeFairTurn()``). A `Context.yield()` also gives queued tasks a turn
/// before the yielder runs again (ConcRT's `Context::Yield` lets other
/// work run, not only other runnable contexts).
extension VirtualProcessor {
    /// At this many `runnext` takes in a row, a directed switch is refused
    /// and the primary loop takes a fair turn.
    static let runnextLimit = 16

    /// The context the primary loop should run before its normal order,
    /// or nil: after a streak, the ring's front or a task context that
    /// runs one queued task; after a yield, a task context for one queued
    /// task (the yielder waits in the ring behind it).
    @inline(__always)
    func takeFairTurn() -> Unmanaged<Context>? {
        if yieldTurnPending {
            yieldTurnPending = false
            if let c = taskTurn() { return c }
        }
        guard runnextStreak >= Self.runnextLimit else { return nil }
        runnextStreak = 0
        if let c = runQueue.popRing() { return c }
        return taskTurn()
    }

    /// A task context told to run one queued task first, when tasks wait
    /// in this VP's deque or the scheduler's queues.
    private func taskTurn() -> Unmanaged<Context>? {
        guard csup_deque_size(deque) > 0 || scheduler.hasQueuedTasks, let c = takeIdleContext() else { return nil }
        runOneTaskFirst = true
        return Unmanaged.passUnretained(c)
    }

    /// The context `from` may switch straight to: this VP's `runnext`, when
    /// no completion is waiting and the streak allows. Records `from` as
    /// the one to finish.
    @inline(__always)
    func takeDirectSwitchTarget(from: Unmanaged<Context>) -> Unmanaged<Context>? {
        if runnextStreak >= Self.runnextLimit || yieldTurnPending || completionsPending { return nil }
        guard let next = runQueue.takeRunnext() else { return nil }
        assert(switchedOut == nil, "VirtualProcessor.takeDirectSwitchTarget: VP \(index) already has a switched-out context")
        runnextStreak += 1
        countSwitch(to: next)
        switchedOut = from
        return next
    }

    /// Run by a context each time it resumes: if it was resumed by a
    /// directed switch, the context that switched to it is saved now, so
    /// mark its thread ready and commit its suspension.
    @inline(__always)
    static func finishDirectSwitch(into c: Context) {
        // Why this is sound: `from` is alive (its thread's user context
        // holds it, and it cannot terminate while switched out) and owned
        // by this VP's running context until finished here.
        c.vpRef.unsafelyUnwrapped._withUnsafeGuaranteedRef { vp in
            guard let from = vp.switchedOut else { return }
            vp.switchedOut = nil
            from._withUnsafeGuaranteedRef { f in
                f.threadRef.unsafelyUnwrapped._withUnsafeGuaranteedRef { $0.completeSwitchOut() }
                vp.finishSuspension(f)
            }
        }
    }
}
