// grep's command line: arguments, their checks, and the search: one task
// per file in one TaskGroup, each reading its file with blocking calls.
import ArgumentParser
import ConcRT
import Foundation
import PPL
import Synchronization
import UMS

@main
struct GrepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grep",
        abstract: "Fixed-string search of a directory tree, one task per file, with blocking reads.",
        discussion: """
            Lists DIR recursively (symbolic links are not followed), then gives every file \
            its own task in one TaskGroup; each task reads its file with Blocking.open, \
            Blocking.read into a fixed buffer, and Blocking.close. A read that waits in the \
            kernel parks only its own context; the virtual processor goes on with other files.

            Matches print as `path:line:text` (files with a NUL byte in their first block as \
            `path: binary file matches`). The last line is the summary \
            `matches: M files: F bytes: B time: T ms`, M counting matching lines like \
            `grep -rFa PATTERN DIR | wc -l`. Exits 0 when every listed file was searched \
            or reported unreadable (the first five unreadable files are named on stderr).

            A PATTERN that starts with '-' goes after `--`: grep -- -x DIR.
            """)

    @Argument(help: ArgumentHelp("A fixed string (bytes, case-sensitive), like grep -F; not empty.", valueName: "PATTERN"))
    var pattern: String

    @Argument(help: ArgumentHelp("The directory searched recursively.", valueName: "DIR"))
    var directory: String

    @Option(help: ArgumentHelp("Print at most N matching lines (the summary counts them all).", valueName: "N"))
    var maxPrint = 20

    @Option(help: ArgumentHelp("Search at most N files. Default: all, or 2000 with --short.", valueName: "N"))
    var maxFiles: Int?

    @Option(name: .customLong("buffer"),
            help: ArgumentHelp("Read buffer per file, in bytes (>= 64 and >= twice the pattern's length).", valueName: "BYTES"))
    var bufferSize = 65536

    @Flag(help: "Search on the main thread, one file after another (outside the scheduler the Blocking calls are plain system calls), for comparison.")
    var serial = false

    @Flag(help: "Quick run for tests: --max-files 2000 unless --max-files is given.")
    var short = false

    func validate() throws {
        if pattern.isEmpty { throw ValidationError("PATTERN must not be empty") }
        if maxPrint < 0 { throw ValidationError("--max-print must be >= 0 (got \(maxPrint))") }
        if let maxFiles, maxFiles < 0 { throw ValidationError("--max-files must be >= 0 (got \(maxFiles))") }
        // The buffer must hold a carried-over pattern tail and still have room.
        if bufferSize < 2 * pattern.utf8.count || bufferSize < 64 {
            throw ValidationError("--buffer \(bufferSize) is too small: it must be >= 64 and >= twice the pattern's \(pattern.utf8.count) bytes")
        }
    }

    var options: Options {
        Options(pattern: Array(pattern.utf8), directory: directory, maxPrint: maxPrint,
                maxFiles: maxFiles ?? (short ? 2000 : Int.max), bufferSize: bufferSize, serial: serial)
    }

    func run() throws {
        let o = options
        let scheduler = Scheduler.default
        let clock = ContinuousClock()
        let start = clock.now

        let files = listFiles(o.directory, limit: o.maxFiles)
        let listed = clock.now

        // The pattern lives for the whole search; tasks share it read-only.
        let patternBytes = UnsafeMutableRawBufferPointer.allocate(byteCount: o.pattern.count, alignment: 1)
        defer { patternBytes.deallocate() }
        patternBytes.copyBytes(from: o.pattern)
        // Why this is sound: the bytes are written once above, only read by
        // the tasks, and freed after the group (and the serial loop) ends.
        nonisolated(unsafe) let pattern = UnsafeRawBufferPointer(patternBytes)

        let printer = Printer(limit: o.maxPrint)
        // Per-virtual-processor totals: each task adds its file's totals to
        // the local value of the VP it finishes on; nothing shared is touched
        // per file.
        let totals = Combinable<Totals> { Totals() }
        let errorsShown = ErrorCount()
        let before = scheduler.statistics
        let bufferSize = o.bufferSize

        /// One file's task: search it and add its totals to this VP's local value.
        let task: @Sendable (String) -> Void = { path in
            do {
                let t = try searchFile(path, pattern: pattern, bufferSize: bufferSize, printer: printer)
                totals.withLocal { $0 = $0 + t }
            } catch {
                // Unreadable files are reported, not fatal (a throw would
                // cancel the whole group).
                totals.withLocal { $0.errors += 1 }
                if errorsShown.next() < 5 {
                    FileHandle.standardError.write("grep: \(path): \(error)\n".data(using: .utf8)!)
                }
            }
        }

        if o.serial {
            for path in files { task(path) }
        } else {
            try scheduler.run {
                let group = TaskGroup()
                for path in files {
                    group.run { task(path) }
                }
                try group.wait()
            }
        }

        let end = clock.now
        let after = scheduler.statistics
        let sum = totals.combine(+)

        print("searched \(files.count) files (\(sum.binaryFiles) binary, \(sum.errors) unreadable) in \(o.directory);"
              + " listing took \(milliseconds(listed - start)) ms, searching \(milliseconds(end - listed)) ms")
        print("scheduler (\(scheduler.virtualProcessorCount) virtual processors): kernelBlocks: \(after.kernelBlocks - before.kernelBlocks)"
              + "  contextSwitches: \(after.contextSwitches - before.contextSwitches)"
              + "  completions: \(after.completions - before.completions)"
              + "  contextsCreated: \(after.contextsCreated - before.contextsCreated)"
              + "  tasks: \(after.tasksRun - before.tasksRun)  steals: \(after.steals - before.steals)"
              + "  idleSleeps: \(after.idleSleeps - before.idleSleeps)")
        print("  every kernel block parked one context on a kernel thread while its virtual processor switched to"
              + " another task; the virtual processors went idle \(after.idleSleeps - before.idleSleeps) times in all")
        print("matches: \(sum.matches) files: \(sum.files) bytes: \(sum.bytes) time: \(milliseconds(end - start)) ms")
        if sum.files + sum.errors != files.count { throw ExitCode.failure }
    }
}

/// How many file errors were seen (relaxed: only limits how many print).
final class ErrorCount: Sendable {
    private let count = Atomic<Int>(0)
    /// The count before this call.
    func next() -> Int { count.wrappingAdd(1, ordering: .relaxed).oldValue }
}
