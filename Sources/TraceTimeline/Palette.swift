/// Colours of the timeline: fixed ones for the runtime's states and
/// instants, a hashed one (stable across runs) for any other name.
public enum Palette {
    public static let background = RGB(255, 255, 255)
    /// The band behind each track's row.
    public static let rowBackground = RGB(244, 244, 246)
    public static let text = RGB(30, 30, 30)
    public static let grid = RGB(215, 215, 220)
    public static let axis = RGB(90, 90, 90)

    /// Span colours for the states the ConcRT tracer writes.
    public static let states: [String: RGB] = [
        "task": RGB(46, 160, 67),          // green: running a task
        "kernel": RGB(214, 39, 40),        // red: a blocking call inline
        "sleep": RGB(190, 190, 196),       // grey: idle sleep
        "ring-sleep": RGB(120, 170, 220),  // light blue: idle in io_uring
        "context": RGB(148, 103, 189),     // purple: a switched-in context
    ]

    /// Instant tick colours.
    public static let instants: [String: RGB] = [
        "steal": RGB(255, 127, 14),
        "switch": RGB(23, 100, 190),
        "block": RGB(140, 86, 75),
        "unblock": RGB(227, 119, 194),
        "retake": RGB(200, 0, 0),
        "timer": RGB(188, 189, 34),
        "wake": RGB(23, 190, 207),
        "kernel-enter": RGB(120, 20, 20),
        "kernel-exit": RGB(60, 60, 60),
    ]

    /// FNV-1a of the name, mapped to a mid-saturation hue.
    public static func hashed(_ name: String) -> RGB {
        var h: UInt32 = 2_166_136_261
        for b in name.utf8 { h = (h ^ UInt32(b)) &* 16_777_619 }
        let hue = Double(h % 360)
        return hsv(hue, 0.55, 0.80)
    }

    public static func state(_ name: String) -> RGB { states[name] ?? hashed(name) }
    public static func instant(_ name: String) -> RGB { instants[name] ?? hashed("i:" + name) }

    static func hsv(_ h: Double, _ s: Double, _ v: Double) -> RGB {
        let c = v * s, x = c * (1 - abs((h / 60).truncatingRemainder(dividingBy: 2) - 1)), m = v - c
        let (r, g, b): (Double, Double, Double)
        switch h {
        case ..<60: (r, g, b) = (c, x, 0)
        case ..<120: (r, g, b) = (x, c, 0)
        case ..<180: (r, g, b) = (0, c, x)
        case ..<240: (r, g, b) = (0, x, c)
        case ..<300: (r, g, b) = (x, 0, c)
        default: (r, g, b) = (c, 0, x)
        }
        return RGB(UInt8((r + m) * 255), UInt8((g + m) * 255), UInt8((b + m) * 255))
    }
}
