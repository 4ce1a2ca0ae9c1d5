/// A duration on one track: a matched B/E pair or an X event.
public struct Span: Sendable, Equatable {
    public var name: String
    /// Microseconds.
    public var start: Double
    public var end: Double
    /// Spans open around it on the same track when it began (0 = outermost).
    public var depth: Int
    public var duration: Double { end - start }
}

/// A point event ("i") on one track.
public struct Instant: Sendable, Equatable {
    public var name: String
    public var ts: Double
}

/// One row of the timeline.
public struct Track: Sendable {
    public var id: TrackID
    /// The `thread_name` metadata, else "runtime" for tid 1000, else "tid N".
    public var name: String
    public var spans: [Span]
    public var instants: [Instant]
}

/// A rule of the trace format the trace breaks.
public struct TraceViolation: Error, CustomStringConvertible, Equatable {
    /// One line per violation found (at most ``Timeline/maxViolations``).
    public var messages: [String]
    public var description: String {
        messages.count == 1 ? messages[0] : "\(messages.count) violations:\n  " + messages.joined(separator: "\n  ")
    }
}

/// The spans and instants of a trace per track, built after checking that
/// - every "E" closes the innermost open "B" of its (pid, tid), with the
///   same name when the "E" has one (spans nest properly);
/// - every "B" is closed by the end of the trace;
/// - timestamps never go backwards within a (pid, tid), in file order.
/// An "X" event is a span of `dur` microseconds that nests like a B/E pair.
///
/// Lenient mode (for drawing a trace whose per-VP ring buffers wrapped, so
/// that a track starts with an "E" whose "B" was overwritten) builds the
/// timeline anyway: an event that goes back in time or closes nothing is
/// dropped, an "E" naming an outer open span closes the spans inside it at
/// its time, and a span still open at the end closes at its track's last
/// event. The violations are counted and the first ones kept.
public struct Timeline: Sendable {
    public static let maxViolations = 20
    /// Tracks ordered by pid, then `thread_sort_index` metadata, then tid.
    public var tracks: [Track]
    /// First and last time of any event (microseconds); 0...0 when empty.
    public var start: Double
    public var end: Double
    /// Lenient mode: how many violations were passed over, and the first
    /// ``maxViolations`` messages. Always 0 and empty in strict mode (which throws).
    public var violationCount = 0
    public var violations: [String] = []

    /// The name a track is shown under.
    public static func trackName(_ id: TrackID, names: [TrackID: String]) -> String {
        if let n = names[id] { return n }
        return id.tid == 1000 ? "runtime" : "tid \(id.tid)"
    }

    /// Builds the timeline; in strict mode (the default) throws on the
    /// first ``maxViolations`` violations.
    public init(_ trace: ChromeTrace, lenient: Bool = false) throws(TraceViolation) {
        struct Open { var name: String; var start: Double; var index: Int; var xEnd: Double? }
        struct State { var stack: [Open] = []; var lastTs: Double = -.infinity; var lastIndex = -1
                       var spans: [Span] = []; var instants: [Instant] = [] }
        var index: [TrackID: Int] = [:]
        var states: [State] = []
        var problems: [String] = []
        var problemCount = 0
        func note(_ s: String) { problemCount += 1; if problems.count < Self.maxViolations { problems.append(s) } }
        func fmt(_ us: Double) -> String { String(format: "%.3f us", us) }
        var lo = Double.infinity, hi = -Double.infinity

        for e in trace.events {
            guard let ts = e.ts, e.phase != "M" else { continue }
            let id = e.track
            // Built only for a message (it costs a string per event otherwise).
            var where_: String { "\(Self.trackName(id, names: trace.threadNames)) (\(id))" }
            // Mutated in place (states[k]), never copied out: a copy of a
            // State would make each append copy the track's arrays.
            let k: Int
            if let found = index[id] { k = found } else { k = states.count; index[id] = k; states.append(State()) }
            if ts < states[k].lastTs {
                note("\(where_): event #\(e.index) (\(e.phase) \"\(e.name)\") at \(fmt(ts)) goes back in time: "
                     + "event #\(states[k].lastIndex) was at \(fmt(states[k].lastTs))")
                if lenient { continue }
            } else {
                states[k].lastTs = ts; states[k].lastIndex = e.index
            }
            // Complete (X) spans that ended by now leave the stack.
            while let top = states[k].stack.last, let xe = top.xEnd, xe <= ts { states[k].stack.removeLast() }
            lo = min(lo, ts); hi = max(hi, ts)
            switch e.phase {
            case "B":
                states[k].stack.append(Open(name: e.name, start: ts, index: e.index, xEnd: nil))
            case "E":
                guard let top = states[k].stack.last else {
                    note("\(where_): event #\(e.index) (E \"\(e.name)\") at \(fmt(ts)) has no open B to close")
                    break
                }
                if top.xEnd != nil {
                    note("\(where_): event #\(e.index) (E \"\(e.name)\") at \(fmt(ts)) ends inside the X span "
                         + "\"\(top.name)\" (event #\(top.index)), which is not closed by E")
                    break
                }
                if !e.name.isEmpty && e.name != top.name {
                    note("\(where_): event #\(e.index) (E \"\(e.name)\") at \(fmt(ts)) does not match the innermost "
                         + "open span \"\(top.name)\" (B event #\(top.index) at \(fmt(top.start))): improper nesting")
                    // Lenient: close the spans inside the named one, if it is open.
                    guard lenient, states[k].stack.contains(where: { $0.name == e.name && $0.xEnd == nil }) else { break }
                    while let inner = states[k].stack.last, inner.name != e.name || inner.xEnd != nil {
                        states[k].stack.removeLast()
                        if inner.xEnd == nil {
                            states[k].spans.append(Span(name: inner.name, start: inner.start, end: max(ts, inner.start),
                                                        depth: states[k].stack.count))
                        }
                    }
                    let named = states[k].stack.removeLast()
                    states[k].spans.append(Span(name: named.name, start: named.start, end: max(ts, named.start),
                                                depth: states[k].stack.count))
                    break
                }
                states[k].stack.removeLast()
                states[k].spans.append(Span(name: top.name, start: top.start, end: max(ts, top.start), depth: states[k].stack.count))
            case "X":
                let d = e.dur ?? 0
                states[k].spans.append(Span(name: e.name, start: ts, end: ts + d, depth: states[k].stack.count))
                states[k].stack.append(Open(name: e.name, start: ts, index: e.index, xEnd: ts + d))
                hi = max(hi, ts + d)
            case "i":
                states[k].instants.append(Instant(name: e.name, ts: ts))
            default:
                break   // counters, flows, async events: not drawn
            }
        }
        for (id, k) in index.sorted(by: { $0.key < $1.key }) {
            for (depth, o) in states[k].stack.enumerated() where o.xEnd == nil {
                note("\(Self.trackName(id, names: trace.threadNames)) (\(id)): span \"\(o.name)\" opened by "
                     + "event #\(o.index) at \(fmt(o.start)) is never closed (no matching E)")
                if lenient {
                    states[k].spans.append(Span(name: o.name, start: o.start, end: max(states[k].lastTs, o.start), depth: depth))
                }
            }
        }
        if !problems.isEmpty && !lenient { throw TraceViolation(messages: problems) }

        // Tracks named only by metadata still get a (empty) row.
        // Ordered by pid, then `thread_sort_index` (tracks without one after
        // those with one), then tid.
        let ids = Set(index.keys).union(trace.threadNames.keys).sorted { a, b in
            let ka = trace.threadSortIndex[a] ?? Int.max, kb = trace.threadSortIndex[b] ?? Int.max
            return (a.pid, ka, a.tid) < (b.pid, kb, b.tid)
        }
        tracks = ids.map { id in
            let st = index[id].map { states[$0] } ?? State()
            return Track(id: id, name: Self.trackName(id, names: trace.threadNames),
                         spans: st.spans.sorted { ($0.depth, $0.start) < ($1.depth, $1.start) },
                         instants: st.instants)
        }
        start = lo.isFinite ? lo : 0
        end = hi.isFinite ? hi : start
        violationCount = problemCount
        violations = problems
    }
}
