/// Chrome / Perfetto trace JSON for a ``Trace``: one track ("thread") per
/// VP; `B`/`E` duration events for what the VP was doing, `i` instants for
/// steals, switches, blocks, unblocks, retakes and timer batches.
///
/// Each VP is in one state at a time, derived from its events in time
/// order: `task` (a dispatched task runs; a context that blocked inside a
/// task and resumes later, on any VP, resumes its task), `kernel` (a
/// blocking call inline, under lazy kernel entry), `sleep` (idle), or
/// nothing (the scheduler's own loop). A state change closes the previous
/// state's `B` with an `E` at the same timestamp, so every track is
/// balanced and its timestamps never go backwards by construction.
extension Trace {
    enum State: Equatable {
        case none
        case task(Int)
        case kernel(Int)
        case sleep

        var name: String? {
            switch self {
            case .none: nil
            case .task: "task"
            case .kernel: "kernel"
            case .sleep: "sleep"
            }
        }
    }

    /// The trace as Chrome trace-event JSON (object form), which
    /// `chrome://tracing` and ui.perfetto.dev open as is.
    public func chromeTraceJSON() -> String {
        let origin = events.map(\.timestamp).min() ?? 0
        func ts(_ ns: Int64) -> String {
            let d = max(0, ns - origin)
            let frac = String(d % 1000)
            return "\(d / 1000)." + String(repeating: "0", count: 3 - frac.count) + frac
        }
        var out: [String] = []
        out.append("{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":1,\"tid\":0,\"args\":{\"name\":\"ums scheduler\"}}")
        for vp in 0..<virtualProcessorCount {
            out.append("{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":1,\"tid\":\(vp),\"args\":{\"name\":\"VP \(vp)\"}}")
            out.append("{\"ph\":\"M\",\"name\":\"thread_sort_index\",\"pid\":1,\"tid\":\(vp),\"args\":{\"sort_index\":\(vp)}}")
        }
        var state = [Int: State]()
        var inTask = Set<Int>()
        var labelOf: [Int: String] = [:]
        var last: Int64 = origin
        func args(_ s: State) -> String {
            switch s {
            case .task(let c), .kernel(let c):
                var a = "{\"context\":\(c)"
                if let l = labelOf[c] { a += ",\"label\":\(JSON.string(l))" }
                return a + "}"
            case .none, .sleep:
                return "{}"
            }
        }
        func move(_ vp: Int, to new: State, at t: Int64) {
            let old = state[vp] ?? .none
            guard old != new else { return }
            if let n = old.name { out.append("{\"ph\":\"E\",\"name\":\"\(n)\",\"cat\":\"vp\",\"pid\":1,\"tid\":\(vp),\"ts\":\(ts(t))}") }
            if let n = new.name {
                out.append("{\"ph\":\"B\",\"name\":\"\(n)\",\"cat\":\"vp\",\"pid\":1,\"tid\":\(vp),\"ts\":\(ts(t)),\"args\":\(args(new))}")
            }
            state[vp] = new
        }
        func instant(_ vp: Int, _ name: String, _ t: Int64, _ arg: UInt64) {
            out.append("{\"ph\":\"i\",\"s\":\"t\",\"name\":\"\(name)\",\"cat\":\"vp\",\"pid\":1,\"tid\":\(vp),\"ts\":\(ts(t)),\"args\":{\"arg\":\(arg)}}")
        }
        // Global time order: a task begun on one VP may resume on another.
        let ordered = events.sorted { $0.timestamp != $1.timestamp ? $0.timestamp < $1.timestamp : $0.virtualProcessor < $1.virtualProcessor }
        for e in ordered {
            let vp = e.virtualProcessor, t = e.timestamp, c = Int(truncatingIfNeeded: e.argument)
            last = max(last, t)
            switch e.kind {
            case .taskBegin:
                inTask.insert(c)
                move(vp, to: .task(c), at: t)
            case .taskEnd:
                inTask.remove(c)
                move(vp, to: .none, at: t)
            case .switchIn:
                move(vp, to: inTask.contains(c) ? .task(c) : .none, at: t)
                instant(vp, e.kind.name, t, e.argument)
            case .block:
                move(vp, to: .none, at: t)
                instant(vp, e.kind.name, t, e.argument)
            case .kernelEnter:
                move(vp, to: .kernel(c), at: t)
            case .kernelExit:
                move(vp, to: inTask.contains(c) ? .task(c) : .none, at: t)
            case .retake:
                move(vp, to: .none, at: t)
                instant(vp, e.kind.name, t, e.argument)
            case .sleepBegin:
                move(vp, to: .sleep, at: t)
            case .sleepEnd:
                move(vp, to: .none, at: t)
            case .label:
                let ctx = Int(e.argument >> 32), index = Int(e.argument & 0xFFFF_FFFF)
                let name = index < labelNames.count ? labelNames[index] : ""
                labelOf[ctx] = name.isEmpty ? nil : name
                // Split the running slice so the rest of it carries the label.
                if state[vp] == .task(ctx) {
                    move(vp, to: .none, at: t)
                    move(vp, to: .task(ctx), at: t)
                }
            case .steal, .unblock, .timers:
                instant(vp, e.kind.name, t, e.argument)
            }
        }
        for vp in state.keys.sorted() { move(vp, to: .none, at: last) }
        return "{\"displayTimeUnit\":\"ns\",\"otherData\":{\"dropped\":\(dropped)},\"traceEvents\":[\n"
            + out.joined(separator: ",\n") + "\n]}\n"
    }
}
