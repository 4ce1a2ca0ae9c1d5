// nqueens's command line: options, their checks, and the count or
// first-solution run.
import ArgumentParser
import ConcRT
import Foundation
import PPL
import UMS

@main
struct NQueensCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nqueens",
        abstract: "N-queens with a tree of nested task groups; --first stops the search with cancellation.",
        discussion: """
            Count mode (default): every free column of the first `depth` rows gets a task \
            in a TaskGroup of its own level; below that the rest of the tree is counted \
            serially. Prints `nqueens(N): solutions: COUNT ...` and checks the count against \
            the known table (OEIS A000170, N <= 18).

            First mode (--first): the first task to find a full placement records it and \
            cancels the outermost group's token, which reaches every nested group. Prints \
            the board, checks it, and shows how many tasks cancellation discarded before \
            they started.

            Exits 1 when a check fails.
            """)

    @Option(help: ArgumentHelp("Board size, 1...30. Default: 12, or 10 with --short.", valueName: "N"))
    var n: Int?

    @Option(help: ArgumentHelp("Rows split into tasks before the serial search (>= 0).", valueName: "D"))
    var depth = 3

    @Flag(help: "Find one solution, print it, and cancel the rest of the search.")
    var first = false

    @Flag(help: "Quick run for tests: n = 10 (724 solutions) unless --n is given.")
    var short = false

    /// The board size the run uses: --n, else the --short or the full default.
    var effectiveN: Int { n ?? (short ? 10 : 12) }

    func validate() throws {
        if !(1...30).contains(effectiveN) { throw ValidationError("--n must be in 1...30 (got \(effectiveN))") }
        if depth < 0 { throw ValidationError("--depth must be >= 0 (got \(depth))") }
    }

    func run() throws {
        let n = effectiveN, depth = self.depth
        let scheduler = Scheduler.default
        let clock = ContinuousClock()
        let start = clock.now
        var ok = true

        if first {
            let search = Search()
            let status = try scheduler.run {
                // The outermost group is the one holding the token.
                let outer = TaskGroup(token: search.source.token)
                outer.run { try parallelFind(Board(n: n), depth: depth, search: search) }
                return try outer.wait()
            }
            let elapsed = clock.now - start
            let skipped = search.scheduled.total - search.started.total
            if let s = search.solution.withLock({ $0 }) {
                print("nqueens(\(n)) first solution: \(s)  time: \(milliseconds(elapsed)) ms")
                for col in s {
                    print("  " + (0..<n).map { $0 == col ? "Q" : "." }.joined(separator: " "))
                }
                let valid = isValidSolution(s, n: n)
                print("  valid: \(valid)  group status: \(status)  tasks scheduled: \(search.scheduled.total),"
                      + " discarded by cancellation before starting: \(skipped)")
                ok = valid && status == .canceled
            } else {
                print("nqueens(\(n)) no solution  time: \(milliseconds(elapsed)) ms  group status: \(status)")
                ok = n < knownCounts.count && knownCounts[n] == 0
            }
        } else {
            let tasks = Counter()
            let count = try scheduler.run { try parallelCount(Board(n: n), depth: depth, tasks: tasks) }
            let elapsed = clock.now - start
            var line = "nqueens(\(n)): solutions: \(count)  time: \(milliseconds(elapsed)) ms"
                + "  (\(tasks.total) tasks to depth \(depth), \(scheduler.virtualProcessorCount) virtual processors)"
            if n < knownCounts.count {
                let good = knownCounts[n] == count
                line += good ? "  check: OK" : "  check: MISMATCH (expected \(knownCounts[n]))"
                ok = good
            }
            print(line)
        }
        print("  scheduler: \(scheduler.statistics)")
        if !ok { throw ExitCode.failure }
    }
}
