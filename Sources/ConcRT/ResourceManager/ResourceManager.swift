import CSupport
import Synchronization
import UMS

/// The Resource Manager: one per process (or one per group of schedulers
/// built with their own), through which schedulers share the machine's
/// cores. [concurrency::IResourceManager, CreateResourceManager]
///
/// | ConcRT                                   | here |
/// |------------------------------------------|------|
/// | `CreateResourceManager()`                | ``shared`` |
/// | `IResourceManager::GetAvailableNodeCount` / `GetProcessorCount` | ``coreCount`` |
/// | `IResourceManager::RegisterScheduler`    | done by `Scheduler.init` |
/// | `ISchedulerProxy::RequestInitialVirtualProcessors` | the first core a VP takes |
/// | dynamic RM: `IVirtualProcessorRoot::Remove` (core migration) | a give-back between tasks |
/// | `ISchedulerProxy::Shutdown`              | done by `Scheduler.shutdown` |
///
/// # The protocol (core tokens)
///
/// The capacity is the manager's cores, counted in units (``unitsPerCore``
/// per core; a VP of a scheduler with oversubscription factor `f` costs
/// `1/f` core). A
/// regular virtual processor **holds a core while it is awake** and holds
/// none while it sleeps (temporary oversubscription VPs hold none: they
/// exist to exceed the scheduler's concurrency for a blocking call).
///
/// - **Take** (`tryTake`): a VP that wakes for work, or starts, takes
///   `cost` units from ``freeUnits`` with a CAS. While any VP waits for a
///   core (``waitingVPs`` > 0), a scheduler already at or above its fair
///   share (FairShare.swift) may not take one from a waiting scheduler that
///   is below its share. A scheduler never takes more than its VPs can use.
/// - **Minimums**: a scheduler below its `minConcurrency` takes a core even
///   when none is free, but only while the minimums of the schedulers that
///   want cores now add up to more than the machine (then ``freeUnits``
///   goes below zero: the one oversubscription the manager allows, as
///   ConcRT honours MinConcurrency). Otherwise the minimum is reached by a
///   reclaim, like any share, and no more than the machine's cores run.
/// - **Release**: a VP about to sleep (its re-check found no work) gives its
///   units back, then, if any VP waits, wakes the waiting scheduler that is
///   furthest below its share.
/// - **Wait**: a VP that found work but could not take a core stays in its
///   idle sleep as a *core waiter*. After registering on its scheduler's
///   futex (the idle protocol's step 1) it counts itself in ``waitingVPs``
///   and tries again; if that fails it sleeps on the futex.
/// - **Reclaim**: a waiter whose scheduler is below its share while no core
///   is free asks the scheduler furthest above its share to give one back
///   (`giveBack` flag). That scheduler's VPs look at the flag between tasks
///   (when their local deque is empty) and one gives its core back if its
///   scheduler is still above its share while somebody below waits. It
///   then goes to sleep like any idle VP; its own re-take is refused by the
///   fairness rule while the other scheduler waits.
///
/// **Why no core waiter is stranded while a core is free (model
/// `Tests/Models/coretoken.pml`).** Release is `freeUnits += cost`
/// (seq_cst RMW) then `load(waitingVPs)`; a waiter does
/// `waitingVPs += 1` (seq_cst RMW) then `load(freeUnits)`, after it
/// registered on its futex. In the single total order of these seq_cst
/// operations one load comes after the other side's RMW: either the waiter
/// sees the free units (and takes them, or is refused only because a
/// scheduler below its share waits, which the releaser wakes), or the
/// releaser sees the waiter and notifies its scheduler's futex, which ends
/// the waiter's sleep (the completion list's rule: a notify after
/// registration ends the wait). A waiter also retries every
/// ``coreWaitRetryNanoseconds``: the fair-share choice of whom to wake is
/// made from counters that move while it is made, and a woken waiter whose
/// work was taken by others meanwhile does not take the core.
///
/// **Bounds.** A give-back happens between tasks, so a scheduler that needs
/// its share back waits at most one task of the other scheduler (as in
/// ConcRT, whose virtual processors are removed cooperatively). A core
/// that goes idle moves within one idle-protocol spin window plus one futex
/// wake-up (`ums-bench rm`).
///
/// **Locks.** The registry lock is taken on slow paths only: registering,
/// fair-share decisions while VPs wait, reclaim, the wake that follows a
/// release while VPs wait, and a take beyond the machine for an honoured
/// minimum when several schedulers are registered (a lone oversubscribed
/// scheduler, whose own minimum exceeds the machine, takes no lock). Take
/// and release with no waiter are two atomic read-modify-writes and a few
/// loads each, on the idle sleep's futex path only; nothing here is on the
/// spawn, pop, steal, block or unblock paths (a VP's give-back check is one
/// relaxed load between tasks).
public final class ResourceManager: @unchecked Sendable {
    // @unchecked Sendable: atomics, plus the registry under its mutex.

    /// The process's Resource Manager: every scheduler built without one of
    /// its own registers here. Its core count is
    /// ``SchedulerPolicy/availableConcurrency`` (affinity mask and cgroup
    /// quota) when first used. [CreateResourceManager]
    public static let shared = ResourceManager(validatedCoreCount: SchedulerPolicy.availableConcurrency)

    /// Units per core (a VP costs `unitsPerCore / oversubscriptionFactor`).
    public static let unitsPerCore = 1 << 20

    /// A core waiter retries at least this often (see the protocol above).
    static let coreWaitRetryNanoseconds: Int64 = 2_000_000

    /// Cores shared between the schedulers registered here.
    /// [IResourceManager::GetProcessorCount]
    public let coreCount: Int

    /// Units not held by any VP (capacity − Σ held). seq_cst: the release
    /// half of the store-load pair with ``waitingVPs``.
    let freeUnits = Atomic<Int>(0)
    /// VPs waiting for a core, over every scheduler. seq_cst: the waiter
    /// half of the pair.
    let waitingVPs = Atomic<Int>(0)
    /// Registered schedulers' allotments, in registration order.
    private let registry = MigrationSafeMutex<[CoreAllotment]>([])
    /// Registered schedulers (relaxed: a hint that lets a lone scheduler
    /// skip the registry lock on its honoured-minimum path).
    private let registered = Atomic<Int>(0)
    /// The cores in units.
    let capacity: Int
    private let nextID = Atomic<Int>(1)

    /// A Resource Manager of its own for a group of schedulers that share
    /// `coreCount` cores between them (and not with the schedulers of
    /// ``shared``). Pass it to `Scheduler(policy:resourceManager:)`.
    /// - Throws: ``ConcRTError/invalidPolicy(_:)`` unless `coreCount` is in
    ///   1...1024.
    public convenience init(coreCount: Int) throws(ConcRTError) {
        guard coreCount >= 1 && coreCount <= 1024 else {
            throw .invalidPolicy("ResourceManager coreCount must be in 1...1024 (got \(coreCount))")
        }
        self.init(validatedCoreCount: coreCount)
    }

    private init(validatedCoreCount n: Int) {
        coreCount = max(1, n)
        capacity = coreCount * Self.unitsPerCore
        freeUnits.store(capacity, ordering: .sequentiallyConsistent)
    }

    // MARK: Registration

    /// Registers a scheduler with `vpCount` regular VPs.
    func register(policy: SchedulerPolicy, vpCount: Int, idle: IdleProtocol) -> CoreAllotment {
        let cost = Self.unitsPerCore / policy.targetOversubscriptionFactor
        let a = CoreAllotment(id: nextID.wrappingAdd(1, ordering: .relaxed).oldValue,
                              minimum: policy.minConcurrency * Self.unitsPerCore,
                              limit: vpCount * cost, cost: cost, manager: self, idle: idle)
        registry.withLock { $0.append(a) }
        registered.wrappingAdd(1, ordering: .relaxed)
        return a
    }

    /// Removes a scheduler whose VPs have all left (they released their
    /// cores), and wakes waiters elsewhere for what it frees.
    func unregister(_ a: CoreAllotment) {
        precondition(a.held.load(ordering: .acquiring) == 0,
                     "ResourceManager.unregister: scheduler still holds \(a.held.load(ordering: .relaxed)) units")
        registry.withLock { $0.removeAll { $0 === a } }
        registered.wrappingSubtract(1, ordering: .relaxed)
        wakeWaiter(excluding: nil)
    }

    // MARK: Take, release, wait (called by VPs: VirtualProcessor/CoreTokens.swift)

    /// Takes one VP's core for `a`, or returns false (see the type's doc).
    func tryTake(_ a: CoreAllotment) -> Bool {
        let c = a.cost
        while true {
            let f = freeUnits.load(ordering: .sequentiallyConsistent)
            let held = a.held.load(ordering: .relaxed)
            if held + c > a.limit { return false }
            if f < c {
                // An honoured minimum beyond the machine (see the type's doc).
                guard held + c <= a.roundedMinimum, minimumsExceedCapacity(requester: a) else { return false }
                freeUnits.wrappingSubtract(c, ordering: .sequentiallyConsistent)
                a.held.wrappingAdd(c, ordering: .relaxed)
                requestReclaim(for: a, debt: true)   // others above their share pay it back
                return true
            }
            if waitingVPs.load(ordering: .sequentiallyConsistent) > 0, !mayTakeWhileOthersWait(a) { return false }
            if freeUnits.compareExchange(expected: f, desired: f - c, ordering: .sequentiallyConsistent).exchanged {
                // seq_cst, then the seq_cst load below: of this take and an
                // honoured minimum's debt take between the CAS and this add
                // (whose reclaim read `held` without this unit), one sees
                // the other, so the debt is always asked back.
                a.held.wrappingAdd(c, ordering: .sequentiallyConsistent)
                if freeUnits.load(ordering: .sequentiallyConsistent) < 0 { requestReclaim(for: a, debt: true, includingSelf: true) }
                return true
            }
        }
    }

    /// Gives one VP's core back, and wakes a waiter if any.
    func release(_ a: CoreAllotment) {
        let old = a.held.wrappingSubtract(a.cost, ordering: .relaxed).oldValue
        assert(old >= a.cost, "ResourceManager.release: scheduler \(a.id) released a core it did not hold (held \(old))")
        freeUnits.wrappingAdd(a.cost, ordering: .sequentiallyConsistent)
        if waitingVPs.load(ordering: .sequentiallyConsistent) > 0 { wakeWaiter(excluding: nil) }
    }

    /// After registering on its futex: count the VP as a waiter and try
    /// once more. True: it took a core (and is no longer a waiter). False:
    /// it waits (call ``endWait(_:)`` when it wakes); a reclaim has been
    /// asked for if its scheduler is below its share.
    func beginWait(_ a: CoreAllotment) -> Bool {
        a.waiting.wrappingAdd(1, ordering: .sequentiallyConsistent)
        waitingVPs.wrappingAdd(1, ordering: .sequentiallyConsistent)
        if tryTake(a) { endWait(a); return true }
        a.waits.wrappingAdd(1, ordering: .relaxed)
        requestReclaim(for: a)
        return false
    }

    /// A waiter tries again (after a wake or its retry timeout): takes a
    /// core, or asks for a reclaim again (an earlier request may have been
    /// judged unneeded by a VP that saw the counters at another moment).
    func retryWait(_ a: CoreAllotment) -> Bool {
        if tryTake(a) { return true }
        requestReclaim(for: a)
        return false
    }

    func endWait(_ a: CoreAllotment) {
        waitingVPs.wrappingSubtract(1, ordering: .sequentiallyConsistent)
        a.waiting.wrappingSubtract(1, ordering: .sequentiallyConsistent)
    }

    /// A waiter whose work went away stops waiting. A release may have
    /// chosen to wake it (its scheduler was the furthest below its share):
    /// pass that wake-up on to another waiting scheduler while a core is
    /// free, or it would wait for its retry.
    func abandonWait(_ a: CoreAllotment) {
        endWait(a)
        if waitingVPs.load(ordering: .sequentiallyConsistent) > 0
            && freeUnits.load(ordering: .sequentiallyConsistent) > 0 {
            wakeWaiter(excluding: a)
        }
    }

    /// Called by a VP of `a` holding a core, with no local work, that saw
    /// `a.giveBack`: true when it should give its core back now (its
    /// scheduler is above its share while one below waits, or while an
    /// honoured minimum has the machine oversubscribed). Clears the
    /// request unless more cores should come back.
    func shouldGiveBack(_ a: CoreAllotment) -> Bool {
        registry.withLock { r in
            let shares = self.shares(r)
            guard let i = r.firstIndex(where: { $0 === a }) else { return false }
            let held = a.held.load(ordering: .relaxed)
            let owed = self.freeUnits.load(ordering: .sequentiallyConsistent) < 0
                || self.someoneBelowShareWaits(r, shares, except: a)
            let needed = held > shares[i] && owed
            a.giveBack.store(needed && held - a.cost > shares[i], ordering: .relaxed)
            if needed { a.givenBack.wrappingAdd(1, ordering: .relaxed) }
            return needed
        }
    }

    // MARK: Slow paths (under the registry lock)

    /// Fair shares now; `requester` counts as wanting a core even before
    /// it holds one or waits.
    private func shares(_ r: [CoreAllotment], requester: CoreAllotment? = nil) -> [Int] {
        FairShare.shares(capacity: capacity, r.map { $0.claim(requesting: $0 === requester) })
    }

    private func someoneBelowShareWaits(_ r: [CoreAllotment], _ shares: [Int],
                                        except a: CoreAllotment) -> Bool {
        for (i, b) in r.enumerated() where b !== a {
            if b.waiting.load(ordering: .sequentiallyConsistent) > 0
                && b.held.load(ordering: .relaxed) + b.cost <= shares[i] { return true }
        }
        return false
    }

    /// True when the minimums of the schedulers that want cores now (and
    /// `requester`) add up to more than the capacity.
    private func minimumsExceedCapacity(requester a: CoreAllotment) -> Bool {
        // Its own minimum alone exceeds the machine (an oversubscribed
        // policy, e.g. 64 VPs on 2 cores): no need to look at the others.
        if a.roundedMinimum > capacity { return true }
        return registry.withLock { r in
            var sum = 0
            for b in r where b === a || b.claim(requesting: false).active { sum += b.roundedMinimum }
            return sum > capacity
        }
    }

    /// While VPs wait: `a` may take a core if it stays within its share, or
    /// if no scheduler below its share waits.
    private func mayTakeWhileOthersWait(_ a: CoreAllotment) -> Bool {
        registry.withLock { r in
            let shares = self.shares(r, requester: a)
            guard let i = r.firstIndex(where: { $0 === a }) else { return true }
            if a.held.load(ordering: .relaxed) + a.cost <= shares[i] { return true }
            return !self.someoneBelowShareWaits(r, shares, except: a)
        }
    }

    /// A waiter of `a`, below its share with no core free (or `a` just
    /// took a minimum's core beyond the machine: `debt`): flag the
    /// scheduler furthest above its share.
    /// `includingSelf`: `a` itself may be the one furthest above its share
    /// (it took a core just as a minimum went into debt).
    private func requestReclaim(for a: CoreAllotment, debt: Bool = false, includingSelf: Bool = false) {
        if registered.load(ordering: .relaxed) <= 1 { return }   // nobody to ask
        registry.withLock { r in
            let shares = self.shares(r, requester: a)
            guard let i = r.firstIndex(where: { $0 === a }),
                  debt || a.held.load(ordering: .relaxed) + a.cost <= shares[i] else { return }
            var victim: CoreAllotment?
            var most = 0
            for (j, b) in r.enumerated() where b !== a || includingSelf {
                // seq_cst: see tryTake's add.
                let excess = b.held.load(ordering: .sequentiallyConsistent) - shares[j]
                if excess > most { most = excess; victim = b }
            }
            victim?.giveBack.store(true, ordering: .relaxed)
        }
    }

    /// Wakes the waiting scheduler furthest below its share (any waiting
    /// one if none is below).
    private func wakeWaiter(excluding: CoreAllotment?) {
        let target: CoreAllotment? = registry.withLock { r in
            let shares = self.shares(r)
            var best: CoreAllotment?
            var bestDeficit = Int.min
            for (i, b) in r.enumerated() where b !== excluding && b.waiting.load(ordering: .sequentiallyConsistent) > 0 {
                let deficit = shares[i] - b.held.load(ordering: .relaxed)
                if deficit > bestDeficit { bestDeficit = deficit; best = b }
            }
            return best
        }
        target?.wakeOne()
    }

    // MARK: Observation

    /// One scheduler's allocation at the moment of the snapshot.
    public struct Allocation: Sendable, Equatable {
        /// The scheduler's registration number (``Scheduler/resourceManagerID``).
        public var schedulerID: Int
        /// Cores its awake VPs hold (fractional with oversubscription).
        public var cores: Double
        /// Its fair share now, in cores (0 while it wants none).
        public var fairShare: Double
        /// Its VPs waiting for a core now.
        public var waitingVirtualProcessors: Int
        /// Cores it gave back to another scheduler so far.
        public var coresGivenBack: Int
        /// Times one of its VPs had to wait for a core so far.
        public var coreWaits: Int
    }

    /// Every registered scheduler's allocation (a snapshot of moving
    /// counters: each value is exact, their sum is not one instant's).
    public func allocations() -> [Allocation] {
        registry.withLock { r in
            let shares = self.shares(r)
            let u = Double(Self.unitsPerCore)
            return r.enumerated().map { i, a in
                Allocation(schedulerID: a.id, cores: Double(a.held.load(ordering: .relaxed)) / u,
                           fairShare: Double(shares[i]) / u,
                           waitingVirtualProcessors: a.waiting.load(ordering: .relaxed),
                           coresGivenBack: a.givenBack.load(ordering: .relaxed),
                           coreWaits: a.waits.load(ordering: .relaxed))
            }
        }
    }

    /// Cores not held by any VP now (below zero while minimums that exceed
    /// the machine are honoured).
    public var freeCores: Double { Double(freeUnits.load(ordering: .relaxed)) / Double(Self.unitsPerCore) }
}
