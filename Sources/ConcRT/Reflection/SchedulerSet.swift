import CSupport
import UMS
#if canImport(Glibc)
import Glibc
#endif

/// A process-wide set of schedulers, held weakly (the watchdog's watched
/// ones, the snapshot signal's live ones). Under one migration-safe lock.
final class SchedulerSet: Sendable {
    private final class Weak: @unchecked Sendable {
        // @unchecked Sendable: `scheduler` is read and written only under
        // the set's lock.
        weak var scheduler: Scheduler?
        init(_ s: Scheduler) { scheduler = s }
    }
    private let members = MigrationSafeMutex<[ObjectIdentifier: Weak]>([:])

    func insert(_ s: Scheduler) { members.withLock { $0[ObjectIdentifier(s)] = Weak(s) } }
    func remove(_ s: Scheduler) { members.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(s)) } }

    /// The members still alive (dropping the others).
    var alive: [Scheduler] {
        members.withLock { m in
            m = m.filter { $0.value.scheduler != nil }
            return m.values.compactMap { $0.scheduler }
        }
    }
}

/// Writes `text` to stderr with write(2), whole (a short or interrupted
/// write is continued), from any thread and without Foundation.
func writeToStandardError(_ text: String) {
    text.withCString { p in
        var off = 0, n = strlen(p)
        while n > 0 {
            let w = Glibc.write(2, p + off, n)
            if w < 0 { if errno == EINTR { continue }; return }
            off += w; n -= w
        }
    }
}

extension Scheduler {
    /// Every live context (strong references: a context that ends meanwhile
    /// stays readable; see `contextRegistry`).
    func registeredContexts() -> [Context] {
        contextRegistry.all()
    }
}

extension KernelCall {
    /// The name behind `Context.kernelCallName`'s bits (a StaticString's
    /// address; 0 for none, shown as "call").
    static func name(bits: UInt) -> String {
        bits == 0 ? "call" : String(cString: UnsafePointer<CChar>(bitPattern: bits)!)
    }
}
