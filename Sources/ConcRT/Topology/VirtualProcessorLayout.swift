/// Where a scheduler's virtual processors run, and whom each steals from
/// first. Computed once, from the policy and the topology, before any
/// primary starts; then read only.
///
/// Placement (``SchedulerPolicy/targetOversubscriptionFactor`` 1 and no
/// more VPs than selected CPUs): the VPs are spread over the selected
/// nodes round-robin, alternating processor groups (one thread per core
/// before a core's second thread),
/// then numbered node by node, so VPs 0..<k are on the first node, and so
/// on. They are pinned there on the live system; with a fixture root the
/// placement is computed and exposed but not pinned (a fixture's CPUs are
/// not this machine's). Otherwise (oversubscribed) the VPs are not placed.
///
/// Steal order (placed VPs on two or more nodes): VPs on the thief's own
/// node, then the rest of its processor group, then anywhere; a random
/// start within each tier. On one node there is no order to keep: the
/// VPs sweep all others from a random start, as without a topology.
/// [ConcRT: the resource manager's node-aware scheduling-node placement;
/// Windows: NUMA node and processor group affinity]
public struct VirtualProcessorLayout: Sendable, Equatable {
    /// One regular virtual processor's place.
    public struct Slot: Sendable, Equatable {
        public let virtualProcessor: Int
        /// CPU id (nil: not placed).
        public let cpu: Int?
        /// NUMA node of ``cpu``.
        public let node: Int?
        /// Processor group of ``cpu``.
        public let group: Int?
    }

    public let topology: Topology
    /// The selected CPUs (usable, in the selected nodes and groups).
    public let selectedCPUs: [Int]
    /// One per regular VP, by index.
    public let slots: [Slot]
    /// True when the primaries are pinned to their slots' CPUs.
    public let pinned: Bool
    /// Per regular VP: victims by tier (own node, own group, anywhere;
    /// empty tiers left out). Empty when VPs steal in one sweep.
    public let stealTiers: [[[Int]]]
    /// The same, flattened for the steal loop (nil: one sweep).
    let stealOrders: [StealOrder?]

    /// The layout a scheduler with this policy gets: reads the policy's
    /// topology (the live system when ``SchedulerPolicy/topologyRoot`` is
    /// nil) and places ``SchedulerPolicy/virtualProcessorCount`` VPs.
    /// - Throws: ``ConcRTError/invalidPolicy(_:)`` for an unreadable
    ///   fixture or a bad selection.
    public init(policy: SchedulerPolicy) throws(ConcRTError) {
        let topology = try policy.topology()
        try self.init(policy: policy, topology: topology,
                      virtualProcessorCount: policy.virtualProcessorCount(on: topology))
    }

    /// Places `n` VPs (the policy's ``SchedulerPolicy/virtualProcessorCount``)
    /// on the policy's topology.
    init(policy: SchedulerPolicy, virtualProcessorCount n: Int) throws(ConcRTError) {
        try self.init(policy: policy, topology: try policy.topology(), virtualProcessorCount: n)
    }

    /// Places `n` VPs on `topology` under `policy`'s selection.
    public init(policy: SchedulerPolicy, topology: Topology, virtualProcessorCount n: Int) throws(ConcRTError) {
        self.topology = topology
        let selected: [Int]
        if SchedulerPolicy.selectsTopology(policy.nodes, policy.processorGroups, policy.topologyRoot) {
            selected = try topology.selectedCPUs(nodes: policy.nodes, processorGroups: policy.processorGroups)
        } else {
            // This machine, no selection: nothing to refuse; a topology
            // with no usable CPU (never expected) just places nothing.
            selected = (try? topology.selectedCPUs(nodes: nil, processorGroups: nil)) ?? []
        }
        selectedCPUs = selected
        let chosen = policy.targetOversubscriptionFactor == 1 && n <= selected.count
            ? Self.spread(n, over: selected, topology) : nil
        pinned = chosen != nil && topology.root == nil
        let slots = (0..<n).map { i in
            guard let id = chosen?[i], let c = topology.cpu(id) else {
                return Slot(virtualProcessor: i, cpu: nil, node: nil, group: nil)
            }
            return Slot(virtualProcessor: i, cpu: id, node: c.node, group: c.group)
        }
        self.slots = slots
        let nodeCount = Set(slots.compactMap(\.node)).count
        if chosen != nil && nodeCount > 1 {
            let tiers = slots.map { me in
                let others = slots.filter { $0.virtualProcessor != me.virtualProcessor }
                return [others.filter { $0.node == me.node },
                        others.filter { $0.node != me.node && $0.group == me.group },
                        others.filter { $0.group != me.group }]
                    .map { $0.map(\.virtualProcessor) }.filter { !$0.isEmpty }
            }
            stealTiers = tiers
            stealOrders = tiers.map { StealOrder(tiers: $0) }
        } else {
            stealTiers = []
            stealOrders = Array(repeating: nil, count: n)
        }
    }

    /// Picks `n` of `selected`: round-robin over their nodes, visiting
    /// the nodes so that groups alternate (each group's first node, then
    /// each group's second, ...), each node's CPUs taken one thread per
    /// core first; returned node by node, ascending node id.
    static func spread(_ n: Int, over selected: [Int], _ t: Topology) -> [Int] {
        var byNode: [Int: [Topology.CPU]] = [:]
        for id in selected { if let c = t.cpu(id) { byNode[c.node, default: []].append(c) } }
        var rankInGroup: [Int: Int] = [:]   // node -> its position among its group's nodes
        var seen: [Int: Int] = [:]          // group -> nodes seen so far
        for node in byNode.keys.sorted() {
            let g = byNode[node]![0].group
            rankInGroup[node] = seen[g, default: 0]
            seen[g, default: 0] += 1
        }
        let visit = byNode.keys.sorted { a, b in
            (rankInGroup[a]!, byNode[a]![0].group, a) < (rankInGroup[b]!, byNode[b]![0].group, b)
        }
        var queues = visit.map { k in byNode[k]!.sorted { ($0.threadInCore, $0.id) < ($1.threadInCore, $1.id) }[...] }
        var picked: [Int: [Int]] = [:]
        var taken = 0
        while taken < n {
            for i in queues.indices where taken < n {
                if let c = queues[i].popFirst() { picked[visit[i], default: []].append(c.id); taken += 1 }
            }
        }
        return picked.keys.sorted().flatMap { picked[$0]! }
    }
}

/// A VP's steal victims, tier after tier, in one array (the steal loop
/// reads it with no allocation). Immutable once built.
struct StealOrder: Sendable, Equatable {
    /// Victim VP indices, tier by tier.
    let victims: [Int]
    /// End offset in ``victims`` of each tier.
    let tierEnds: [Int]

    init(tiers: [[Int]]) {
        victims = tiers.flatMap { $0 }
        var ends: [Int] = []
        var end = 0
        for t in tiers { end += t.count; ends.append(end) }
        tierEnds = ends
    }
}
