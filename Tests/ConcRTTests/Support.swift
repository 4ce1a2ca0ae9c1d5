import Foundation
import Synchronization
import XCTest
@testable import ConcRT
import CSupport
import UMS

final class Counter: Sendable {
    private let v = Atomic<Int>(0)
    var value: Int { v.load(ordering: .relaxed) }
    @discardableResult func add(_ n: Int = 1) -> Int { v.wrappingAdd(n, ordering: .relaxed).newValue }
}

final class Box<T>: @unchecked Sendable {
    var value: T
    init(_ v: T) { value = v }
}

struct ResourceCounts: Equatable, CustomStringConvertible {
    var threads: Int, fds: Int, stacks: Int
    static func now() -> ResourceCounts {
        UMS.trimStackCache()
        return ResourceCounts(
            threads: (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count) ?? -1,
            fds: (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1,
            stacks: Int(csup_stack_mapped_count()))
    }
    func isWithin(_ b: ResourceCounts) -> Bool { threads <= b.threads && fds <= b.fds && stacks <= b.stacks }
    var description: String { "threads=\(threads) fds=\(fds) stacks=\(stacks)" }
}

func eventually(timeout: Double = 10, _ cond: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if cond() { return true }
        usleep(1000)
    }
    return cond()
}

/// LONG=1 runs the long variants of stress tests.
let longMode = ProcessInfo.processInfo.environment["LONG"] == "1"

func makeScheduler(_ vps: Int, cache: Int = 8, stack: Int = 256 * 1024) throws -> Scheduler {
    try Scheduler(policy: SchedulerPolicy(minConcurrency: vps, maxConcurrency: vps,
                                          contextStackSize: stack, localContextCacheSize: cache))
}

/// Small fast PRNG (xorshift64*), one per task or thread.
struct TestRNG {
    var state: UInt64
    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
    mutating func next() -> UInt64 {
        state ^= state >> 12; state ^= state << 25; state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
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
