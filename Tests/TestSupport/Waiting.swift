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
