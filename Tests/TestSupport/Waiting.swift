import Foundation
import Dispatch

/// LONG=1 runs the long variants of the stress tests.
public let longMode = ProcessInfo.processInfo.environment["LONG"] == "1"

/// Waits (bounded) until `cond` holds, polling every millisecond. Returns
/// false when `timeout` seconds pass first.
public func eventually(timeout: Double = 10, _ cond: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if cond() { return true }
        usleep(1000)
    }
    return cond()
}

/// Runs `body` on a new pthread (1 MiB stack) and waits for it.
public func onNewThread(_ body: @escaping @Sendable () -> Void) {
    let done = DispatchSemaphore(value: 0)
    let t = Thread {
        body()
        done.signal()
    }
    t.stackSize = 1 << 20
    t.start()
    done.wait()
}

/// Waits until `done()` holds, for as long as `progress()` keeps moving:
/// false when it stops moving for `stall` seconds (a lost wake-up stalls
/// the work; a slow or loaded machine only slows it) or after `limit`
/// seconds in all. `why` says which, for the failure message.
public func eventuallyWhileProgressing(stall: Double = 20, limit: Double = 600,
                                       progress: () -> Int, _ done: () -> Bool) -> (ok: Bool, why: String) {
    let start = Date()
    var last = progress(), lastChange = Date()
    while true {
        if done() { return (true, "") }
        let now = Date()
        let p = progress()
        if p != last { last = p; lastChange = now }
        if now.timeIntervalSince(lastChange) > stall {
            return (false, "no progress for \(Int(stall)) s (stalled at \(p))")
        }
        if now.timeIntervalSince(start) > limit { return (false, "not done after \(Int(limit)) s (still progressing)") }
        usleep(10_000)
    }
}
