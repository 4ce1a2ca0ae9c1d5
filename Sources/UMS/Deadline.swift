import CSupport

/// A point in time on the monotonic clock (`CLOCK_MONOTONIC`), in whole
/// nanoseconds: the one place where UMS and the layers built on it turn a
/// `Duration` timeout into something a loop can re-check.
/// [Windows: a timeout in milliseconds re-computed against
/// `GetTickCount64`; here a saturating nanosecond deadline]
///
/// Every conversion saturates: a negative duration is an already-passed
/// deadline, a huge one is ``never``; nothing overflows or traps.
///
///     let d = UMSDeadline(after: .milliseconds(50))
///     while !d.hasPassed { ... wait(for: d.remaining) ... }
public struct UMSDeadline: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Monotonic-clock nanoseconds; `Int64.max` means never.
    public let nanoseconds: Int64

    /// A deadline at `nanoseconds` on the monotonic clock (as read by
    /// ``now``).
    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }

    /// `duration` from now. Negative or zero durations give a deadline that
    /// has already passed; durations too long to represent give ``never``.
    public init(after duration: Duration) {
        let n = duration.saturatingNanoseconds, now = csup_monotonic_ns()
        nanoseconds = n > Int64.max - now ? Int64.max : now + n
    }

    /// The current time on the monotonic clock.
    public static var now: UMSDeadline { UMSDeadline(nanoseconds: csup_monotonic_ns()) }

    /// A deadline that never passes.
    public static let never = UMSDeadline(nanoseconds: .max)

    /// Nanoseconds left, 0 once passed; `Int64.max` for ``never``.
    public var remainingNanoseconds: Int64 {
        if nanoseconds == .max { return .max }
        let left = nanoseconds - csup_monotonic_ns()
        return left > 0 ? left : 0
    }

    /// Time left, `.zero` once passed.
    public var remaining: Duration { .nanoseconds(remainingNanoseconds) }

    /// True once the monotonic clock has reached the deadline.
    public var hasPassed: Bool { nanoseconds != .max && csup_monotonic_ns() >= nanoseconds }

    public static func < (a: UMSDeadline, b: UMSDeadline) -> Bool { a.nanoseconds < b.nanoseconds }

    public var description: String { nanoseconds == .max ? "never" : "monotonic \(nanoseconds) ns" }
}

extension Duration {
    /// This duration in whole nanoseconds (sub-nanosecond parts truncated),
    /// clamped to `0...Int64.max`: a negative duration is 0, one longer
    /// than about 292 years is `Int64.max`. The form every C timeout in
    /// UMS takes (a negative C timeout means "forever" there, so a
    /// negative Swift duration must not reach it).
    public var saturatingNanoseconds: Int64 {
        // Compare before taking `components`, which traps when the seconds
        // do not fit an Int64 (a product of durations can get there).
        if self <= .zero { return 0 }
        if self >= Self.saturationLimit { return .max }
        let c = components
        return c.seconds * 1_000_000_000 + c.attoseconds / 1_000_000_000
    }

    /// Durations at or above this many whole seconds saturate.
    private static var saturationLimit: Duration {
        .seconds(Int64.max / 1_000_000_000 - 1)
    }
}
