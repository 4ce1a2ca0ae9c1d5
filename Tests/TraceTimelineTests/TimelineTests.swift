import Foundation
@testable import TraceTimeline
import XCTest

final class TimelineTests: XCTestCase {
    /// Two VPs and the runtime track: nested kernel in a task, sleep,
    /// ring-sleep, an X context, an unknown state, instants.
    static let sample = """
    {"traceEvents":[
    {"ph":"M","name":"thread_name","pid":1,"tid":0,"args":{"name":"VP 0"}},
    {"ph":"M","name":"thread_name","pid":1,"tid":1,"args":{"name":"VP 1"}},
    {"ph":"B","name":"task","cat":"vp","pid":1,"tid":0,"ts":0.0,"args":{"id":7}},
    {"ph":"B","name":"kernel","cat":"vp","pid":1,"tid":0,"ts":200.5},
    {"ph":"E","name":"kernel","cat":"vp","pid":1,"tid":0,"ts":500},
    {"ph":"E","name":"task","cat":"vp","pid":1,"tid":0,"ts":800},
    {"ph":"i","s":"t","name":"steal","pid":1,"tid":0,"ts":850},
    {"ph":"B","name":"sleep","cat":"vp","pid":1,"tid":0,"ts":900},
    {"ph":"E","name":"sleep","cat":"vp","pid":1,"tid":0,"ts":1500},
    {"ph":"B","name":"ring-sleep","cat":"vp","pid":1,"tid":1,"ts":0},
    {"ph":"E","name":"ring-sleep","cat":"vp","pid":1,"tid":1,"ts":300},
    {"ph":"X","name":"context","cat":"vp","pid":1,"tid":1,"ts":300,"dur":700},
    {"ph":"B","name":"mystery","cat":"vp","pid":1,"tid":1,"ts":1100},
    {"ph":"E","pid":1,"tid":1,"ts":1400},
    {"ph":"i","s":"t","name":"retake","pid":1,"tid":1000,"ts":450}
    ],"displayTimeUnit":"ns"}
    """

    func timeline(_ json: String) throws -> Timeline {
        try Timeline(ChromeTrace.parse(Data(json.utf8)))
    }

    func testParseAndBuild() throws {
        let trace = try ChromeTrace.parse(Data(Self.sample.utf8))
        XCTAssertEqual(trace.displayTimeUnit, "ns")
        XCTAssertEqual(trace.events.count, 15)
        XCTAssertEqual(trace.events[2].args["id"], "7")
        let t = try Timeline(trace)
        XCTAssertEqual(t.tracks.map(\.name), ["VP 0", "VP 1", "runtime"])
        XCTAssertEqual(t.start, 0); XCTAssertEqual(t.end, 1500)
        let vp0 = t.tracks[0]
        XCTAssertEqual(vp0.spans.map(\.name), ["task", "sleep", "kernel"])   // by depth, then start
        XCTAssertEqual(vp0.spans[2], Span(name: "kernel", start: 200.5, end: 500, depth: 1))
        XCTAssertEqual(vp0.instants, [Instant(name: "steal", ts: 850)])
        XCTAssertEqual(t.tracks[1].spans.map(\.name), ["ring-sleep", "context", "mystery"])
        XCTAssertEqual(t.tracks[1].spans[2].depth, 0, "the X span ended before mystery began")
        let sum = TrackSummary(vp0)
        XCTAssertEqual(sum.states["kernel"], TrackSummary.State(count: 1, totalUs: 299.5))
        XCTAssertEqual(sum.maxDepth, 1)
        XCTAssertTrue(sum.line.hasPrefix("VP 0 (pid 1 tid 0): 3 spans [kernel 1 = 0.299 ms, sleep 1 = 0.600 ms, task 1 = 0.800 ms]"), sum.line)
        // The bare array form parses too.
        XCTAssertEqual(try ChromeTrace.parse(Data(#"[{"ph":"i","name":"x","pid":1,"tid":2,"ts":5}]"#.utf8)).events.count, 1)
    }

    private func violation(_ json: String) -> String {
        do { _ = try timeline(json); return "no violation" } catch { return "\(error)" }
    }

    func testUnbalancedAndBackwardsAreRejected() {
        let open = #"{"traceEvents":[{"ph":"B","name":"task","pid":1,"tid":3,"ts":10}]}"#
        XCTAssertEqual(violation(open),
                       "tid 3 (pid 1 tid 3): span \"task\" opened by event #0 at 10.000 us is never closed (no matching E)")
        let stray = #"{"traceEvents":[{"ph":"E","name":"task","pid":1,"tid":0,"ts":10}]}"#
        XCTAssertTrue(violation(stray).contains("event #0 (E \"task\") at 10.000 us has no open B to close"), violation(stray))
        // E on another tid does not close the B.
        let otherTid = #"{"traceEvents":[{"ph":"B","name":"task","pid":1,"tid":0,"ts":1},{"ph":"E","name":"task","pid":1,"tid":1,"ts":2}]}"#
        let v = violation(otherTid)
        XCTAssertTrue(v.hasPrefix("2 violations:"), v)
        XCTAssertTrue(v.contains("tid 1 (pid 1 tid 1): event #1 (E \"task\")") && v.contains("has no open B"), v)
        XCTAssertTrue(v.contains("tid 0 (pid 1 tid 0): span \"task\" opened by event #0"), v)
        let crossed = """
        {"traceEvents":[{"ph":"B","name":"task","pid":1,"tid":0,"ts":1},{"ph":"B","name":"kernel","pid":1,"tid":0,"ts":2},
        {"ph":"E","name":"task","pid":1,"tid":0,"ts":3},{"ph":"E","name":"kernel","pid":1,"tid":0,"ts":4}]}
        """
        XCTAssertTrue(violation(crossed).contains("event #2 (E \"task\") at 3.000 us does not match the innermost open span \"kernel\" (B event #1 at 2.000 us): improper nesting"),
                      violation(crossed))
        let backwards = """
        {"traceEvents":[{"ph":"M","name":"thread_name","pid":1,"tid":0,"args":{"name":"VP 0"}},
        {"ph":"B","name":"task","pid":1,"tid":0,"ts":100},{"ph":"E","name":"task","pid":1,"tid":0,"ts":90}]}
        """
        XCTAssertEqual(violation(backwards),
                       "VP 0 (pid 1 tid 0): event #2 (E \"task\") at 90.000 us goes back in time: event #1 was at 100.000 us")
        // Going back on another tid is fine; so are equal timestamps.
        XCTAssertEqual(violation("""
        {"traceEvents":[{"ph":"i","name":"a","pid":1,"tid":0,"ts":100},{"ph":"i","name":"a","pid":1,"tid":1,"ts":5},
        {"ph":"B","name":"t","pid":1,"tid":1,"ts":5},{"ph":"E","name":"t","pid":1,"tid":1,"ts":5}]}
        """), "no violation")
    }

    func testParseErrorsAreClear() {
        func parseError(_ s: String) -> String {
            do { _ = try ChromeTrace.parse(Data(s.utf8)); return "parsed" } catch { return error.message }
        }
        XCTAssertTrue(parseError("{").hasPrefix("not valid JSON"), parseError("{"))
        XCTAssertEqual(parseError(#"{"events":[]}"#), "the top-level object has no \"traceEvents\" array")
        XCTAssertEqual(parseError(#"[{"name":"x"}]"#), "event #0 has no \"ph\" (phase)")
        XCTAssertEqual(parseError(#"[{"ph":"B","name":"x","pid":1,"tid":1}]"#), "event #0 (B \"x\") on pid 1 tid 1 has no \"ts\"")
        XCTAssertEqual(parseError(#"[{"ph":"X","name":"x","pid":1,"tid":1,"ts":1}]"#), "event #0 (X \"x\") has no \"dur\"")
        XCTAssertEqual(parseError(#"[{"ph":"i","name":"x","pid":1,"tid":"a","ts":1}]"#), "event #0 (i \"x\"): \"tid\" is not an integer: a")
    }

    func testRenderPutsColoursWhereTheSpansAre() throws {
        let t = try timeline(Self.sample)
        let (r, layout) = try TimelineRenderer(width: 1000).render(t)
        XCTAssertEqual(r.width, 1000)
        XCTAssertGreaterThan(r.height, 100)
        let vp0 = try XCTUnwrap(layout.rows[TrackID(pid: 1, tid: 0)])
        let vp1 = try XCTUnwrap(layout.rows[TrackID(pid: 1, tid: 1)])
        let mid0 = (vp0.lowerBound + vp0.upperBound) / 2, mid1 = (vp1.lowerBound + vp1.upperBound) / 2
        XCTAssertLessThan(vp0.upperBound, vp1.lowerBound)
        // Task bar (outside its nested kernel span).
        XCTAssertEqual(r[layout.x(100), mid0], Palette.states["task"])
        XCTAssertEqual(r[layout.x(650), vp0.lowerBound + 1], Palette.states["task"])
        // The nested kernel span is inset: kernel colour in the middle, task at the edge.
        XCTAssertEqual(r[layout.x(350), mid0], Palette.states["kernel"])
        XCTAssertEqual(r[layout.x(350), vp0.lowerBound], Palette.states["task"])
        XCTAssertEqual(r[layout.x(1200), mid0], Palette.states["sleep"])
        // The gap between task (ends 800) and sleep (starts 900): row background.
        XCTAssertEqual(r[layout.x(870), mid0 + 5], Palette.rowBackground)
        XCTAssertEqual(r[layout.x(150), mid1], Palette.states["ring-sleep"])
        XCTAssertEqual(r[layout.x(600), mid1], Palette.states["context"])
        XCTAssertEqual(r[layout.x(1250), mid1], Palette.hashed("mystery"))
        XCTAssertEqual(r[layout.x(1450), mid1], Palette.rowBackground)
        // The steal instant: a tick at its time in the row's top half.
        XCTAssertEqual(r[layout.x(850), vp0.lowerBound + 2], Palette.instants["steal"])
        // Outside the rows and the text, the image is background.
        XCTAssertEqual(r[r.width - 3, mid0], Palette.background)
        // Labels are drawn in text colour left of the plot.
        let labelInk = (0..<layout.plotLeft).contains { x in (vp0).contains { y in r[x, y] == Palette.text } }
        XCTAssertTrue(labelInk, "no label ink left of VP 0's row")
        // The image encodes to a non-trivial PNG that decodes to the same pixels.
        let png = r.png()
        XCTAssertGreaterThan(png.count, 1000)
        XCTAssertEqual(try PNGFile(png).pixels(), r.pixels)
    }

    func testWindowCropsAndEmptyWindowThrows() throws {
        let t = try timeline(Self.sample)
        let (r, layout) = try TimelineRenderer(width: 800, window: 850...1000).render(t)
        XCTAssertEqual(layout.x(850), layout.plotLeft)
        let mid0 = (layout.rows[TrackID(pid: 1, tid: 0)]!.lowerBound + layout.rows[TrackID(pid: 1, tid: 0)]!.upperBound) / 2
        XCTAssertEqual(r[layout.x(950), mid0], Palette.states["sleep"])
        XCTAssertEqual(r[layout.x(860), mid0], Palette.rowBackground)
        XCTAssertThrowsError(try TimelineRenderer(width: 800, window: 5...5).render(t))
        XCTAssertThrowsError(try TimelineRenderer(width: 50).render(t)) { e in
            XCTAssertTrue("\(e)".contains("too small"), "\(e)")
        }
    }

    func testFontAndTicks() {
        for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ .-:_/()%vp" { XCTAssertTrue(BitmapFont.hasGlyph(c), "\(c)") }
        XCTAssertFalse(BitmapFont.hasGlyph("~"))
        XCTAssertEqual(BitmapFont.width(of: "VP 0", scale: 2), (4 * 6 - 1) * 2)
        var r = Raster(width: 20, height: 10, background: RGB(0, 0, 0))
        BitmapFont.draw("1", x: 0, y: 0, color: RGB(255, 255, 255), into: &r)
        // "1": row 0 is "..#..", row 6 is ".###.".
        XCTAssertEqual((0..<5).map { r[$0, 0].r }, [0, 0, 255, 0, 0])
        XCTAssertEqual((0..<5).map { r[$0, 6].r }, [0, 255, 255, 255, 0])
        XCTAssertEqual(TimelineRenderer.tickStep(spanUs: 1500, pixels: 1100), 200)
        XCTAssertEqual(TimelineRenderer.tickStep(spanUs: 1_000_000, pixels: 1000), 200_000)
        XCTAssertEqual(TimelineRenderer.label(ms: 0.25, stepMs: 0.05), "0.25")
        XCTAssertEqual(TimelineRenderer.label(ms: 12, stepMs: 2), "12")
    }
}

final class LenientTimelineTests: XCTestCase {
    /// A wrapped ring buffer: VP 0 starts with the E of a lost B; then a
    /// mismatched E closing an outer span; a backwards event; an open B.
    static let broken = """
    {"traceEvents":[
    {"ph":"E","name":"task","pid":1,"tid":0,"ts":5},
    {"ph":"B","name":"task","pid":1,"tid":0,"ts":10},
    {"ph":"B","name":"kernel","pid":1,"tid":0,"ts":20},
    {"ph":"E","name":"task","pid":1,"tid":0,"ts":30},
    {"ph":"i","name":"steal","pid":1,"tid":0,"ts":25},
    {"ph":"B","name":"sleep","pid":1,"tid":0,"ts":40},
    {"ph":"i","name":"wake","pid":1,"tid":0,"ts":55}
    ]}
    """

    func testStrictThrowsLenientBuilds() throws {
        let trace = try ChromeTrace.parse(Data(Self.broken.utf8))
        XCTAssertThrowsError(try Timeline(trace)) { e in
            XCTAssertEqual((e as? TraceViolation)?.messages.count, 6, "\(e)")   // strict closes nothing: task and kernel stay open too
        }
        let t = try Timeline(trace, lenient: true)
        XCTAssertEqual(t.violationCount, 4)
        XCTAssertEqual(t.violations.count, 4)
        let vp = t.tracks[0]
        XCTAssertEqual(vp.spans, [Span(name: "task", start: 10, end: 30, depth: 0),
                                  Span(name: "sleep", start: 40, end: 55, depth: 0),
                                  Span(name: "kernel", start: 20, end: 30, depth: 1)])
        XCTAssertEqual(vp.instants.map(\.name), ["wake"], "the backwards steal is dropped")
        // A clean trace has no violations in lenient mode either.
        let clean = try Timeline(ChromeTrace.parse(Data(TimelineTests.sample.utf8)), lenient: true)
        XCTAssertEqual(clean.violationCount, 0)
    }
}

final class ColumnCoverageTests: XCTestCase {
    func testWinnerIsTheStateCoveringMost() {
        var c = ColumnCoverage(columns: 4)
        // Column 0: ten 2% tasks and 80% sleep → sleep.
        for k in 0..<10 { c.add("task", from: Double(k) * 0.1, to: Double(k) * 0.1 + 0.02) }
        c.add("sleep", from: 0.2, to: 1.0)
        XCTAssertEqual(c.winner(0)?.name, "sleep")
        // Column 1: one zero-length task, nothing else → task (short spans show).
        c.add("task", from: 1.5, to: 1.5)
        XCTAssertEqual(c.winner(1)?.name, "task")
        // Column 2: untouched.
        XCTAssertNil(c.winner(2))
        // A span over columns 2.5...4 covers half of column 2 and all of 3.
        c.add("kernel", from: 2.5, to: 9)
        XCTAssertEqual(c.winner(2)?.cover ?? 0, 0.5, accuracy: 1e-9)
        XCTAssertEqual(c.winner(3)?.cover ?? 0, 1.0, accuracy: 1e-9)
        XCTAssertNil(c.winner(2, minimum: 0.6))
    }

    /// Zoomed out, a nested span shows over its parent only where it covers
    /// at least half as much as the parent's shown state.
    func testNestedSpansNeedHalfTheirParent() throws {
        // 100 tasks of 10 us each 100 us apart; in the first 50 the kernel
        // takes 8 us of each, in the last 50 it takes 1 us.
        var ev: [String] = []
        for k in 0..<100 {
            let t = Double(k) * 100
            let kd = k < 50 ? 8.0 : 1.0
            ev += [#"{"ph":"B","name":"task","pid":1,"tid":0,"ts":\#(t)}"#,
                   #"{"ph":"B","name":"kernel","pid":1,"tid":0,"ts":\#(t + 1)}"#,
                   #"{"ph":"E","name":"kernel","pid":1,"tid":0,"ts":\#(t + 1 + kd)}"#,
                   #"{"ph":"E","name":"task","pid":1,"tid":0,"ts":\#(t + 10)}"#]
        }
        let t = try Timeline(ChromeTrace.parse(Data(("{\"traceEvents\":[" + ev.joined(separator: ",") + "]}").utf8)))
        // 300 plot columns for 10 ms: ~33 us a column, every column has at most one task.
        let (r, layout) = try TimelineRenderer(width: 300 + 60 + TimelineRenderer.marginRight).render(t)
        let row = try XCTUnwrap(layout.rows[TrackID(pid: 1, tid: 0)])
        let mid = (row.lowerBound + row.upperBound) / 2
        func colours(_ range: Range<Double>) -> Set<RGB> {
            Set((layout.x(range.lowerBound)..<layout.x(range.upperBound)).map { r[$0, mid] })
        }
        XCTAssertTrue(colours(0..<4900).contains(Palette.states["kernel"]!), "kernel-heavy half shows no kernel")
        XCTAssertFalse(colours(5050..<9900).contains(Palette.states["kernel"]!), "1 us calls in 10 us tasks painted red")
        XCTAssertTrue(colours(5050..<9900).contains(Palette.states["task"]!))
    }
}

final class RenderLimitTests: XCTestCase {
    func testHugeImageIsRefused() throws {
        var ev = [#"{"ph":"i","name":"x","pid":1,"tid":0,"ts":0}"#]
        for tid in 1..<400 { ev.append(#"{"ph":"M","name":"thread_name","pid":1,"tid":\#(tid),"args":{"name":"VP \#(tid)"}}"#) }
        let t = try Timeline(ChromeTrace.parse(Data(("[" + ev.joined(separator: ",") + "]").utf8)))
        XCTAssertEqual(t.tracks.count, 400)
        XCTAssertThrowsError(try TimelineRenderer(width: 20_000).render(t)) { e in
            XCTAssertTrue("\(e)".contains("million pixels; use a smaller --width"), "\(e)")
        }
        let (r, _) = try TimelineRenderer(width: 400).render(t)
        XCTAssertGreaterThan(r.height, 400 * TimelineRenderer.rowHeight)
    }
}

final class TrackOrderTests: XCTestCase {
    func testSortIndexOrdersRowsAndLabelsAreTraceTime() throws {
        let json = """
        {"otherData":{"dropped":3},"traceEvents":[
        {"ph":"M","name":"thread_name","pid":1,"tid":0,"args":{"name":"VP 0"}},
        {"ph":"M","name":"thread_sort_index","pid":1,"tid":0,"args":{"sort_index":2}},
        {"ph":"M","name":"thread_name","pid":1,"tid":1,"args":{"name":"VP 1"}},
        {"ph":"M","name":"thread_sort_index","pid":1,"tid":1,"args":{"sort_index":1}},
        {"ph":"i","name":"x","pid":1,"tid":5,"ts":2000},
        {"ph":"B","name":"task","pid":1,"tid":0,"ts":1000},{"ph":"E","name":"task","pid":1,"tid":0,"ts":3000}
        ]}
        """
        let trace = try ChromeTrace.parse(Data(json.utf8))
        XCTAssertEqual(trace.otherData, ["dropped": "3"])
        let t = try Timeline(trace)
        XCTAssertEqual(t.tracks.map(\.name), ["VP 1", "VP 0", "tid 5"])
        XCTAssertEqual(TimelineRenderer.label(ms: -0.0001, stepMs: 0.5), "0.0")
        XCTAssertEqual(TimelineRenderer.label(ms: -0.5, stepMs: 0.5), "-0.5")
        XCTAssertEqual(TimelineRenderer.label(ms: 1.0, stepMs: 0.2), "1.0")
    }
}
