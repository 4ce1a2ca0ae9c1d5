import Foundation
import XCTest
@testable import ConcRT
import CSupport
import TestSupport

/// Topology (issue 14): reading sysfs / cgroup v2 / the affinity mask,
/// processor groups, the VP layout and locality steal order, on the
/// committed fixtures (Tests/Fixtures/topology, made by generate.sh), on
/// fixtures built here in a temporary directory, and on this machine.
final class TopologyTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/topology")
    static let seed = fixtures.appendingPathComponent("seed-256").path
    static let twoNode = fixtures.appendingPathComponent("two-node-8").path

    // MARK: The seed machine: 256 CPUs, 16 nodes of 16

    func testSeedMachineFormsFourGroupsOf64() throws {
        let t = try Topology.read(root: Self.seed)
        XCTAssertEqual(t.cpus.count, 256)
        XCTAssertEqual(t.nodes.map(\.id), Array(0..<16))
        XCTAssertTrue(t.nodes.allSatisfy { $0.cpus == Array($0.id * 16..<$0.id * 16 + 16) })
        XCTAssertEqual(t.groups.count, 4)
        for g in t.groups {
            XCTAssertEqual(g.cpus, Array(g.id * 64..<g.id * 64 + 64), "group \(g.id)")
            XCTAssertEqual(g.nodes, Array(g.id * 4..<g.id * 4 + 4), "group \(g.id): whole nodes")
            XCTAssertEqual(g.mask, ~0)
        }
        // PROCESSOR_NUMBER, package, core, SMT rank, last-level cache.
        let c = try XCTUnwrap(t.cpu(200))
        XCTAssertEqual([c.group, c.numberInGroup, c.node, c.package, c.core, c.threadInCore, c.cache], [3, 8, 12, 12, 0, 1, 192])
        XCTAssertEqual(t.cpu(17)?.threadInCore, 0)
        XCTAssertEqual(t.usableCPUs, Array(0..<256))
        XCTAssertNil(t.cpuQuota, "cpu.max is 'max' at every level")
        XCTAssertEqual(t.cpuset, Array(0..<256))
    }

    func testEachVPStealsFirstFromItsOwnNode() throws {
        let policy = SchedulerPolicy(topologyRoot: Self.seed)
        XCTAssertEqual(policy.virtualProcessorCount, 256, "the fixture's CPUs, not this machine's")
        let layout = try VirtualProcessorLayout(policy: policy)
        XCTAssertFalse(layout.pinned, "a fixture's CPUs are not this machine's")
        XCTAssertEqual(layout.slots.compactMap(\.cpu).sorted(), Array(0..<256))
        XCTAssertEqual(layout.stealTiers.count, 256)
        for s in layout.slots {
            let tiers = layout.stealTiers[s.virtualProcessor]
            XCTAssertEqual(tiers.map(\.count), [15, 48, 192], "vp \(s.virtualProcessor)")
            XCTAssertTrue(tiers[0].allSatisfy { layout.slots[$0].node == s.node }, "vp \(s.virtualProcessor): first victims on its node")
            XCTAssertTrue(tiers[1].allSatisfy { layout.slots[$0].node != s.node && layout.slots[$0].group == s.group })
            XCTAssertTrue(tiers[2].allSatisfy { layout.slots[$0].group != s.group })
            XCTAssertFalse(tiers.joined().contains(s.virtualProcessor))
            let order = try XCTUnwrap(layout.stealOrders[s.virtualProcessor])
            XCTAssertEqual(order.victims, Array(tiers.joined()))
            XCTAssertEqual(order.tierEnds, [15, 63, 255])
        }
        // 32 VPs: two per node, and still the node's other VP first.
        var p32 = policy
        p32.minConcurrency = 32; p32.maxConcurrency = 32
        let l32 = try VirtualProcessorLayout(policy: p32)
        XCTAssertEqual(Dictionary(grouping: l32.slots, by: { $0.node! }).mapValues(\.count), Dictionary(uniqueKeysWithValues: (0..<16).map { ($0, 2) }))
        XCTAssertTrue(l32.slots.allSatisfy { t in t.cpu! % 16 < 8 }, "one thread per core before a core's second thread")
        for s in l32.slots {
            let first = l32.stealTiers[s.virtualProcessor][0]
            XCTAssertEqual(first.count, 1)
            XCTAssertEqual(l32.slots[first[0]].node, s.node)
        }
    }

    func testSelectingOneNodeGetsExactlyItsCPUs() throws {
        let policy = SchedulerPolicy(nodes: [5], topologyRoot: Self.seed)
        XCTAssertNoThrow(try policy.validate())
        XCTAssertEqual(policy.virtualProcessorCount, 16)
        let layout = try VirtualProcessorLayout(policy: policy)
        XCTAssertEqual(layout.selectedCPUs, Array(80..<96))
        XCTAssertEqual(layout.slots.compactMap(\.cpu).sorted(), Array(80..<96))
        XCTAssertTrue(layout.slots.allSatisfy { $0.node == 5 && $0.group == 1 })
        XCTAssertTrue(layout.stealTiers.isEmpty, "one node: one sweep, as without a topology")
        // A group: its 64 CPUs, 4 nodes.
        let g = try VirtualProcessorLayout(policy: SchedulerPolicy(processorGroups: [2], topologyRoot: Self.seed))
        XCTAssertEqual(g.selectedCPUs, Array(128..<192))
        XCTAssertEqual(Set(g.slots.map(\.node!)), [8, 9, 10, 11])
        // Nodes and groups intersect.
        let both = SchedulerPolicy(nodes: [0, 5], processorGroups: [1], topologyRoot: Self.seed)
        XCTAssertEqual(try VirtualProcessorLayout(policy: both).selectedCPUs, Array(80..<96))
        // Fewer VPs than CPUs: spread over the groups first, then nodes.
        var four = SchedulerPolicy(processorGroups: [1, 3], topologyRoot: Self.seed)
        four.minConcurrency = 4; four.maxConcurrency = 4
        XCTAssertEqual(try VirtualProcessorLayout(policy: four).slots.map(\.node!), [4, 5, 12, 13])
    }

    func testBadSelectionsThrow() throws {
        func bad(_ p: SchedulerPolicy, _ needle: String, line: UInt = #line) {
            XCTAssertThrowsError(try p.validate(), line: line) { e in
                guard case .invalidPolicy(let s)? = e as? ConcRTError else { return XCTFail("\(e)", line: line) }
                XCTAssertTrue(s.contains(needle), s, line: line)
            }
        }
        bad(SchedulerPolicy(nodes: [], topologyRoot: Self.seed), "nodes is empty")
        bad(SchedulerPolicy(nodes: [3, 16], topologyRoot: Self.seed), "unknown NUMA node 16")
        bad(SchedulerPolicy(processorGroups: [], topologyRoot: Self.seed), "processorGroups is empty")
        bad(SchedulerPolicy(processorGroups: [4], topologyRoot: Self.seed), "unknown processor group 4")
        bad(SchedulerPolicy(nodes: [0], processorGroups: [1], topologyRoot: Self.seed), "has no CPU this process may use")
        bad(SchedulerPolicy(topologyRoot: "/nonexistent/fixture"), "has no sys/devices/system/cpu")
        bad(SchedulerPolicy(nodes: [7]), "unknown NUMA node 7")   // this machine has one node
        XCTAssertThrowsError(try Scheduler(policy: SchedulerPolicy(nodes: [99])))
        // Malformed files name the file.
        let root = try FixtureBuilder(nodes: 1, cpusPerNode: 2).write()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try "0-x\n".write(toFile: root + "/sys/devices/system/node/node0/cpulist", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try Topology.read(root: root)) { e in
            XCTAssertTrue("\(e)".contains("node0/cpulist"), "\(e)")
        }
        XCTAssertThrowsError(try CPUList.parse("3-1"))
        XCTAssertThrowsError(try CPUList.parse("1,,2"))
    }

    // MARK: Affinity past CPU 1,023 and cgroup v2

    func testAffinityMaskBeyondCPU1023() throws {
        XCTAssertEqual(try CPUList.parse("0-2,1023-1025,1500\n"), [0, 1, 2, 1023, 1024, 1025, 1500])
        XCTAssertEqual(CPUList.format([1500, 0, 1, 2, 1024, 1023]), "0-2,1023-1024,1500")
        // 1,536 CPUs, 12 nodes of 128: a node of 128 is split into two groups.
        let root = try FixtureBuilder(nodes: 12, cpusPerNode: 128, affinity: "1000-1499").write()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let t = try Topology.read(root: root)
        XCTAssertEqual(t.cpus.count, 1536)
        XCTAssertEqual(t.groups.count, 24)
        XCTAssertTrue(t.groups.allSatisfy { $0.cpus.count == 64 && $0.nodes.count == 1 })
        XCTAssertEqual(t.cpu(1499)?.group, 23)
        XCTAssertEqual(t.cpu(1499)?.numberInGroup, 1499 - 23 * 64)
        XCTAssertEqual(t.usableCPUs, Array(1000..<1500))
        let p = SchedulerPolicy(nodes: [10], topologyRoot: root)
        XCTAssertEqual(p.virtualProcessorCount, 128)
        let layout = try VirtualProcessorLayout(policy: p)
        XCTAssertEqual(layout.selectedCPUs, Array(1280..<1408))
        XCTAssertEqual(Set(layout.slots.map(\.group!)), [20, 21])
        // Node 11 (1408-1535) lies partly outside the mask.
        XCTAssertEqual(try VirtualProcessorLayout(policy: SchedulerPolicy(nodes: [11], topologyRoot: root)).selectedCPUs,
                       Array(1408..<1500))
    }

    func testLiveAffinityWithRunTimeSizedMask() throws {
        let n = Int(csup_affinity_cpus(nil, 0))
        XCTAssertGreaterThan(n, 0)
        XCTAssertEqual(n, Int(csup_affinity_count()))
        var ids = [Int32](repeating: -1, count: n + 1)
        XCTAssertEqual(Int(csup_affinity_cpus(&ids, Int32(ids.count))), n)
        XCTAssertEqual(ids[0..<n].map(Int.init), (0..<n).map { Int(csup_affinity_cpu_at(Int32($0))) })
        XCTAssertEqual(ids[n], -1, "no write past count")
        var one: [Int32] = [-1, -1]
        XCTAssertEqual(Int(csup_affinity_cpus(&one, 1)), n, "a short buffer still reports the count")
        XCTAssertEqual(one[1], -1)
        XCTAssertEqual(csup_affinity_cpu_at(Int32(n)), -1)
        // Pinning past CPU_SETSIZE is refused by the kernel, not by our mask.
        var saved: UnsafeMutableRawPointer?
        XCTAssertEqual(csup_affinity_pin_self(2000, &saved), EINVAL)
        XCTAssertNil(saved)
        XCTAssertEqual(csup_affinity_pin_self(Int32(ids[0]), &saved), 0)
        XCTAssertEqual(Int(csup_affinity_count()), 1)
        csup_affinity_restore(saved)
        XCTAssertEqual(Int(csup_affinity_count()), n)
    }

    func testCgroupCpusetAndCpuMaxAreHonoured() throws {
        var b = FixtureBuilder(nodes: 2, cpusPerNode: 4)
        b.cgroupPath = "/a/b"
        b.cgroupFiles = ["/a/b/cpuset.cpus.effective": "2-7", "/a/cpu.max": "250000 100000",
                         "/a/b/cpu.max": "max 100000", "/cpu.max": "max 100000"]
        let root = try b.write()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let t = try Topology.read(root: root)
        XCTAssertEqual(t.cpuset, Array(2..<8))
        XCTAssertEqual(t.usableCPUs, Array(2..<8))
        XCTAssertEqual(try XCTUnwrap(t.cpuQuota), 2.5, accuracy: 1e-9)
        let p = SchedulerPolicy(topologyRoot: root)
        XCTAssertEqual(p.virtualProcessorCount, 3, "2.5 CPUs of quota, rounded up")
        let layout = try VirtualProcessorLayout(policy: p)
        XCTAssertEqual(layout.slots.map(\.cpu!), [2, 3, 4], "spread over both nodes, inside the cpuset")
        XCTAssertEqual(try VirtualProcessorLayout(policy: SchedulerPolicy(nodes: [0], topologyRoot: root)).selectedCPUs, [2, 3])
        // The tightest cpu.max up the tree wins; the nearest cpuset is used.
        var b2 = b
        b2.cgroupFiles = ["/a/cpuset.cpus.effective": "0-3", "/a/b/cpu.max": "50000 100000", "/a/cpu.max": "300000 100000"]
        let root2 = try b2.write()
        defer { try? FileManager.default.removeItem(atPath: root2) }
        let t2 = try Topology.read(root: root2)
        XCTAssertEqual(t2.usableCPUs, [0, 1, 2, 3])
        XCTAssertEqual(try XCTUnwrap(t2.cpuQuota), 0.5, accuracy: 1e-9)
        XCTAssertEqual(SchedulerPolicy(topologyRoot: root2).virtualProcessorCount, 1)
    }

    // MARK: The small 2-node machine

    func testTwoNodeFixturePlacesVPsOnBothNodes() throws {
        let t = try Topology.read(root: Self.twoNode)
        XCTAssertEqual(t.nodes.map(\.cpus), [[0, 1, 2, 3], [4, 5, 6, 7]])
        XCTAssertEqual(t.groups.map(\.cpus), [Array(0..<8)])
        var p = SchedulerPolicy(topologyRoot: Self.twoNode)
        p.minConcurrency = 4; p.maxConcurrency = 4
        let layout = try VirtualProcessorLayout(policy: p)
        XCTAssertEqual(layout.slots.map(\.cpu!), [0, 1, 4, 5])
        XCTAssertEqual(layout.slots.map(\.node!), [0, 0, 1, 1])
        XCTAssertEqual(layout.stealTiers[0], [[1], [2, 3]])
        XCTAssertEqual(layout.stealTiers[3], [[2], [0, 1]])
    }

    /// A real scheduler on the 2-node fixture: 8 VPs (not pinned, this
    /// machine has 2 CPUs), each with the locality order, running work
    /// that has to be stolen (all spawned from one task).
    func testSchedulerOnTwoNodeFixtureStealsByLocality() throws {
        let s = try Scheduler(policy: SchedulerPolicy(useIORing: false, topologyRoot: Self.twoNode))
        defer { try? s.shutdown() }
        XCTAssertEqual(s.virtualProcessorCount, 8)
        XCTAssertFalse(s.layout.pinned)
        XCTAssertEqual(Set(s.layout.slots.map(\.node!)), [0, 1])
        for i in 0..<8 {
            XCTAssertNil(s.virtualProcessors[i].cpu, "fixture CPUs are never pinned")
            XCTAssertEqual(s.virtualProcessors[i].stealOrder, s.layout.stealOrders[i])
            XCTAssertNotNil(s.virtualProcessors[i].stealOrder)
        }
        XCTAssertTrue(s.virtualProcessors[8...].allSatisfy { $0.stealOrder == nil }, "temporary VPs sweep all")
        let before = s.statistics.steals
        let total = s.run { () -> Int in
            // High half: tasks done; low half: the sum of their indices.
            let acc = Counter(), result = Counter()
            let all = Event()
            for i in 0..<2000 {
                s.scheduleTask {
                    var x = 0
                    for k in 0..<2000 { x &+= k ^ i }
                    if x == -1 { print(x) }
                    let now = acc.add(1 << 32 + i)
                    if now >> 32 == 2000 { result.add(now & 0xFFFF_FFFF); all.set() }
                }
            }
            // This task holds its VP until another VP has run one of the
            // tasks it spawned (which only a steal can do), so a loaded
            // runner whose other VPs start late cannot let this VP run
            // them all itself. Bounded: the assertion below reports it.
            let t0 = csup_monotonic_ns()
            while acc.value == 0 && csup_monotonic_ns() - t0 < 30_000_000_000 { sched_yield() }
            all.wait()
            return result.value
        }
        XCTAssertEqual(total, (0..<2000).reduce(0, +))
        XCTAssertGreaterThan(s.statistics.steals, before, "work spawned on one VP was stolen")
    }

    // MARK: This machine

    func testLiveMachineParsesSanely() throws {
        let t = try Topology.read()
        XCTAssertNil(t.root)
        XCTAssertFalse(t.cpus.isEmpty)
        XCTAssertFalse(t.nodes.isEmpty)
        XCTAssertEqual(t.nodes.flatMap(\.cpus).sorted(), t.cpus.map(\.id), "every CPU in exactly one node")
        XCTAssertEqual(t.groups.flatMap(\.cpus).sorted(), t.cpus.map(\.id), "every CPU in exactly one group")
        XCTAssertTrue(t.groups.allSatisfy { $0.cpus.count <= 64 })
        let affinity = (0..<Int(csup_affinity_count())).map { Int(csup_affinity_cpu_at(Int32($0))) }
        XCTAssertEqual(t.affinity, affinity)
        XCTAssertEqual(t.usableCPUs, affinity, "the kernel already confines the mask to the cpuset")
        XCTAssertEqual(t.cappedByQuota(t.usableCPUs.count), SchedulerPolicy.availableConcurrency)
        // The default scheduler pins one VP per usable CPU (one thread per
        // core first, so the order may differ from the mask's on SMT).
        let layout = try VirtualProcessorLayout(policy: SchedulerPolicy())
        XCTAssertTrue(layout.pinned)
        XCTAssertEqual(layout.slots.count, SchedulerPolicy.availableConcurrency)
        let placed = layout.slots.map(\.cpu!)
        XCTAssertEqual(Set(placed).count, placed.count, "distinct CPUs")
        XCTAssertTrue(Set(placed).isSubset(of: affinity))
        if placed.count == affinity.count { XCTAssertEqual(Set(placed), Set(affinity)) }
        if t.nodes.count == 1 { XCTAssertTrue(layout.stealTiers.isEmpty) }
        let s = try Scheduler(policy: SchedulerPolicy(useIORing: false))
        defer { try? s.shutdown() }
        XCTAssertEqual(s.virtualProcessors[0..<s.virtualProcessorCount].map(\.cpu), layout.slots.map(\.cpu))
        XCTAssertEqual(s.run { 7 }, 7)
    }
}

/// Writes a minimal fixture tree (node cpulists, cpu/online, the affinity
/// in proc/self/status, cgroup files) into a new temporary directory.
/// Per-CPU topology files are left out: the reader's defaults apply.
struct FixtureBuilder {
    var nodes: Int
    var cpusPerNode: Int
    var affinity: String?
    var cgroupPath = "/"
    /// Path under sys/fs/cgroup -> contents.
    var cgroupFiles: [String: String] = [:]

    init(nodes: Int, cpusPerNode: Int, affinity: String? = nil) {
        self.nodes = nodes
        self.cpusPerNode = cpusPerNode
        self.affinity = affinity
    }

    func write() throws -> String {
        let fm = FileManager.default
        let root = fm.temporaryDirectory.appendingPathComponent("ums-topology-\(UUID().uuidString)").path
        func put(_ path: String, _ text: String) throws {
            let full = root + path
            try fm.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try (text + "\n").write(toFile: full, atomically: false, encoding: .utf8)
        }
        let total = nodes * cpusPerNode
        try put("/sys/devices/system/cpu/online", "0-\(total - 1)")
        for n in 0..<nodes {
            try put("/sys/devices/system/node/node\(n)/cpulist", "\(n * cpusPerNode)-\(n * cpusPerNode + cpusPerNode - 1)")
        }
        try put("/proc/self/status", "Name:\tfixture\nCpus_allowed_list:\t\(affinity ?? "0-\(total - 1)")")
        try put("/proc/self/cgroup", "0::\(cgroupPath)")
        for (path, text) in cgroupFiles { try put("/sys/fs/cgroup" + path, text) }
        return root
    }
}
