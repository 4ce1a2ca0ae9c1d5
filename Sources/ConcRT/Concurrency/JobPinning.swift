import CSupport
import Synchronization
import UMS

/// A context inside a Swift job resumes only on the virtual processor
/// where that job began (its *home*).
///
/// Why: the Swift runtime's `swift_job_run` computes the address of its
/// executor-tracking thread-local once, before it runs the job, and stores
/// the previous value back through that address when the job returns
/// (observed in libswift_Concurrency 6.3: the address is kept in a
/// callee-saved register across the call). A job that resumed on another
/// pthread would write into the first pthread's thread-local while that
/// pthread runs someone else. Pinning makes the pthread at the end of the
/// job the one at its start; the slots are still moved out and in around
/// every switch (csup_swift_tls.h) because the home VP runs other contexts
/// meanwhile.
///
/// Protocol: the context sets `swiftJobHome` to its VP's index (relaxed)
/// when its outermost job begins and back to -1 when it ends, both while it
/// runs. Whoever queues a suspended context reads it (relaxed: the context
/// wrote it before it suspended, and the suspension's hand-off, a release
/// by the switch and an acquire by the waker's queue, orders it). A push to
/// another VP, or an execute on another VP after a steal, forwards the
/// context to its home's ring (the thief side: a lock) and wakes the
/// sleepers (the home VP may be one; there is no per-VP wake).
///
/// Lazy kernel entry: a VP with a job in flight is not retaken (its
/// `pinnedJobs` count is read by the monitor thread, relaxed: pins and
/// unpins happen on the VP's own pthread, which cannot be in a retakeable
/// call while it pins), and a job's blocking calls hand off to a kernel
/// thread (`UMSThread.prefersHandOff`), so the VP runs other work while
/// they block.
///
/// Cost: blocked async contexts do not migrate, so a blocked-then-resumed
/// job waits for its home VP; cooperative (non-Swift-job) contexts are
/// unaffected. A job may run on a temporary VP (a compensation's takes
/// any work): a retiring temporary VP stays while a context is pinned to
/// it (`pinnedJobs` > 0), so the pinned context can always resume there.
extension VirtualProcessor {
    /// True when `c` is pinned to another VP: it was queued there instead.
    @inline(__always)
    func forwardIfPinnedElsewhere(_ c: Unmanaged<Context>) -> Bool {
        let home = c._withUnsafeGuaranteedRef { $0.swiftJobHome.load(ordering: .relaxed) }
        if home < 0 || home == index { return false }
        forward(c, to: home)
        return true
    }

    @inline(never)
    private func forward(_ c: Unmanaged<Context>, to home: Int) {
        let target = scheduler.virtualProcessors[home]
        _ = target.runQueue.push(c, front: false)
        scheduler.idle.wakeAll()
    }
}

extension SwiftJobItem {
    /// Pins the running context to its VP for the outermost job.
    @inline(__always)
    static func pin(_ c: Context) {
        let vp = c.vp!
        // On a temporary VP too (a compensation's, which takes any work):
        // a retiring temporary VP stays while `pinnedJobs` > 0, so a
        // pinned context blocked there can always resume
        // (VirtualProcessor.run's retire check).
        c.swiftJobHome.store(vp.index, ordering: .relaxed)
        // Lazy kernel entry moves a VP to another pthread on a retake, which
        // would break the pin (it is a pin to the pthread, in truth): while
        // a job is in flight here the VP is not retaken, and the job's own
        // blocking calls go to a kernel thread (PrimaryCarriers.swift).
        vp.pinnedJobs.wrappingAdd(1, ordering: .relaxed)
        c.threadRef.unsafelyUnwrapped._withUnsafeGuaranteedRef { $0.prefersHandOff = true }
    }

    @inline(__always)
    static func unpin(_ c: Context) {
        c.swiftJobHome.store(-1, ordering: .relaxed)
        c.vp!.pinnedJobs.wrappingSubtract(1, ordering: .relaxed)
        c.threadRef.unsafelyUnwrapped._withUnsafeGuaranteedRef { $0.prefersHandOff = false }
    }
}
