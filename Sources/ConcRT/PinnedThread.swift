import Synchronization
import UMS
#if canImport(Glibc)
import Glibc
#endif

extension Context {
    /// Runs `body` with the calling context kept on its pthread.
    /// [Go's runtime.LockOSThread / UnlockOSThread]
    ///
    /// A context normally resumes on whichever virtual processor (and so
    /// whichever pthread) runs it next after a cooperative wait, and a
    /// retake moves its VP to another pthread. Inside `body` neither
    /// happens:
    /// - after a wait the context resumes only on this VP (the pin of Swift
    ///   jobs, `Concurrency/JobPinning.swift`);
    /// - the VP is not retaken, so its pthread stays; blocking calls run
    ///   inline and hold the VP, and the scheduler runs a temporary VP
    ///   beside it while one sleeps and other work waits (compensation,
    ///   `Sources/UMS/LazyKernelEntry/Compensation.swift`).
    ///
    /// Use it for code that must keep one pthread across blocking calls or
    /// waits: a pthread mutex held across them, a C library's thread-locals,
    /// Swift's `Synchronization.Mutex` (it records its owner's thread id).
    /// It costs two relaxed stores on entry and on exit. Nests. Outside a
    /// context (a plain pthread) it just runs `body`.
    public static func withPinnedThread<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        guard let c = currentInternal else { return try body() }
        // Already pinned: an outer withPinnedThread, or a Swift job.
        if c.swiftJobHome.load(ordering: .relaxed) >= 0 { return try body() }
        let vp = c.vp!
        // Relaxed: the pin is read by whoever queues this context after it
        // suspends, ordered by the suspension's own hand-off (JobPinning),
        // and `pinnedJobs` by the monitor, for which a stale value only
        // delays or skips one retake.
        c.swiftJobHome.store(vp.index, ordering: .relaxed)
        vp.pinnedJobs.wrappingAdd(1, ordering: .relaxed)
        let pthread = pthread_self()
        defer {
            assert(pthread_equal(pthread, pthread_self()) != 0, "Context.withPinnedThread: the context changed pthread")
            assert(c.vp === vp, "Context.withPinnedThread: the context changed virtual processor")
            c.swiftJobHome.store(-1, ordering: .relaxed)
            vp.pinnedJobs.wrappingSubtract(1, ordering: .relaxed)
        }
        return try body()
    }

    /// True inside ``withPinnedThread(_:)`` (or a Swift job): the context
    /// resumes only on its current pthread.
    public static var isPinnedToThread: Bool {
        (currentInternal?.swiftJobHome.load(ordering: .relaxed) ?? -1) >= 0
    }
}
