// `ums-bench topology`: the topology ConcRT reads (live or a fixture) and the
// layout a scheduler would get on it: processor groups, nodes, each VP's CPU,
// node and group, each VP's steal order by tier, and the nodes schedule
// groups are homed on. Prints; measures nothing.
import ConcRT

enum TopologyCommand {
    /// Parses "0,2-3" into a set (nil for nil).
    static func parseSet(_ text: String?, flag: String) throws -> Set<Int>? {
        guard let text else { return nil }
        do { return Set(try CPUList.parse(text)) } catch {
            throw ValidationErrorText("\(flag): \(error)")
        }
    }

    static func run(root: String?, nodes: Set<Int>?, groups: Set<Int>?, vps: Int?) throws {
        var policy = SchedulerPolicy(minConcurrency: vps, maxConcurrency: vps, nodes: nodes, processorGroups: groups,
                                     topologyRoot: root ?? Topology.rootFromEnvironment)
        if vps == nil {
            // Re-derive the defaults from the selection (the initializer did).
            policy = SchedulerPolicy(nodes: nodes, processorGroups: groups, topologyRoot: root ?? Topology.rootFromEnvironment)
        }
        try policy.validate()
        let layout = try VirtualProcessorLayout(policy: policy)
        let t = layout.topology
        let quota = t.cpuQuota.map { String($0) } ?? "none"
        print("topology root=\(t.root ?? "live") cpus=\(t.cpus.count) nodes=\(t.nodes.count) groups=\(t.groups.count) "
              + "usable=\(CPUList.format(t.usableCPUs)) affinity=\(CPUList.format(t.affinity)) "
              + "cpuset=\(t.cpuset.map(CPUList.format) ?? "none") quota=\(quota)")
        for g in t.groups {
            print("group \(g.id): cpus \(CPUList.format(g.cpus)) (\(g.cpus.count)) nodes \(CPUList.format(g.nodes)) "
                  + "mask 0x\(String(g.mask, radix: 16))")
        }
        for n in t.nodes {
            let gs = Set(n.cpus.compactMap { t.cpu($0)?.group }).sorted()
            print("node \(n.id): cpus \(CPUList.format(n.cpus)) (\(n.cpus.count)) groups \(CPUList.format(gs))")
        }
        print("selected \(CPUList.format(layout.selectedCPUs)) (\(layout.selectedCPUs.count)); "
              + "\(layout.slots.count) VPs, \(layout.pinned ? "pinned" : "not pinned")"
              + (t.root != nil ? " (fixture)" : ""))
        for s in layout.slots {
            let place = s.cpu.map { "cpu \($0) node \(s.node!) group \(s.group!)" } ?? "not placed"
            let tiers = layout.stealTiers.isEmpty ? "all others, one sweep"
                : zip(["node", "group", "any"], tierLabels(layout.stealTiers[s.virtualProcessor], s, layout))
                    .map { _, t in t }.joined(separator: " | ")
            print("vp \(s.virtualProcessor): \(place); steals: \(tiers)")
        }
        // Schedule groups' home nodes (ScheduleGroups/GroupHome.swift).
        let homes = layout.scheduleGroupHomeNodes(for: policy)
        print(homes.isEmpty
              ? "schedule groups: no home node (\(policy.schedulingProtocol), VPs on \(Set(layout.slots.compactMap(\.node)).count) node(s))"
              : "schedule groups: homed on nodes \(CPUList.format(homes)): the creating VP's node, round-robin from outside, "
                + "or createScheduleGroup(node:)")
    }

    /// Each tier as "own-node VPs 1-3" etc.
    static func tierLabels(_ tiers: [[Int]], _ me: VirtualProcessorLayout.Slot, _ layout: VirtualProcessorLayout) -> [String] {
        tiers.map { tier in
            let first = layout.slots[tier[0]]
            let kind = first.node == me.node ? "own node" : first.group == me.group ? "own group" : "other groups"
            return "\(kind) VPs \(CPUList.format(tier))"
        }
    }
}

struct ValidationErrorText: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
