/// The kernel's CPU-list text ("0-3,8,10-11"), as in sysfs `cpulist`
/// files, `cpuset.cpus.effective` and `/proc/self/status`'s
/// `Cpus_allowed_list`. [the Windows counterpart is a GROUP_AFFINITY mask
/// per processor group; a list has no 64-CPU limit]
public enum CPUList {
    /// Largest CPU id accepted (the kernel's NR_CPUS is at most 8,192;
    /// this leaves room and still bounds a hostile file).
    public static let maximumCPU = 1 << 18

    /// Parses a CPU list into ascending, distinct CPU ids. An empty (or
    /// all-blank) list is valid and gives `[]` (an empty cpuset).
    /// - Throws: ``ConcRTError/invalidPolicy(_:)`` naming the bad item.
    public static func parse(_ text: String) throws(ConcRTError) -> [Int] {
        var ids: [Int] = []
        let trimmed = text.split(whereSeparator: { $0 == "\n" || $0 == " " || $0 == "\t" }).joined()
        if trimmed.isEmpty { return [] }
        for item in trimmed.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = item.split(separator: "-", omittingEmptySubsequences: false)
            guard bounds.count == 1 || bounds.count == 2,
                  let lo = Int(bounds[0]), let hi = Int(bounds[bounds.count - 1]),
                  lo >= 0, lo <= hi, hi <= maximumCPU else {
                throw .invalidPolicy("bad CPU list item '\(item)' in '\(trimmed)' (expected N or N-M, 0 <= N <= M <= \(maximumCPU))")
            }
            ids.append(contentsOf: lo...hi)
        }
        ids.sort()
        var out: [Int] = []
        out.reserveCapacity(ids.count)
        for id in ids where out.last != id { out.append(id) }
        return out
    }

    /// Formats ascending CPU ids as a list with ranges ("0-3,8").
    public static func format(_ cpus: [Int]) -> String {
        var parts: [String] = []
        var i = 0
        let sorted = cpus.sorted()
        while i < sorted.count {
            var j = i
            while j + 1 < sorted.count, sorted[j + 1] == sorted[j] + 1 { j += 1 }
            parts.append(i == j ? "\(sorted[i])" : "\(sorted[i])-\(sorted[j])")
            i = j + 1
        }
        return parts.joined(separator: ",")
    }
}
