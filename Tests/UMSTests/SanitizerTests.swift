import Foundation
import XCTest
@testable import UMS
import CSupport
import TestSupport

/// What the sanitizer builds rely on (`ums.sh test` runs UMS, ConcRT and
/// PPL under ThreadSanitizer and AddressSanitizer).
final class SanitizerTests: XCTestCase {
    /// AddressSanitizer: a UMS thread's last frames are abandoned when it
    /// terminates (its final switch never returns), and a thread that is
    /// dropped unfinished abandons all of them; their redzones stay poisoned
    /// in the shadow. Its stack must go back to the cache clean, or the next
    /// thread on it inherits stale poison (false stack-buffer-overflow
    /// reports from intercepted calls on buffers that uninstrumented code put
    /// there). Each thread here poisons the bottom of its own stack, as such
    /// a frame would have; after termination no cached stack is poisoned.
    /// Without ASan the hook does nothing and the count is 0 either way;
    /// the first assertion pins which case ran.
    func testTerminatedThreadsStacksGoBackToTheCacheUnpoisoned() throws {
        let n = 8
        csup_stack_cache_trim()
        let list = try UMSCompletionList()
        let poisoned = Counter()
        for _ in 0..<n {
            _ = try UMSThread(completionList: list, stackSize: 64 * 1024) {
                if csup_stack_poison_own_bottom_for_test(4096) != 0 { poisoned.add() }
            }
        }
        try UMS.enterSchedulingMode { p in try runScheduler(p, list, until: n) }
        XCTAssertEqual(poisoned.value, Sanitizer.address ? n : 0, "the hook poisons under ASan only")
        XCTAssertGreaterThanOrEqual(csup_stack_cached_count(), n, "the stacks went back to the cache")
        XCTAssertEqual(csup_stack_cached_poisoned_count(), 0, "a cached stack kept its dead frames' poison")
        try list.delete()
    }

    /// The scale-down switch agrees with the build: a stage of `ums.sh
    /// test` that says it runs a sanitizer (UMS_SANITIZER) really was built
    /// with it (CSupport's compile-time answer), and the sanitizer
    /// builds scale down (TSan) or not (others).
    func testSanitizerDetectionMatchesTheBuild() {
        let env = ProcessInfo.processInfo.environment["UMS_SANITIZER"]
        if env == "thread" { XCTAssertEqual(csup_built_with_tsan(), 1, "UMS_SANITIZER=thread, but not a TSan build") }
        if env == "address" { XCTAssertEqual(csup_built_with_asan(), 1, "UMS_SANITIZER=address, but not an ASan build") }
        if csup_built_with_tsan() != 0 { XCTAssertTrue(Sanitizer.thread) }
        if csup_built_with_asan() != 0 { XCTAssertTrue(Sanitizer.address) }
        XCTAssertEqual(Sanitizer.scaled(100_000, underTSan: 5_000), Sanitizer.thread ? 5_000 : 100_000)
    }
}
