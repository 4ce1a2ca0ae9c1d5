import TestSupport
import XCTest
import Foundation
import Synchronization
@testable import UMS
import CSupport

/// A small multi-primary scheduler for the stress tests: primaries share
/// one completion list and one ready queue, and drain the list into the
/// queue before running anything (the UMS rule).
///
/// The lock is UMS's MigrationSafeMutex, not Synchronization.Mutex: under
/// contention Mutex hands the lock over inside the kernel (FUTEX_LOCK_PI /
/// FUTEX_UNLOCK_PI), so ThreadSanitizer sees no happens-before edge between
/// two holders and reports the array accesses as races. csup_lock's
/// acquire/release atomics are visible to it.
final class SharedReadyQueue: @unchecked Sendable {
    private let q = MigrationSafeMutex<[UMSThread]>([])
    func push(_ t: UMSThread) { q.withLock { $0.append(t) } }
    func pushAll(_ ts: [UMSThread]) { q.withLock { $0.append(contentsOf: ts) } }
    func pop() -> UMSThread? { q.withLock { $0.isEmpty ? nil : $0.removeFirst() } }
}

final class StressTests: XCTestCase {
    /// LONG=1 runs the long variants.
    static var long: Bool { ProcessInfo.processInfo.environment["LONG"] == "1" }

    func testStressTwoPrimariesAssembly() throws { try stress(primaries: 2, threads: 20_000, backend: .assembly) }
    func testStressFourPrimariesAssembly() throws { try stress(primaries: 4, threads: 20_000, backend: .assembly) }
    func testStressThreePrimariesUcontext() throws { try stress(primaries: 3, threads: 20_000, backend: .ucontext) }

    func stress(primaries: Int, threads: Int, backend: UMSContextBackend) throws {
        // Under ThreadSanitizer, 2,000 threads: every UMS thread context is a
        // TSan fiber (a thread state of its own), and 20,000 of them alive at
        // once exhaust vm.max_map_count (TSan then fails to munmap and dies).
        let n = Sanitizer.scaled(Self.long ? threads * 5 : threads, underTSan: 2_000)
        let baseline = try ResourceCounts.now()
        let completions = Counter()      // bodies finished
        let runs = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: n)
        runs.initialize(repeating: 0)
        defer { runs.deallocate() }
        let runsBox = Box(runs)  // each slot written by one thread, read after join
        let blockingCallsMade = Counter()
        let blockedReports = Counter()
        let terminatedReports = Counter()
        let yieldReports = Counter()
        let kernelThreadsBefore = UMS.statistics.kernelThreadsCreated
        do {
            let list = try UMSCompletionList()
            var created: [UMSThread] = []
            created.reserveCapacity(n)
            for i in 0..<n {
                let seed = UInt64(i) &* 0x9E37_79B9_7F4A_7C15
                created.append(try UMSThread(completionList: list, stackSize: 64 * 1024, backend: backend) {
                    var rng = SplitMix(seed)
                    var acc: UInt64 = 0
                    for _ in 0..<Int(rng.next() % 6) {
                        switch rng.next() % 3 {
                        case 0:
                            for k in 0..<Int(rng.next() % 2000) { acc &+= UInt64(k) &* rng.state }
                        case 1:
                            try! UMSThread.yield(Int(rng.next() % 100))
                        default:
                            blockingCallsMade.add()
                            let ns = Int64(rng.next() % 50_000)
                            let r = UMS.blockingCall { csup_sys_nanosleep(ns) }
                            XCTAssertEqual(r.value, 0)
                        }
                    }
                    withExtendedLifetime(acc) {}
                    // Exactly once: a second run would make this 2.
                    runsBox.value[i] &+= 1
                    completions.add()
                })
            }
            let ready = SharedReadyQueue()
            let maxInKernel = 64
            let inKernel = Counter()
            let group = DispatchGroup()
            let failures = Counter()
            for cpuIndex in 0..<primaries {
                group.enter()
                let th = Thread {
                    defer { group.leave() }
                    do {
                        try UMS.enterSchedulingMode(cpu: Int(csup_affinity_cpu_at(Int32(cpuIndex % Int(csup_affinity_count()))))) { p in
                            var fresh: [UMSThread] = []
                            while terminatedReports.value < n {
                                // Drain first: returning threads go ahead of fresh ones.
                                list.drain(timeout: .zero) { t in
                                    if t.userContext == nil { fresh.append(t) } else { inKernel.add(-1); ready.push(t) }
                                }
                                var next = ready.pop()
                                if next == nil, inKernel.value < maxInKernel, !fresh.isEmpty { next = fresh.removeLast() }
                                if next == nil, inKernel.value < maxInKernel {
                                    // Take fresh ones another primary drained? (they stay local: fine)
                                }
                                guard let t = next else {
                                    if !fresh.isEmpty || inKernel.value > 0 {
                                        list.drain(timeout: .milliseconds(1)) { t in
                                            if t.userContext == nil { fresh.append(t) } else { inKernel.add(-1); ready.push(t) }
                                        }
                                    } else {
                                        usleep(200)
                                    }
                                    continue
                                }
                                t.userContext = UnsafeMutableRawPointer(bitPattern: 1)  // "started"
                                switch try p.execute(t) {
                                case .terminated: terminatedReports.add()
                                case .yielded: yieldReports.add(); ready.push(t)
                                case .blocked(.systemCall): blockedReports.add(); inKernel.add()
                                }
                            }
                        }
                    } catch {
                        failures.add()
                        XCTFail("primary failed: \(error)")
                    }
                }
                th.stackSize = 1 << 20
                th.start()
            }
            XCTAssertEqual(group.wait(timeout: .now() + 600), .success, "stress run hung")
            XCTAssertEqual(failures.value, 0)
            XCTAssertTrue(created.allSatisfy { $0.isTerminated })
            try list.delete()
        }
        XCTAssertEqual(completions.value, n)
        XCTAssertEqual(terminatedReports.value, n)
        XCTAssertTrue((0..<n).allSatisfy { runs[$0] == 1 }, "every thread ran to completion exactly once")
        XCTAssertEqual(blockedReports.value, blockingCallsMade.value, "every blocking call was reported")
        XCTAssertGreaterThan(blockingCallsMade.value, n / 2)
        XCTAssertGreaterThan(yieldReports.value, n / 2)
        let kts = UMS.statistics.kernelThreadsCreated - kernelThreadsBefore
        XCTAssertLessThanOrEqual(kts, 64 + primaries + 8, "KTs are pooled: bounded by calls in the kernel at once")
        let settled = try ResourceCounts.settle(within: baseline)
        XCTAssertTrue(settled.ok, "resources back to baseline: \(settled.last) vs \(baseline)")
    }
}

struct SplitMix {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
