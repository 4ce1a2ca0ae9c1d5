import Foundation
import Synchronization
import XCTest
@testable import ConcRT
import CSupport
import TestSupport

/// Schedule groups with shares and caps (fair share scheduling). Each busy
/// group runs 8 self-rescheduling chains of 100 µs CPU-bound tasks on a
/// scheduler of 2 VPs. `timeUsed` is CPU time, so the splits below hold
/// on a loaded machine too: shares are checked as each group's part of the
/// time both used (3:1 gives 75 ± 5 percent), a cap against the window's
/// VP time (25% uses at most 27), and work conservation by the VPs never
/// going idle while a group has queued tasks.
final class FairShareTests: XCTestCase {
    final class Chains: @unchecked Sendable {
        // @unchecked Sendable: an atomic and immutable references.
        let group: ScheduleGroup
        let stop = Atomic<Bool>(false)
        init(_ g: ScheduleGroup) {
            group = g
            for _ in 0..<8 { step() }
        }
        private func step() {
            group.scheduleTask { [self] in
                if stop.load(ordering: .relaxed) { return }
                let end = csup_monotonic_ns() + 100_000
                while csup_monotonic_ns() < end { csup_cpu_relax() }
                step()
            }
        }
    }

    private func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    /// Percent of the VPs' time each of `measured` used over `window`
    /// seconds while `busy` groups run (measured ⊆ busy).
    private func parts(_ s: Scheduler, busy: [Chains], measured: [ScheduleGroup], window: Double) -> [Double] {
        usleep(50_000)
        let u0 = measured.map { seconds($0.timeUsed) }
        let t0 = csup_monotonic_ns()
        usleep(UInt32(window * 1e6))
        let t1 = csup_monotonic_ns()
        let u1 = measured.map { seconds($0.timeUsed) }
        let vpSeconds = Double(t1 - t0) / 1e9 * Double(s.virtualProcessorCount)
        return zip(u0, u1).map { 100 * ($1 - $0) / vpSeconds }
    }

    private func stop(_ chains: [Chains]) {
        for c in chains { c.stop.store(true, ordering: .relaxed) }
        XCTAssertTrue(eventually(timeout: 10) { chains.allSatisfy { $0.group.pendingTasks == 0 } })
    }

    func testSharesSplitTheVirtualProcessorsTime() throws {
        let s = try makeScheduler(2)
        let three = try s.createScheduleGroup(share: 3), one = try s.createScheduleGroup(share: 1)
        let chains = [Chains(three), Chains(one)]
        let p = parts(s, busy: chains, measured: [three, one], window: 0.6)
        stop(chains)
        let split = 100 * p[0] / (p[0] + p[1])
        XCTAssertEqual(split, 75, accuracy: 5, "share 3 of 4: \(p)")
        try s.shutdown()
    }

    func testCapHoldsEvenWhenNothingElseRuns() throws {
        let s = try makeScheduler(2)
        let capped = try s.createScheduleGroup(share: 1, cap: 0.25)
        _ = s.createScheduleGroup()   // idle
        let chains = [Chains(capped)]
        let p = parts(s, busy: chains, measured: [capped], window: 0.6)
        stop(chains)
        XCTAssertLessThanOrEqual(p[0], 27, "a 25% cap used \(p[0])%")
        XCTAssertGreaterThanOrEqual(p[0], 5, "a 25% cap held the group far below its cap: \(p[0])%")
        try s.shutdown()
    }

    func testAGroupAloneUsesEverything() throws {
        let s = try makeScheduler(2)
        _ = try s.createScheduleGroup(share: 5)   // weighted, idle
        let alone = s.createScheduleGroup()
        let chains = [Chains(alone)]
        usleep(50_000)
        let sleeps0 = s.statistics.idleSleeps
        let p = parts(s, busy: chains, measured: [alone], window: 0.4)
        let sleeps = s.statistics.idleSleeps - sleeps0
        stop(chains)
        // Work conservation: no VP went idle while the group had tasks
        // queued (its CPU time is \(p[0])% of the VPs' wall time; below 100
        // only when other processes take the CPUs).
        XCTAssertLessThanOrEqual(sleeps, 2, "VPs slept \(sleeps) times beside a busy uncapped group (\(p[0])%)")
        XCTAssertGreaterThan(p[0], 0)
        try s.shutdown()
    }

    /// A group that was idle while another ran does not get the other's
    /// time back: once both are busy they split by share from then on.
    func testAnIdleGroupDoesNotSaveUpTime() throws {
        let s = try makeScheduler(2)
        let early = try s.createScheduleGroup(share: 1), late = try s.createScheduleGroup(share: 1, cap: nil)
        _ = try s.createScheduleGroup(share: 2)   // weighted mode on
        let first = Chains(early)
        usleep(300_000)
        let second = Chains(late)
        let p = parts(s, busy: [first, second], measured: [early, late], window: 0.3)
        stop([first, second])
        XCTAssertEqual(100 * p[1] / (p[0] + p[1]), 50, accuracy: 10, "the late group caught up instead of sharing: \(p)")
        try s.shutdown()
    }

    func testBadShareOrCapIsRefused() throws {
        let s = try makeScheduler(1)
        for (share, cap) in [(0, nil), (10_001, nil), (1, 0.0), (1, 1.5), (1, -0.1)] as [(Int, Double?)] {
            XCTAssertThrowsError(try s.createScheduleGroup(share: share, cap: cap)) { e in
                guard case .invalidPolicy(let m)? = e as? ConcRTError else { return XCTFail("\(e)") }
                XCTAssertTrue(m.contains("share") || m.contains("cap"), m)
            }
        }
        try s.shutdown()
    }
}
