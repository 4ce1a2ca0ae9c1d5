import Foundation
import XCTest
@testable import UMS
import CSupport
import TestSupport

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
