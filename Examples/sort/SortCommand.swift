// sort's command line: options, their checks, and the run that times each
// parallel sort against Array.sort and checks every result.
import ArgumentParser
import ConcRT
import Foundation
import PPL

extension Distribution: ExpressibleByArgument {}

@main
struct SortCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sort",
        abstract: "The three parallel sorts (parallelSort, parallelBufferedSort, parallelRadixSort) against Array.sort.",
        discussion: """
            Fills an array of UInt64 from a seeded SplitMix64 generator, sorts a copy with \
            Array.sort (the baseline) and one with each parallel sort, and prints one line \
            per algorithm: its time in ms, the speedup over Array.sort, and `sorted: true` \
            when the result is in order, is a permutation of the input (an order-independent \
            fingerprint) and equals Array.sort's result. Exits 1 when any check fails.
            """)

    @Option(help: ArgumentHelp("Element count (>= 0; 10_000_000 and 10000000 both work). Default: 10_000_000, or 1_000_000 with --short.",
                               valueName: "N"),
            transform: { text in
                guard let n = Int(text.replacingOccurrences(of: "_", with: "")) else {
                    throw ValidationError("--n needs an integer (got '\(text)')")
                }
                return n
            })
    var n: Int?

    @Option(help: ArgumentHelp("Seed of the pseudo-random generator, so runs repeat.", valueName: "S"))
    var seed: UInt64 = 42

    @Option(help: ArgumentHelp("Input shape: random, sorted, reversed, or few (16 distinct values).", valueName: "D"))
    var dist = Distribution.random

    @Flag(help: "Quick run for tests: n = 1_000_000 unless --n is given.")
    var short = false

    func validate() throws {
        if let n, n < 0 { throw ValidationError("--n must be >= 0 (got \(n))") }
    }

    func run() throws {
        let o = Options(n: n ?? (short ? 1_000_000 : 10_000_000), seed: seed, dist: dist)
        let scheduler = Scheduler.default
        let clock = ContinuousClock()

        let input = makeInput(o)
        let inputPrint = try fingerprint(input)
        print("sorting \(o.n) UInt64 (\(o.dist), seed \(o.seed)) on \(scheduler.virtualProcessorCount) virtual processors")

        // Baseline: the standard library's serial sort.
        var reference = input
        let baseline = clock.measure { reference.sort() }
        let baselineMs = milliseconds(baseline)
        print("  " + pad("Array.sort") + String(format: "%9.1f ms", baselineMs))

        // Each algorithm sorts its own copy of the input. The copy is made
        // before the clock starts (Array is copy-on-write: `var copy = input`
        // alone would make the sort pay for the copy).
        let algorithms: [(String, (inout [UInt64]) -> Void)] = [
            ("parallelSort", { parallelSort(&$0) }),
            ("parallelBufferedSort", { parallelBufferedSort(&$0) }),
            ("parallelRadixSort", { parallelRadixSort(&$0) }),
        ]
        var ok = true
        for (name, sortFunction) in algorithms {
            var copy = input
            copy.withUnsafeMutableBufferPointer { _ in }   // force the copy now
            let elapsed = clock.measure { sortFunction(&copy) }
            let sorted = try isSorted(copy)
            let permutation = try fingerprint(copy) == inputPrint
            let sameAsReference = copy == reference
            let passed = sorted && permutation && sameAsReference
            ok = ok && passed
            let ms = milliseconds(elapsed)
            print("  " + pad(name) + String(format: "%9.1f ms  %5.2fx vs Array.sort  ", ms, baselineMs / max(ms, 0.001))
                  + "sorted: \(sorted)  permutation: \(permutation)  equals Array.sort: \(sameAsReference)")
        }
        print(ok ? "all sorts OK" : "SORT FAILURE")
        if !ok { throw ExitCode.failure }
    }
}
