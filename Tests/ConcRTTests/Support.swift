import Foundation
import Synchronization
import XCTest
@testable import ConcRT
import CSupport
import UMS
import TestSupport

/// `ring`: false sends would-block Blocking calls through lazy kernel
/// entry (for the tests of that path) instead of the VPs' io_uring.
func makeScheduler(_ vps: Int, cache: Int = 8, stack: Int = 256 * 1024, ring: Bool = true,
                   retake: Bool = true) throws -> Scheduler {
    try Scheduler(policy: SchedulerPolicy(minConcurrency: vps, maxConcurrency: vps,
                                          contextStackSize: stack, localContextCacheSize: cache,
                                          retakeBlockedCalls: retake, useIORing: ring))
}

/// A scheduler of `vps` VPs with the ring turned on (or off); with `ring`,
/// a test that needs io_uring fails here when it is not in use.
func ringScheduler(_ vps: Int, ring: Bool = true, retake: Bool = true) throws -> Scheduler {
    let s = try makeScheduler(vps, ring: ring, retake: retake)
    if ring { XCTAssertEqual(s.ioPath, .ring, "io_uring is not in use here: \(s.ioPath)") }
    return s
}

func monotonicNow() -> Int64 { csup_monotonic_ns() }

/// Runs `body` on a new plain pthread; the returned event is set when it
/// has finished.
@discardableResult
func runOnNewThread(_ body: @escaping @Sendable () -> Void) -> Event {
    let done = Event()
    let t = Thread {
        body()
        done.set()
    }
    t.stackSize = 1 << 20
    t.start()
    return done
}

/// Schedules `body` as a task; the returned event is set when it finished.
@discardableResult
func runAsTask(_ s: Scheduler, _ body: @escaping @Sendable () -> Void) -> Event {
    let done = Event()
    s.scheduleTask {
        body()
        done.set()
    }
    return done
}

/// Waits for every event in `events` against one deadline, `timeout`
/// from now (not `timeout` each: 34 unfinished clients at 300 s apiece
/// once outlasted CI's whole time limit). Returns how many were not set.
func unfinished(_ events: [Event], within timeout: Duration) -> Int {
    let deadline = ContinuousClock.now + timeout
    return events.reduce(0) { n, e in
        let left = deadline - ContinuousClock.now
        return e.wait(timeout: left > .zero ? left : .zero) ? n : n + 1
    }
}

/// Waits (at most 10 s) until every temporary VP of `s` has retired (its
/// slot is free again); true when they all did.
func temporaryVPsRetire(_ s: Scheduler) -> Bool {
    let deadline = monotonicNow() + 10_000_000_000
    while s.temporarySlotsInUse > 0 && monotonicNow() < deadline { usleep(1_000) }
    return s.temporarySlotsInUse == 0
}
