import CSupport
import UMS

/// A virtual processor's io_uring: its syscall request queue and syscall
/// completion queue (the "master/slave UMS" design: system calls are
/// queued and batched, and the user-mode side never loses its CPU).
///
/// Protocol (owner: the pthread carrying the VP; one at a time, so the
/// fields here are plain, `@exclusivity(unchecked)`):
/// 1. **Submit side.** A context whose ``Blocking`` call would block
///    prepares one submission queue entry here, tagged with its own address
///    (`Context.ringCall`), and switches out with the `.io` reason. Nothing
///    is submitted yet: the VP submits the queued entries with one
///    `io_uring_enter` when its run queue is empty or ``submitBatch``
///    entries wait (``submitIfDue(runQueueEmpty:)``), and before it
///    sleeps. An entry is therefore never submitted before its context has
///    switched out, so its completion cannot be reaped while the context
///    still runs.
/// 2. **Completion side.** At the top of every pass, before anything runs
///    (the completion list's rule), the VP reaps every completion
///    (``reap(_:)``): it stores the result in the context and queues the
///    context on its run queue, where other VPs may steal it. The
///    completion queue lives in memory shared with the kernel: checking it
///    is two loads, no system call.
/// 3. **Sleep.** A VP with operations in flight sleeps in its ring
///    (``sleep(on:ticket:timeoutNanoseconds:)``): an `IORING_OP_FUTEX_WAIT`
///    armed on the completion list's futex word with the idle protocol's
///    ticket, so a notify wakes it exactly as it wakes a VP asleep on the
///    futex, and any completion of its own I/O wakes it too (and only it).
///    A wait still armed when the VP wakes for another reason is cancelled
///    before the VP leaves its sleep (``disarm()``), and everything is
///    reaped. Until that cancel the wait stays queued on the futex, so a
///    notify meant for any sleeper may complete it while this VP woke for
///    its own I/O, which it runs first. So a VP that wakes from a sleep
///    and first runs a context while tasks are queued passes a wake-up on
///    (`VirtualProcessor.passOnWakeUp`). SPIN found that window
///    (`Tests/Models/ringsleep.pml`; its mutant reads the ticket late).
/// 4. **Shutdown.** A VP leaves only with nothing in flight. If the
///    scheduler stops with operations still in flight (tasks that are not
///    counted, such as a context parked outside any task), the VP cancels
///    them all once and waits for their completions.
///
/// Fallback: when the kernel or the process cannot use io_uring
/// (``IORingSupport``), when the policy turns it off, or when this ring
/// cannot take another entry, the call takes the lazy kernel-entry path
/// instead (``UMS/blockingCall(_:)``), and statistics say which path ran.
final class IORing {
    /// `csup_uring *`; nil after ``destroy()``.
    private(set) var raw: OpaquePointer?
    /// Operations prepared or submitted and not yet reaped (owner-only).
    @exclusivity(unchecked) var inFlight = 0
    /// True once every in-flight operation was asked to cancel (shutdown).
    @exclusivity(unchecked) var cancelledAll = false
    /// Reap buffers (owner-only).
    private let tags: UnsafeMutablePointer<UInt64>
    private let results: UnsafeMutablePointer<Int32>
    private static let reapCapacity = 64
    /// Low bits of a tag that carry the context's call generation (a
    /// Context is at least 16-byte aligned).
    static let generationMask: UInt = 0xF
    /// Submit when this many entries wait, even while contexts are runnable.
    static let submitBatch: UInt32 = 16
    /// Submission queue slots; the completion queue has 16x as many (the
    /// kernel keeps completions that do not fit: IORING_FEAT_NODROP).
    static let submissionEntries: UInt32 = 256

    /// Creates a ring, or returns the reason none can be had.
    static func make() -> Result<IORing, IORingUnavailable> {
        if let why = IORingSupport.unavailableReason { return .failure(IORingUnavailable(reason: why)) }
        var err: Int32 = 0
        guard let r = csup_uring_create(submissionEntries, submissionEntries * 16, &err) else {
            return .failure(IORingUnavailable(reason: "io_uring_setup: \(UMS.describe(errno: err))"))
        }
        return .success(IORing(raw: r))
    }

    private init(raw: OpaquePointer) {
        self.raw = raw
        cqHead = csup_uring_cq_head(raw)
        cqTail = csup_uring_cq_tail(raw)
        tags = .allocate(capacity: Self.reapCapacity)
        results = .allocate(capacity: Self.reapCapacity)
    }

    deinit {
        destroy()
        tags.deallocate()
        results.deallocate()
    }

    /// Closes the ring (its descriptor and mappings). Only with nothing in
    /// flight: after the VP's loop ended for good.
    func destroy() {
        guard let r = raw else { return }
        assert(inFlight == 0, "IORing.destroy: \(inFlight) operations still in flight")
        raw = nil
        csup_uring_destroy(r)
    }

    /// Completions waiting (a snapshot; safe from any thread while the ring
    /// is open: two acquire loads of the shared completion queue indices).
    @inline(__always)
    var hasCompletions: Bool {
        guard raw != nil else { return false }
        return csup_uring_cq_pending(cqHead, cqTail) > 0
    }
    /// The completion queue's head and tail words in the ring's shared
    /// mapping (valid until ``destroy()``).
    private let cqHead: UnsafePointer<UInt32>
    private let cqTail: UnsafePointer<UInt32>

    /// Reaps every completion: the result goes to its context, which is
    /// queued on `vp`'s run queue. Returns how many contexts were queued.
    @discardableResult
    func reap(_ vp: VirtualProcessor) -> Int {
        guard let r = raw else { return 0 }
        var total = 0
        while true {
            let n = Int(csup_uring_reap(r, tags, results, UInt32(Self.reapCapacity)))
            for i in 0..<n {
                // Why this is sound: a user tag is the address of the
                // context that queued the operation and switched out with
                // `.io`; it stays alive (its thread's user context holds a
                // +1) and parked until this completion requeues it.
                let c = Unmanaged<Context>.fromOpaque(UnsafeRawPointer(bitPattern: UInt(tags[i]) & ~Self.generationMask)!)
                c._withUnsafeGuaranteedRef { $0.ioResult = results[i] }
                vp.pushRunnable(c, front: false)
            }
            inFlight -= n
            assert(inFlight >= 0, "IORing.reap: more completions than operations in flight")
            total += n
            if n < Self.reapCapacity { break }
        }
        if total > 0 { vp.stats.ringCompletions.ownerAdd(total) }
        return total
    }

    /// Submits the queued entries when the run queue is empty (nothing
    /// else would run first) or a batch has built up.
    @inline(__always)
    func submitIfDue(runQueueEmpty: Bool, _ vp: VirtualProcessor) {
        guard let r = raw else { return }
        let pending = csup_uring_pending(r)
        if pending == 0 || (!runQueueEmpty && pending < Self.submitBatch) { return }
        submit(r, vp)
    }

    private func submit(_ r: OpaquePointer, _ vp: VirtualProcessor) {
        let n = csup_uring_submit(r)
        precondition(n >= 0 || n == -EBUSY || n == -EAGAIN,
                     "ConcRT: io_uring_enter failed submitting \(csup_uring_pending(r)) operations: \(UMS.describe(errno: -n))")
        vp.stats.ringSubmits.ownerIncrement()
    }

    /// Sleeps in the ring until a completion, a futex wake of `word` (armed
    /// with `ticket`), or the timeout. Submits what is queued. Returns
    /// false when the ring could not wait (the caller sleeps on the futex).
    func sleep(on word: UnsafeMutablePointer<UInt32>, ticket: UInt32, timeoutNanoseconds: Int64?,
               wakeMask: UInt32 = CSUP_FUTEX_BITSET_ANY) -> Bool {
        guard let r = raw else { return false }
        return csup_uring_sleep_bitset(r, word, ticket, timeoutNanoseconds ?? -1, wakeMask) == 0
    }

    /// Cancels an armed futex wait (no-op when none is).
    @inline(__always)
    func disarm() {
        guard let r = raw, csup_uring_armed(r) != 0 else { return }
        csup_uring_disarm(r)
    }

    /// Asks the kernel to cancel the operations tagged `tags` (each
    /// completes with -ECANCELED, or with its result if it finished).
    func cancel(_ tags: [UInt], _ vp: VirtualProcessor) {
        guard let r = raw else { return }
        for t in tags where csup_uring_cancel(r, UInt64(t)) != 0 {
            // The queue stayed full even after a submit: submit and retry once.
            _ = csup_uring_submit(r)
            _ = csup_uring_cancel(r, UInt64(t))
        }
        submit(r, vp)
    }

    /// Asks the kernel to cancel every operation in flight (shutdown).
    func cancelAll() {
        guard let r = raw, !cancelledAll else { return }
        cancelledAll = true
        if csup_uring_cancel_all(r) == 0 { _ = csup_uring_submit(r) }
    }
}

/// Why a VP has no ring.
struct IORingUnavailable: Error {
    let reason: String
}

/// Whether this process can use io_uring (probed once).
enum IORingSupport {
    /// nil when io_uring is usable; else the reason (kernel too old,
    /// `kernel.io_uring_disabled`, a seccomp filter, ...).
    static let unavailableReason: String? = {
        var buf = [CChar](repeating: 0, count: 160)
        let ok = csup_uring_usable(&buf, buf.count)
        return ok != 0 ? nil : String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }()
}

#if canImport(Glibc)
import Glibc
#endif
