import Synchronization
import UMS

/// Runtime block protocol (the `blockState` word), used by locks, timed
/// and multiple waits, joins, and underneath the public ``block()`` /
/// ``unblock()`` pair (which keeps its own word, `userBlock`, so the two
/// never take each other's wake-ups):
///
///     running ──block──▶ blocking ──commit──▶ blocked ──unblock──▶ running (queued)
///        │                  │
///        └─unblock─▶ unblockedEarly (the next block returns at once)
///                           └─unblock─▶ unblockedWhileBlocking (the committer requeues it)
///
/// A block only announces (CAS running→blocking) and switches out; the
/// commit (CAS blocking→blocked) is made after the switch has saved the
/// context, by the primary or, after a directed switch, by the context
/// switched to (see VirtualProcessor). An unblock that lands before the
/// commit turns the state into `unblockedWhileBlocking` and the committer
/// requeues the context itself; one that lands after finds `blocked` and
/// queues it. Either way nobody resumes a context whose registers are still
/// being saved, and no wake-up is lost. Every transition is an
/// acquire-release CAS.
///
/// Every runtime unblock is paired with exactly one runtime block (a
/// waker claims its waiter once; ``unblock()`` unblocks only a context
/// that announced its ``block()``), so `unblockedEarly` is always taken by
/// the block it belongs to.
extension Context {
    /// The runtime block word (see the file doc). Stored atomically as its
    /// raw value; every switch over it is exhaustive.
    enum BlockState: UInt8, AtomicRepresentable, CustomStringConvertible {
        case running, blocking, blocked, unblockedEarly, unblockedWhileBlocking
        var description: String {
            switch self {
            case .running: "running"
            case .blocking: "blocking"
            case .blocked: "blocked"
            case .unblockedEarly: "unblockedEarly"
            case .unblockedWhileBlocking: "unblockedWhileBlocking"
            }
        }
    }

    /// The public block()/unblock() pairing word (see the file doc).
    enum UserBlock: UInt8, AtomicRepresentable {
        case none, permit, waiting
    }

    /// Blocks the calling context until ``unblock()``. An unblock that came
    /// first makes this return at once. [Context::Block]
    public static func block() throws(ConcRTError) {
        guard let c = currentInternal else { throw .notOnContext }
        // An unblock that came first: consume it.
        if c.userBlock.compareExchange(expected: .permit, desired: .none,
                                       ordering: .acquiringAndReleasing).exchanged { return }
        // Announce the wait; from now on an unblock wakes us through the
        // runtime block below (its own word keeps an unblock that lands
        // before blockInternal switches out).
        let (announced, seen) = c.userBlock.compareExchange(expected: .none, desired: .waiting,
                                                           ordering: .acquiringAndReleasing)
        if !announced {
            // Only an unblock (none -> permit) can have come in between;
            // only this context moves permit -> none.
            precondition(seen == .permit, "Context.block: context \(c.id) in user block state \(seen), not permit")
            c.userBlock.store(.none, ordering: .releasing)
            return
        }
        c.blockInternal(.block)
    }

    /// Makes a context blocked in ``block()`` runnable. May come before the
    /// matching ``block()``: then that one returns at once. [Context::Unblock]
    ///
    /// It pairs only with ``block()``: it never wakes a context waiting in an
    /// ``Event``, a lock or a join (that context takes the unblock with it
    /// as a permit for its next ``block()``), and those waits never consume
    /// it.
    /// - Throws: ``ConcRTError/selfUnblock``; ``ConcRTError/unbalancedUnblock``
    ///   when an unblock is already pending.
    public func unblock() throws(ConcRTError) {
        if Context.currentInternal === self { throw .selfUnblock }
        while true {
            let s = userBlock.load(ordering: .acquiring)
            switch s {
            case .none:
                if userBlock.compareExchange(expected: s, desired: .permit,
                                             ordering: .acquiringAndReleasing).exchanged { return }
            case .waiting:
                if userBlock.compareExchange(expected: s, desired: .none,
                                             ordering: .acquiringAndReleasing).exchanged {
                    // The context committed to exactly one blockInternal().
                    unblockInternal()
                    return
                }
            case .permit:
                throw .unbalancedUnblock
            }
        }
    }

    /// `code` and `object`: what the context waits on, for snapshots
    /// (Reflection/ContextActivity.swift).
    func blockInternal(_ code: WaitReason.Code = .unknown, _ object: AnyObject? = nil) {
        noteRuntimeEntry()
        while true {
            let s = blockState.load(ordering: .acquiring)
            if s == .unblockedEarly {
                if blockState.compareExchange(expected: s, desired: .running,
                                              ordering: .acquiringAndReleasing).exchanged { return }
                continue
            }
            precondition(s == .running, "Context.blockInternal: context \(id) blocks in state \(s), not running")
            if blockState.compareExchange(expected: s, desired: .blocking,
                                          ordering: .acquiringAndReleasing).exchanged { break }
        }
        withVP { v in
            v.stats.blocks.ownerIncrement()
            v.trace(.block, id)
        }
        noteWait(code, object)
        Context.suspend(Unmanaged.passUnretained(self), .block)
    }

    /// For runtime-internal wakers (latches, locks, multiple waits) and
    /// ``unblock()``: an unbalanced unblock here is a runtime bug, so it
    /// traps with the reason.
    /// `wakeIdle`: also wake an idle VP for it (a join continuation: it
    /// usually heads a large part of the remaining work).
    /// `onto`: called on that VP's primary (a timer firing): the context
    /// is queued there, with no wake-up.
    func unblockInternal(wakeIdle: Bool = false, onto vp: VirtualProcessor? = nil) {
        do {
            try unblockChecked(wakeIdle: wakeIdle, onto: vp)
        } catch {
            preconditionFailure("ConcRT: context \(id) was unblocked twice for one block (runtime bug: a waiter "
                                + "of an event, lock or join was released twice)")
        }
    }

    private func unblockChecked(wakeIdle: Bool = false, onto vp: VirtualProcessor? = nil) throws(ConcRTError) {
        while true {
            let s = blockState.load(ordering: .acquiring)
            switch s {
            case .running:
                if blockState.compareExchange(expected: s, desired: .unblockedEarly,
                                              ordering: .acquiringAndReleasing).exchanged { return }
            case .blocking:
                if blockState.compareExchange(expected: s, desired: .unblockedWhileBlocking,
                                              ordering: .acquiringAndReleasing).exchanged { return }
            case .blocked:
                if blockState.compareExchange(expected: s, desired: .running,
                                              ordering: .acquiringAndReleasing).exchanged {
                    if Scheduler.tracesRunning.load(ordering: .relaxed) > 0 { Context.traceUnblock(Unmanaged.passUnretained(self)) }
                    if let vp {
                        vp.pushRunnable(Unmanaged.passUnretained(self), front: false)
                    } else {
                        Scheduler.makeRunnable(Unmanaged.passUnretained(self), wakeIdle: wakeIdle)
                    }
                    return
                }
            case .unblockedEarly, .unblockedWhileBlocking:
                throw .unbalancedUnblock
            }
        }
    }

    /// Primary side, after the context switched out with `.block`.
    /// Returns true when it must be requeued (an unblock raced the block).
    func commitBlock() -> Bool {
        let (committed, seen) = blockState.compareExchange(expected: .blocking, desired: .blocked,
                                                            ordering: .acquiringAndReleasing)
        if committed { return false }
        precondition(seen == .unblockedWhileBlocking,
                     "Context.commitBlock: context \(id) in state \(seen), not blocking or unblockedWhileBlocking")
        blockState.store(.running, ordering: .releasing)
        return true
    }
}
