import Foundation
import XCTest
import Synchronization
@testable import ConcRT
import TestSupport
import UMS
import CSupport
#if canImport(Glibc)
import Glibc
#endif

/// Node-preferring schedule groups (issue 14, "Locality"): on the 2-node
/// fixture (VPs 0-3 on node 0, 4-7 on node 1; not pinned on this machine),
/// a group under `.enhanceScheduleGroupLocality` runs on its home node
/// while that node has capacity, lends its tasks to the other node when it
/// has none, and two groups homed on different nodes each keep to theirs
/// (ScheduleGroups/GroupHome.swift, Idle/NodeIdle.swift).
final class NodeLocalityTests: XCTestCase {
    static let twoNode = TopologyTests.twoNode

    func twoNodeScheduler(_ p: SchedulerPolicy.SchedulingProtocol = .enhanceScheduleGroupLocality) throws -> Scheduler {
        // A Resource Manager with the fixture's 8 cores: the shared one has
        // this machine's, and a VP runs only while it holds a core.
        let s = try Scheduler(policy: SchedulerPolicy(schedulingProtocol: p, useIORing: false, topologyRoot: Self.twoNode),
                              resourceManager: ResourceManager(coreCount: 8))
        XCTAssertEqual(s.layout.slots.map(\.node!), [0, 0, 0, 0, 1, 1, 1, 1])
        return s
    }

    /// The topology node of the VP running the calling task (nil on a
    /// temporary VP), read from inside the task.
    static func currentNode(_ s: Scheduler) -> Int? {
        guard let vp = Context.currentInternal?.vp, vp.index < s.virtualProcessorCount else { return nil }
        return s.layout.slots[vp.index].node
    }

    /// Spins about `micros` µs, yielding the CPU (8 VPs share 2 CPUs here)
    /// without ending the task: the VP stays busy.
    static func busy(micros: Int64) {
        let end = monotonicNow() + micros * 1_000
        while monotonicNow() < end { sched_yield() }
    }

    /// The per-node idle counters, for failure messages.
    static func state(_ s: Scheduler) -> String {
        guard let c = s.nodeIdle?.counters else { return "no node locality" }
        return "per node: free \(c.map { $0.free.load(ordering: .relaxed) }) searching \(c.map { $0.searching.load(ordering: .relaxed) }) "
            + "sleeping \(c.map { $0.sleeping.load(ordering: .relaxed) }); all: sleeping \(s.idle.sleeping.load(ordering: .relaxed)) "
            + "searching \(s.idle.searching.load(ordering: .relaxed)); queued tasks: \(s.hasQueuedTasks)"
    }

    // MARK: Homes

    func testHomeNodeDefaultsAndMisuse() throws {
        let s = try twoNodeScheduler()
        defer { try? s.shutdown() }
        XCTAssertEqual(s.nodes, [0, 1])
        XCTAssertNotNil(s.nodeIdle)
        // From outside: round-robin over the nodes.
        let homes = (0..<4).map { _ in s.createScheduleGroup().homeNode }
        XCTAssertEqual(homes.compactMap { $0 }.sorted(), [0, 0, 1, 1], "\(homes)")
        XCTAssertEqual(try s.createScheduleGroup(node: 1).homeNode, 1)
        XCTAssertEqual(try s.createScheduleGroup(share: 3, cap: 0.5, node: 0).homeNode, 0)
        // From a context: the creating VP's node.
        let g1 = try s.createScheduleGroup(node: 1)
        let seen = MigrationSafeMutex<[(Int?, Int?)]>([])
        let done = DispatchSemaphore(value: 0)
        for _ in 0..<4 {
            g1.scheduleTask {
                let made = s.createScheduleGroup()
                seen.withLock { $0.append((Self.currentNode(s), made.homeNode)) }
                done.signal()
            }
        }
        for _ in 0..<4 { XCTAssertEqual(done.wait(timeout: .now() + 10), .success) }
        let pairs = seen.withLock { $0 }
        XCTAssertEqual(pairs.count, 4)
        for (node, home) in pairs { XCTAssertEqual(node, home, "a group made on a node-\(node ?? -1) VP") }
        // Misuse: a node the scheduler has no VP on.
        for bad in [2, -1, 99] {
            XCTAssertThrowsError(try s.createScheduleGroup(node: bad)) { e in
                guard case .invalidPolicy(let m)? = e as? ConcRTError else { return XCTFail("\(e)") }
                XCTAssertTrue(m.contains("node \(bad) is not one of this scheduler's NUMA nodes [0, 1]"), m)
            }
        }
        XCTAssertThrowsError(try s.createScheduleGroup(share: 0, node: 1))
    }

    func testNoHomeUnderForwardProgressOrOnOneNode() throws {
        let s = try twoNodeScheduler(.enhanceForwardProgress)
        XCTAssertNil(s.nodeIdle)
        XCTAssertNil(s.createScheduleGroup().homeNode)
        XCTAssertNil(try s.createScheduleGroup(node: 1).homeNode, "checked, but no preference")
        XCTAssertThrowsError(try s.createScheduleGroup(node: 2))
        XCTAssertTrue(s.virtualProcessors.allSatisfy { $0.node == -1 && $0.wakeMask == CSUP_FUTEX_BITSET_ANY })
        try s.shutdown()
        // VPs on one node (node 0 of the fixture selected): no preference.
        let one = try Scheduler(policy: SchedulerPolicy(useIORing: false, nodes: [0], topologyRoot: Self.twoNode),
                                resourceManager: ResourceManager(coreCount: 4))
        defer { try? one.shutdown() }
        XCTAssertEqual(one.nodes, [0])
        XCTAssertNil(one.nodeIdle)
        XCTAssertNil(one.createScheduleGroup().homeNode)
        XCTAssertNil(try one.createScheduleGroup(node: 0).homeNode)
        XCTAssertThrowsError(try one.createScheduleGroup(node: 1), "node 1 has none of its VPs")
    }

    // MARK: Taking and waking

    /// Load within node 1's capacity (2 tasks at a time, node 1 has 4 VPs):
    /// every task of a group homed on node 1 runs on a node-1 VP. Without
    /// the take rule (a VP of node 0 that wakes takes them), some run on
    /// node 0.
    func testGroupStaysOnItsHomeNodeWithinCapacity() throws {
        try stayOnHome(share: 1)
    }

    /// The same with a share (stride scheduling picks among the groups
    /// a VP may take: ScheduleGroupRegistry.takeByPass).
    func testWeightedGroupStaysOnItsHomeNodeWithinCapacity() throws {
        try stayOnHome(share: 3)
    }

    func stayOnHome(share: Int) throws {
        let s = try twoNodeScheduler()
        defer { try? s.shutdown() }
        let g = try s.createScheduleGroup(share: share, node: 1)
        if share != 1 { _ = try s.createScheduleGroup(share: 1, node: 0) }   // another group: a real choice
        XCTAssertEqual(s.groups.weighted.load(ordering: .relaxed), share != 1)
        XCTAssertEqual(g.homeIndex, 1)
        let waves = longMode ? 1_000 : 150
        let wrong = Counter(), ran = Counter()
        let done = DispatchSemaphore(value: 0)
        for _ in 0..<waves {
            for _ in 0..<2 {
                g.scheduleTask {
                    Self.busy(micros: 50)
                    if Self.currentNode(s) != 1 { wrong.add() }
                    ran.add()
                    done.signal()
                }
            }
            for _ in 0..<2 { XCTAssertEqual(done.wait(timeout: .now() + 10), .success, "a homed task was stranded") }
        }
        XCTAssertEqual(ran.value, 2 * waves)
        XCTAssertEqual(wrong.value, 0, "tasks of a group homed on node 1 ran on node 0 while node 1 had capacity")
    }

    /// Every VP asleep, one task homed on node 1 at a time: the wake goes
    /// to a node-1 VP (a futex bitset per node), not to whichever VP slept
    /// first (node 0's, here: a plain wake would mostly pick them).
    func testWakeGoesToTheHomeNode() throws {
        let s = try twoNodeScheduler()
        defer { try? s.shutdown() }
        let g = try s.createScheduleGroup(node: 1)
        let wakes = { (r: Range<Int>) in s.virtualProcessors[r].reduce(0) { $0 + $1.stats.snapshot(liveContexts: 0).idleWakeUps } }
        let rounds = longMode ? 400 : 60
        let done = DispatchSemaphore(value: 0)
        let wrong = Counter()
        var node0 = 0, node1 = 0
        for _ in 0..<rounds {
            XCTAssertTrue(eventually(timeout: 5) { s.idle.sleeping.load(ordering: .relaxed) == 8 }, Self.state(s))
            let w0 = wakes(0..<4), w1 = wakes(4..<8)
            g.scheduleTask {
                if Self.currentNode(s) != 1 { wrong.add() }
                done.signal()
            }
            XCTAssertEqual(done.wait(timeout: .now() + 10), .success)
            node0 += wakes(0..<4) - w0
            node1 += wakes(4..<8) - w1
        }
        print("NodeLocalityTests: \(rounds) wakes for homed tasks: node-0 VPs woke \(node0) times, node-1 VPs \(node1)")
        XCTAssertEqual(wrong.value, 0)
        XCTAssertGreaterThanOrEqual(node1, rounds)
        XCTAssertLessThan(node0, rounds / 3, "node-0 VPs were woken for tasks homed on node 1")
    }

    /// Node 1's four VPs all busy in long tasks (no capacity): the group's
    /// other tasks run on node 0, within a bound (work conservation).
    func testOtherNodeTakesTheRestWhenHomeHasNoCapacity() throws {
        let s = try twoNodeScheduler()
        defer { try? s.shutdown() }
        let g = try s.createScheduleGroup(node: 1)
        let release = Flag()
        let spinningOnHome = Counter()
        // Occupy node 1: a spinner that lands on node 0 ends at once; more
        // are queued until four spin on node 1.
        let started = DispatchSemaphore(value: 0)
        let onHome = MigrationSafeMutex<Set<Int>>([])
        var queued = 0
        while spinningOnHome.value < 4 {
            XCTAssertLessThan(queued, 64, "could not occupy node 1's VPs")
            if queued >= 64 { release.set(); return }
            queued += 1
            g.scheduleTask {
                let vp = Context.currentInternal!.vp!.index
                let home = Self.currentNode(s) == 1
                if home {
                    onHome.withLock { _ = $0.insert(vp) }
                    spinningOnHome.add()
                }
                started.signal()
                if home { while !release.isSet { sched_yield() } }
            }
            guard started.wait(timeout: .now() + 10) == .success else {
                XCTFail("spinner \(queued) did not start; \(Self.state(s))")
                release.set()
                return
            }
        }
        XCTAssertEqual(onHome.withLock { $0 }, [4, 5, 6, 7], "one spinner per node-1 VP")
        XCTAssertFalse(s.nodeIdle!.hasCapacity(1), "node 1's VPs all run tasks")
        // The rest: node 0 takes them.
        let n = 40
        let ranOn = MigrationSafeMutex<[Int?]>([])
        let done = DispatchSemaphore(value: 0)
        let t0 = monotonicNow()
        for _ in 0..<n {
            g.scheduleTask {
                Self.busy(micros: 20)
                ranOn.withLock { $0.append(Self.currentNode(s)) }
                done.signal()
            }
        }
        for i in 0..<n {
            if done.wait(timeout: .now() + 10) != .success {
                XCTFail("task \(i) stranded while node 0 idled; \(Self.state(s))")
                break
            }
        }
        let elapsed = Double(monotonicNow() - t0) / 1e6
        release.set()
        let nodes = ranOn.withLock { $0 }
        XCTAssertEqual(nodes.count, n)
        XCTAssertTrue(nodes.allSatisfy { $0 == 0 }, "node 1 was full: \(nodes)")
        XCTAssertLessThan(elapsed, 5_000, "40 short tasks took \(elapsed) ms on the other node")
        XCTAssertTrue(eventually { g.pendingTasks == 0 })
    }

    /// A group homed on node 0 and one on node 1, fed together: each runs on
    /// its own node, and they run at the same time.
    func testTwoGroupsRunConcurrentlyEachOnItsNode() throws {
        try twoGroups(shares: [1, 1])
    }

    /// The same with shares: stride scheduling (takeByPass) must pick only
    /// among the groups a VP may take.
    func testTwoWeightedGroupsRunConcurrentlyEachOnItsNode() throws {
        try twoGroups(shares: [2, 1])
    }

    func twoGroups(shares: [Int]) throws {
        let s = try twoNodeScheduler()
        defer { try? s.shutdown() }
        let groups = [try s.createScheduleGroup(share: shares[0], node: 0), try s.createScheduleGroup(share: shares[1], node: 1)]
        let running = [Counter(), Counter()]
        let overlap = Counter(), wrong = Counter()
        let done = DispatchSemaphore(value: 0)
        let waves = longMode ? 500 : 80
        for _ in 0..<waves {
            for k in 0..<2 {
                for _ in 0..<2 {
                    groups[k].scheduleTask {
                        running[k].add(1)
                        if Self.currentNode(s) != k { wrong.add() }
                        let end = monotonicNow() + 200_000
                        while monotonicNow() < end {
                            if running[1 - k].value > 0 { overlap.add(); break }
                            sched_yield()
                        }
                        Self.busy(micros: 20)
                        running[k].add(-1)
                        done.signal()
                    }
                }
            }
            for _ in 0..<4 { XCTAssertEqual(done.wait(timeout: .now() + 10), .success) }
        }
        XCTAssertEqual(wrong.value, 0, "a task ran off its group's home node")
        XCTAssertGreaterThan(overlap.value, 0, "the two groups never ran at the same time")
    }
}
