import CSupport
import Synchronization
import UMS

/// A timeline trace of a scheduler: per-VP events with nanosecond
/// timestamps, exported as Chrome / Perfetto trace JSON
/// (``chromeTraceJSON()``). [the ETW events ConcRT emits; Go's
/// `go tool trace`]
///
/// Recording: ``Scheduler/startTrace(eventsPerVirtualProcessor:)`` gives
/// each VP a buffer (CSupport/trace.c: a slot is reserved with one atomic
/// add and published with a release store, so the VP's carrier and the
/// monitor's retake may both write). Every trace point is one relaxed load
/// of the VP's buffer pointer and a branch when tracing is off. Only the
/// events a user can act on are recorded: tasks the VP dispatched (a fork
/// its joiner pops back and runs inline is a function call, not a task),
/// steals, context switches, cooperative blocks and unblocks, blocking calls
/// entered and left, retakes, idle sleeps and wake-ups, timer batches. A
/// full buffer drops later events and counts them.
public struct Trace: Sendable {
    /// What happened.
    public enum Kind: UInt32, Sendable, CaseIterable {
        /// A dispatched task began (argument: the context running it).
        case taskBegin = 1
        /// It ended (argument: the context).
        case taskEnd
        /// A task or context was taken from another VP (argument: nothing).
        case steal
        /// A context was switched in (argument: its id).
        case switchIn
        /// The running context suspended cooperatively (argument: its id).
        case block
        /// A context was made runnable by code on this VP (argument: its id).
        case unblock
        /// A blocking call that will wait began (argument: the context).
        case kernelEnter
        /// It returned (argument: the context).
        case kernelExit
        /// The UMS monitor retook this VP from a blocking call.
        case retake
        /// The VP went to sleep, idle.
        case sleepBegin
        /// It woke up.
        case sleepEnd
        /// Timers fired (argument: how many).
        case timers
        /// The running context took a label (``Context/withLabel(_:_:)``;
        /// argument: the label's index in ``Trace/labelNames``, the high
        /// 32 bits the context id).
        case label

        var name: String {
            switch self {
            case .taskBegin: "task-begin"
            case .taskEnd: "task-end"
            case .steal: "steal"
            case .switchIn: "switch"
            case .block: "block"
            case .unblock: "unblock"
            case .kernelEnter: "kernel-enter"
            case .kernelExit: "kernel-exit"
            case .retake: "retake"
            case .sleepBegin: "sleep-begin"
            case .sleepEnd: "sleep-end"
            case .timers: "timer"
            case .label: "label"
            }
        }
    }

    public struct Event: Sendable, Equatable {
        public let virtualProcessor: Int
        /// Monotonic clock, ns.
        public let timestamp: Int64
        public let kind: Kind
        public let argument: UInt64
    }

    /// Every recorded event, sorted by VP then time.
    public let events: [Event]
    /// Events lost to full buffers.
    public let dropped: UInt64
    /// The VPs traced.
    public let virtualProcessorCount: Int
    /// Labels named by ``Kind/label`` events ("" for none).
    public let labelNames: [String]
}

/// A VP's trace buffer, kept by the scheduler until its primaries have
/// left (writers hold it unretained).
final class TraceBuffer: @unchecked Sendable {
    // @unchecked Sendable: the C buffer is written under its own protocol
    // (csup_trace.h) and read only after the trace stopped.
    let raw: OpaquePointer
    init?(capacity: Int) {
        guard let b = csup_trace_buf_create(capacity) else { return nil }
        raw = b
    }
    deinit { csup_trace_buf_destroy(raw) }
}

extension VirtualProcessor {
    /// A trace point: one relaxed load and a branch when tracing is off.
    @inline(__always)
    func trace(_ kind: Trace.Kind, _ argument: Int = 0) {
        let bits = traceBuffer.load(ordering: .acquiring)
        if bits != 0 { Self.emit(bits, kind, argument) }
    }

    @inline(never)
    static func emit(_ bits: UInt, _ kind: Trace.Kind, _ argument: Int) {
        // Why this is sound: a published buffer stays alive until the
        // scheduler's primaries have left (Scheduler.retiredTraceBuffers).
        csup_trace_emit(OpaquePointer(bitPattern: bits)!, kind.rawValue, UInt64(bitPattern: Int64(argument)))
    }
}

extension Context {
    /// An unblock, traced on the waker's VP (nothing when the waker is not
    /// a context).
    @inline(never)
    static func traceLabel(_ c: Context, _ label: String?) {
        guard let vp = c.vpRef else { return }
        let index = c.scheduler.traceState.withLock { st -> Int in
            let name = label ?? ""
            if let i = st.labelIndex[name] { return i }
            st.labelNames.append(name)
            st.labelIndex[name] = st.labelNames.count - 1
            return st.labelNames.count - 1
        }
        vp._withUnsafeGuaranteedRef { $0.trace(.label, (c.id << 32) | index) }
    }

    static func traceUnblock(_ c: Unmanaged<Context>) {
        guard let me = currentInternal, let vp = me.vpRef else { return }
        let id = c._withUnsafeGuaranteedRef { $0.id }
        vp._withUnsafeGuaranteedRef { $0.trace(.unblock, id) }
    }

    /// Kernel enter / exit trace points around a blocking call that waits
    /// inline (lazy kernel entry), on the VP the context is on at each end.
    @inline(__always)
    func traceKernel(_ kind: Trace.Kind) {
        if let vp = vpRef { vp._withUnsafeGuaranteedRef { $0.trace(kind, id) } }
    }
}

extension Scheduler {
    /// Traces running in the process (relaxed): trace points that would
    /// need a lookup to find their VP check it first.
    static let tracesRunning = Atomic<Int>(0)

    /// Starts recording a timeline trace (see ``Trace``). [ETW session start]
    /// - Throws: ``ConcRTError/diagnosticsUnavailable(_:)`` when a trace
    ///   already runs, the size is out of range, or the buffers cannot be
    ///   allocated.
    public func startTrace(eventsPerVirtualProcessor: Int = 1 << 18) throws(ConcRTError) {
        guard (1...(1 << 24)).contains(eventsPerVirtualProcessor) else {
            throw .diagnosticsUnavailable("startTrace: eventsPerVirtualProcessor must be in 1...16777216 (got \(eventsPerVirtualProcessor))")
        }
        let vps = virtualProcessors
        var made: [TraceBuffer] = []
        for _ in vps {
            guard let b = TraceBuffer(capacity: eventsPerVirtualProcessor) else {
                throw .diagnosticsUnavailable("startTrace: out of memory for \(vps.count) buffers of \(eventsPerVirtualProcessor) events")
            }
            made.append(b)
        }
        let started = traceState.withLock { st -> Bool in
            guard st.active.isEmpty else { return false }
            st.active = made
            st.labelNames = [""]
            st.labelIndex = ["": 0]
            return true
        }
        guard started else { throw .diagnosticsUnavailable("startTrace: a trace is already running on this scheduler") }
        Scheduler.tracesRunning.wrappingAdd(1, ordering: .relaxed)
        for (vp, b) in zip(vps, made) {
            vp.traceBuffer.store(UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(b.raw))), ordering: .releasing)
        }
    }

    /// Stops the trace and returns what was recorded. [ETW session stop]
    /// - Throws: ``ConcRTError/diagnosticsUnavailable(_:)`` when no trace runs.
    public func stopTrace() throws(ConcRTError) -> Trace {
        let vps = virtualProcessors
        for vp in vps { vp.traceBuffer.store(0, ordering: .releasing) }
        let (buffers, labels) = traceState.withLock { st -> ([TraceBuffer], [String]) in
            defer {
                st.retired += st.active
                st.active = []
            }
            return (st.active, st.labelNames)
        }
        guard !buffers.isEmpty else { throw .diagnosticsUnavailable("stopTrace: no trace is running on this scheduler") }
        Scheduler.tracesRunning.wrappingSubtract(1, ordering: .relaxed)
        var events: [Trace.Event] = []
        var dropped: UInt64 = 0
        for (vp, b) in zip(vps, buffers) {
            let cap = csup_trace_buf_capacity(b.raw)
            var raw = [csup_trace_event](repeating: csup_trace_event(), count: cap)
            let n = raw.withUnsafeMutableBufferPointer { csup_trace_buf_read(b.raw, $0.baseAddress, cap) }
            dropped += csup_trace_buf_dropped(b.raw)
            var mine: [Trace.Event] = []
            mine.reserveCapacity(n)
            for e in raw.prefix(n) {
                guard let k = Trace.Kind(rawValue: e.kind) else { continue }
                mine.append(Trace.Event(virtualProcessor: vp.index, timestamp: e.ts, kind: k, argument: e.arg))
            }
            // Two writers (carrier, monitor) may interleave: order by time.
            mine.sort { $0.timestamp < $1.timestamp }
            events += mine
        }
        let used = events.reduce(into: 0) { $0 = max($0, $1.virtualProcessor + 1) }
        return Trace(events: events, dropped: dropped, virtualProcessorCount: max(used, regularVPCount), labelNames: labels)
    }
}

/// Trace buffers of a scheduler: the running trace's, and retired ones
/// (kept until the scheduler goes away: a writer may still hold one).
struct TraceState {
    var active: [TraceBuffer] = []
    var retired: [TraceBuffer] = []
    var labelNames: [String] = [""]
    var labelIndex: [String: Int] = ["": 0]
}
