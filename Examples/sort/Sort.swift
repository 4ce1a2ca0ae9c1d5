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
// Run `sort --help` for the options.
//
// Output: one line per algorithm containing `sorted: true` when it passed.
import ConcRT
import Foundation
import PPL

/// What to sort: the element count, the generator's seed, and the shape of
/// the input.
struct Options {
    var n = 10_000_000
    var seed: UInt64 = 42
    var dist = Distribution.random
}

/// The input's shape: random, or the inputs that trip up quicksorts.
enum Distribution: String, CaseIterable {
    case random, sorted, reversed
    /// 16 distinct values.
    case few
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
    case .sorted: a.sort()
    case .reversed: a.sort(by: >)
    case .few: for i in a.indices { a[i] &= 15 }
    case .random: break
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
