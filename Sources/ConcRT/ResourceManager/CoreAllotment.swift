import Synchronization

/// One scheduler's account with its Resource Manager: what it may claim and
/// what its VPs hold now (protocol: ResourceManager.swift).
///
/// Orderings:
/// - `held` (units its awake VPs hold): relaxed. It is an account, not a
///   synchronizer: the free pool's seq_cst RMW decides who gets a core, and
///   `held` only feeds the fair-share choices on the slow paths (which are
///   made again on every retry).
/// - `waiting` (its VPs waiting for a core): seq_cst, like the manager's
///   total (`waitingVPs`): a releaser's wake choice reads it after its
///   release RMW.
/// - `giveBack` (a reclaim request): relaxed. It is a hint that a VP reads
///   between tasks; the decision to give back is re-made under the
///   registry lock.
/// - `givenBack`, `waits`: relaxed statistics.
final class CoreAllotment: @unchecked Sendable {
    // @unchecked Sendable: atomics and immutable fields; `idle` is owned by
    // the scheduler, which unregisters before it goes away.
    let id: Int
    let minimum: Int
    let limit: Int
    let cost: Int
    let manager: ResourceManager
    private unowned(unsafe) let idle: IdleProtocol

    let held = Atomic<Int>(0)
    let waiting = Atomic<Int>(0)
    let giveBack = Atomic<Bool>(false)
    let givenBack = Atomic<Int>(0)
    let waits = Atomic<Int>(0)

    init(id: Int, minimum: Int, limit: Int, cost: Int, manager: ResourceManager, idle: IdleProtocol) {
        precondition(cost > 0 && limit >= cost, "CoreAllotment: cost \(cost) and limit \(limit) make no VP")
        self.id = id
        self.minimum = minimum
        self.limit = limit
        self.cost = cost
        self.manager = manager
        self.idle = idle
    }

    /// The minimum rounded up to whole VPs and capped at the limit: what the
    /// capacity must hold for this scheduler.
    /// The machine is oversubscribed (the free pool is in debt) and this
    /// scheduler holds more than its minimum: a reclaim request may have
    /// been missed (the debt-taker's request chose its victim from `held`
    /// counts read before this scheduler's last take counted), so its VPs
    /// look for themselves now and then (``VirtualProcessor/checkCoreRequest()``).
    /// Two relaxed loads: a hint; the decision is re-made under the lock.
    var aboveMinimumWhileInDebt: Bool {
        held.load(ordering: .relaxed) > roundedMinimum && manager.freeUnits.load(ordering: .relaxed) < 0
    }

    var roundedMinimum: Int { min((minimum + cost - 1) / cost * cost, limit) }

    /// This scheduler's claim for the fair-share rule.
    func claim(requesting: Bool) -> FairShare.Claim {
        FairShare.Claim(minimum: minimum, limit: limit, cost: cost,
                        active: requesting || held.load(ordering: .relaxed) > 0
                            || waiting.load(ordering: .sequentiallyConsistent) > 0)
    }

    /// Wakes one of this scheduler's sleeping VPs (a core waiter retries).
    func wakeOne() { idle.notifyWork(force: true) }
}
