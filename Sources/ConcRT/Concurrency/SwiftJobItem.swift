import CSupport
import Synchronization
import UMS

/// Swift concurrency jobs as work items: no allocation per job.
///
/// A work item (WorkItem.swift) is a tagged pointer. Swift jobs are heap or
/// task-allocator records aligned to 16 bytes, so their low four bits are
/// free; the tags used here (bit 0 clear, bit 1 set) never collide with a
/// retained ``TaskNode`` (low bits 00) or a ``StackJob`` (bit 0 set):
///
///     ...0010  a job enqueued on the scheduler as a `TaskExecutor`
///     ...0110  a job of the global (generic) executor (installAsGlobalExecutor)
///     ...1010  a ``SchedulerSerialExecutor`` to drain (unretained; the
///              executor holds itself alive while a drain is scheduled)
///
/// Running a job: the context marks itself "inside a Swift job"
/// (`csup_ctx_swift_job_begin`) so that, if the job blocks and the context
/// resumes on another pthread, the runtime's thread-locals (current task,
/// executor tracking, fallback task-locals) move with it (see
/// `csup_swift_tls.h`). That is what keeps `withUnsafeCurrentTask`,
/// task-locals, `Task.isCancelled` and the task allocator right after a
/// ``Blocking`` call, an ``Event`` wait or a lock inside async code.
enum SwiftJobItem {
    static let taskExecutorTag: UInt = 0b0010
    static let globalTag: UInt = 0b0110
    static let serialDrainTag: UInt = 0b1010
    static let tagMask: UInt = 0b1111

    /// True for the item bits of any tag above (bit 0 clear, bit 1 set).
    @inline(__always)
    static func isSwiftItem(_ bits: UInt) -> Bool { bits & 0b11 == 0b10 }

    @inline(__always)
    static func item(_ job: UnownedJob, tag: UInt) -> WorkItem {
        let bits = unsafeBitCast(job, to: UInt.self)
        precondition(bits & tagMask == 0, "ConcRT: a Swift job record at \(bits) is not 16-byte aligned")
        return UnsafeMutableRawPointer(bitPattern: bits | tag)!
    }

    /// The layout must be found before the first job runs on a context.
    static let tlsReady: Bool = {
        var why = [CChar](repeating: 0, count: 512)
        if csup_swift_tls_locate(&why, why.count) == 0 { return true }
        let reason = String(decoding: why.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        preconditionFailure("ConcRT: Swift jobs cannot run on scheduler contexts: \(reason)")
    }()

    /// Runs one item whose bits satisfy ``isSwiftItem(_:)``, on the
    /// calling context (a work item is always run by a context).
    static func run(_ bits: UInt) {
        switch bits & tagMask {
        case serialDrainTag:
            let e = Unmanaged<SchedulerSerialExecutor>.fromOpaque(UnsafeRawPointer(bitPattern: bits & ~tagMask)!)
            // Balanced: the executor retained itself when it scheduled this drain.
            e.takeRetainedValue().drain()
        case taskExecutorTag:
            let job = unsafeBitCast(bits & ~tagMask, to: UnownedJob.self)
            guard let c = Context.currentInternal else {
                preconditionFailure("ConcRT: a Swift job item was run outside a scheduler context")
            }
            let scheduler = c.scheduler
            withJobTracking {
                job.runSynchronously(on: UnownedTaskExecutor(ordinary: scheduler))
            }
            scheduler.asyncJobFinished()
        case globalTag:
            let job = unsafeBitCast(bits & ~tagMask, to: UnownedJob.self)
            guard let c = Context.currentInternal else {
                preconditionFailure("ConcRT: a Swift job item was run outside a scheduler context")
            }
            let scheduler = c.scheduler
            withJobTracking { job.runSynchronously(on: genericSerialExecutor) }
            scheduler.asyncJobFinished()
        default:
            preconditionFailure("ConcRT: work item \(bits) has an unknown Swift job tag")
        }
    }

    /// Runs `body` (which runs Swift jobs synchronously) with the calling
    /// context marked as inside a job, so its Swift thread-locals follow it
    /// across switches.
    /// The outermost job also pins the context to its VP (JobPinning.swift).
    @inline(__always)
    static func withJobTracking(_ body: () -> Void) {
        _ = tlsReady
        guard let c = Context.currentInternal else {
            preconditionFailure("ConcRT: a Swift job item was run outside a scheduler context")
        }
        // The context's record stays the same across migration, so the
        // pointer read before the job is the one to unmark after it.
        let ctx = csup_ctx_current()
        if csup_ctx_swift_job_begin(ctx) == 1 { pin(c) }
        body()
        assert(csup_ctx_current() == ctx, "ConcRT: a Swift job returned on another context record")
        if csup_ctx_swift_job_end(ctx) == 0 { unpin(c) }
    }

    /// The generic executor (what the default global executor runs its
    /// jobs on): both words of the executor reference zero.
    static var genericSerialExecutor: UnownedSerialExecutor {
        assert(MemoryLayout<UnownedSerialExecutor>.size == 2 * MemoryLayout<UInt>.size)
        return unsafeBitCast((UInt(0), UInt(0)), to: UnownedSerialExecutor.self)
    }
}
