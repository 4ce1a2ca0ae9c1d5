import UMS

/// Idle contexts shared by a scheduler's virtual processors, behind each
/// VP's own cache. [ConcRT's scheduler-wide free context pool]
///
/// Contexts migrate: a joiner whose fork was stolen blocks on one VP and is
/// resumed on the thief's (its `runnext`), so under fork/join the idle
/// contexts pile up on some VPs while others have none. Without this pool
/// a VP whose cache was full ended its spare contexts (a kernel thread
/// each) while another VP created new ones (a thread, a stack: 30-70 µs,
/// seen four times per `ums-bench fib` run on the joiner's critical path).
/// Now a full local cache passes a context here, and a VP with an empty
/// cache takes one from here before it creates one.
///
/// Protocol: a lock (taken only when a local cache overflows or runs dry,
/// never per task). Every context is put here by a VP before that VP
/// leaves, and every VP that leaves at shutdown drains the pool
/// (``drainAtShutdown()``), so the last VP to leave finds every context
/// that was put here and ends it: none outlives the scheduler.
final class SpareContexts: @unchecked Sendable {
    // @unchecked Sendable: the array is only touched under `lock`.
    private let lock = MigrationSafeMutex<[Context]>([])
    /// Most contexts kept (the rest are ended by the VP that had them).
    let capacity: Int

    init(capacity: Int) {
        precondition(capacity >= 0, "SpareContexts: capacity must be >= 0 (got \(capacity))")
        self.capacity = capacity
    }

    /// Keeps `c` (an idle context no VP runs) unless the pool is full;
    /// false: the caller ends it.
    func put(_ c: Context) -> Bool {
        if capacity == 0 { return false }
        return lock.withLock { spare in
            guard spare.count < capacity else { return false }
            spare.append(c)
            return true
        }
    }

    /// An idle context from the pool, or nil.
    func take() -> Context? {
        if capacity == 0 { return nil }
        return lock.withLock { $0.popLast() }
    }

    /// Everything in the pool (for a VP that leaves at shutdown, which ends them).
    func drainAtShutdown() -> [Context] {
        lock.withLock { spare in
            let all = spare
            spare.removeAll()
            return all
        }
    }

    var count: Int { lock.withLock { $0.count } }
}
