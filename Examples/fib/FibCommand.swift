// fib's command line: options, their checks, and the run that prints the
// value, the time and the checks.
import ArgumentParser
import ConcRT
import Foundation
import PPL

@main
struct FibCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fib",
        abstract: "Recursive Fibonacci with fork/join (parallelInvoke) on the default scheduler.",
        discussion: """
            Computes fib(N) by the naive recursion, forking both recursive calls with \
            parallelInvoke down to the cutoff and recursing serially below it. Prints \
            `fib(N) = VALUE  time: T ms`, the steals, tasks and context switches it took, \
            a check against the iterative value, and (for N <= 40) the serial recursion's \
            time and the speedup. Exits 1 on a mismatch.
            """)

    @Option(help: ArgumentHelp("Which Fibonacci number, 0...92 (fib(92) is the largest that fits in an Int64). Default: 35, or 27 with --short.",
                               valueName: "N"))
    var n: Int?

    @Option(help: ArgumentHelp("Recurse serially at or below this n instead of forking (>= 1).", valueName: "C"))
    var cutoff = 12

    @Flag(help: "Quick run for tests: n = 27 unless --n is given.")
    var short = false

    /// The n the run uses: --n, else the --short or the full default.
    var effectiveN: Int { n ?? (short ? 27 : 35) }

    func validate() throws {
        if !(0...92).contains(effectiveN) { throw ValidationError("--n must be in 0...92 (got \(effectiveN))") }
        if cutoff < 1 { throw ValidationError("--cutoff must be >= 1 (got \(cutoff))") }
    }

    func run() throws {
        let n = effectiveN, cutoff = self.cutoff
        let scheduler = Scheduler.default
        let clock = ContinuousClock()
        let before = scheduler.statistics

        // Run the whole computation as one task on the scheduler: the main
        // thread waits, and every fork inside happens on scheduler contexts.
        var value = 0
        let parallelTime = try clock.measure {
            value = try scheduler.run { try parallelFib(n, cutoff: cutoff) }
        }
        let after = scheduler.statistics

        print("fib(\(n)) = \(value)  time: \(String(format: "%.1f", milliseconds(parallelTime))) ms"
              + "  (cutoff \(cutoff), \(scheduler.virtualProcessorCount) virtual processors)")
        print("  forks stolen and run elsewhere: \(after.steals - before.steals),"
              + " tasks run: \(after.tasksRun - before.tasksRun),"
              + " context switches: \(after.contextSwitches - before.contextSwitches)")

        var ok = true
        let expected = iterativeFib(n)
        if value == expected {
            print("  check against iterative fib: OK")
        } else {
            print("  check against iterative fib: MISMATCH (expected \(expected))")
            ok = false
        }

        // The serial recursion takes about as long as the parallel one times
        // the number of CPUs; only do it where that is a few seconds at most.
        if n <= 40 {
            var serial = 0
            let serialTime = clock.measure { serial = serialFib(n) }
            let speedup = milliseconds(serialTime) / max(milliseconds(parallelTime), 0.001)
            print("  serial recursion: \(serial)  time: \(String(format: "%.1f", milliseconds(serialTime))) ms"
                  + "  speedup: \(String(format: "%.2f", speedup))x  \(serial == value ? "OK" : "MISMATCH")")
            if serial != value { ok = false }
        }
        if !ok { throw ExitCode.failure }
    }
}
