/// A virtual processor's core from the Resource Manager
/// (ResourceManager/ResourceManager.swift has the protocol): a regular VP
/// holds one while it is awake. It takes one when it starts and when it
/// wakes for work (IdleProtocol.sleep), gives it back just before its idle
/// sleep, and gives it back early, between tasks, when its scheduler is
/// asked to return a core to another one. Temporary (oversubscription) VPs
/// hold none.
///
/// `holdsCore` is owner-only: only the pthread carrying the VP touches it
/// (a retake hands the VP, and so its core, to the replacement carrier; see
/// PrimaryCarriers.swift).
extension VirtualProcessor {
    /// True when this VP may run work now (it holds a core, or is a
    /// temporary VP, which needs none).
    var mayRun: Bool { holdsCore || temporary }

    /// Takes a core now if the manager allows it.
    func tryTakeCore() -> Bool { takeCore("tryTakeCore") { $0.tryTake($1) } }

    /// After registering on the idle futex: becomes a core waiter, or takes
    /// a core at once (true). A waiter calls ``endCoreWait()`` after its
    /// futex wait returns.
    func beginCoreWait() -> Bool { takeCore("beginCoreWait") { $0.beginWait($1) } }

    /// A core waiter's next try (a wake-up or its retry timeout).
    func retryCoreWait() -> Bool { takeCore("retryCoreWait") { $0.retryWait($1) } }

    /// One of the manager's ways to take a core, for this VP: on success
    /// the VP holds it.
    @inline(__always)
    private func takeCore(_ caller: StaticString, _ attempt: (ResourceManager, CoreAllotment) -> Bool) -> Bool {
        assert(!holdsCore, "VirtualProcessor.\(caller): VP \(index) already holds a core")
        guard attempt(scheduler.cores.manager, scheduler.cores) else { return false }
        holdsCore = true
        return true
    }

    func endCoreWait() { scheduler.cores.manager.endWait(scheduler.cores) }

    /// Stops waiting for a core because the work went away (a wake-up the
    /// manager meant for this waiter is passed on).
    func abandonCoreWait() { scheduler.cores.manager.abandonWait(scheduler.cores) }

    /// Gives the core back (before an idle sleep, or when leaving).
    func releaseCore() {
        assert(holdsCore, "VirtualProcessor.releaseCore: VP \(index) holds no core")
        holdsCore = false
        scheduler.cores.manager.release(scheduler.cores)
    }

    /// Between tasks: true when the scheduler was asked
    /// to give a core back (one relaxed load; the decision is made in
    /// ``giveCoreBackIfAsked()``).
    @inline(__always)
    var coreRequested: Bool { holdsCore && scheduler.cores.giveBack.load(ordering: .relaxed) }

    /// Between tasks, in the task loop: ``coreRequested``, and every 64th
    /// call also the backstop for a missed reclaim request: while the
    /// machine is in debt (an honoured minimum beyond the cores) and this
    /// scheduler holds more than its minimum, it raises its own request;
    /// ``giveCoreBackIfAsked()`` then decides under the registry lock (and
    /// clears the request when nothing is owed). Seen once in CI under
    /// load: a scheduler kept 2 cores above its fair share of 1 while
    /// another's minimum of 2 held the machine in debt, and no request
    /// ever came (`ResourceManagerTests.testMinimumsAreHonoured`).
    @inline(__always)
    func checkCoreRequest() -> Bool {
        if coreRequested { return true }
        guard holdsCore else { return false }
        let c = scheduler.cores
        debtLooks &+= 1
        if debtLooks & 63 == 0 && c.aboveMinimumWhileInDebt {
            c.giveBack.store(true, ordering: .relaxed)
            return true
        }
        return false
    }

    /// Gives this VP's core back if its scheduler still owes one and this VP
    /// holds nothing only it can run: no runnable context (they wait for
    /// their VP unless stranded for a watch interval) and no I/O on its ring
    /// (only it reaps that). Items in its deque stay there: the scheduler's
    /// other VPs steal them.
    func giveCoreBackIfAsked() {
        guard coreRequested, !runQueue.hasRunnable, (ring?.inFlight ?? 0) == 0, !(ring?.hasCompletions ?? false),
              scheduler.cores.manager.shouldGiveBack(scheduler.cores) else { return }
        releaseCore()
    }
}
