import Foundation
import XCTest
@testable import UMS
import CSupport
import Synchronization

/// Counts of process resources, for leak checks.
struct ResourceCounts: Equatable, CustomStringConvertible {
    var threads: Int
    var fds: Int
    var stacks: Int

    static func now() -> ResourceCounts {
        UMS.trimStackCache()
        return ResourceCounts(
            threads: (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count) ?? -1,
            fds: (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1,
            stacks: Int(csup_stack_mapped_count()))
    }

    var description: String { "threads=\(threads) fds=\(fds) stacks=\(stacks)" }

    /// Nothing leaked relative to `baseline`. Other pthreads of the test
    /// process (Foundation, Dispatch) may have ended meanwhile, so the
    /// thread count may be lower, never higher.
    func isWithin(_ baseline: ResourceCounts) -> Bool {
        threads <= baseline.threads && fds <= baseline.fds && stacks == baseline.stacks
    }
}

/// Waits (bounded) until `cond` holds, polling.
func eventually(timeout: Double = 10, _ cond: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if cond() { return true }
        usleep(1000)
    }
    return cond()
}

/// Runs `body` on a new pthread and waits for it (Foundation Thread).
func onNewThread(_ body: @escaping @Sendable () -> Void) {
    let done = DispatchSemaphore(value: 0)
    let t = Thread {
        body()
        done.signal()
    }
    t.stackSize = 1 << 20
    t.start()
    done.wait()
}

/// A simple scheduler loop for tests: drains `list` and executes every
/// thread until `expected` threads have terminated. Returns the results
/// seen, in order.
@discardableResult
func runScheduler(_ p: UMSPrimary, _ list: UMSCompletionList, until expected: Int,
                  onResult: ((UMSThread, UMSExecuteResult) -> Void)? = nil) throws -> [UMSExecuteResult] {
    var ready: [UMSThread] = []
    var results: [UMSExecuteResult] = []
    var terminated = 0
    while terminated < expected {
        list.drain(timeout: ready.isEmpty ? .seconds(30) : .zero) { ready.append($0) }
        if ready.isEmpty { continue }
        let t = ready.removeFirst()
        let r = try p.execute(t)
        results.append(r)
        onResult?(t, r)
        switch r {
        case .terminated: terminated += 1
        case .yielded: ready.append(t)
        case .blocked: break
        }
    }
    return results
}

final class Box<T>: @unchecked Sendable {
    var value: T
    init(_ v: T) { value = v }
}

/// A flag shared between pthreads (release/acquire).
final class Flag: Sendable {
    private let v = Atomic<Bool>(false)
    var isSet: Bool { v.load(ordering: .acquiring) }
    func set() { v.store(true, ordering: .releasing) }
}

/// A counter shared between pthreads (relaxed: only totals are read,
/// after a join or a bounded wait).
final class Counter: Sendable {
    private let v = Atomic<Int>(0)
    var value: Int { v.load(ordering: .relaxed) }
    @discardableResult func add(_ n: Int = 1) -> Int { v.wrappingAdd(n, ordering: .relaxed).newValue }
}
