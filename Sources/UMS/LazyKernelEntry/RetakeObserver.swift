import Synchronization

/// A hook told each time a UMS thread finds, on return from a call, that
/// the monitor retook its primary meanwhile (lazy kernel entry). A layer
/// above (a watchdog) uses it to report the call site the first time it
/// is retaken. [no Windows UMS equivalent]
///
/// The observer runs on the retaken thread's own pthread, before the
/// thread moves through its completion list, with the thread's user
/// context; it may take the caller's backtrace. It is a slow path (the
/// call already lasted at least the retake threshold), so the observer is
/// kept under a lock and copied out for each call.
public enum UMSRetakeObserver {
    /// What was retaken.
    public enum Kind: String, Sendable {
        /// A wrapped call (``UMS/blockingCall(_:)``, `Blocking.*`).
        case wrappedCall = "retake"
        /// Unwrapped blocking code, found by the monitor
        /// (`detectUnwrappedBlocking`) and compensated for; reported by the
        /// thread when it ends the compensation at its next runtime entry.
        case unwrappedBlocking = "unwrapped-blocking"
    }

    public typealias Observer = @Sendable (_ kind: Kind, _ userContext: UnsafeMutableRawPointer?) -> Void

    /// Boxed: a function value stored directly in a generic container is
    /// re-abstracted (wrapped in a thunk) on every inout access, so the
    /// stored closure would grow a thunk per call.
    private final class Box: Sendable {
        let f: Observer
        init(_ f: @escaping Observer) { self.f = f }
    }
    private static let observer = MigrationSafeMutex<Box?>(nil)
    /// Set while an observer is installed (relaxed: a stale read only
    /// skips or takes the lock once).
    private static let installed = Atomic<Bool>(false)

    /// Installs `f` (nil removes it). One observer per process.
    public static func set(_ f: Observer?) {
        observer.withLock { $0 = f.map(Box.init) }
        installed.store(f != nil, ordering: .relaxed)
    }

    static func notify(_ kind: Kind, _ userContext: UnsafeMutableRawPointer?) {
        guard installed.load(ordering: .relaxed), let box = observer.withLock({ $0 }) else { return }
        box.f(kind, userContext)
    }
}
