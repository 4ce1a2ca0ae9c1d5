import Synchronization
import UMS

/// A virtual processor's queue of runnable contexts: one `runnext` slot
/// ahead of a ring. [the runnables of a ConcRT virtual processor]
///
/// Two sides, as tokio's `Local` / `Steal`:
/// - **Owner side** (the pthread running this VP's primary or one of its
///   contexts): ``push(_:front:)``, ``pop()``, ``popRing()``,
///   ``takeRunnext()``.
/// - **Thief side** (any other VP, and pthreads outside the scheduler for
///   ``push(_:front:)`` with `front: false`): ``steal()``, ``hasRunnable``.
///
/// `runnext` holds one context woken by the context running on this VP
/// (like Go's `runnext` and tokio's LIFO slot): the waker usually blocks
/// next, and this VP then runs the woken one at once, often by a directed
/// switch. It is one atomic word (the bits of an unretained Context, 0
/// when empty): the owner takes it with an exchange, thieves with a CAS.
/// Every RMW on it is sequentially consistent: the push's exchange is the
/// store half of the idle protocol's store-load pair (see
/// `Idle/README.md`: a pusher then reads the sleeper counts; a sleeper
/// announces itself, then reads `runnext`).
///
/// The ring holds the other runnable contexts under a mutex; `count`
/// mirrors its size (written only under the mutex, so the invariant
/// `ring.count == count` holds there and is asserted in debug builds) and
/// lets readers skip the lock when it is empty. Contexts are held
/// unretained: every live context is kept alive by its thread's user
/// context (+1 until it terminates), and a queued context cannot
/// terminate.
final class RunQueue: @unchecked Sendable {
    // @unchecked Sendable: `runnext` and `count` are atomics; `ring` is
    // under its mutex.
    private let runnext = Atomic<UInt>(0)
    private let ring = MigrationSafeMutex<Ring<Unmanaged<Context>>>(Ring())
    /// Contexts in the ring (not counting `runnext`).
    private let count = Atomic<Int>(0)

    init() {}

    // MARK: Owner side

    /// Queues a runnable context. `front`: it was woken by the context
    /// running on this VP, so it goes to `runnext` (the previous occupant,
    /// if any, to the front of the ring); otherwise to the back of the
    /// ring. Returns true when it went to `runnext` (the caller then owes
    /// the idle protocol its `runnextPushed` check).
    @inline(__always)
    @discardableResult
    func push(_ c: Unmanaged<Context>, front: Bool) -> Bool {
        if front {
            let bits = UInt(bitPattern: c.toOpaque())
            // seq_cst: publishes the context's saved state to whoever takes
            // it (acquire side of their exchange/CAS), takes over an evicted
            // one, and is the store half of the idle protocol's pair.
            let old = runnext.exchange(bits, ordering: .sequentiallyConsistent)
            if old == 0 { return true }
            pushRing(Self.unmanaged(old), front: true)
            return true
        }
        pushRing(c, front: false)
        return false
    }

    private func pushRing(_ c: Unmanaged<Context>, front: Bool) {
        ring.withLock { r in
            if front { r.pushFront(c) } else { r.pushBack(c) }
            // Release (under the lock, which also orders it): a reader that
            // sees the count and takes the lock finds the context.
            count.store(r.count, ordering: .releasing)
        }
    }

    /// Takes the next runnable context: `runnext` first, then the ring's
    /// front. `fromRunnext` tells the caller's fairness accounting which.
    @inline(__always)
    func pop() -> (context: Unmanaged<Context>, fromRunnext: Bool)? {
        if let c = takeRunnext() { return (c, true) }
        return popRing().map { ($0, false) }
    }

    /// Takes `runnext`, if set.
    @inline(__always)
    func takeRunnext() -> Unmanaged<Context>? {
        if runnext.load(ordering: .relaxed) == 0 { return nil }
        let x = runnext.exchange(0, ordering: .sequentiallyConsistent)
        return x == 0 ? nil : Self.unmanaged(x)
    }

    /// Takes the ring's front, if any.
    func popRing() -> Unmanaged<Context>? {
        // Acquire: pairs with the release store under the pusher's lock.
        if count.load(ordering: .acquiring) == 0 { return nil }
        return ring.withLock { r in
            let c = r.popFront()
            count.store(r.count, ordering: .releasing)
            return c
        }
    }

    // MARK: Thief side

    /// A thief's take: the back of the ring (the context queued longest
    /// ago from the owner's point of view is at the front; the back is the
    /// one the owner would reach last), else `runnext`.
    func steal() -> Unmanaged<Context>? {
        if count.load(ordering: .acquiring) > 0 {
            let c: Unmanaged<Context>? = ring.withLock { r in
                let c = r.popBack()
                count.store(r.count, ordering: .releasing)
                return c
            }
            if let c { return c }
        }
        let x = runnext.load(ordering: .relaxed)
        if x != 0, runnext.compareExchange(expected: x, desired: 0, ordering: .sequentiallyConsistent).exchanged {
            return Self.unmanaged(x)
        }
        return nil
    }

    /// True when a runnable context is queued here. A snapshot, read with
    /// seq_cst: the load half of the idle protocol's store-load pair.
    @inline(__always)
    var hasRunnable: Bool {
        runnext.load(ordering: .sequentiallyConsistent) != 0 || count.load(ordering: .sequentiallyConsistent) > 0
    }

    /// Contexts queued now, `runnext` included (a snapshot).
    var approximateCount: Int {
        (runnext.load(ordering: .relaxed) != 0 ? 1 : 0) + count.load(ordering: .relaxed)
    }

    /// Debug check, for `assert(runQueue.invariantsHold())` (compiled out
    /// of release builds): the ring's size equals the published count.
    func invariantsHold(_ function: StaticString = #function) -> Bool {
        ring.withLock { r in
            let c = count.load(ordering: .relaxed)
            precondition(r.count == c, "RunQueue (from \(function)): ring holds \(r.count) contexts, count says \(c)")
            return true
        }
    }

    @inline(__always)
    private static func unmanaged(_ bits: UInt) -> Unmanaged<Context> {
        // Why this is sound: the bits were made from a live Context by
        // `push`, and a queued context cannot terminate (its thread's user
        // context keeps it alive).
        Unmanaged.fromOpaque(UnsafeRawPointer(bitPattern: bits).unsafelyUnwrapped)
    }
}
