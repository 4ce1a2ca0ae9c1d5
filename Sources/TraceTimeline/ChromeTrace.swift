import Foundation

/// One event of a Chrome trace-event file (the "Trace Event Format" that
/// chrome://tracing and Perfetto read). Times are in microseconds.
public struct TraceEvent: Sendable, Equatable {
    /// `ph`: "B" begin, "E" end, "X" complete, "i"/"I" instant, "M" metadata, others kept as is.
    public var phase: String
    public var name: String
    public var category: String?
    public var pid: Int
    public var tid: Int
    /// `ts` in microseconds; nil only for metadata events.
    public var ts: Double?
    /// `dur` in microseconds, for "X" events.
    public var dur: Double?
    /// `args`, values rendered as strings.
    public var args: [String: String]
    /// Position in the file's event array (0-based), for messages.
    public var index: Int

    public var track: TrackID { TrackID(pid: pid, tid: tid) }
}

/// A timeline row: one (pid, tid) pair. Ordered by pid, then tid.
public struct TrackID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var pid: Int
    public var tid: Int
    public init(pid: Int, tid: Int) { self.pid = pid; self.tid = tid }
    public static func < (a: TrackID, b: TrackID) -> Bool { (a.pid, a.tid) < (b.pid, b.tid) }
    public var description: String { "pid \(pid) tid \(tid)" }
}

/// The file could not be read as trace-event JSON.
public struct TraceParseError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A parsed trace: its events in file order and its thread names.
/// [ConcRT wrote ETW events (`ConcRTEventGuid`) for its scheduler and
/// context activity; our tracer writes this open format instead, which
/// chrome://tracing and ui.perfetto.dev open as is.]
public struct ChromeTrace: Sendable {
    public var events: [TraceEvent]
    /// `displayTimeUnit`, if given ("ms" or "ns").
    public var displayTimeUnit: String?
    /// Names from `thread_name` metadata events.
    public var threadNames: [TrackID: String]
    /// Row order from `thread_sort_index` metadata events (`args.sort_index`).
    public var threadSortIndex: [TrackID: Int] = [:]
    /// The top-level `otherData` object, values as text (the ConcRT
    /// exporter writes `dropped`: events its full ring buffers lost).
    public var otherData: [String: String] = [:]

    public init(events: [TraceEvent], displayTimeUnit: String? = nil, threadNames: [TrackID: String] = [:]) {
        self.events = events
        self.displayTimeUnit = displayTimeUnit
        self.threadNames = threadNames
    }

    /// Reads and parses the file at `path`.
    public static func load(path: String) throws(TraceParseError) -> ChromeTrace {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TraceParseError("\(path): cannot read the file")
        }
        do { return try parse(data) } catch { throw TraceParseError("\(path): \(error.message)") }
    }

    /// Parses the object form `{"traceEvents": [...], ...}` or the bare
    /// array form `[...]`.
    public static func parse(_ data: Data) throws(TraceParseError) -> ChromeTrace {
        try parse(bytes: [UInt8](data))
    }

    public static func parse(bytes: [UInt8]) throws(TraceParseError) -> ChromeTrace {
        let root: JSONValue
        do { root = try JSONParser.parse(bytes) } catch { throw TraceParseError("not valid JSON: \(error)") }
        var unit: String?
        var other: [String: String] = [:]
        let list: [JSONValue]
        switch root {
        case .object(let obj):
            guard let te = obj["traceEvents"] else { throw TraceParseError("the top-level object has no \"traceEvents\" array") }
            guard case .array(let arr) = te else { throw TraceParseError("\"traceEvents\" is not an array") }
            list = arr
            if case .string(let u)? = obj["displayTimeUnit"] { unit = u }
            if case .object(let o)? = obj["otherData"] { other = o.mapValues(\.text) }
        case .array(let arr):
            list = arr
        default:
            throw TraceParseError("the top level is neither an object with \"traceEvents\" nor an array of events")
        }
        var events: [TraceEvent] = []
        events.reserveCapacity(list.count)
        var names: [TrackID: String] = [:]
        var sortIndex: [TrackID: Int] = [:]
        for (i, item) in list.enumerated() {
            let e = try event(item, index: i)
            if e.phase == "M" && e.name == "thread_name", let n = e.args["name"] { names[e.track] = n }
            if e.phase == "M" && e.name == "thread_sort_index", let k = e.args["sort_index"].flatMap({ Int($0) }) {
                sortIndex[e.track] = k
            }
            events.append(e)
        }
        var trace = ChromeTrace(events: events, displayTimeUnit: unit, threadNames: names)
        trace.threadSortIndex = sortIndex
        trace.otherData = other
        return trace
    }

    /// A number, or a string holding one (some writers quote pid and tid).
    static func number(_ v: JSONValue) -> Double? {
        switch v {
        case .number(let d): return d
        case .string(let s): return Double(s)
        default: return nil
        }
    }

    static func event(_ item: JSONValue, index i: Int) throws(TraceParseError) -> TraceEvent {
        guard case .object(let o) = item else { throw TraceParseError("event #\(i) is not an object") }
        guard case .string(let ph)? = o["ph"], !ph.isEmpty else { throw TraceParseError("event #\(i) has no \"ph\" (phase)") }
        var name = ""
        if case .string(let n)? = o["name"] { name = n }
        func id(_ key: String) throws(TraceParseError) -> Int {
            guard let v = o[key] else { return 0 }
            guard let d = number(v), d == d.rounded(), abs(d) < 1e15 else {
                throw TraceParseError("event #\(i) (\(ph) \"\(name)\"): \"\(key)\" is not an integer: \(v.text)")
            }
            return Int(d)
        }
        func time(_ key: String) throws(TraceParseError) -> Double? {
            guard let v = o[key] else { return nil }
            guard let d = number(v), d.isFinite else {
                throw TraceParseError("event #\(i) (\(ph) \"\(name)\"): \"\(key)\" is not a number: \(v.text)")
            }
            return d
        }
        let pid = try id("pid"), tid = try id("tid")
        let ts = try time("ts"), dur = try time("dur")
        if ["B", "E", "X", "i", "I"].contains(ph) && ts == nil {
            throw TraceParseError("event #\(i) (\(ph) \"\(name)\") on pid \(pid) tid \(tid) has no \"ts\"")
        }
        if ph == "X" {
            guard let d = dur else { throw TraceParseError("event #\(i) (X \"\(name)\") has no \"dur\"") }
            if d < 0 { throw TraceParseError("event #\(i) (X \"\(name)\") has a negative \"dur\": \(d)") }
        }
        var args: [String: String] = [:]
        if case .object(let a)? = o["args"] {
            for (k, v) in a { args[k] = v.text }
        }
        var cat: String?
        if case .string(let c)? = o["cat"] { cat = c }
        return TraceEvent(phase: ph == "I" ? "i" : ph, name: name, category: cat,
                          pid: pid, tid: tid, ts: ts, dur: dur, args: args, index: i)
    }
}
