import Foundation
import Synchronization
import XCTest
@testable import ConcRT
import CSupport
import TestSupport

/// Keeps a scheduler busy with `chains` self-rescheduling tasks of ~50 µs
/// each until stopped, counting how many task bodies run at once across
/// every scheduler that shares `running`.
final class BusyLoad: @unchecked Sendable {
    // @unchecked Sendable: atomics only.
    let stop = Atomic<Bool>(false)
    let tasks = Atomic<Int>(0)
    let running: SharedRunning

    init(_ s: Scheduler, chains: Int, running: SharedRunning) {
        self.running = running
        for _ in 0..<chains { step(s) }
    }

    private func step(_ s: Scheduler) {
        if stop.load(ordering: .relaxed) { return }
        s.scheduleTask { [self] in
            running.enter()
            let end = csup_monotonic_ns() + 50_000
            while csup_monotonic_ns() < end { csup_cpu_relax() }
            running.leave()
            tasks.wrappingAdd(1, ordering: .relaxed)
            step(s)
        }
    }
}

/// Task bodies running now, over several schedulers, and the most seen.
final class SharedRunning: @unchecked Sendable {
    // @unchecked Sendable: atomics only.
    let now = Atomic<Int>(0)
    let most = Atomic<Int>(0)
    func enter() {
        let n = now.wrappingAdd(1, ordering: .relaxed).newValue
        var m = most.load(ordering: .relaxed)
        while n > m {
            let (done, seen) = most.compareExchange(expected: m, desired: n, ordering: .relaxed)
            if done { break }
            m = seen
        }
    }
    func leave() { now.wrappingSubtract(1, ordering: .relaxed) }
}

final class ResourceManagerTests: XCTestCase {
    let u = ResourceManager.unitsPerCore

    func testFairShareRule() {
        typealias C = FairShare.Claim
        let one = C(minimum: u, limit: 2 * u, cost: u, active: true)
        // Two busy schedulers on 2 cores: one each.
        XCTAssertEqual(FairShare.shares(capacity: 2 * u, [one, one]), [u, u])
        // 3 cores: the earlier one gets the remainder, in whole VPs.
        let three = C(minimum: u, limit: 3 * u, cost: u, active: true)
        XCTAssertEqual(FairShare.shares(capacity: 3 * u, [three, three]), [2 * u, u])
        // An idle scheduler wants nothing: the busy one may use everything.
        var idle = one; idle.active = false
        XCTAssertEqual(FairShare.shares(capacity: 2 * u, [one, idle]), [2 * u, 0])
        // Minimums above the machine (capacity grown to hold them).
        let two = C(minimum: 2 * u, limit: 2 * u, cost: u, active: true)
        XCTAssertEqual(FairShare.shares(capacity: 4 * u, [two, two]), [2 * u, 2 * u])
        // A scheduler capped by its VPs leaves the rest to the other.
        let small = C(minimum: u, limit: u, cost: u, active: true)
        XCTAssertEqual(FairShare.shares(capacity: 3 * u, [small, three]), [u, 2 * u])
        // Oversubscription factor 2: half-core VPs, dealt two per core.
        let halves = C(minimum: u, limit: 2 * u, cost: u / 2, active: true)
        XCTAssertEqual(FairShare.shares(capacity: 3 * u, [halves, one]), [2 * u, u])
        let s = FairShare.shares(capacity: 3 * u, [halves, one])
        XCTAssertEqual(s[0] % (u / 2), 0)
        XCTAssertEqual(s[1] % u, 0)
        XCTAssertLessThanOrEqual(s[0] + s[1], 3 * u)
        XCTAssertGreaterThanOrEqual(s[0], u)
        XCTAssertGreaterThanOrEqual(s[1], u)
        XCTAssertEqual(s[0] + s[1], 3 * u, "nothing left over when both can use more")
    }

    func testBadCoreCountIsRefused() {
        for n in [0, -1, 1025] {
            XCTAssertThrowsError(try ResourceManager(coreCount: n)) { e in
                guard case .invalidPolicy(let m)? = e as? ConcRTError else { return XCTFail("\(e)") }
                XCTAssertTrue(m.contains("coreCount"), m)
            }
        }
    }

    private func pair(_ rm: ResourceManager, minA: Int = 1, minB: Int = 1) throws -> (Scheduler, Scheduler) {
        let a = try Scheduler(policy: SchedulerPolicy(minConcurrency: minA, maxConcurrency: 2), resourceManager: rm)
        let b = try Scheduler(policy: SchedulerPolicy(minConcurrency: minB, maxConcurrency: 2), resourceManager: rm)
        XCTAssertEqual(a.virtualProcessorCount, 2)
        XCTAssertEqual(b.virtualProcessorCount, 2)
        return (a, b)
    }

    private func stopAndShutDown(_ loads: [BusyLoad], _ schedulers: [Scheduler]) throws {
        for l in loads { l.stop.store(true, ordering: .relaxed) }
        for s in schedulers { try s.shutdown(timeout: .seconds(30)) }
    }

    /// An idle scheduler's cores go to a busy one; two busy ones share the
    /// two cores and never run more than two tasks at once between them;
    /// when one stops, the other gets both cores back.
    func testCoresMoveBetweenSchedulersWithoutOversubscription() throws {
        let rm = try ResourceManager(coreCount: 2)
        let (a, b) = try pair(rm)
        let running = SharedRunning()
        let loadA = BusyLoad(a, chains: 4, running: running)
        XCTAssertTrue(eventually(timeout: 10) { a.allocatedCores == 2 }, "the busy scheduler never got the idle one's cores: \(rm.allocations())")
        let loadB = BusyLoad(b, chains: 4, running: running)
        XCTAssertTrue(eventually(timeout: 10) { a.allocatedCores == 1 && b.allocatedCores == 1 },
                      "two busy schedulers did not settle on one core each: \(rm.allocations())")
        let tasksA = loadA.tasks.load(ordering: .relaxed), tasksB = loadB.tasks.load(ordering: .relaxed)
        usleep(200_000)
        XCTAssertGreaterThan(loadA.tasks.load(ordering: .relaxed) - tasksA, 100, "A starved while sharing")
        XCTAssertGreaterThan(loadB.tasks.load(ordering: .relaxed) - tasksB, 100, "B starved while sharing")
        XCTAssertLessThanOrEqual(running.most.load(ordering: .relaxed), 2,
                                 "more task bodies ran at once than the manager has cores")
        XCTAssertGreaterThanOrEqual(rm.allocations().first { $0.schedulerID == a.resourceManagerID }!.coresGivenBack, 1,
                                    "A's second core came back without a give-back")
        // A stops and shuts down: B gets both cores.
        try stopAndShutDown([loadA], [a])
        XCTAssertTrue(eventually(timeout: 10) { b.allocatedCores == 2 }, "the shut-down scheduler's core did not move: \(rm.allocations())")
        XCTAssertLessThanOrEqual(running.most.load(ordering: .relaxed), 2)
        try stopAndShutDown([loadB], [b])
        XCTAssertEqual(rm.freeCores, 2, "every core is back in the pool")
        XCTAssertTrue(rm.allocations().isEmpty)
    }

    /// A scheduler whose core went to another while it idled gets its share
    /// back when it has work again (the other gives one back between tasks).
    func testIdleSchedulerGetsItsShareBackWhenBusyAgain() throws {
        let rm = try ResourceManager(coreCount: 2)
        let (a, b) = try pair(rm)
        let running = SharedRunning()
        let loadB = BusyLoad(b, chains: 4, running: running)
        XCTAssertTrue(eventually(timeout: 10) { b.allocatedCores == 2 })
        for round in 0..<3 {
            let loadA = BusyLoad(a, chains: 4, running: running)
            XCTAssertTrue(eventually(timeout: 10) { a.allocatedCores == 1 && b.allocatedCores == 1 },
                          "round \(round): A did not get its share back: \(rm.allocations())")
            loadA.stop.store(true, ordering: .relaxed)
            XCTAssertTrue(eventually(timeout: 10) { a.allocatedCores == 0 && b.allocatedCores == 2 },
                          "round \(round): A's idle core did not go back to B: \(rm.allocations())")
        }
        XCTAssertLessThanOrEqual(running.most.load(ordering: .relaxed), 2)
        try stopAndShutDown([loadB], [a, b])
    }

    /// minConcurrency is honoured even when the minimums exceed the cores:
    /// then (and only then) the manager oversubscribes.
    func testMinimumsAreHonoured() throws {
        let rm = try ResourceManager(coreCount: 2)
        let (a, b) = try pair(rm, minA: 2, minB: 1)
        let running = SharedRunning()
        let loads = [BusyLoad(a, chains: 4, running: running), BusyLoad(b, chains: 4, running: running)]
        XCTAssertTrue(eventually(timeout: 10) { a.allocatedCores == 2 && b.allocatedCores == 1 },
                      "minimums 2 + 1 on 2 cores: \(rm.allocations())")
        try stopAndShutDown(loads, [a, b])
    }

    /// maxConcurrency caps a scheduler's cores even when more are free; the
    /// other scheduler uses the rest.
    func testMaximumIsHonoured() throws {
        let rm = try ResourceManager(coreCount: 2)
        let a = try Scheduler(policy: SchedulerPolicy(minConcurrency: 1, maxConcurrency: 1), resourceManager: rm)
        let b = try Scheduler(policy: SchedulerPolicy(minConcurrency: 1, maxConcurrency: 2), resourceManager: rm)
        let running = SharedRunning()
        let loadA = BusyLoad(a, chains: 4, running: running)
        XCTAssertTrue(eventually(timeout: 10) { a.allocatedCores == 1 })
        usleep(50_000)
        XCTAssertEqual(a.allocatedCores, 1, "a scheduler capped at one core took more")
        XCTAssertEqual(rm.freeCores, 1, "the core A may not use stays free")
        let loadB = BusyLoad(b, chains: 4, running: running)
        XCTAssertTrue(eventually(timeout: 10) { b.allocatedCores == 1 && a.allocatedCores == 1 }, "\(rm.allocations())")
        loadA.stop.store(true, ordering: .relaxed)
        XCTAssertTrue(eventually(timeout: 10) { b.allocatedCores == 2 }, "A's core did not move to B: \(rm.allocations())")
        XCTAssertLessThanOrEqual(running.most.load(ordering: .relaxed), 2)
        try stopAndShutDown([loadA, loadB], [a, b])
    }

    /// Two schedulers with the default policy on the shared manager: each
    /// is guaranteed one core, and they do not both run every CPU.
    func testDefaultPoliciesShareTheSharedManager() throws {
        let n = ResourceManager.shared.coreCount
        let a = try Scheduler(), b = try Scheduler()
        XCTAssertEqual(a.policy.minConcurrency, 1)
        let running = SharedRunning()
        let loads = [BusyLoad(a, chains: 2 * n, running: running), BusyLoad(b, chains: 2 * n, running: running)]
        XCTAssertTrue(eventually(timeout: 10) { a.allocatedCores >= 1 && b.allocatedCores >= 1 })
        usleep(100_000)
        try stopAndShutDown(loads, [a, b])
        // Other schedulers of this process (idle ones) may also hold cores
        // for a moment, but these two together never ran more task bodies
        // than the machine has cores.
        XCTAssertLessThanOrEqual(running.most.load(ordering: .relaxed), n)
    }
}
