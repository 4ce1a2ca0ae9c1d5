// sort: the three parallel sorts against Array.sort.
//
// Fills a large [UInt64] from a seeded pseudo-random generator, then sorts
// a copy of it with each of
//
//   parallelSort          quicksort whose two sides are forked (in place)
//   parallelBufferedSort  merge sort with an O(n) buffer, halves in parallel
//   parallelRadixSort     LSD radix sort, 8-bit digits, parallel passes
//
// and with the standard library's serial Array.sort as the baseline. Each
// result is checked two ways, both computed with parallelReduce: that it
// is in order, and that it is a permutation of the input (an
// order-independent fingerprint of the multiset of values must match the
// input's). It must also equal the Array.sort result element for element.
//
//   sort [--n N] [--seed S] [--dist D] [--short]
//     --n N      element count (default 10_000_000)
//     --seed S   generator seed (default 42)
//     --dist D   random (default), sorted, reversed, or few (16 distinct
//                values): the inputs that trip up quicksorts
//     --short    n = 1_000_000, for quick tests
//
// Output: one line per algorithm containing `sorted: true` when it passed.
import ConcRT
import Foundation
import PPL

struct Options {
    var n = 10_000_000
    var seed: UInt64 = 42
    var dist = "random"
}

func parseOptions() -> Options {
    var o = Options()
    var args = CommandLine.arguments.dropFirst()
    func value(_ flag: String) -> String {
        guard let v = args.popFirst() else { fail("\(flag) needs a value") }
        return v
    }
    while let a = args.popFirst() {
        switch a {
        case "--n":
            // Accept 10_000_000 as well as 10000000.
            guard let n = Int(value(a).replacingOccurrences(of: "_", with: "")) else { fail("--n needs an integer") }
            o.n = n
        case "--seed":
            guard let s = UInt64(value(a)) else { fail("--seed needs an unsigned integer") }
            o.seed = s
        case "--dist": o.dist = value(a)
        case "--short": o.n = 1_000_000
        case "-h", "--help":
            print("usage: sort [--n N] [--seed S] [--dist random|sorted|reversed|few] [--short]")
            exit(0)
        default: fail("unknown argument \(a)")
        }
    }
    if o.n < 0 { fail("--n must be >= 0") }
    if !["random", "sorted", "reversed", "few"].contains(o.dist) { fail("unknown --dist \(o.dist)") }
    return o
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write("sort: \(message)\n".data(using: .utf8)!)
    exit(2)
}

/// SplitMix64: a tiny, fast, well-mixed generator, so runs are repeatable.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return mix(state)
    }
}

/// The SplitMix64 finalizer: a bijection that scatters bits.
@inline(__always)
func mix(_ x: UInt64) -> UInt64 {
    var z = x
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

func makeInput(_ o: Options) -> [UInt64] {
    var g = SplitMix64(state: o.seed)
    var a = (0..<o.n).map { _ in g.next() }
    switch o.dist {
    case "sorted": a.sort()
    case "reversed": a.sort(by: >)
    case "few": for i in a.indices { a[i] &= 15 }
    default: break
    }
    return a
}

/// An order-independent fingerprint of a multiset: two sums of a bijective
/// mix of each value. Equal multisets give equal fingerprints; a lost,
/// duplicated or changed element changes them (except with negligible
/// probability).
struct Fingerprint: Equatable, Sendable {
    var a: UInt64 = 0, b: UInt64 = 0
    static func + (l: Fingerprint, r: Fingerprint) -> Fingerprint { Fingerprint(a: l.a &+ r.a, b: l.b &+ r.b) }
}

func fingerprint(_ v: [UInt64]) throws -> Fingerprint {
    try parallelReduce(0..<v.count, identity: Fingerprint(), map: { r in
        var f = Fingerprint()
        for i in r {
            f.a &+= mix(v[i])
            f.b &+= mix(v[i] ^ 0x5555_5555_5555_5555)
        }
        return f
    }, combine: +)
}

/// True when every element is <= the next; each chunk also looks at the
/// pair that straddles its left edge.
func isSorted(_ v: [UInt64]) throws -> Bool {
    try parallelReduce(0..<v.count, identity: true, map: { r in
        for i in r where i > 0 && v[i - 1] > v[i] { return false }
        return true
    }, combine: { $0 && $1 })
}

func milliseconds(_ d: Duration) -> Double {
    Double(d.components.seconds) * 1e3 + Double(d.components.attoseconds) / 1e15
}

/// Left-aligns a name in a 22-column field.
func pad(_ s: String) -> String { s + String(repeating: " ", count: max(1, 22 - s.count)) }

let o = parseOptions()
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

// Each algorithm sorts its own copy of the input. The copy is made before
// the clock starts (Array is copy-on-write: `var copy = input` alone would
// make the sort pay for the copy).
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
exit(ok ? 0 : 1)
