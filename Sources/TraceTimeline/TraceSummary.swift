import Foundation

/// Per-track totals of a checked trace, for `ums-trace check`.
public struct TrackSummary: Sendable {
    public struct State: Sendable, Equatable { public var count: Int; public var totalUs: Double }
    public var name: String
    public var id: TrackID
    public var spans: Int
    public var instants: Int
    public var maxDepth: Int
    /// Spans per name: how many, and their total length.
    public var states: [String: State]
    /// Instants per name.
    public var instantKinds: [String: Int]
    public var first: Double?
    public var last: Double?

    public init(_ t: Track) {
        name = t.name; id = t.id
        spans = t.spans.count; instants = t.instants.count
        maxDepth = t.spans.map(\.depth).max() ?? 0
        var s: [String: State] = [:]
        for sp in t.spans { s[sp.name, default: State(count: 0, totalUs: 0)].count += 1; s[sp.name]!.totalUs += sp.duration }
        states = s
        instantKinds = t.instants.reduce(into: [:]) { $0[$1.name, default: 0] += 1 }
        let times = t.spans.flatMap { [$0.start, $0.end] } + t.instants.map(\.ts)
        first = times.min(); last = times.max()
    }

    /// One line: `VP 0 (pid 1 tid 0): 12 spans [task 10 = 1.234 ms, ...], 3 instants [steal 3], 0.000-2.500 ms`.
    public var line: String {
        let st = states.sorted { $0.key < $1.key }
            .map { "\($0.key) \($0.value.count) = \(String(format: "%.3f", $0.value.totalUs / 1000)) ms" }
            .joined(separator: ", ")
        let ik = instantKinds.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        let range = first.map { f in String(format: "%.3f-%.3f ms", f / 1000, (last ?? f) / 1000) } ?? "no timed events"
        return "\(name) (\(id)): \(spans) spans [\(st)], depth \(maxDepth), \(instants) instants [\(ik)], \(range)"
    }
}
