#if canImport(Glibc)
import Glibc
#endif
import CSupport

extension Topology {
    /// `UMS_SYSFS_ROOT` from the environment: a fixture root that every
    /// default ``SchedulerPolicy`` reads its topology from (nil when unset
    /// or empty).
    public static var rootFromEnvironment: String? {
        guard let v = getenv("UMS_SYSFS_ROOT") else { return nil }
        let s = String(cString: v)
        return s.isEmpty ? nil : s
    }

    /// Reads the topology of the live system (root nil) or of a fixture
    /// tree that mirrors `/sys` and `/proc/self` under `root`.
    /// [GetLogicalProcessorInformationEx]
    /// - Throws: ``ConcRTError/invalidPolicy(_:)`` when a fixture root has
    ///   no `sys/devices/system/cpu`, or a file is malformed.
    public static func read(root: String? = nil) throws(ConcRTError) -> Topology {
        let f = SystemFiles(root: root ?? "")
        let cpuDir = "/sys/devices/system/cpu"
        if root != nil && !f.exists(cpuDir) {
            throw .invalidPolicy("topology root \(root!) has no sys/devices/system/cpu")
        }
        var affinity = try readAffinity(f, live: root == nil)
        var online = try f.cpuList(cpuDir + "/online") ?? []
        if online.isEmpty { online = f.numberedEntries(cpuDir, prefix: "cpu") }
        if online.isEmpty { online = affinity }
        // A mask that cannot be read (never expected) means every CPU.
        if affinity.isEmpty { affinity = online }
        var nodeCPUs: [Int: [Int]] = [:]
        for n in f.numberedEntries("/sys/devices/system/node", prefix: "node") {
            if let list = try f.cpuList("/sys/devices/system/node/node\(n)/cpulist"), !list.isEmpty { nodeCPUs[n] = list }
        }
        var package: [Int: Int] = [:], core: [Int: Int] = [:], cache: [Int: Int] = [:]
        for c in online {
            let dir = "\(cpuDir)/cpu\(c)"
            package[c] = f.int(dir + "/topology/physical_package_id")
            core[c] = f.int(dir + "/topology/core_id")
            // The last level: the highest index that lists its sharers.
            for i in f.numberedEntries(dir + "/cache", prefix: "index").reversed() {
                if let s = try f.cpuList("\(dir)/cache/index\(i)/shared_cpu_list"), let first = s.first {
                    cache[c] = first
                    break
                }
            }
        }
        let (cpuset, quota) = try readCgroup(f)
        return Topology(root: root, cpus: online, nodes: nodeCPUs, package: package, core: core, cache: cache,
                        affinity: affinity, cpuset: cpuset, cpuQuota: quota)
    }

    /// The live affinity mask (sched_getaffinity, run-time sized mask), or
    /// a fixture's `proc/self/status` `Cpus_allowed_list` (nil: every CPU
    /// online, read by the caller as an empty list meaning "all").
    private static func readAffinity(_ f: SystemFiles, live: Bool) throws(ConcRTError) -> [Int] {
        if live {
            var ids = [Int32](repeating: 0, count: 256)
            while true {
                let cap = Int32(ids.count)
                let n = Int(ids.withUnsafeMutableBufferPointer { csup_affinity_cpus($0.baseAddress, cap) })
                if n < 0 { return [] }
                if n <= ids.count { return ids[0..<n].map(Int.init) }
                ids = [Int32](repeating: 0, count: n)
            }
        }
        guard let status = f.text("/proc/self/status") else {
            return try f.cpuList("/sys/devices/system/cpu/online") ?? []
        }
        for line in status.split(separator: "\n") where line.hasPrefix("Cpus_allowed_list:") {
            do { return try CPUList.parse(String(line.dropFirst("Cpus_allowed_list:".count))) } catch {
                throw .invalidPolicy("\(f.root)/proc/self/status: \(error.reason)")
            }
        }
        return try f.cpuList("/sys/devices/system/cpu/online") ?? []
    }

    /// cgroup v2: the nearest `cpuset.cpus.effective` and the tightest
    /// `cpu.max` from the process's cgroup up to the root.
    private static func readCgroup(_ f: SystemFiles) throws(ConcRTError) -> ([Int]?, Double?) {
        var path = ""
        if let text = f.text("/proc/self/cgroup") {
            for line in text.split(separator: "\n") where line.hasPrefix("0::") {
                path = String(line.dropFirst(3)).trimmingBlanks()
            }
        }
        if path == "/" { path = "" }
        var cpuset: [Int]?
        var quota: Double?
        while true {
            let dir = "/sys/fs/cgroup" + path
            if cpuset == nil, let s = try f.cpuList(dir + "/cpuset.cpus.effective"), !s.isEmpty { cpuset = s }
            if let line = f.line(dir + "/cpu.max") {
                let parts = line.split(separator: " ")
                if parts.count == 2, parts[0] != "max" {
                    guard let q = Double(parts[0]), let p = Double(parts[1]), q > 0, p > 0 else {
                        throw .invalidPolicy("\(f.root)\(dir)/cpu.max: expected 'QUOTA PERIOD' or 'max PERIOD' (got '\(line)')")
                    }
                    quota = min(quota ?? .infinity, q / p)
                }
            }
            if path.isEmpty { break }
            if let slash = path.lastIndex(of: "/") { path = String(path[..<slash]) } else { path = "" }
        }
        return (cpuset, quota)
    }
}
