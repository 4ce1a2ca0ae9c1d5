#if canImport(Glibc)
import Glibc
#endif

/// Reads the small text files of sysfs, procfs and cgroupfs under a root
/// ("" for the live system, or a fixture directory that mirrors their
/// paths: `ROOT/sys/devices/system/...`, `ROOT/sys/fs/cgroup/...`,
/// `ROOT/proc/self/...`). No Foundation: plain open/read and readdir.
struct SystemFiles {
    /// Prefix of every path ("" for the live system).
    let root: String

    /// The file's text, or nil when it cannot be opened or read. At most
    /// 1 MiB is read (these files are a few bytes to a few KiB).
    func text(_ path: String) -> String? {
        let fd = open(root + path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count < 1 << 20 {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; return nil }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The file's first line, trimmed, or nil.
    func line(_ path: String) -> String? {
        guard let t = text(path) else { return nil }
        return String(t.split(separator: "\n", omittingEmptySubsequences: false).first ?? "")
            .trimmingBlanks()
    }

    /// The file as an integer, or nil.
    func int(_ path: String) -> Int? { line(path).flatMap { Int($0) } }

    /// The file as a CPU list, or nil when missing; throws when malformed.
    func cpuList(_ path: String) throws(ConcRTError) -> [Int]? {
        guard let t = text(path) else { return nil }
        do { return try CPUList.parse(t) } catch { throw .invalidPolicy("\(root + path): \(error.reason)") }
    }

    /// Entry names of a directory that start with `prefix` followed by a
    /// decimal number, as those numbers, ascending ("node3" -> 3).
    func numberedEntries(_ path: String, prefix: String) -> [Int] {
        guard let dir = opendir(root + path) else { return [] }
        defer { closedir(dir) }
        var out: [Int] = []
        while let e = readdir(dir) {
            let name = withUnsafePointer(to: e.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
            }
            if name.hasPrefix(prefix), let n = Int(name.dropFirst(prefix.count)), n >= 0 { out.append(n) }
        }
        return out.sorted()
    }

    /// True when the path exists.
    func exists(_ path: String) -> Bool { access(root + path, F_OK) == 0 }
}

extension String {
    func trimmingBlanks() -> String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" || c == "\n" || c == "\r" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" || c == "\n" || c == "\r" { s.removeLast() }
        return String(s)
    }
}

extension ConcRTError {
    /// The message of an ``invalidPolicy(_:)`` (or the description).
    var reason: String {
        if case .invalidPolicy(let s) = self { return s }
        return description
    }
}
