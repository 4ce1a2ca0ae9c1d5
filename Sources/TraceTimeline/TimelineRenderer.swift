import Foundation

/// Draws a ``Timeline`` as an image. [For ConcRT's ETW events, Visual
/// Studio's Concurrency Visualizer drew the threads view; here a PNG.]
///
/// ```
///  title
///  axis: ticks labelled in ms of trace time (the file's `ts` / 1000)
///  VP 0    [task][kernel]   [task]  |  |        one row per track; nested
///  VP 1    [sleep     ][task      ]             spans drawn inset; instants
///  runtime   |    |                             as thin ticks in the top part
///  legend: state colours, instant colours
/// ```
///
/// Each pixel column shows, per nesting depth, the state that covers most
/// of its time (``ColumnCoverage``); a span shorter than a column still
/// shows where nothing longer covers it.
public struct TimelineRenderer: Sendable {
    public var width: Int
    /// The time window in microseconds; nil = the whole trace.
    public var window: ClosedRange<Double>?
    public var title: String?

    public static let rowHeight = 22
    public static let rowGap = 6
    public static let scale = 2              // font scale for labels
    public static let marginRight = 16
    /// Largest image drawn (300 MB of RGB).
    public static let maxPixels = 100_000_000
    /// Nested spans are inset by this much per depth; instants are ticks
    /// this tall at the top of the row.
    public static let insetPerDepth = 4

    /// Where things went, so callers (and tests) can find them.
    public struct Layout: Sendable {
        public var plotLeft: Int
        public var plotRight: Int
        /// Track id → the first and last pixel row of its band.
        public var rows: [TrackID: ClosedRange<Int>]
        public var start: Double
        public var end: Double
        /// The pixel column of time `t` (microseconds).
        public func x(_ t: Double) -> Int {
            let span = max(end - start, 1e-9)
            return plotLeft + Int(((t - start) / span * Double(plotRight - plotLeft)).rounded(.down))
        }
    }

    public struct RenderError: Error, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    public init(width: Int = 1600, window: ClosedRange<Double>? = nil, title: String? = nil) {
        self.width = width
        self.window = window
        self.title = title
    }

    public func render(_ timeline: Timeline) throws(RenderError) -> (Raster, Layout) {
        let s = Self.scale
        let lineH = BitmapFont.glyphHeight * s
        let labelW = (timeline.tracks.map { BitmapFont.width(of: $0.name, scale: s) }.max() ?? 0) + 16
        let plotLeft = max(labelW, 60)
        guard width >= plotLeft + Self.marginRight + 100 else {
            throw RenderError(message: "width \(width) is too small: at least \(plotLeft + Self.marginRight + 100) pixels for these labels")
        }
        let w0 = window?.lowerBound ?? timeline.start
        var w1 = window?.upperBound ?? timeline.end
        if w1 <= w0 {
            guard window == nil else { throw RenderError(message: "the time window is empty: end \(w1) us is not after start \(w0) us") }
            w1 = w0 + 1
        }
        let titleH = lineH + 10
        let axisTop = titleH + 4
        let axisH = lineH + 12
        let rowsTop = axisTop + axisH + 4
        let rowsH = timeline.tracks.count * (Self.rowHeight + Self.rowGap)

        // The legend: every state and instant name present, in a stable order.
        let stateNames = Self.ordered(Set(timeline.tracks.flatMap { $0.spans.map(\.name) }))
        let instantNames = Self.ordered(Set(timeline.tracks.flatMap { $0.instants.map(\.name) }))
        var legendItems: [(String, RGB, Bool)] = stateNames.map { ($0, Palette.state($0), true) }
        legendItems += instantNames.map { ($0, Palette.instant($0), false) }
        let plotRight = width - Self.marginRight
        // Lay the legend out in lines that fit the width.
        var legendPos: [(Int, Int)] = []
        var lx = plotLeft, ly = 0
        for (name, _, _) in legendItems {
            let itemW = 14 + 6 + BitmapFont.width(of: name, scale: s) + 20
            if lx + itemW > plotRight && lx > plotLeft { lx = plotLeft; ly += lineH + 8 }
            legendPos.append((lx, ly)); lx += itemW
        }
        let legendTop = rowsTop + rowsH + 10
        let height = legendTop + (legendItems.isEmpty ? 0 : ly + lineH + 8) + 6
        guard width * height <= Self.maxPixels else {
            throw RenderError(message: "a \(width)x\(height) image (\(timeline.tracks.count) tracks) is over "
                              + "\(Self.maxPixels / 1_000_000) million pixels; use a smaller --width")
        }

        var r = Raster(width: width, height: height, background: Palette.background)
        var layout = Layout(plotLeft: plotLeft, plotRight: plotRight, rows: [:], start: w0, end: w1)

        // Title.
        let t = title ?? String(format: "%d tracks, %.3f ms shown (from %.3f ms)", timeline.tracks.count,
                                (w1 - w0) / 1000, w0 / 1000)
        BitmapFont.draw(t, x: 8, y: 6, scale: s, color: Palette.text, into: &r)

        // Axis and grid.
        let step = Self.tickStep(spanUs: w1 - w0, pixels: plotRight - plotLeft)
        r.fill(x: plotLeft, y: axisTop + axisH - 1, width: plotRight - plotLeft + 1, height: 1, Palette.axis)
        var tickXs: [Int] = []
        var tick = (w0 / step).rounded(.up) * step
        while tick <= w1 + step * 1e-9 {
            let x = layout.x(tick)
            tickXs.append(x)
            r.fill(x: x, y: axisTop + axisH - 6, width: 1, height: 6, Palette.axis)
            let label = Self.label(ms: tick / 1000, stepMs: step / 1000)
            let lw = BitmapFont.width(of: label, scale: s)
            let lxp = min(max(x - lw / 2, plotLeft - lw / 2), width - lw - 2)
            BitmapFont.draw(label, x: lxp, y: axisTop, scale: s, color: Palette.text, into: &r)
            tick += step
        }
        BitmapFont.draw("ms", x: 8, y: axisTop, scale: s, color: Palette.axis, into: &r)

        // Rows.
        for (i, track) in timeline.tracks.enumerated() {
            let y = rowsTop + i * (Self.rowHeight + Self.rowGap)
            layout.rows[track.id] = y...(y + Self.rowHeight - 1)
            r.fill(x: plotLeft, y: y, width: plotRight - plotLeft + 1, height: Self.rowHeight, Palette.rowBackground)
            for x in tickXs { r.fill(x: x, y: y, width: 1, height: Self.rowHeight, Palette.grid) }
            BitmapFont.draw(track.name, x: 8, y: y + (Self.rowHeight - lineH) / 2, scale: s, color: Palette.text, into: &r)
            // Per depth, each column shows the state covering most of it.
            let plotW = Double(plotRight - plotLeft)
            let maxDepth = track.spans.map(\.depth).max() ?? -1
            if maxDepth >= 0 {
                var levels = (0...maxDepth).map { _ in ColumnCoverage(columns: plotRight - plotLeft + 1) }
                for sp in track.spans where sp.end >= w0 && sp.start <= w1 {
                    levels[sp.depth].add(sp.name, from: (sp.start - w0) / (w1 - w0) * plotW,
                                         to: (sp.end - w0) / (w1 - w0) * plotW)
                }
                // What each column shows at the depth above (nil: nothing).
                var above = [Double?](repeating: 0, count: plotRight - plotLeft + 1)
                for (depth, level) in levels.enumerated() {
                    let inset = min(depth * Self.insetPerDepth, Self.rowHeight / 2 - 2)
                    for c in 0..<level.columns {
                        guard let parent = above[c],
                              let w = level.winner(c, minimum: depth == 0 ? 0 : 0.5 * parent) else { above[c] = nil; continue }
                        above[c] = w.cover
                        r.fill(x: plotLeft + c, y: y + inset, width: 1, height: Self.rowHeight - 2 * inset, Palette.state(w.name))
                    }
                }
            }
            for ins in track.instants where ins.ts >= w0 && ins.ts <= w1 {
                // Within the top strip that nested spans leave to their parent.
                r.fill(x: layout.x(ins.ts), y: y, width: 1, height: Self.insetPerDepth, Palette.instant(ins.name))
            }
        }

        // Legend: a box per state, a tick per instant kind.
        for ((name, color, isState), (x, dy)) in zip(legendItems, legendPos) {
            let y = legendTop + dy
            if isState {
                r.fill(x: x, y: y, width: 14, height: lineH, color)
            } else {
                r.fill(x: x + 6, y: y, width: 2, height: lineH, color)
            }
            BitmapFont.draw(name, x: x + 20, y: y, scale: s, color: Palette.text, into: &r)
        }
        return (r, layout)
    }

    /// The runtime's names in a fixed order first, then the rest sorted.
    static func ordered(_ names: Set<String>) -> [String] {
        let pref = ["task", "context", "kernel", "sleep", "ring-sleep",
                    "steal", "switch", "block", "unblock", "retake", "timer", "wake", "kernel-enter", "kernel-exit"]
        return pref.filter { names.contains($0) } + names.subtracting(pref).sorted()
    }

    /// A 1, 2 or 5 × 10^k microsecond step giving ticks at least ~110 pixels apart.
    static func tickStep(spanUs: Double, pixels: Int) -> Double {
        let target = spanUs * 110 / Double(max(pixels, 1))
        var p = pow(10, (log10(max(target, 1e-6))).rounded(.down))
        while true {
            for m in [1.0, 2, 5] where p * m >= target { return p * m }
            p *= 10
        }
    }

    /// A tick label with as many decimals as the step needs (never "-0").
    static func label(ms: Double, stepMs: Double) -> String {
        let decimals = stepMs >= 1 ? 0 : min(6, Int((-log10(stepMs)).rounded(.up)))
        let text = String(format: "%.\(decimals)f", ms)
        return text.hasPrefix("-") && text.dropFirst().allSatisfy({ $0 == "0" || $0 == "." }) ? String(text.dropFirst()) : text
    }
}
