import CSupport
import Synchronization
import UMS

/// One context in a ``SchedulerSnapshot``.
public struct ContextSnapshot: Sendable {
    /// ``Context/id``.
    public let id: Int
    /// Its label (``Context/withLabel(_:_:)``), if any.
    public let label: String?
    /// What it was doing.
    public let activity: ContextActivity
    /// How long it had been doing it, when known: since it began its wait or
    /// ring operation (coarse clock: a few ms of resolution), or, for a
    /// running context, since the watchdog first saw its VP on the current
    /// switch (nil without a watchdog).
    public let duration: Duration?
    /// The backtrace of a suspended context (waiting, runnable, idle, in
    /// the kernel on the ring or a kernel thread); nil for a running one (it
    /// is not stopped to take one).
    public let backtrace: Backtrace?
}

/// One virtual processor in a ``SchedulerSnapshot``.
public struct VirtualProcessorSnapshot: Sendable {
    public let index: Int
    /// The context it switched in last (running now unless the VP sleeps).
    public let lastContextID: Int
    /// Context switches so far.
    public let switches: Int
    /// Tasks run so far (forks run inline by their joiner not counted).
    public let tasksRun: Int
}

/// Process reflection of a scheduler: every live context with its state,
/// how long it has been in it, and where a suspended one stopped, taken
/// while the virtual processors keep running. [procdump /r; Go's SIGQUIT
/// goroutine dump]
public struct SchedulerSnapshot: Sendable, CustomStringConvertible {
    /// Monotonic clock at the start of the snapshot (ns).
    public let takenAtNanoseconds: Int64
    /// How long taking it took.
    public let elapsed: Duration
    public let contexts: [ContextSnapshot]
    public let virtualProcessors: [VirtualProcessorSnapshot]

    /// Contexts per ``ContextActivity/kind``.
    public var counts: [String: Int] {
        contexts.reduce(into: [:]) { $0[$1.activity.kind, default: 0] += 1 }
    }

    static let kindOrder = ["running", "in-kernel", "waiting", "runnable", "idle"]

    /// The text form: the VPs, then one block per context grouped by state.
    public var description: String {
        var out = "== scheduler snapshot: \(contexts.count) contexts, \(virtualProcessors.count) VPs, "
            + "taken in \(Self.format(elapsed)) ==\n"
        for v in virtualProcessors {
            out += "VP \(v.index): context \(v.lastContextID), \(v.switches) switches, \(v.tasksRun) tasks\n"
        }
        let grouped = Dictionary(grouping: contexts) { $0.activity.kind }
        for kind in Self.kindOrder {
            guard let group = grouped[kind], !group.isEmpty else { continue }
            out += "-- \(kind) (\(group.count)) --\n"
            for c in group.sorted(by: { $0.id < $1.id }) {
                out += "context \(c.id)" + (c.label.map { " \"\($0)\"" } ?? "") + ": " + Self.describe(c.activity)
                if let d = c.duration { out += " for \(Self.format(d))" }
                out += "\n"
                if let bt = c.backtrace {
                    for (i, f) in bt.frames.enumerated() { out += "    #\(i) \(f)\n" }
                }
            }
        }
        return out
    }

    static func describe(_ a: ContextActivity) -> String {
        switch a {
        case .running(let vp): "running on VP \(vp)"
        case .runnable: "runnable"
        case .waiting(let why): "waiting on \(why)"
        case .inKernel(let call): "in the kernel: \(call)"
        case .idle: "idle (cached)"
        }
    }

    static func format(_ d: Duration) -> String {
        let ns = d.saturatingNanoseconds
        if ns >= 1_000_000_000 { return "\(Double(ns / 1_000_000) / 1000) s" }
        if ns >= 1_000_000 { return "\(Double(ns / 1000) / 1000) ms" }
        return "\(Double(ns) / 1000) µs"
    }

    /// The JSON form: `{"takenAtNs":…, "elapsedNs":…, "virtualProcessors":[…],
    /// "contexts":[{"id":…, "label":…, "state":…, "detail":…, "durationNs":…,
    /// "backtrace":[{"address":"0x…","symbol":…,"offset":…,"image":…}]}]}`.
    public func json() -> String {
        var out = "{\"takenAtNs\":\(takenAtNanoseconds),\"elapsedNs\":\(elapsed.saturatingNanoseconds),"
        out += "\"virtualProcessors\":["
        out += virtualProcessors.map {
            "{\"index\":\($0.index),\"lastContext\":\($0.lastContextID),\"switches\":\($0.switches),\"tasksRun\":\($0.tasksRun)}"
        }.joined(separator: ",")
        out += "],\"contexts\":["
        out += contexts.map { c in
            var o = "{\"id\":\(c.id),\"label\":\(c.label.map(JSON.string) ?? "null"),\"state\":\(JSON.string(c.activity.kind))"
            switch c.activity {
            case .running(let vp): o += ",\"virtualProcessor\":\(vp)"
            case .waiting(let why): o += ",\"waitingOn\":\(JSON.string(why.description))"
            case .inKernel(let call):
                o += ",\"call\":\(JSON.string(call.name)),\"path\":\(JSON.string(call.path.rawValue))"
                if let fd = call.descriptor { o += ",\"descriptor\":\(fd)" }
            case .runnable, .idle: break
            }
            o += ",\"durationNs\":" + (c.duration.map { "\($0.saturatingNanoseconds)" } ?? "null")
            if let bt = c.backtrace {
                o += ",\"backtrace\":[" + bt.frames.map { f in
                    "{\"address\":\"0x\(String(f.address, radix: 16))\",\"symbol\":\(f.symbol.map(JSON.string) ?? "null"),"
                        + "\"offset\":\(f.offset),\"image\":\(f.image.map(JSON.string) ?? "null")}"
                }.joined(separator: ",") + "]"
            }
            return o + "}"
        }.joined(separator: ",")
        return out + "]}"
    }
}

/// Minimal JSON string escaping (no Foundation in this module).
enum JSON {
    static func string(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}

extension Scheduler {
    /// Takes a snapshot of every live context while the virtual processors
    /// keep running. [procdump /r]
    ///
    /// Nothing is stopped: running contexts are reported with their VP
    /// (and no backtrace); suspended ones get a backtrace read from their
    /// saved frame pointers. A context that changes state while it is read
    /// is reported as it was seen first, without a backtrace. Cost: one
    /// lock to copy the context list, then a few system calls per frame
    /// (stack memory is read with process_vm_readv, so nothing can fault).
    /// - Parameter backtraces: false skips the stack walks (cheaper).
    public func snapshot(backtraces: Bool = true) -> SchedulerSnapshot {
        let start = csup_monotonic_ns()
        // Strong references: a context that ends meanwhile stays readable
        // (its thread and context record live as long as it does).
        let all = registeredContexts()
        let vps = virtualProcessors.prefix(activeVPCount.load(ordering: .acquiring))
        var runningOn: [Int: Int] = [:]
        for vp in vps { runningOn[vp.runningContextID.load(ordering: .relaxed)] = vp.index }
        let now = csup_coarse_ns()
        let runningSince = watch.runningSince()
        var out: [ContextSnapshot] = []
        out.reserveCapacity(all.count)
        for c in all {
            guard let seen = Self.observe(c, runningOn: runningOn) else { continue }
            var activity = seen.activity
            var bt: Backtrace?
            if backtraces && seen.suspended {
                bt = Backtrace.ofSuspended(c.thread.contextRecord)
                // Re-read: a context that resumed meanwhile may have
                // rewritten the frames we walked.
                let again = Self.observe(c, runningOn: runningOn)
                if let again, again.activity == activity, again.suspended, again.waitWord == seen.waitWord {
                    // unchanged: keep the backtrace
                } else {
                    bt = nil
                    activity = again?.activity ?? activity
                }
            }
            var duration: Duration?
            switch activity {
            case .waiting:
                let since = c.waitSince.load(ordering: .relaxed)
                if since > 0 { duration = .nanoseconds(max(0, now - since)) }
            case .inKernel(let call):
                // Only ring operations are stamped (the inline path stays
                // free of clock reads).
                let since = c.waitSince.load(ordering: .relaxed)
                if call.path == .ring, since > 0 { duration = .nanoseconds(max(0, now - since)) }
            case .running(let vp):
                if let s = runningSince[vp] { duration = .nanoseconds(max(0, csup_monotonic_ns() - s)) }
            case .runnable, .idle:
                break
            }
            out.append(ContextSnapshot(id: c.id, label: c.label, activity: activity, duration: duration, backtrace: bt))
        }
        let vpSnaps = vps.map { vp in
            VirtualProcessorSnapshot(index: vp.index, lastContextID: vp.runningContextID.load(ordering: .relaxed),
                                     switches: vp.switchCount.load(ordering: .relaxed), tasksRun: vp.stats.tasksRun.value)
        }
        return SchedulerSnapshot(takenAtNanoseconds: start, elapsed: .nanoseconds(csup_monotonic_ns() - start),
                                 contexts: out.sorted { $0.id < $1.id }, virtualProcessors: Array(vpSnaps))
    }

    /// How a context looked at one instant (nil: it has ended).
    struct Observation {
        var activity: ContextActivity
        var suspended: Bool
        var waitWord: UInt
        var kernelPath: KernelCall.Path?
    }

    static func observe(_ c: Context, runningOn: [Int: Int]) -> Observation? {
        let t = c.thread!
        let state = t.currentState
        let word = c.waitWord.load(ordering: .relaxed)
        let callBits = c.kernelCallName.load(ordering: .relaxed)
        func call(_ path: KernelCall.Path) -> KernelCall {
            let name = KernelCall.name(bits: callBits)
            let fd = c.kernelCallFD.load(ordering: .relaxed)
            return KernelCall(name: name, descriptor: fd >= 0 ? fd : nil, path: path)
        }
        switch state {
        case .terminated:
            return nil
        case .inKernel:
            return Observation(activity: .inKernel(call(.kernelThread)), suspended: true, waitWord: word, kernelPath: .kernelThread)
        case .running:
            let vp = runningOn[c.id] ?? -1
            if callBits != 0 {
                return Observation(activity: .inKernel(call(.inline)), suspended: false, waitWord: word, kernelPath: .inline)
            }
            return Observation(activity: .running(virtualProcessor: vp), suspended: false, waitWord: word, kernelPath: nil)
        case .queued, .ready:
            if c.isCachedIdle.load(ordering: .relaxed) {
                return Observation(activity: .idle, suspended: true, waitWord: word, kernelPath: nil)
            }
            if c.ioParkedTag.load(ordering: .relaxed) != 0 {
                return Observation(activity: .inKernel(call(.ring)), suspended: true, waitWord: word, kernelPath: .ring)
            }
            let b = c.blockState.load(ordering: .acquiring)
            if c.parkedOnEvent.load(ordering: .relaxed) || b == .blocked || b == .blocking {
                return Observation(activity: .waiting(WaitReason(word: word)), suspended: true, waitWord: word, kernelPath: nil)
            }
            return Observation(activity: .runnable, suspended: true, waitWord: word, kernelPath: nil)
        }
    }
}
