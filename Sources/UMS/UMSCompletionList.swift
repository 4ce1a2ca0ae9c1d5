import CSupport
import Synchronization

/// A completion list: where UMS threads wait to be scheduled.
/// [CreateUmsCompletionList / DequeueUmsCompletionListItems /
/// GetUmsCompletionListEvent / DeleteUmsCompletionList]
///
/// A new ``UMSThread`` starts queued here. When a thread's blocking call
/// returns, its kernel thread queues it here again. A primary takes the
/// queued threads with ``dequeue(timeout:)`` and executes them.
///
/// Storage and wake-up: a lock-free stack that a dequeue takes whole (and
/// returns oldest first), a futex for ``dequeue(timeout:)``, and an eventfd
/// created on first request. The protocol is documented in
/// `CSupport/include/csup_clist.h`.
///
/// Ownership: the list holds a strong reference to every queued thread, and
/// each non-terminated thread holds one to its list. Several primaries may
/// share a list.
///
/// Kernel threads: the list owns the pool of kernel threads (KTs) its
/// threads' blocking calls run on. A KT is bound to a UMS thread only for
/// the length of one blocking call, then returns to the pool, so 10,000
/// runnable threads need no more pthreads than there are calls in the
/// kernel at once. Idle KTs stay parked on a futex until the list goes away.
public final class UMSCompletionList: @unchecked Sendable {
    // @unchecked Sendable: every mutable field is an Atomic or is owned by
    // the C list, which is thread-safe by construction (csup_clist.h).

    @usableFromInline let clist: OpaquePointer
    let kernelThreads: KernelThreadPool
    /// Threads queued now (incremented before the enqueue, decremented by the
    /// dequeuer). Relaxed: a statistic, also read by `delete()`.
    let queuedCount = Atomic<Int>(0)
    /// Threads of this list inside a blocking call now.
    let inKernelCount = Atomic<Int>(0)
    private let deleted = Atomic<Bool>(false)

    /// Creates an empty list. `reservingKernelThreads` starts that many
    /// kernel threads now, so the first blocking calls find one ready; a
    /// failing pthread_create is thrown here, with nothing leaked.
    public init(reservingKernelThreads: Int = 0) throws(UMSError) {
        guard let l = csup_clist_create() else { throw .outOfMemory }
        clist = l
        kernelThreads = KernelThreadPool()
        // On a throw here every stored property is set, so deinit runs and
        // releases the list and the KTs already started.
        try kernelThreads.reserve(reservingKernelThreads)
    }

    deinit {
        // Unreachable with queued threads: they retain this list. Kernel
        // threads in a call retain it too, so every KT is idle here (this
        // may run on one of them, just after it queued a thread: trim
        // detaches that one instead of joining it).
        kernelThreads.trim()
        // Why this is sound: nothing can enqueue any more (see above).
        csup_clist_destroy(clist)
    }

    /// Waits until at least one thread is queued or the timeout passes,
    /// then takes every queued thread, oldest first.
    /// [DequeueUmsCompletionListItems]
    ///
    /// - Parameter timeout: `nil` waits forever; `.zero` polls.
    /// - Returns: the threads, now ready to ``UMSPrimary/execute(_:)``;
    ///   empty on timeout.
    public func dequeue(timeout: Duration? = nil) -> [UMSThread] {
        var out: [UMSThread] = []
        drain(timeout: timeout) { out.append($0) }
        return out
    }

    /// Like ``dequeue(timeout:)``, but hands each thread to `body` instead
    /// of building an array (no allocation on the scheduler's hot path).
    /// Returns how many threads were taken.
    @discardableResult
    public func drain(timeout: Duration? = .zero, _ body: (UMSThread) -> Void) -> Int {
        let ns: Int64 = timeout.map { $0.saturatingNanoseconds } ?? -1
        // The hot idle poll: nothing queued and no event signal to reset.
        if ns == 0 && csup_clist_idle(clist) != 0 { return 0 }
        guard var node = csup_clist_take_all(clist, ns) else { return 0 }
        var n = 0
        while true {
            let next = csup_clist_node_next(node)
            // Why this is sound: the item is the thread's Unmanaged pointer,
            // retained by `enqueue`; this balances that retain.
            let t = Unmanaged<UMSThread>.fromOpaque(csup_clist_node_item(node)!).takeRetainedValue()
            t.markDequeued()
            n += 1
            body(t)
            guard let nx = next else { break }
            node = nx
        }
        queuedCount.wrappingSubtract(n, ordering: .relaxed)
        return n
    }

    /// True when no thread is queued (a snapshot).
    @inlinable
    public var isEmpty: Bool { csup_clist_is_empty(clist) != 0 }

    /// An event descriptor (an eventfd) that becomes readable when a thread
    /// is queued to an empty list. [GetUmsCompletionListEvent]
    ///
    /// Created on first call and owned by the list: do not close it, and do
    /// not read it. Every ``dequeue(timeout:)`` and ``drain(timeout:_:)``
    /// resets it (including one that finds nothing queued), so the loop is:
    /// poll the descriptor, then dequeue. It is readable whenever a thread is
    /// queued; it may also be readable with nothing queued (a dequeue raced
    /// with the enqueue that signalled it), and the dequeue that follows then
    /// returns no thread and resets it. Why not read it yourself: a read
    /// after your dequeue can consume the signal of a thread queued since,
    /// and your next poll would then sleep with that thread queued.
    ///
    /// - Throws: ``UMSError/systemCallFailed(call:errno:)`` when `eventfd`
    ///   fails (for example EMFILE).
    public func eventDescriptor() throws(UMSError) -> Int32 {
        let fd = csup_clist_event_fd(clist)
        if fd < 0 { throw .systemCallFailed(call: "eventfd", errno: -fd) }
        return fd
    }

    /// Checks that the list is empty and releases its kernel threads.
    /// [DeleteUmsCompletionList]
    ///
    /// Throws ``UMSError/completionListNotEmpty(queued:inKernel:)`` when
    /// threads are queued or inside blocking calls that will queue them
    /// here; the list is then left as it was.
    public func delete() throws(UMSError) {
        let q = queuedCount.load(ordering: .relaxed)
        let k = inKernelCount.load(ordering: .relaxed)
        if q > 0 || k > 0 || !isEmpty { throw .completionListNotEmpty(queued: max(q, isEmpty ? 0 : 1), inKernel: k) }
        if deleted.exchange(true, ordering: .relaxed) { return }
        kernelThreads.trim()
    }

    /// Wakes every primary sleeping in ``dequeue(timeout:)``; they return
    /// empty-handed if nothing was queued (used to stop a scheduler loop).
    public func wakeAllWaiters() { csup_clist_wake_all(clist) }

    // MARK: Sleeping on the list together with other work sources

    /// Registers the caller as a waiter and returns a ticket. Re-check your
    /// own work sources, then call ``wait(ticket:timeout:)`` or
    /// ``cancelWait()``. Anything queued here, or a ``notifyWaiters(_:)``
    /// after this call, makes the wait return (no lost wake-up).
    public func prepareToWait() -> UInt32 { csup_clist_prepare_wait(clist) }

    /// Unregisters a waiter that found work after ``prepareToWait()``.
    public func cancelWait() { csup_clist_cancel_wait(clist) }

    /// Sleeps until a thread is queued, a notification after `ticket`, or
    /// the timeout (nil: forever); unregisters the waiter.
    public func wait(ticket: UInt32, timeout: Duration?) {
        csup_clist_wait(clist, ticket, timeout.map { $0.saturatingNanoseconds } ?? -1)
    }

    /// Wakes up to `count` waiters, if any are registered (a fence and a
    /// load when nobody waits; no system call).
    public func notifyWaiters(_ count: Int = 1) { csup_clist_notify(clist, Int32(count)) }

    /// A ``wait(ticket:timeout:)`` that only wakes for completions, plain
    /// notifies, and ``notifyWaiters(_:wakeMask:)`` whose mask shares a
    /// bit with `wakeMask` (a futex bitset; not 0). Lets a scheduler wake
    /// a chosen class of its sleepers (ConcRT: the VPs of one NUMA node).
    public func wait(ticket: UInt32, timeout: Duration?, wakeMask: UInt32) {
        precondition(wakeMask != 0, "UMSCompletionList.wait: wakeMask must not be 0")
        csup_clist_wait_bitset(clist, ticket, timeout.map { $0.saturatingNanoseconds } ?? -1, wakeMask)
    }

    /// Wakes up to `count` waiters whose ``wait(ticket:timeout:wakeMask:)``
    /// mask shares a bit with `wakeMask` (a plain wait matches any mask),
    /// if any waiter is registered. Every waiter registered before this
    /// call and not yet asleep still returns at once (the word moves).
    public func notifyWaiters(_ count: Int, wakeMask: UInt32) {
        csup_clist_notify_bitset(clist, Int32(count), wakeMask)
    }

    /// The futex word ``wait(ticket:timeout:)`` sleeps on, for a waiter
    /// that sleeps in another primitive which can wait on a futex (an
    /// io_uring `FUTEX_WAIT` armed with the ticket from
    /// ``prepareToWait()``). Such a waiter ends with ``cancelWait()``
    /// instead of ``wait(ticket:timeout:)``. Valid while the list lives.
    public var waitWord: UnsafeMutablePointer<UInt32> { csup_clist_wait_word(clist) }

    /// Waiters registered now (a snapshot).
    public var waiterCount: Int { Int(csup_clist_waiters(clist)) }

    /// Idle kernel threads parked in this list's pool.
    public var idleKernelThreads: Int { kernelThreads.idleCount }

    func enqueue(_ t: UMSThread) {
        queuedCount.wrappingAdd(1, ordering: .relaxed)
        // Why this is sound: the retain is balanced by takeRetainedValue in
        // drain(); the node is the thread's own and is on no other list.
        _ = Unmanaged.passRetained(t)
        csup_clist_enqueue(clist, t.node)
    }
}
