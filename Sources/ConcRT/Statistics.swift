import Synchronization

/// Scheduler counters since creation. [Scheduler statistics / ETW events]
public struct SchedulerStatistics: Sendable, Equatable, CustomStringConvertible {
    /// Work items run from deques and queues (heap tasks and stolen or
    /// queued forks; a fork its joiner ran inline is not counted).
    public var tasksRun: Int
    /// Items taken from another virtual processor's deque.
    public var steals: Int
    /// Times a context was switched in: by a primary's execute, or by a
    /// directed switch from a blocking context to a runnable one.
    public var contextSwitches: Int
    /// Cooperative blocks (events, locks, joins on stolen work, Context.block).
    public var blocks: Int
    /// Context.yield calls.
    public var yields: Int
    /// Blocking system calls (the context went to a kernel thread).
    public var kernelBlocks: Int
    /// Contexts taken from the completion list (kernel calls that returned,
    /// and new contexts).
    public var completions: Int
    /// Times a virtual processor went to sleep.
    public var idleSleeps: Int
    /// Times a sleeping virtual processor woke on its watch timeout to look
    /// for contexts stranded behind a busy one (see the idle protocol).
    public var idleWatchExpiries: Int
    /// Times the UMS monitor retook a virtual processor from a context's
    /// blocking call (lazy kernel entry) and another pthread carried on.
    public var retakes: Int
    /// Retakes given up because no spare pthread could be had (the call
    /// was waited for).
    public var retakeCarrierFailures: Int
    /// Blocking calls queued on a virtual processor's io_uring (the
    /// context parked; no kernel thread was used).
    public var ringOperations: Int
    /// Ring operations completed and reaped.
    public var ringCompletions: Int
    /// `io_uring_enter` submissions (each may carry several operations).
    public var ringSubmits: Int
    /// Idle sleeps taken in the ring (operations were in flight).
    public var ringSleeps: Int
    /// Blocking calls that would block and took the lazy kernel-entry path
    /// while io_uring was unavailable, turned off, or full.
    public var ringFallbacks: Int
    /// Ring operations resubmitted after a cancel nobody asked for: the
    /// carrier pthread that submitted them ended (io_uring cancels a
    /// thread's requests when it exits; see `Context.ringCall`).
    public var ringResubmits: Int = 0
    /// Temporary virtual processors started for contexts found asleep in
    /// the kernel in unwrapped code (`detectUnwrappedBlocking`): the
    /// context kept its VP, and the temporary one ran beside it until the
    /// context ran again. [Context::Oversubscribe, started by the monitor]
    public var compensations: Int = 0
    /// Compensations that could not start (no free temporary slot, or no
    /// pthread): the unwrapped call held its VP.
    public var compensationFailures: Int = 0
    /// Blocking.sleep calls that parked their context on the timers.
    public var timerSleeps: Int
    /// Batches of timers fired (timer coalescing makes fewer, larger ones).
    public var timerFirings: Int
    /// Times a sleeping virtual processor woke up (any cause: work, a
    /// timer, a watch expiry, shutdown).
    public var idleWakeUps: Int
    public var contextsCreated: Int
    public var contextCreationFailures: Int
    /// Contexts alive now (running, blocked, or cached idle).
    public var liveContexts: Int

    public var description: String {
        "tasks=\(tasksRun) steals=\(steals) switches=\(contextSwitches) blocks=\(blocks) yields=\(yields) "
            + "kernelBlocks=\(kernelBlocks) completions=\(completions) idleSleeps=\(idleSleeps) "
            + "watchExpiries=\(idleWatchExpiries) retakes=\(retakes) compensations=\(compensations) "
            + "ringOps=\(ringOperations) ringSubmits=\(ringSubmits) ringSleeps=\(ringSleeps) ringFallbacks=\(ringFallbacks) "
            + "contexts=\(contextsCreated) live=\(liveContexts)"
    }
}

/// A statistic counter. Relaxed: counters are independent and read only as
/// snapshots, so they need no ordering with other memory.
final class StatCounter: Sendable {
    private let v = Atomic<Int>(0)
    @inline(__always) func add(_ n: Int = 1) { v.wrappingAdd(n, ordering: .relaxed) }
    /// For a counter only one pthread writes (a VP's own): a plain load and
    /// store, no locked read-modify-write.
    @inline(__always) func ownerIncrement() { v.store(v.load(ordering: .relaxed) &+ 1, ordering: .relaxed) }
    @inline(__always) func ownerAdd(_ n: Int) { v.store(v.load(ordering: .relaxed) &+ n, ordering: .relaxed) }
    var value: Int { v.load(ordering: .relaxed) }
}

final class StatisticsCounters: Sendable {
    let tasksRun = StatCounter(), steals = StatCounter(), contextSwitches = StatCounter()
    let blocks = StatCounter(), yields = StatCounter(), kernelBlocks = StatCounter()
    let completions = StatCounter(), idleSleeps = StatCounter(), watchExpiries = StatCounter()
    let contextsCreated = StatCounter(), contextCreationFailures = StatCounter()
    let retakes = StatCounter(), retakeCarrierFailures = StatCounter()
    let ringOperations = StatCounter(), ringCompletions = StatCounter(), ringSubmits = StatCounter()
    let ringSleeps = StatCounter(), ringFallbacks = StatCounter(), ringResubmits = StatCounter()
    let timerSleeps = StatCounter(), idleWakeUps = StatCounter()
    let compensations = StatCounter(), compensationFailures = StatCounter()

    func snapshot(liveContexts: Int) -> SchedulerStatistics {
        var s = SchedulerStatistics(tasksRun: tasksRun.value, steals: steals.value, contextSwitches: contextSwitches.value,
                            blocks: blocks.value, yields: yields.value, kernelBlocks: kernelBlocks.value,
                            completions: completions.value, idleSleeps: idleSleeps.value,
                            idleWatchExpiries: watchExpiries.value,
                            retakes: retakes.value, retakeCarrierFailures: retakeCarrierFailures.value,
                            ringOperations: ringOperations.value, ringCompletions: ringCompletions.value,
                            ringSubmits: ringSubmits.value, ringSleeps: ringSleeps.value,
                            ringFallbacks: ringFallbacks.value,
                            timerSleeps: timerSleeps.value, timerFirings: 0, idleWakeUps: idleWakeUps.value,
                            contextsCreated: contextsCreated.value,
                            contextCreationFailures: contextCreationFailures.value, liveContexts: liveContexts)
        s.ringResubmits = ringResubmits.value
        s.compensations = compensations.value
        s.compensationFailures = compensationFailures.value
        return s
    }
}
