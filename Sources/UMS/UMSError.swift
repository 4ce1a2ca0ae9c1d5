import CSupport

/// Errors thrown by the UMS core: one concrete type for every failure of
/// the runtime itself, so `catch let e as UMSError` (or
/// `catch UMSError.alreadyInSchedulingMode`) catches them all.
/// [Windows: FALSE + GetLastError from the UMS functions]
///
/// An error thrown by your own code (a scheduler body given to
/// ``UMS/enterSchedulingMode(cpu:_:)``, a blocking call's closure) is
/// rethrown unchanged, never wrapped in this type.
///
/// Each case names the misuse or the exhausted resource, so a message read
/// in a log says what to change. Messages that carry an errno use the
/// style of ``UMS/describe(errno:)``: `mmap: ENOMEM (errno 12): Cannot
/// allocate memory`.
public enum UMSError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `execute` was called from a thread that is not in scheduling mode
    /// (not a primary). [ExecuteUmsThread from a non-UMS-scheduler thread]
    case notAPrimary
    /// `execute` was called from inside a UMS thread running on a primary.
    case executeFromUMSThread
    /// `enterSchedulingMode` was called on a thread that already is a
    /// primary, or from inside a UMS thread.
    case alreadyInSchedulingMode
    /// The thread is running on a primary right now, or was switched out
    /// by a directed switch that is not completed yet
    /// (``UMSThread/completeSwitchOut()``).
    case threadRunning
    /// The thread's body has returned.
    case threadTerminated
    /// The thread is inside a blocking call on its kernel thread.
    case threadBlockedInKernel
    /// The thread is queued on its completion list: dequeue it first.
    case threadQueuedOnCompletionList
    /// `UMSThread.yield` was called outside a UMS thread, or from inside a
    /// blocking call (on the kernel thread).
    case notOnUMSThread
    /// A stack size below the minimum or too large to map.
    case invalidStackSize(requested: Int, minimum: Int)
    /// mmap of a context stack failed.
    case stackAllocationFailed(errno: Int32)
    /// pthread_create of a kernel thread failed.
    case kernelThreadCreationFailed(errno: Int32)
    /// The completion list still has queued threads, or threads inside
    /// blocking calls that will be queued to it.
    case completionListNotEmpty(queued: Int, inKernel: Int)
    /// Pinning the primary to a CPU failed.
    case affinityFailed(cpu: Int, errno: Int32)
    /// A system call the runtime needed failed.
    case systemCallFailed(call: String, errno: Int32)
    /// malloc failed for a runtime record.
    case outOfMemory
    /// `execute` on a primary whose CPU the monitor retook
    /// (``UMSPrimary/isRetaken``): leave scheduling mode on this pthread.
    case primaryRetaken

    public var description: String {
        switch self {
        case .notAPrimary:
            return "UMS: execute(_:) called from a thread that is not a primary; call it inside UMS.enterSchedulingMode"
        case .executeFromUMSThread:
            return "UMS: execute(_:) called from inside a UMS thread; only the primary's scheduler code may execute threads"
        case .alreadyInSchedulingMode:
            return "UMS: enterSchedulingMode called on a thread that is already a primary (or from a UMS thread)"
        case .threadRunning:
            return "UMS: the thread is already running on a primary"
        case .threadTerminated:
            return "UMS: the thread has terminated"
        case .threadBlockedInKernel:
            return "UMS: the thread is blocked in a system call; wait for it on its completion list"
        case .threadQueuedOnCompletionList:
            return "UMS: the thread is still queued on its completion list; dequeue it before executing it"
        case .notOnUMSThread:
            return "UMS: UMSThread.yield called outside a UMS thread running on a primary"
        case let .invalidStackSize(requested, minimum):
            return "UMS: stack size \(requested) is invalid (minimum \(minimum) bytes)"
        case let .stackAllocationFailed(e):
            return "UMS: could not map a context stack: mmap: \(UMS.describe(errno: e))"
        case let .kernelThreadCreationFailed(e):
            return "UMS: could not create a kernel thread: pthread_create: \(UMS.describe(errno: e))"
        case let .completionListNotEmpty(queued, inKernel):
            return "UMS: completion list still holds \(queued) queued thread(s) and \(inKernel) in blocking calls; drain it first"
        case let .affinityFailed(cpu, e):
            return "UMS: could not pin the primary to CPU \(cpu): pthread_setaffinity_np: \(UMS.describe(errno: e))"
        case let .systemCallFailed(call, e):
            return "UMS: \(call): \(UMS.describe(errno: e))"
        case .outOfMemory:
            return "UMS: out of memory for a runtime record"
        case .primaryRetaken:
            return "UMS: execute(_:) on a primary whose CPU was retaken during a blocking call; return from the scheduler body on this pthread"
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension UMS {
    /// An errno value as every error message of UMS and the layers above
    /// it shows it: `EBADF (errno 9): Bad file descriptor`. Prefix it with
    /// the failing call: `read: EBADF (errno 9): Bad file descriptor`.
    /// [Windows: FormatMessage for a GetLastError code]
    public static func describe(errno e: Int32) -> String {
        let name = csup_errno_name(e).map { String(cString: $0) } ?? "E?"
        return "\(name) (errno \(e)): \(String(cString: strerror(e)))"
    }
}
