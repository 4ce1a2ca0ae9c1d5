// fib: recursive fork/join with parallelInvoke.
//
// The textbook naive Fibonacci, fib(n) = fib(n-1) + fib(n-2), with the two
// recursive calls forked by `parallelInvoke`. Below a cutoff the recursion
// runs serially: forking a call that only does a few dozen additions costs
// more than it saves. With the runtime's fork/join, a fork that nobody
// steals runs inline on the forking context (no heap allocation, no
// context switch), so the cutoff can be small.
//
// The program prints the value and the time, compares it with the
// closed-loop (iterative) value, and, for small n, times a serial
// recursive run to show the speedup.
//
//   fib [--n N] [--cutoff C] [--short]
//     --n N        which Fibonacci number (default 35, at most 92)
//     --cutoff C   serial below this n (default 12)
//     --short      n = 27, for quick tests
//
// Output: `fib(N) = VALUE  time: T ms ...`, then the checks.
import ConcRT
import Foundation
import PPL

struct Options {
    var n = 35
    var cutoff = 12
}

func parseOptions() -> Options {
    var o = Options()
    var args = CommandLine.arguments.dropFirst()
    func int(_ flag: String) -> Int {
        guard let v = args.popFirst(), let i = Int(v) else { fail("\(flag) needs an integer") }
        return i
    }
    while let a = args.popFirst() {
        switch a {
        case "--n": o.n = int(a)
        case "--cutoff": o.cutoff = int(a)
        case "--short": o.n = 27
        case "-h", "--help":
            print("usage: fib [--n N] [--cutoff C] [--short]")
            exit(0)
        default: fail("unknown argument \(a)")
        }
    }
    // fib(92) is the largest that fits in an Int64.
    if o.n < 0 || o.n > 92 { fail("--n must be in 0...92") }
    if o.cutoff < 1 { fail("--cutoff must be >= 1") }
    return o
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write("fib: \(message)\n".data(using: .utf8)!)
    exit(2)
}

/// Plain recursion: the leaves of the parallel version, and the reference.
func serialFib(_ n: Int) -> Int {
    n < 2 ? n : serialFib(n - 1) + serialFib(n - 2)
}

/// Fork/join recursion. `parallelInvoke` forks the second closure so an
/// idle virtual processor can steal it, runs the first one here, and joins.
/// Its closures may throw, so it is a throwing call; ours never throw.
func parallelFib(_ n: Int, cutoff: Int) throws -> Int {
    if n <= cutoff { return serialFib(n) }
    let (a, b) = try parallelInvoke({ try parallelFib(n - 1, cutoff: cutoff) },
                                    { try parallelFib(n - 2, cutoff: cutoff) })
    return a + b
}

/// fib(n) by iteration: the value the recursion must produce.
func iterativeFib(_ n: Int) -> Int {
    var (a, b) = (0, 1)
    for _ in 0..<n { (a, b) = (b, a + b) }
    return a
}

func milliseconds(_ d: Duration) -> Double {
    Double(d.components.seconds) * 1e3 + Double(d.components.attoseconds) / 1e15
}

let o = parseOptions()
let scheduler = Scheduler.default
let clock = ContinuousClock()
let before = scheduler.statistics

// Run the whole computation as one task on the scheduler: the main thread
// waits, and every fork inside happens on scheduler contexts.
var value = 0
let parallelTime = try clock.measure {
    value = try scheduler.run { try parallelFib(o.n, cutoff: o.cutoff) }
}
let after = scheduler.statistics

print("fib(\(o.n)) = \(value)  time: \(String(format: "%.1f", milliseconds(parallelTime))) ms"
      + "  (cutoff \(o.cutoff), \(scheduler.virtualProcessorCount) virtual processors)")
print("  forks stolen and run elsewhere: \(after.steals - before.steals),"
      + " tasks run: \(after.tasksRun - before.tasksRun),"
      + " context switches: \(after.contextSwitches - before.contextSwitches)")

var ok = true
let expected = iterativeFib(o.n)
if value == expected {
    print("  check against iterative fib: OK")
} else {
    print("  check against iterative fib: MISMATCH (expected \(expected))")
    ok = false
}

// The serial recursion takes about as long as the parallel one times the
// number of CPUs; only do it where that is a few seconds at most.
if o.n <= 40 {
    var serial = 0
    let serialTime = clock.measure { serial = serialFib(o.n) }
    let speedup = milliseconds(serialTime) / max(milliseconds(parallelTime), 0.001)
    print("  serial recursion: \(serial)  time: \(String(format: "%.1f", milliseconds(serialTime))) ms"
          + "  speedup: \(String(format: "%.2f", speedup))x  \(serial == value ? "OK" : "MISMATCH")")
    if serial != value { ok = false }
}

exit(ok ? 0 : 1)
