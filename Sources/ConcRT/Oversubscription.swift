import CSupport
import Synchronization
import UMS
#if canImport(Glibc)
import Glibc
#endif

/// Oversubscription: temporary virtual processors.
/// [Context::Oversubscribe]
///
/// A context about to hold its VP for a long call that the runtime cannot
/// see (a blocking call not made through ``Blocking``) asks for a temporary
/// VP for the length of that call, so the scheduler keeps its concurrency.
/// Temporary VPs live in `Scheduler.temporarySlots` slots after the regular
/// ones. A slot is taken under the scheduler's primary-thread lock, and
/// published to thieves (``Scheduler/activeVPCount`` grows, never shrinks)
/// before its primary starts, so anything left in a retired slot's deque is
/// still found by stealing. Retiring asks the VP to leave once its deque
/// and run queue are empty; its pthread is joined when the slot is reused
/// or at shutdown.
extension Scheduler {
    /// Starts a temporary VP in a free slot (one whose primary has left),
    /// on `carrier` (a parked spare) if given, else on a new pthread.
    func addTemporaryVirtualProcessor(carrier: PrimaryCarrier? = nil) throws(ConcRTError) -> VirtualProcessor {
        let slot: VirtualProcessor? = primaryThreads.withLock { _ in
            for vp in virtualProcessors[regularVPCount...] where !vp.slotInUse {
                vp.slotInUse = true
                vp.retiring.store(false, ordering: .releasing)
                return vp
            }
            return nil
        }
        guard let vp = slot else {
            if let carrier, !offerSpareCarrier(carrier) { carrier.stop() }
            throw .schedulerStartFailed("all \(Self.temporarySlots) oversubscription slots are in use")
        }
        if let old = vp.lastPrimary { pthread_join(old, nil); vp.lastPrimary = nil }
        // Publish the slot to thieves before it can hold work.
        while true {
            let n = activeVPCount.load(ordering: .acquiring)
            if vp.index < n { break }
            if activeVPCount.compareExchange(expected: n, desired: vp.index + 1, ordering: .acquiringAndReleasing).exchanged { break }
        }
        if let carrier {
            carrier.assign(vp)
            return vp
        }
        do {
            try startPrimary(vp)
        } catch {
            primaryThreads.withLock { _ in vp.slotInUse = false }
            throw error
        }
        return vp
    }

    /// Asks a temporary VP to leave once its deque is empty. Its slot is
    /// reused after its primary has left.
    func retireTemporaryVirtualProcessor(_ vp: VirtualProcessor) {
        vp.retiring.store(true, ordering: .releasing)
        idle.wakeAll()
    }

    /// Temporary VP slots whose primary has not left yet (tests, snapshots).
    var temporarySlotsInUse: Int {
        primaryThreads.withLock { _ in virtualProcessors[regularVPCount...].filter(\.slotInUse).count }
    }

    func temporaryVirtualProcessorLeft(_ vp: VirtualProcessor) {
        primaryThreads.withLock { tids in
            // Its pthread is joined when the slot is reused, or at shutdown.
            vp.slotInUse = false
        }
    }
}

extension Context {
    /// Adds (true) or removes (false) a temporary virtual processor for the
    /// length of a long call that holds this one, such as a blocking call
    /// not made through ``Blocking``. Nests. [Context::Oversubscribe]
    public static func oversubscribe(_ begin: Bool) throws(ConcRTError) {
        guard let c = currentInternal else { throw .notOnContext }
        if begin {
            c.oversubscription.append(try c.scheduler.addTemporaryVirtualProcessor())
        } else {
            guard let vp = c.oversubscription.popLast() else { throw .unbalancedOversubscription }
            c.scheduler.retireTemporaryVirtualProcessor(vp)
        }
    }
}
