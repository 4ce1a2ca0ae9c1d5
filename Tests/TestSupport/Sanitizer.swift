import CSupport
import Foundation

/// The sanitizer this test build runs under, if any.
///
/// Compile-time facts of the build, read from CSupport (`swift build
/// --sanitize=thread|address` compiles every C target with the same
/// `-fsanitize` flag): Swift has no `#if` condition for a sanitizer.
/// `ums.sh test` also exports `UMS_SANITIZER=thread|address` for its
/// sanitizer stages; either source counts.
public enum Sanitizer {
    /// ThreadSanitizer is instrumenting this build.
    public static let thread: Bool =
        csup_built_with_tsan() != 0 || ProcessInfo.processInfo.environment["UMS_SANITIZER"] == "thread"
    /// AddressSanitizer is instrumenting this build.
    public static let address: Bool =
        csup_built_with_asan() != 0 || ProcessInfo.processInfo.environment["UMS_SANITIZER"] == "address"
    /// Any sanitizer.
    public static var any: Bool { thread || address }

    /// `full`, or less under a sanitizer that cannot hold it: `underTSan`
    /// under ThreadSanitizer, `underASan` (when given) under
    /// AddressSanitizer. Every UMS thread context is a sanitizer fiber:
    /// TSan keeps a thread state (hundreds of KiB, several mappings) per
    /// fiber, ASan a fake stack (about 700 KiB, its own mapping) per fiber
    /// that is suspended mid-call. Tens of thousands of them at once exhaust
    /// vm.max_map_count (65,530 by default), and the sanitizer dies out of
    /// memory. Tests that scale down say so where they call this.
    public static func scaled(_ full: Int, underTSan: Int, underASan: Int? = nil) -> Int {
        if thread { return min(full, underTSan) }
        if address, let underASan { return min(full, underASan) }
        return full
    }
}
