import CSupport
import Synchronization
import UMS

/// What a context is doing, as a snapshot sees it. [no ConcRT equivalent:
/// the Windows debugger's Parallel Tasks window and procdump /r]
///
/// How it is known, without stopping anything:
/// - each VP stores the id of the context it switched in last
///   (`runningContextID`, a relaxed store per switch);
/// - a context stores what it suspends on and when (`waitWord`,
///   `waitSince`: relaxed stores, made only on the suspension path, never
///   on a task's fast path), and the blocking call it is in
///   (`kernelCallName`, `kernelCallFD`) while it is in one;
/// - the UMS thread's own state says queued, running or in the kernel, and
///   each context's block words say whether it waits.
/// Every word is read with a relaxed (or acquire) load from the snapshot's
/// thread. The picture is therefore a sample, not a consistent cut: a
/// context may change state while it is read. ``Scheduler/snapshot()``
/// re-reads a context's words after walking its stack and reports it as
/// running if they changed, so a backtrace is never attributed to a wait it
/// has left.
public enum ContextActivity: Sendable, Equatable {
    /// Running on the virtual processor with this index.
    case running(virtualProcessor: Int)
    /// Ready to run, in a run queue or the completion list.
    case runnable
    /// Waiting cooperatively.
    case waiting(WaitReason)
    /// In a blocking call.
    case inKernel(KernelCall)
    /// Cached by a virtual processor, with no task.
    case idle

    /// A short name for grouping ("running", "runnable", "waiting",
    /// "in-kernel", "idle").
    public var kind: String {
        switch self {
        case .running: "running"
        case .runnable: "runnable"
        case .waiting: "waiting"
        case .inKernel: "in-kernel"
        case .idle: "idle"
        }
    }
}

/// What a waiting context waits on.
public enum WaitReason: Sendable, Equatable, CustomStringConvertible {
    /// An ``Event`` (its identity: the object's address).
    case event(UInt)
    /// A ``CriticalSection``.
    case criticalSection(UInt)
    /// A ``ReaderWriterLock``.
    case readerWriterLock(UInt)
    /// A join on a forked task another VP stole, or a task group.
    case join
    /// A timer (``Blocking/sleep(for:tolerance:)``, a timed wait).
    case timer
    /// ``Context/block()``.
    case block
    /// A task run on another scheduler (``Scheduler/run(_:)`` from a context).
    case otherScheduler
    /// Several events at once (``Event/waitForMultiple(_:waitAll:timeout:tolerance:)``).
    case multipleEvents
    /// None recorded.
    case unknown

    public var description: String {
        switch self {
        case .event(let a): "event 0x\(String(a, radix: 16))"
        case .criticalSection(let a): "critical section 0x\(String(a, radix: 16))"
        case .readerWriterLock(let a): "reader-writer lock 0x\(String(a, radix: 16))"
        case .join: "join"
        case .timer: "timer"
        case .block: "Context.block()"
        case .otherScheduler: "a task on another scheduler"
        case .multipleEvents: "several events"
        case .unknown: "unknown"
        }
    }

    /// The 4-bit code stored in `Context.waitWord`.
    enum Code: UInt {
        case unknown = 0, event, criticalSection, readerWriterLock, join, timer, block, otherScheduler, multipleEvents
    }

    init(word: UInt) {
        let address = word & ~UInt(0xF)
        switch Code(rawValue: word & 0xF) ?? .unknown {
        case .unknown: self = .unknown
        case .event: self = .event(address)
        case .criticalSection: self = .criticalSection(address)
        case .readerWriterLock: self = .readerWriterLock(address)
        case .join: self = .join
        case .timer: self = .timer
        case .block: self = .block
        case .otherScheduler: self = .otherScheduler
        case .multipleEvents: self = .multipleEvents
        }
    }
}

/// A blocking call a context is in.
public struct KernelCall: Sendable, Equatable, CustomStringConvertible {
    /// The call's name ("read", "recv", "fsync", "call" for ``Blocking/call(_:)``).
    public let name: String
    /// Its descriptor, or nil.
    public let descriptor: Int32?
    /// How it waits: on the VP's io_uring, inline on the VP's pthread
    /// (lazy kernel entry), or on a kernel thread.
    public let path: Path

    public enum Path: String, Sendable { case ring, inline, kernelThread = "kernel-thread" }

    public var description: String {
        "\(name)" + (descriptor.map { "(fd \($0))" } ?? "") + " [\(path.rawValue)]"
    }
}

extension Context {
    /// Records what the context is about to suspend on (its own thread;
    /// relaxed stores, see the file doc). One coarse clock read (a few ns).
    @inline(__always)
    func noteWait(_ code: WaitReason.Code, _ object: AnyObject? = nil) {
        let address = object.map { UInt(bitPattern: ObjectIdentifier($0)) } ?? 0
        assert(address & 0xF == 0, "Context.noteWait: object address 0x\(String(address, radix: 16)) is not 16-byte aligned")
        waitWord.store(address | code.rawValue, ordering: .relaxed)
        waitSince.store(csup_coarse_ns(), ordering: .relaxed)
    }

    /// Records the blocking call the context enters (cleared with
    /// ``noteKernelExit()``).
    @inline(__always)
    func noteKernelCall(_ name: StaticString, fd: Int32) {
        kernelCallFD.store(fd, ordering: .relaxed)
        kernelCallName.store(UInt(bitPattern: name.utf8Start), ordering: .relaxed)
    }

    @inline(__always)
    func noteKernelExit() {
        kernelCallName.store(0, ordering: .relaxed)
    }

    /// The calling context's label, or the label of the task it runs.
    public var label: String? {
        get { labelStorage.withLock { $0 } }
        set { labelStorage.withLock { $0 = newValue } }
    }

    /// Runs `body` with the calling context labelled `label` (restored
    /// after), so that snapshots and the watchdog name what it does. Outside
    /// a context it just runs `body`. [no ConcRT equivalent]
    public static func withLabel<R, E: Error>(_ label: String, _ body: () throws(E) -> R) throws(E) -> R {
        guard let c = currentInternal else { return try body() }
        let previous = c.labelStorage.withLock { l in
            defer { l = label }
            return l
        }
        if Scheduler.tracesRunning.load(ordering: .relaxed) > 0 { Context.traceLabel(c, label) }
        // A task may block and resume; the context is the same one.
        defer {
            c.labelStorage.withLock { $0 = previous }
            if Scheduler.tracesRunning.load(ordering: .relaxed) > 0 { Context.traceLabel(c, previous) }
        }
        return try body()
    }
}
