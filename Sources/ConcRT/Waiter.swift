import CSupport
import Synchronization
import UMS

/// One party waiting on a cooperative primitive (an event, a lock): a
/// context of a scheduler, or a plain pthread outside any.
///
/// Wake-up protocol: a waker first wins `claim()` (one atomic exchange), so
/// exactly one of several wakers (event sets, a timeout, the other events
/// of a wait-for-multiple) wakes the waiter, exactly once. A context waiter
/// parks with Context.block (an unblock that comes first is kept); a thread
/// waiter parks on a futex word (0 -> 1 on wake).
///
/// A plain ``Event/wait()`` needs no claim: the context's own reusable
/// waiter (or a pthread's) sits on the event's waiter stack, and the single
/// `set()` that takes the stack wakes it (``wakeParked()``).
final class Waiter: @unchecked Sendable {
    // @unchecked Sendable: `claimed`, `word` are atomics; `contextRef` and
    // `index` are set before the waiter is published.
    /// Unowned: a waiter is used only while its context waits (alive), and
    /// a context keeps its own reusable waiter (no cycle).
    /// (A var only so that a Context can make its own waiter in its init.)
    @exclusivity(unchecked) private(set) var contextRef: Unmanaged<Context>?
    var context: Context? { contextRef?.takeUnretainedValue() }
    private let claimed = Atomic<Bool>(false)
    /// Futex word for thread waiters (nil for context waiters).
    private let word: UnsafeMutablePointer<UInt32>?
    /// What the winning waker reported (for example which event fired;
    /// -1 for a timeout). Written before the wake, read after the park.
    var result: Int = -1
    /// Link in an event's stack of plain waiters (the bits of an unretained
    /// Waiter, 0 at the end): written before the push that publishes it,
    /// read by the setter that took the stack.
    @exclusivity(unchecked) var nextBits: UInt = 0

    init() {
        contextRef = Context.currentInternal.map { Unmanaged.passUnretained($0) }
        if contextRef == nil {
            let w = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
            w.initialize(to: 0)
            word = w
        } else {
            word = nil
        }
    }

    deinit { word?.deallocate() }

    /// A context's own waiter for plain event waits (see Context.parkWaiter);
    /// `attach` names the context once it is initialized.
    static func forContext() -> Waiter { Waiter(contextRef: nil) }

    private init(contextRef: Unmanaged<Context>?) {
        self.contextRef = contextRef
        word = nil
    }

    func attach(_ c: Context) { contextRef = Unmanaged.passUnretained(c) }

    /// True for the single caller that may wake this waiter.
    @inline(__always)
    func claim() -> Bool { !claimed.exchange(true, ordering: .acquiringAndReleasing) }

    /// Wakes the waiter (only after winning `claim()`).
    /// `onto`: the VP whose primary is calling (a timer firing), which
    /// queues the context itself.
    func wake(result: Int, onto vp: VirtualProcessor? = nil) {
        self.result = result
        if let c = context {
            c.unblockInternal(onto: vp)
        } else {
            wakeThread()
        }
    }

    /// Wakes a plain event waiter taken from an event's stack: a context
    /// there is fully parked (see Event.commitPark), so it is made runnable
    /// directly; a pthread's futex word is set and woken.
    func wakeParked() {
        if let c = contextRef {
            // No longer parked (snapshots read it; the context's next park
            // sets it again only after this push hands it over).
            c._withUnsafeGuaranteedRef { $0.parkedOnEvent.store(false, ordering: .relaxed) }
            if Scheduler.tracesRunning.load(ordering: .relaxed) > 0 { Context.traceUnblock(c) }
            Scheduler.makeRunnable(c)
        } else {
            wakeThread()
        }
    }

    /// A thread waiter: set its futex word and wake it. The word's address
    /// is read first: once it is 1 the pthread may return and free this
    /// waiter (unretained on the event path). A wake on memory freed
    /// meanwhile is harmless: futex waiters re-check.
    private func wakeThread() {
        let w = word.unsafelyUnwrapped
        csup_u32_store_release(w, 1)
        _ = csup_futex_wake(w, 1)
    }

    /// Thread waiters: one futex wait of at most `nanoseconds`; true once woken.
    func waitThread(nanoseconds: Int64) -> Bool {
        if csup_u32_load_acquire(word!) != 0 { return true }
        _ = csup_futex_wait(word!, 0, nanoseconds)
        return csup_u32_load_acquire(word!) != 0
    }

    /// Parks the caller (the waiter's own context or thread) until woken.
    func park(_ code: WaitReason.Code = .unknown, _ object: AnyObject? = nil) {
        if let c = context {
            c.blockInternal(code, object)
        } else {
            while csup_u32_load_acquire(word!) == 0 { _ = csup_futex_wait(word!, 0, -1) }
        }
    }
}
