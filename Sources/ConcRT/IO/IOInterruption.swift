import CSupport
import Synchronization
import UMS

/// Interrupting a context's ring call from any thread (a cancellation
/// token, a watchdog): the call ends with ECANCELED through an async
/// cancel on the ring that holds it.
///
/// Protocol. A ring call publishes its tag (`ioParkedTag`, seq_cst) and
/// then takes any pending interruption (`ioInterruptPending`, seq_cst
/// exchange) before it queues its operation. ``Context/interruptIO()``
/// sets `ioInterruptPending` (seq_cst) and then reads the tag (seq_cst).
/// In the single total order one of the two comes second: either the call
/// sees the pending flag (it does not park, and returns ECANCELED), or the
/// interrupter sees the tag and sends a cancel request for it to the VP
/// whose ring holds the operation. That VP takes its requests at the top of
/// its next pass and submits an async cancel per tag; a request that
/// arrives before the operation was submitted is queued behind it in the
/// same submission queue, so the kernel sees the operation first. Each
/// interrupter wakes every sleeping VP (the owner may be asleep in its
/// ring; interruptions are rare).
///
/// A tag carries the call's generation in its low bits, so a late request
/// for an earlier call finds nothing. An interruption that arrives after
/// the operation completed stays pending and ends the context's next ring
/// call: one interruption, one ECANCELED.
extension Context {
    /// Ends the ``Blocking`` call this context is parked in on its
    /// virtual processor's io_uring (or its next such call) with
    /// `BlockingError(errno: ECANCELED)`. Safe from any thread. Calls on
    /// the lazy kernel-entry path are not interrupted. Returns true when a
    /// parked call was found (its cancel was sent), false when the
    /// interruption waits for the next call.
    /// [No ConcRT counterpart; Win32: CancelSynchronousIo]
    @discardableResult
    public func interruptIO() -> Bool {
        ioInterruptPending.store(true, ordering: .sequentiallyConsistent)
        let tag = ioParkedTag.load(ordering: .sequentiallyConsistent)
        guard tag != 0 else { return false }
        let index = ioParkedVP.load(ordering: .relaxed)
        let vp = scheduler.virtualProcessors[index]
        vp.ioCancelRequests.withLock { $0.append(tag) }
        vp.ioCancelPending.store(true, ordering: .releasing)
        scheduler.idle.wakeAll()
        return true
    }
}

extension VirtualProcessor {
    /// Sends the async cancels asked of this VP's ring (owner: the VP's
    /// pthread, at the top of a pass).
    func processIOCancelRequests(_ ring: IORing) {
        guard ioCancelPending.exchange(false, ordering: .acquiring) else { return }
        let tags = ioCancelRequests.withLock { r in defer { r.removeAll() }; return r }
        if !tags.isEmpty { ring.cancel(tags, self) }
    }
}
