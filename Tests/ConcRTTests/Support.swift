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
