import CoreMetrics

/// Publishes the integer fields of one statistics struct (found by
/// reflection, so a field added to `SchedulerStatistics` or
/// `UMSStatistics` is published without a change here) as swift-metrics
/// instruments:
/// - fields named in `gaugeFields` are levels: a `Gauge` set to the value;
/// - every other field is a monotonic count: a `Counter` incremented by the
///   delta since the previous `publish` (the first publish adds the whole
///   value, the count since the statistic's creation).
///
/// A counter whose value went down (it should not: the statistics are
/// monotonic and the reporter reads them in order) adds nothing and keeps
/// the highest value seen as its base, so no change is counted twice.
///
/// Not thread-safe: the owner (``SchedulerMetricsReporter``) serializes calls.
struct StatisticsPublisher {
    let prefix: String
    let gaugeFields: Set<String>
    let dimensions: [(String, String)]
    let factory: MetricsFactory

    private var counters: [String: Counter] = [:]
    private var gauges: [String: Gauge] = [:]
    private var last: [String: Int] = [:]

    init(prefix: String, gaugeFields: Set<String>, dimensions: [(String, String)], factory: MetricsFactory) {
        self.prefix = prefix
        self.gaugeFields = gaugeFields
        self.dimensions = dimensions
        self.factory = factory
    }

    /// The `(field, value)` pairs of a struct's stored properties that are
    /// integers (`Int`, `Int64`, `UInt64`, `UInt32`, `Int32`) or `Duration`s;
    /// a duration is published in nanoseconds under `<field>Nanoseconds`
    /// (`idleTime` → `concrt_idle_time_nanoseconds`). Other types are
    /// skipped (the tests check there are none in the statistics structs).
    static func fields(of value: Any) -> [(String, Int)] {
        Mirror(reflecting: value).children.compactMap { child in
            guard let label = child.label else { return nil }
            switch child.value {
            case let v as Int: return (label, v)
            case let v as Int64: return (label, Int(v))
            case let v as Int32: return (label, Int(v))
            case let v as UInt32: return (label, Int(v))
            case let v as UInt64: return (label, Int(clamping: v))
            case let d as Duration:
                let (s, a) = d.components
                return (label + "Nanoseconds", Int(s) &* 1_000_000_000 &+ Int(a / 1_000_000_000))
            default: return nil
            }
        }
    }

    /// Publishes every integer field of `statistics`. Returns the names and
    /// the amounts published (counter deltas, gauge values), for tests and logs.
    @discardableResult
    mutating func publish(_ statistics: Any) -> [(name: String, amount: Int)] {
        var published: [(name: String, amount: Int)] = []
        for (field, value) in Self.fields(of: statistics) {
            let name = MetricNames.name(prefix: prefix, field: field)
            if gaugeFields.contains(field) {
                let g = gauges[field] ?? Gauge(label: name, dimensions: dimensions, factory: factory)
                gauges[field] = g
                g.record(value)
                published.append((name, value))
            } else {
                let c = counters[field] ?? Counter(label: name, dimensions: dimensions, factory: factory)
                counters[field] = c
                let base = last[field] ?? 0
                let delta = value - base
                last[field] = max(base, value)
                if delta > 0 { c.increment(by: delta) }
                published.append((name, max(delta, 0)))
            }
        }
        return published
    }
}
