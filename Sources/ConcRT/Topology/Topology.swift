import CSupport

/// The machine as the scheduler sees it: CPUs with their NUMA node,
/// package, core and last-level cache; the processor groups they form;
/// the CPUs this process may use; and the cgroup CPU quota.
///
/// | Windows                                   | here                         |
/// |-------------------------------------------|------------------------------|
/// | GetLogicalProcessorInformationEx          | ``read(root:)``              |
/// | RelationNumaNode (NUMA node)              | ``nodes``, ``CPU/node``      |
/// | RelationGroup, GROUP_AFFINITY             | ``groups``, ``ProcessorGroup/mask`` |
/// | PROCESSOR_NUMBER (Group, Number)          | ``CPU/group``, ``CPU/numberInGroup`` |
/// | RelationProcessorCore / RelationProcessorPackage | ``CPU/core``, ``CPU/package`` |
/// | RelationCache (last level)                | ``CPU/cache``                |
/// | GetProcessAffinityMask / job CPU rate     | ``affinity``, ``cpuset``, ``cpuQuota`` |
///
/// Read from Linux: `/sys/devices/system/cpu/online`,
/// `/sys/devices/system/node/node*/cpulist`,
/// `/sys/devices/system/cpu/cpu*/topology/{physical_package_id,core_id}`,
/// the highest `cpu*/cache/index*/shared_cpu_list`; the affinity mask
/// (sched_getaffinity with a run-time sized mask, so CPUs past 1,023 are
/// seen); cgroup v2 `cpuset.cpus.effective` and `cpu.max` of the
/// process's cgroup (`/proc/self/cgroup`) and its ancestors.
///
/// With a fixture root, every path is read under it, and the affinity
/// comes from `ROOT/proc/self/status` (`Cpus_allowed_list:`), so tests
/// can describe machines this one is not (see ``SchedulerPolicy/topologyRoot``).
public struct Topology: Sendable, Equatable {
    /// One logical processor.
    public struct CPU: Sendable, Equatable {
        /// Linux CPU id.
        public let id: Int
        /// NUMA node.
        public let node: Int
        /// `physical_package_id` (the node when sysfs does not say).
        public let package: Int
        /// `core_id`, unique within the package (the CPU id when unknown).
        public let core: Int
        /// Last-level cache: the lowest CPU id sharing it (the node's
        /// first CPU when sysfs does not say).
        public let cache: Int
        /// 0 for the lowest-numbered thread of its core, 1 for the next
        /// (simultaneous multithreading siblings), ...
        public let threadInCore: Int
        /// Processor group (PROCESSOR_NUMBER.Group).
        public let group: Int
        /// Number within the group, 0..<64 (PROCESSOR_NUMBER.Number).
        public let numberInGroup: Int
    }

    /// A NUMA node and its online CPUs (memory-only nodes are left out).
    public struct Node: Sendable, Equatable {
        public let id: Int
        public let cpus: [Int]
    }

    /// A processor group: at most 64 CPUs, whole nodes where it can.
    public struct ProcessorGroup: Sendable, Equatable {
        public let id: Int
        /// CPU ids, in group number order (CPU `cpus[k]` is number k).
        public let cpus: [Int]
        /// Nodes with CPUs in this group.
        public let nodes: [Int]
        /// GROUP_AFFINITY.Mask of the group's CPUs (bit k: number k).
        public var mask: UInt64 { cpus.count == 64 ? ~0 : (1 << UInt64(cpus.count)) - 1 }
    }

    /// The fixture root read from, or nil for the live system.
    public let root: String?
    /// Online CPUs, ascending by id.
    public let cpus: [CPU]
    /// NUMA nodes with CPUs, ascending by id.
    public let nodes: [Node]
    /// Processor groups, ascending by id (see ``formGroups(_:)``).
    public let groups: [ProcessorGroup]
    /// The process's affinity mask (CPU ids).
    public let affinity: [Int]
    /// cgroup v2 `cpuset.cpus.effective` of the process's cgroup (nearest
    /// ancestor that has one), or nil without cgroup v2 cpusets.
    public let cpuset: [Int]?
    /// cgroup v2 `cpu.max` as CPUs (quota / period), the tightest on the
    /// way up to the root, or nil when unlimited.
    public let cpuQuota: Double?
    /// CPUs the process may run on: online ∩ affinity ∩ cpuset, ascending.
    public let usableCPUs: [Int]

    private let indexByID: [Int: Int]

    /// The CPU with this id, or nil when it is not online.
    public func cpu(_ id: Int) -> CPU? { indexByID[id].map { cpus[$0] } }

    /// `count` capped by the cgroup quota, rounded up (at least 1): the
    /// CPUs worth running VPs on when `count` CPUs are usable.
    public func cappedByQuota(_ count: Int) -> Int {
        guard let q = cpuQuota else { return count }
        return max(1, min(count, Int((q - 1e-9).rounded(.up))))
    }

    /// CPUs the scheduler may use for this selection, ascending by id:
    /// usable CPUs in the selected nodes and groups (nil: all).
    /// - Throws: ``ConcRTError/invalidPolicy(_:)`` for an empty selection,
    ///   an unknown node or group, or a selection with no usable CPU.
    public func selectedCPUs(nodes: Set<Int>?, processorGroups: Set<Int>?) throws(ConcRTError) -> [Int] {
        let where_ = root.map { " on the topology at \($0)" } ?? ""
        if let nodes {
            if nodes.isEmpty { throw .invalidPolicy("nodes is empty: select at least one NUMA node, or nil for all") }
            let known = Set(self.nodes.map(\.id))
            if let bad = nodes.sorted().first(where: { !known.contains($0) }) {
                throw .invalidPolicy("unknown NUMA node \(bad)\(where_) (nodes with CPUs: \(CPUList.format(self.nodes.map(\.id))))")
            }
        }
        if let processorGroups {
            if processorGroups.isEmpty { throw .invalidPolicy("processorGroups is empty: select at least one group, or nil for all") }
            if let bad = processorGroups.sorted().first(where: { $0 < 0 || $0 >= groups.count }) {
                throw .invalidPolicy("unknown processor group \(bad)\(where_) (groups: 0..<\(groups.count))")
            }
        }
        let picked = usableCPUs.filter { id in
            guard let c = cpu(id) else { return false }
            return (nodes?.contains(c.node) ?? true) && (processorGroups?.contains(c.group) ?? true)
        }
        if picked.isEmpty {
            let n = nodes.map { " nodes \($0.sorted())" } ?? ""
            let g = processorGroups.map { " groups \($0.sorted())" } ?? ""
            throw .invalidPolicy("the selection\(n)\(g) has no CPU this process may use\(where_) (usable: \(CPUList.format(usableCPUs)))")
        }
        return picked
    }

    /// Builds a topology from parts (the reader's last step; also for
    /// tests and simulations). CPUs missing from every node go to the
    /// first node (node 0 when there is none).
    public init(root: String?, cpus online: [Int], nodes nodeCPUs: [Int: [Int]],
                package: [Int: Int] = [:], core: [Int: Int] = [:], cache: [Int: Int] = [:],
                affinity: [Int], cpuset: [Int]?, cpuQuota: Double?) {
        let onlineSet = Set(online)
        var byNode: [Int: [Int]] = [:]
        var nodeOf: [Int: Int] = [:]
        for (n, list) in nodeCPUs {
            for c in list where onlineSet.contains(c) && nodeOf[c] == nil {
                nodeOf[c] = n
                byNode[n, default: []].append(c)
            }
        }
        let fallbackNode = byNode.keys.min() ?? 0
        for c in online.sorted() where nodeOf[c] == nil {
            nodeOf[c] = fallbackNode
            byNode[fallbackNode, default: []].append(c)
        }
        let nodes = byNode.keys.sorted().map { Node(id: $0, cpus: byNode[$0]!.sorted()) }
        let groupCPUs = Self.formGroups(nodes)
        var groupOf: [Int: (Int, Int)] = [:]
        for (g, list) in groupCPUs.enumerated() { for (k, c) in list.enumerated() { groupOf[c] = (g, k) } }
        // Thread rank within a core: siblings share (package, core).
        var siblings: [[Int]: [Int]] = [:]
        for c in online { siblings[[package[c] ?? nodeOf[c]!, core[c] ?? c], default: []].append(c) }
        var list: [CPU] = []
        for c in Set(online).sorted() {
            let n = nodeOf[c]!
            let p = package[c] ?? n
            let k = core[c] ?? c
            let rank = siblings[[p, k]]!.sorted().firstIndex(of: c)!
            list.append(CPU(id: c, node: n, package: p, core: k, cache: cache[c] ?? byNode[n]!.min()!,
                            threadInCore: rank, group: groupOf[c]!.0, numberInGroup: groupOf[c]!.1))
        }
        self.root = root
        self.cpus = list
        self.nodes = nodes
        self.groups = groupCPUs.enumerated().map { g, cs in
            var ns: [Int] = []
            for c in cs where ns.last != nodeOf[c]! { ns.append(nodeOf[c]!) }
            return ProcessorGroup(id: g, cpus: cs, nodes: ns)
        }
        self.affinity = affinity.sorted()
        self.cpuset = cpuset?.sorted()
        self.cpuQuota = cpuQuota
        let cs = cpuset.map(Set.init)
        let aff = Set(affinity)
        self.usableCPUs = list.map(\.id).filter { aff.contains($0) && (cs?.contains($0) ?? true) }
        var index: [Int: Int] = [:]
        for (i, c) in list.enumerated() { index[c.id] = i }
        self.indexByID = index
    }
}
