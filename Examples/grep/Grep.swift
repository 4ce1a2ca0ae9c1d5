// grep: many tasks doing blocking file I/O, and CPUs that stay busy.
//
// Run `grep --help` for the arguments and options.
//
// The directory tree is listed first (readdir). Then every file gets
// its own task in one TaskGroup, and each task reads its file with plain
// blocking calls: Blocking.open, Blocking.read into a fixed-size buffer,
// Blocking.close. A call that has to wait in the kernel moves only its own
// context to a kernel thread; the virtual processor goes on with the next
// file's task meanwhile, so no CPU sits idle behind a disk read. The
// statistics printed at the end show it: the number of kernel blocks, and
// how few times a virtual processor found nothing to do.
//
// Lines are matched whole: the buffer is scanned for newlines, and an
// unfinished last line is moved to the front of the buffer before the
// next read, so a line (and a match) that spans two reads is still seen
// once. A line longer than the buffer is searched piece by piece, keeping
// the last PATTERN-length-minus-one bytes between pieces.
//
// Matches print as `path:line:text`; files with a NUL byte in their first
// block count as binary and print as `path: binary file matches`. The last
// line is the summary: `matches: M files: F bytes: B time: T ms` (M counts
// matching lines, binary files included, like `grep -rFa PATTERN DIR | wc -l`).
// The exit status is 0 when every listed file was searched.
//
// On a warm page cache reads hardly ever wait (they are tried with
// RWF_NOWAIT first), but open and close always go through the kernel
// thread, so each file costs two hand-offs; compare with --serial to see
// what they cost against what they save on a cold cache.
import ConcRT
import Foundation
import PPL
import Synchronization
import UMS

/// What to search for, where, and how.
struct Options {
    var pattern: [UInt8] = []
    var directory = ""
    var maxPrint = 20
    var maxFiles = Int.max
    var bufferSize = 65536
    var serial = false
}

/// Prints `grep: MESSAGE` on stderr and exits with status 2.
func fail(_ message: String) -> Never {
    FileHandle.standardError.write("grep: \(message)\n".data(using: .utf8)!)
    exit(2)
}

// MARK: Listing

/// Regular files under `dir`, depth first. Symbolic links are neither
/// followed nor searched, so the walk cannot loop. (readdir directly:
/// FileManager's enumerator does the same job about 30 times slower on
/// Linux, which would dwarf the search itself on a warm cache.) This runs
/// on the main thread before the search starts.
func listFiles(_ dir: String, limit: Int) -> [String] {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
        fail("\(dir) is not a directory")
    }
    var files: [String] = []
    var pending = [dir.count > 1 && dir.hasSuffix("/") ? String(dir.dropLast()) : dir]
    // Bounded: every directory is visited once (no links are followed).
    while let d = pending.popLast(), files.count < limit {
        guard let handle = opendir(d) else {
            FileHandle.standardError.write("grep: \(d): cannot open directory\n".data(using: .utf8)!)
            continue
        }
        var subdirectories: [String] = []
        while let entry = readdir(handle), files.count < limit {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            let path = d + "/" + name
            var type = Int(entry.pointee.d_type)
            if type == Int(DT_UNKNOWN) {
                // Some file systems leave the type out: ask lstat.
                var st = stat()
                guard lstat(path, &st) == 0 else { continue }
                type = (st.st_mode & S_IFMT) == S_IFDIR ? Int(DT_DIR) : (st.st_mode & S_IFMT) == S_IFREG ? Int(DT_REG) : 0
            }
            if type == Int(DT_DIR) { subdirectories.append(path) } else if type == Int(DT_REG) { files.append(path) }
        }
        closedir(handle)
        // Reversed so that popLast visits them in directory order.
        pending.append(contentsOf: subdirectories.reversed())
    }
    return files
}

// MARK: Matching

/// True when `pattern` occurs in the `count` bytes at `p`: memchr finds
/// candidates for the first byte, memcmp checks the rest.
func contains(_ p: UnsafeRawPointer, _ count: Int, _ pattern: UnsafeRawBufferPointer) -> Bool {
    let m = pattern.count
    let first = Int32(pattern[0])
    var i = 0
    while count - i >= m {
        guard let hit = memchr(p + i, first, count - i - m + 1) else { return false }
        let at = p.distance(to: UnsafeRawPointer(hit))
        if memcmp(p + at, pattern.baseAddress!, m) == 0 { return true }
        i = at + 1
    }
    return false
}

/// Prints matching lines, at most `limit` of them in all. The lock is held
/// only while formatting and writing one line; no task blocks while holding
/// it (the write to stdout is a plain write on the virtual processor).
final class Printer: Sendable {
    private let remaining: MigrationSafeMutex<Int>
    init(limit: Int) { remaining = MigrationSafeMutex(limit) }

    func line(_ path: String, _ number: Int, _ bytes: UnsafeRawBufferPointer) {
        remaining.withLock { left in
            guard left > 0 else { return }
            left -= 1
            // Show at most 200 bytes, control characters as '.'.
            let shown = bytes.prefix(200).map { $0 < 0x20 && $0 != 0x09 ? UInt8(ascii: ".") : $0 }
            print("\(path):\(number):\(String(decoding: shown, as: UTF8.self))")
        }
    }

    func binary(_ path: String) {
        remaining.withLock { left in
            guard left > 0 else { return }
            left -= 1
            print("\(path): binary file matches")
        }
    }
}

/// Totals of one file, and (summed) of the whole search.
struct Totals: Sendable {
    var matches = 0, files = 0, bytes = 0, binaryFiles = 0, errors = 0
    static func + (a: Totals, b: Totals) -> Totals {
        Totals(matches: a.matches + b.matches, files: a.files + b.files, bytes: a.bytes + b.bytes,
               binaryFiles: a.binaryFiles + b.binaryFiles, errors: a.errors + b.errors)
    }
}

/// Searches one file with blocking reads into a fixed buffer.
func searchFile(_ path: String, pattern: UnsafeRawBufferPointer, bufferSize: Int,
                printer: Printer) throws(BlockingError) -> Totals {
    var t = Totals(files: 1)
    let fd = try Blocking.open(path, flags: O_RDONLY)
    defer { try? Blocking.close(fd) }
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 16)
    defer { buffer.deallocate() }
    let base = buffer.baseAddress!
    let m = pattern.count

    var keep = 0                  // bytes of an unfinished line at the front
    var lineNumber = 0            // lines finished so far
    var longLineMatched = false   // the unfinished (over-long) line already matched
    var binary: Bool?             // decided on the first block
    var reportedBinary = false

    func report(_ start: Int, _ end: Int, line: Int) {
        t.matches += 1
        if binary == true {
            if !reportedBinary { reportedBinary = true; printer.binary(path) }
        } else {
            printer.line(path, line, UnsafeRawBufferPointer(start: base + start, count: end - start))
        }
    }

    // Bounded: each pass reads at least one byte or stops at end of file.
    while true {
        let n = try Blocking.read(fd, into: UnsafeMutableRawBufferPointer(rebasing: buffer[keep...]))
        t.bytes += n
        if binary == nil && n > 0 {
            binary = memchr(base + keep, 0, n) != nil
            if binary == true { t.binaryFiles = 1 }
        }
        let end = keep + n
        var start = 0
        // Every complete line in the buffer.
        while start < end, let nl = memchr(base + start, 0x0A, end - start) {
            let lineEnd = UnsafeRawPointer(base).distance(to: UnsafeRawPointer(nl))
            lineNumber += 1
            if !longLineMatched && contains(base + start, lineEnd - start, pattern) {
                report(start, lineEnd, line: lineNumber)
            }
            longLineMatched = false
            start = lineEnd + 1
        }
        if n == 0 {
            // End of file: a last line without a newline.
            if start < end {
                lineNumber += 1
                if !longLineMatched && contains(base + start, end - start, pattern) {
                    report(start, end, line: lineNumber)
                }
            }
            break
        }
        if start == 0 && end == bufferSize {
            // One line fills the whole buffer: search this piece, then keep
            // only the last m-1 bytes so a match across the cut is found.
            if !longLineMatched && contains(base, end, pattern) {
                report(0, end, line: lineNumber + 1)
                longLineMatched = true
            }
            let tail = min(m - 1, end)
            memmove(base, base + end - tail, tail)
            keep = tail
        } else {
            // Move the unfinished line to the front.
            keep = end - start
            if keep > 0 && start > 0 { memmove(base, base + start, keep) }
        }
    }
    return t
}

/// A duration in milliseconds, one decimal.
func milliseconds(_ d: Duration) -> String {
    String(format: "%.1f", Double(d.components.seconds) * 1e3 + Double(d.components.attoseconds) / 1e15)
}
