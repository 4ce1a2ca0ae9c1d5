import ArgumentParser
import Foundation
import TraceTimeline

/// `ums-trace`: checks a Chrome trace-event file and renders it as a PNG
/// timeline (one row per VP, a colour per state).
@main
struct UMSTrace: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ums-trace",
        abstract: "Check a Chrome/Perfetto trace-event JSON file, or render it as a PNG timeline.",
        subcommands: [PNG.self, Check.self]
    )
}

/// A failure of the run (not of the command line): printed as
/// `Error: <message>`, exit status 1.
struct Failure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Reads and checks a trace, or fails with the reason. Lenient: builds it
/// anyway and warns on stderr.
func loadTimeline(_ path: String, lenient: Bool = false) throws -> (ChromeTrace, Timeline) {
    let trace: ChromeTrace
    do { trace = try ChromeTrace.load(path: path) } catch { throw Failure("\(error)") }
    let timeline: Timeline
    do { timeline = try Timeline(trace, lenient: lenient) } catch { throw Failure("\(path): invalid trace: \(error)") }
    if timeline.violationCount > 0 {
        var msg = "warning: \(path): \(timeline.violationCount) violation(s) passed over (--lenient):\n  "
        msg += timeline.violations.joined(separator: "\n  ") + "\n"
        FileHandle.standardError.write(Data(msg.utf8))
    }
    return (trace, timeline)
}

struct PNG: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Render IN.json as a PNG timeline.")

    @Argument(help: "Trace-event JSON file.") var input: String
    @Argument(help: "PNG file to write.") var output: String
    @Option(help: "Image width in pixels.") var width = 1600
    @Option(name: .customLong("start-us"), help: "Window start, microseconds (trace time).") var startUs: Double?
    @Option(name: .customLong("end-us"), help: "Window end, microseconds (trace time).") var endUs: Double?
    @Option(help: "Title line (default: track count and window).") var title: String?
    @Flag(help: "Draw a trace that breaks the rules (e.g. a wrapped ring buffer): drop or close the offending events, warn on stderr.")
    var lenient = false

    func validate() throws {
        guard width >= 200 && width <= 20_000 else { throw ValidationError("--width must be in 200...20000, got \(width)") }
        if let s = startUs, let e = endUs, e <= s { throw ValidationError("--end-us (\(e)) must be after --start-us (\(s))") }
    }

    func run() throws {
        let (_, timeline) = try loadTimeline(input, lenient: lenient)
        var window: ClosedRange<Double>?
        if startUs != nil || endUs != nil {
            let s = startUs ?? timeline.start, e = endUs ?? timeline.end
            guard e > s else { throw Failure("the window \(s)...\(e) us is empty") }
            window = s...e
        }
        let (raster, _) = try TimelineRenderer(width: width, window: window, title: title).render(timeline)
        let png = raster.png()
        guard FileManager.default.createFile(atPath: output, contents: Data(png)) else {
            throw Failure("cannot write \(output)")
        }
        let spans = timeline.tracks.reduce(0) { $0 + $1.spans.count }
        print("wrote \(output): \(raster.width)x\(raster.height), \(png.count) bytes, \(timeline.tracks.count) tracks, \(spans) spans")
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate IN.json: it parses, every B has its E on the same (pid, tid) with proper nesting, and timestamps never go backwards within a (pid, tid).")

    @Argument(help: "Trace-event JSON file.") var input: String

    func run() throws {
        let (trace, timeline) = try loadTimeline(input)
        for t in timeline.tracks { print(TrackSummary(t).line) }
        if let d = trace.otherData["dropped"], let n = Int(d), n > 0 {
            print("note: the trace reports \(n) dropped event(s) (otherData.dropped): its ring buffers were full")
        }
        print(String(format: "OK: %d events, %d tracks, %.3f ms", trace.events.count, timeline.tracks.count,
                     (timeline.end - timeline.start) / 1000))
    }
}
