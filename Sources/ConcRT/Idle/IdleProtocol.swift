import CSupport
import Synchronization
import UMS

/// How virtual processors go idle, stay idle, and are woken. The design
/// note beside this file (`Idle/README.md`) gives the steps, which atomic
/// pairs with which, and the proof sketch that no wake-up is lost; the
/// SPIN model `Tests/Models/idle.pml` checks it.
///
/// Summary:
/// - An idle VP sleeps on the completion list's futex (so completions wake
///   it) after registering (`prepareToWait`), announcing itself in the
///   counters below, and re-checking every work source. A VP with I/O in
///   flight on its ring sleeps in the ring instead, on a futex wait armed
///   there with the same ticket (IO/IORing.swift): wakers are unchanged.
/// - Producers of tasks or of contexts queued from outside call
///   ``notifyWork(force:)``: one sleeper is woken unless a VP is searching
///   (it will find the work).
/// - A context woken by a running context goes to that VP's `runnext`
///   with no wake-up (the waker usually blocks next and its VP runs it).
///   So that it is not stranded behind a waker that stays busy, a VP that
///   goes to sleep while another VP is awake **watches**: it sleeps with a
///   timeout that backs off from ``firstWatchInterval`` to
///   ``maxWatchInterval`` and, on each expiry, takes a runnable context
///   from a VP that has not switched since its last look. A VP that goes
///   to sleep while every other VP sleeps sleeps **untimed** (timers
///   aside); a `runnext` push then wakes it (``runnextPushed()``), so it
///   starts watching.
/// - Node locality (`.enhanceScheduleGroupLocality` on two or more NUMA
///   nodes): each VP sleeps with its node's futex bitset, and a task of a
///   group homed on a node wakes a sleeper of that node first
///   (``NodeIdle``; README "Node-preferring groups").
/// - A watch expiry costs a futex return and a few loads, not a context
///   switch or a steal sweep, so a VP idle beside a busy one uses well
///   under 1 CPU-ms per second (`ums-bench idle --busy`).
@usableFromInline
final class IdleProtocol: @unchecked Sendable {
    // @unchecked Sendable: atomics only, plus an immutable list reference.

    /// VPs in ``VirtualProcessor/search(_:)`` now. seq_cst: producers read
    /// it after publishing work (see notifyWork). Usable from inlinable
    /// code: a fork's push reads it inline (``notifyLocalPush()``).
    @usableFromInline let searching = Atomic<Int>(0)
    /// VPs inside ``sleep(_:napNanoseconds:)`` now (registered or asleep).
    /// Read inline by a fork's push, as `searching`.
    @usableFromInline let sleeping = Atomic<Int>(0)
    /// Sleepers with no watch timeout: a `runnext` push must wake them.
    /// seq_cst: the load half of the runnext store-load pair.
    let untimed = Atomic<Int>(0)

    /// First watch timeout after going to sleep beside an awake VP.
    static let firstWatchInterval: Int64 = 1_000_000
    /// Longest watch timeout (Go's sysmon backs off to 10 ms as well).
    static let maxWatchInterval: Int64 = 10_000_000

    /// Unretained: the scheduler owns the list and outlives this object.
    private let list: Unmanaged<UMSCompletionList>

    init(list: UMSCompletionList) {
        self.list = Unmanaged.passUnretained(list)
    }

    // MARK: Producer side

    /// Wakes one sleeping VP for new work, unless a VP is searching (it
    /// will find the work). `force` wakes even then.
    @inline(__always)
    func notifyWork(force: Bool = false) {
        // seq_cst: ordered after the work's publication in the single total
        // order with the searcher's seq_cst increment (Idle/README.md, pair B).
        if force || searching.load(ordering: .sequentiallyConsistent) == 0 {
            list._withUnsafeGuaranteedRef { $0.notifyWaiters(1) }
        }
    }

    /// After a push to a VP's own deque (a fork, a task spawned by a task):
    /// as ``notifyWork(force:)``, but no notify (and so no fence: this is
    /// the fork's hot path) while no VP is in ``sleep(_:napNanoseconds:)``.
    /// Only for work that has an owner: the pushing VP never sleeps while
    /// its deque holds items, so a race with a VP going to sleep costs
    /// parallelism for one window, never the work (pair B in the note).
    ///
    /// Inlined into the fork path (`Context.pushFork`, and through it into
    /// PPL's parallelInvoke): two seq_cst loads (plain loads on x86-64 and
    /// arm64's ldar) and the wake out of line.
    @inlinable @inline(__always)
    func notifyLocalPush() {
        // seq_cst, both: pair B (Idle/README.md), as in notifyWork.
        if searching.load(ordering: .sequentiallyConsistent) == 0
            && sleeping.load(ordering: .sequentiallyConsistent) > 0 {
            wakeOneForLocalPush()
        }
    }

    /// ``notifyLocalPush()``'s wake: one sleeper (out of line, off the
    /// fork's hot path).
    @usableFromInline @inline(never)
    func wakeOneForLocalPush() {
        list._withUnsafeGuaranteedRef { $0.notifyWaiters(1) }
    }

    /// After a running context pushed a context to its VP's `runnext`:
    /// wake the untimed sleepers so they watch (pair A in the note). A
    /// load and no system call while every sleeper is already watching.
    @inline(__always)
    func runnextPushed() {
        let n = untimed.load(ordering: .sequentiallyConsistent)
        if n > 0 { list._withUnsafeGuaranteedRef { $0.notifyWaiters(n) } }
    }

    /// Wakes every sleeper (shutdown, a VP asked to retire).
    func wakeAll() { list._withUnsafeGuaranteedRef { $0.wakeAllWaiters() } }

    // MARK: Searcher side

    @inline(__always)
    func beginSearch() { searching.wrappingAdd(1, ordering: .sequentiallyConsistent) }

    @inline(__always)
    func endSearch() { searching.wrappingSubtract(1, ordering: .sequentiallyConsistent) }

    /// True when `self` is the only searcher (after a successful steal: more
    /// work may be left, so wake another VP to help).
    @inline(__always)
    var isLoneSearcher: Bool { searching.load(ordering: .relaxed) == 1 }

    // MARK: Sleeper side

    /// Sleeps `vp` until there is work for it. Returns at once when the
    /// re-check after registering finds work. `napNanoseconds`: return
    /// after at most that long whatever happens (used when no context
    /// could be made: blocked ones may come back and free memory).
    func sleep(_ vp: VirtualProcessor, napNanoseconds: Int64? = nil) {
        let s = vp.scheduler
        var interval = Self.firstWatchInterval
        vp.stats.idleSleeps.ownerIncrement()
        vp.trace(.sleepBegin)
        defer { vp.trace(.sleepEnd) }
        // A futex wait armed in the ring must not outlive the sleep: an
        // awake VP would absorb a wake-up meant for a sleeping one.
        defer { vp.ring?.disarm() }
        // Asked (between tasks) to give a core to another scheduler: do it
        // now, before the re-check (which would find this scheduler's work).
        vp.giveCoreBackIfAsked()
        // A core waiter stays counted as one from its first refusal until
        // it takes a core, finds no work, or leaves (ResourceManager.swift).
        var coreWaiter = false
        defer { if coreWaiter { vp.endCoreWait() } }
        let nodes = s.nodeIdle
        while true {
            // 0. Node locality: pass a wake to the home node of any homed
            //    task this VP declines (Idle/README.md, node-preferring groups).
            if nodes != nil { s.groups.forwardDeclined(for: vp) }
            // 1. Register on the futex: a notify from now on ends the wait.
            let ticket = list._withUnsafeGuaranteedRef { $0.prepareToWait() }
            // 2. Announce. Others awake: watch them; else sleep untimed,
            //    announced before the re-check (pair A).
            let asleep = sleeping.wrappingAdd(1, ordering: .sequentiallyConsistent).newValue
            if vp.node >= 0 { nodes.unsafelyUnwrapped.announceSleep(vp) }   // per node, then a fence
            var watching = asleep < s.activeVPCount.load(ordering: .acquiring)
            if !watching { untimed.wrappingAdd(1, ordering: .sequentiallyConsistent) }
            // 3. Re-check every work source.
            let stop = vp.retiring.load(ordering: .acquiring) || s.readyToStop
            var found = stop || s.hasWork(for: vp)
            if !found, vp.hasStrandedRunnable() {
                // Without a core, it is work to wait for one for (step 3b;
                // the VP's search then takes the context); with one, take it.
                found = vp.mayRun ? vp.stealFromBusyVirtualProcessor() : true
            }
            if !found, !watching, s.otherVirtualProcessorHasRunnable(than: vp) {
                // A runnext pushed before our announcement: watch it.
                untimed.wrappingSubtract(1, ordering: .sequentiallyConsistent)
                watching = true
                interval = Self.firstWatchInterval
            }
            // 3b. Work needs a core (ResourceManager.swift): keep the one
            //     held, take one, or wait for one: counted as a waiter
            //     after step 1, then re-checked, so a releaser either is
            //     seen here or sees the waiter and its wake ends step 4.
            if found, !stop, !vp.mayRun {
                if coreWaiter ? !vp.retryCoreWait() : !vp.beginCoreWait() {
                    coreWaiter = true
                    found = false
                }
            } else if !found, coreWaiter {
                vp.abandonCoreWait()   // no work left to wait for a core for
                coreWaiter = false
            }
            if found {
                if !watching { untimed.wrappingSubtract(1, ordering: .sequentiallyConsistent) }
                sleeping.wrappingSubtract(1, ordering: .sequentiallyConsistent)
                if vp.node >= 0 { nodes.unsafelyUnwrapped.endSleep(vp) }
                Watchdog.virtualProcessorWoke()
                list._withUnsafeGuaranteedRef { $0.cancelWait() }
                return
            }
            // Nothing to run: the core goes back before the sleep.
            if vp.holdsCore { vp.releaseCore() }
            if watching { vp.snapshotSwitchCounts() }
            // 4. Sleep until the earliest of: a timer, the watch interval,
            //    the caller's nap, a core waiter's retry, a cap refill.
            var timeout = s.timers.nanosecondsUntilNextDeadline()
            if watching { timeout = min(timeout ?? .max, interval) }
            if let nap = napNanoseconds { timeout = min(timeout ?? .max, nap) }
            if coreWaiter { timeout = min(timeout ?? .max, ResourceManager.coreWaitRetryNanoseconds) }
            // A capped schedule group over its budget: its tasks wait for
            // the next period (ScheduleGroups/GroupUsage.swift).
            if let refill = s.groups.nanosecondsUntilCapRefill() { timeout = min(timeout ?? .max, refill) }
            list._withUnsafeGuaranteedRef { l in
                // With I/O in flight, sleep in the ring: its completions and
                // a notify of the list's futex (armed with the same ticket)
                // both end the sleep (IO/IORing.swift, step 3).
                if let ring = vp.ring, ring.inFlight > 0,
                   ring.sleep(on: l.waitWord, ticket: ticket, timeoutNanoseconds: timeout, wakeMask: vp.wakeMask) {
                    vp.stats.ringSleeps.ownerIncrement()
                    l.cancelWait()
                    // Off the futex before anything else (a wake that
                    // reached the wait meanwhile is passed on by the VP
                    // loop's first pick: VirtualProcessor.passOnWakeUp).
                    ring.disarm()
                } else if vp.wakeMask == CSUP_FUTEX_BITSET_ANY {
                    l.wait(ticket: ticket, timeout: timeout.map { .nanoseconds($0) })
                } else {
                    // Node locality: woken by completions, plain notifies,
                    // and node wakes of this VP's node (Idle/NodeIdle.swift).
                    l.wait(ticket: ticket, timeout: timeout.map { .nanoseconds($0) }, wakeMask: vp.wakeMask)
                }
            }
            vp.stats.idleWakeUps.ownerIncrement()
            if !watching { untimed.wrappingSubtract(1, ordering: .sequentiallyConsistent) }
            sleeping.wrappingSubtract(1, ordering: .sequentiallyConsistent)
            if vp.node >= 0 { nodes.unsafelyUnwrapped.endSleep(vp) }
            Watchdog.virtualProcessorWoke()
            if vp.retiring.load(ordering: .acquiring) || s.readyToStop { return }
            // 5. Awake: real work or a due timer ends the sleep, with a core
            //    (else back to step 1, which waits for one). A nap ends too.
            if napNanoseconds != nil || s.hasWork(for: vp) {
                if vp.mayRun || vp.tryTakeCore() { return }
                continue
            }
            // 6. A watch expiry (or a wake for work somebody else took):
            //    take a stranded runnable context, or back off.
            if vp.hasStrandedRunnable(), vp.mayRun || vp.tryTakeCore() {
                if vp.stealFromBusyVirtualProcessor() { return }
                if vp.holdsCore { vp.releaseCore() }
            }
            vp.stats.watchExpiries.ownerIncrement()
            interval = s.otherVirtualProcessorHasRunnable(than: vp)
                ? Self.firstWatchInterval : min(interval * 2, Self.maxWatchInterval)
        }
    }
}
