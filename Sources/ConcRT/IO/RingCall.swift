import CSupport
import UMS
#if canImport(Glibc)
import Glibc
#endif

/// Which path a scheduler's ``Blocking`` calls take when they would block.
public enum IOPath: Sendable, Equatable, CustomStringConvertible {
    /// Queued on the virtual processor's io_uring; the context parks and
    /// no kernel thread is involved.
    case ring
    /// The lazy kernel-entry path (``UMS/blockingCall(_:)``): the call runs
    /// on the VP's pthread and the VP is retaken if it stays in the kernel.
    /// `reason` says why the ring is not used.
    case kernelEntry(reason: String)

    public var description: String {
        switch self {
        case .ring: "io_uring"
        case .kernelEntry(let reason): "lazy kernel entry (\(reason))"
        }
    }
}

extension Context {
    /// Queues one operation on the running context's VP ring and parks the
    /// context until its completion is reaped. `prepare` fills a submission
    /// entry (a `csup_uring_*` call with the given ring and tag) and
    /// returns 0, or nonzero when the ring cannot take it.
    ///
    /// Returns the operation's result (>= 0, or -errno), or nil when the
    /// caller is not a context running on a VP with a ring, or the ring is
    /// full: then the caller takes the lazy kernel-entry path.
    ///
    /// Memory the operation names (buffers, timespecs) lives in the
    /// caller's frame on the context's stack, which stays put while the
    /// context is parked, until this returns.
    ///
    /// A cancel nobody asked for is resubmitted (`prepare` runs again):
    /// io_uring cancels the requests a thread submitted when that thread
    /// exits, and a VP's operations are submitted by whichever carrier
    /// pthread runs it then, which may end after a retake (the spare list
    /// is full, or its spares are stopped) while the operation is still in
    /// flight. Such a cancel did nothing (the request had not taken
    /// effect). ECANCELED is returned only for an interruption
    /// (``interruptIO()``), at shutdown (the ring's `cancelAll`), or, for
    /// a call with a linked timeout, once `deadline` (monotonic ns) passed.
    @inline(__always)
    static func ringCall(deadline: Int64? = nil, _ prepare: (OpaquePointer, UInt64) -> Int32) -> Int32? {
        while true {
            guard let r = ringCallOnce(prepare) else { return nil }
            if r == -ECANCELED, let c = currentInternal, !c.ioInterruptTaken, !c.scheduler.isStopping,
               deadline.map({ csup_monotonic_ns() < $0 }) ?? true {
                c.scheduler.stats.ringResubmits.add()
                continue
            }
            return r
        }
    }

    @inline(__always)
    private static func ringCallOnce(_ prepare: (OpaquePointer, UInt64) -> Int32) -> Int32? {
        guard let me = UMSThread.currentOnPrimaryUserContext else { return nil }
        // Why this is sound: the running context's user context holds a +1
        // on it for as long as its thread can run.
        let ctx = Unmanaged<Context>.fromOpaque(me)
        return ctx._withUnsafeGuaranteedRef { c -> Int32? in
            c.ioInterruptTaken = false
            let vp = c.vpRef.unsafelyUnwrapped
            let queued = vp._withUnsafeGuaranteedRef { v -> Int32? in
                guard let ring = v.ring, let raw = ring.raw else {
                    v.stats.ringFallbacks.ownerIncrement()
                    return nil
                }
                assert(UInt(bitPattern: me) & IORing.generationMask == 0, "Context.ringCall: context \(c.id) is not 16-byte aligned")
                c.ioGeneration &+= 1
                let tag = UInt(bitPattern: me) | (c.ioGeneration & IORing.generationMask)
                // Publish the tag, then look for an interruption (IO/IOInterruption.swift).
                c.ioParkedVP.store(v.index, ordering: .relaxed)
                c.ioParkedTag.store(tag, ordering: .sequentiallyConsistent)
                c.waitSince.store(csup_coarse_ns(), ordering: .relaxed)   // for snapshots
                v.trace(.block, c.id)
                if c.ioInterruptPending.exchange(false, ordering: .sequentiallyConsistent) {
                    c.ioParkedTag.store(0, ordering: .relaxed)
                    c.ioInterruptTaken = true
                    return -ECANCELED
                }
                guard prepare(raw, UInt64(tag)) == 0 else {
                    c.ioParkedTag.store(0, ordering: .relaxed)
                    v.stats.ringFallbacks.ownerIncrement()
                    return nil
                }
                ring.inFlight += 1
                v.stats.ringOperations.ownerIncrement()
                return 0
            }
            guard let queued else { return nil }
            if queued != 0 { return queued }
            c.switchOut(.io)
            c.ioParkedTag.store(0, ordering: .releasing)
            // An interruption that reached this call is spent. (interruptIO
            // sets the flag before it reads the tag and sends the cancel, so
            // a cancel it caused always finds the flag set here.)
            if c.ioResult == -ECANCELED {
                c.ioInterruptTaken = c.ioInterruptPending.exchange(false, ordering: .relaxed)
            }
            return c.ioResult
        }
    }
}

extension Scheduler {
    /// The path this scheduler's blocking calls take when they would block:
    /// ``IOPath/ring`` when its virtual processors have io_uring queues,
    /// else why not (the policy, or the kernel: `kernel.io_uring_disabled`,
    /// a seccomp filter, a kernel before 6.7, an exhausted resource).
    /// Temporary (oversubscription) virtual processors always take the
    /// lazy kernel-entry path.
    public var ioPath: IOPath {
        if let reason = ringUnavailableReason { return .kernelEntry(reason: reason) }
        return .ring
    }
}
