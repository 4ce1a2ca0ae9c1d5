import CSupport
import Foundation
import UMS

/// `handoff`: the round trip of one UMS.blockingCall around a trivial
/// system call: UT -> primary -> KT (futex wake) -> call -> completion list
/// -> primary (dequeue) -> UT. Beside it, `baseline-pthread-futex`: two
/// pthreads ping-ponging through futex words, the kernel's own round trip.
enum HandoffBench {
    static func run(_ h: Harness) throws {
        let n = h.options.iterations ?? 100_000
        let ums = try h.median("handoff ums") { try handoff(n) }
        h.report("handoff", "ums", ums, "ns/op", "(blockingCall round trip: UT->KT->completion list->UT)")
        let futex = h.median("handoff futex") { futexPingPong(n) }
        h.report("handoff", "baseline-pthread-futex", futex, "ns/op", "(futex ping-pong round trip between two pthreads)")
    }

    static func handoff(_ n: Int) throws -> Double {
        let list = try UMSCompletionList(reservingKernelThreads: 1)
        let elapsed = Box(0.0)
        _ = try UMSThread(completionList: list) {
            elapsed.value = timeNs {
                for _ in 0..<n { _ = UMS.blockingCall { csup_gettid() } }
            }
        }
        try UMS.enterSchedulingMode(cpu: Int(csup_affinity_cpu_at(0))) { p in
            var t = list.dequeue(timeout: nil)[0]
            while true {
                let r = try p.execute(t)
                if r == .terminated { break }
                if r == .blocked(.systemCall) { t = list.dequeue(timeout: nil)[0] }
            }
        }
        return elapsed.value / Double(n)
    }

    static func futexPingPong(_ n: Int) -> Double {
        let words = UnsafeMutablePointer<UInt32>.allocate(capacity: 32)
        words.initialize(repeating: 0, count: 32)
        defer { words.deallocate() }
        let ping = words, pong = words + 16   // separate cache lines
        let wp = Box(words)
        let other = Thread {
            let ping = wp.value, pong = wp.value + 16
            for i in 1...n {
                while csup_u32_load_acquire(ping) != UInt32(truncatingIfNeeded: i) {
                    _ = csup_futex_wait(ping, UInt32(truncatingIfNeeded: i - 1), -1)
                }
                csup_u32_store_release(pong, UInt32(truncatingIfNeeded: i))
                _ = csup_futex_wake(pong, 1)
            }
        }
        other.start()
        let ns = timeNs {
            for i in 1...n {
                csup_u32_store_release(ping, UInt32(truncatingIfNeeded: i))
                _ = csup_futex_wake(ping, 1)
                while csup_u32_load_acquire(pong) != UInt32(truncatingIfNeeded: i) {
                    _ = csup_futex_wait(pong, UInt32(truncatingIfNeeded: i - 1), -1)
                }
            }
        }
        return ns / Double(n)
    }
}

final class Box<T>: @unchecked Sendable {
    var value: T
    init(_ v: T) { value = v }
}
