import Foundation
import Synchronization
@testable import PPL
import ConcRT
import TestSupport


struct Boom: Error, Equatable { let id: Int }

/// A scheduler shared by the PPL tests (2 virtual processors).
let testScheduler: Scheduler = try! Scheduler(policy: SchedulerPolicy(minConcurrency: 2, maxConcurrency: 2))

struct Rng {
    var s: UInt64
    mutating func next() -> UInt64 {
        s &+= 0x9E37_79B9_7F4A_7C15
        var z = s
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// LONG=1 runs the long variants of stress tests.
let longMode = ProcessInfo.processInfo.environment["LONG"] == "1"
