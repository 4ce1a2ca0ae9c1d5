extension Topology {
    /// Most CPUs in a processor group (a GROUP_AFFINITY mask is 64 bits).
    public static let maximumGroupSize = 64

    /// Forms processor groups as Windows does at boot: nodes in id order
    /// fill a group while they fit; a node that does not fit starts the
    /// next group, so a node is split only when it alone has more than 64
    /// CPUs (then into 64-CPU pieces). The seed machine (16 nodes of 16)
    /// gives 4 groups of 4 nodes each.
    /// - Returns: each group's CPU ids, in group number order.
    public static func formGroups(_ nodes: [Node]) -> [[Int]] {
        var groups: [[Int]] = []
        var current: [Int] = []
        for node in nodes {
            var rest = node.cpus[...]
            if !current.isEmpty && current.count + rest.count > maximumGroupSize {
                groups.append(current)
                current = []
            }
            while current.count + rest.count > maximumGroupSize {
                let take = maximumGroupSize - current.count
                current.append(contentsOf: rest.prefix(take))
                rest = rest.dropFirst(take)
                groups.append(current)
                current = []
            }
            current.append(contentsOf: rest)
        }
        if !current.isEmpty { groups.append(current) }
        return groups
    }
}
