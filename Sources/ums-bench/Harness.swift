import ConcRT
import CSupport
import Foundation

/// Output contract (../shared/peers/README.md): one line per figure,
/// `<workload> <impl> <value> <unit> [free text]`, on stdout. Progress goes
/// to stderr. `--json FILE` also writes every figure as JSON.
struct Figure: Codable {
    var workload: String
    var impl: String
    var value: Double
    var unit: String
    var note: String
}

final class Harness: @unchecked Sendable {
    // @unchecked Sendable: used from the main thread only.
    var reps = 5
    var warmup = 1
    var figures: [Figure] = []
    /// The workloads' size and mode options from the command line; nil
    /// means the workload's own default.
    var options = BenchOptions()

    func report(_ workload: String, _ impl: String, _ value: Double, _ unit: String, _ note: String = "") {
        let v = value >= 100 ? String(format: "%.1f", value) : String(format: "%.2f", value)
        print("\(workload) \(impl) \(v) \(unit)\(note.isEmpty ? "" : " " + note)")
        fflush(nil)
        figures.append(Figure(workload: workload, impl: impl, value: value, unit: unit, note: note))
    }

    func progress(_ s: String) {
        FileHandle.standardError.write((s + "\n").data(using: .utf8)!)
    }

    /// Runs `body` warmup + reps times; returns the median of what it returns.
    /// `reps` / `warmup` override --reps / --warmup for this figure.
    /// Runs `body` with a timeline trace of `s` when `--trace FILE` was
    /// given, and writes the trace there.
    func traced<T>(_ s: Scheduler, _ body: () throws -> T) throws -> T {
        guard let path = options.trace else { return try body() }
        try s.startTrace()
        let r = try body()
        let t = try s.stopTrace()
        try t.chromeTraceJSON().write(toFile: path, atomically: true, encoding: .utf8)
        progress("ums-bench: trace of \(t.events.count) events (\(t.dropped) dropped) written to \(path)")
        return r
    }

    func median(_ label: String, reps: Int? = nil, warmup: Int? = nil, _ body: () throws -> Double) rethrows -> Double {
        let n = reps ?? self.reps
        for _ in 0..<(warmup ?? self.warmup) { _ = try body() }
        var xs: [Double] = []
        for i in 0..<n {
            let t0 = csup_monotonic_ns()
            xs.append(try body())
            if csup_monotonic_ns() - t0 > 2_000_000_000 { progress("  \(label): rep \(i + 1)/\(n)") }
        }
        xs.sort()
        return xs[xs.count / 2]
    }
}

/// Wall-clock nanoseconds of `body`.
@inline(never)
func timeNs(_ body: () throws -> Void) rethrows -> Double {
    let t0 = csup_monotonic_ns()
    try body()
    return Double(csup_monotonic_ns() - t0)
}

struct BenchFailure: Error, CustomStringConvertible {
    var description: String
}

extension SchedulerStatistics {
    /// The counters that moved since `earlier`, as "name=delta" pairs.
    func difference(from earlier: SchedulerStatistics) -> String {
        let pairs: [(String, Int, Int)] = [
            ("tasks", tasksRun, earlier.tasksRun), ("steals", steals, earlier.steals),
            ("switches", contextSwitches, earlier.contextSwitches), ("blocks", blocks, earlier.blocks),
            ("sleeps", idleSleeps, earlier.idleSleeps), ("wakeUps", idleWakeUps, earlier.idleWakeUps),
            ("contexts", contextsCreated, earlier.contextsCreated), ("completions", completions, earlier.completions),
        ]
        return pairs.filter { $0.1 != $0.2 }.map { "\($0.0)=\($0.1 - $0.2)" }.joined(separator: " ")
    }
}
