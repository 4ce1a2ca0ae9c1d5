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
// Run `fib --help` for the options.
//
// Output: `fib(N) = VALUE  time: T ms ...`, then the checks.
import ConcRT
import Foundation
import PPL

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
