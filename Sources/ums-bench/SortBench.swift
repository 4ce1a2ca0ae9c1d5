import ConcRT
import CSupport
import PPL

/// `sort`: 10,000,000 uniformly random UInt64 keys, in place, ascending;
/// the result is checked sorted (and a permutation, by sum and xor).
enum SortBench {
    static func run(_ h: Harness) throws {
        let n = h.options.n ?? 10_000_000
        var rng = SplitMix64(seed: 42)
        let input = (0..<n).map { _ in rng.next() }
        let sum = input.reduce(0, &+), xor = input.reduce(0, ^)
        func check(_ a: [UInt64], _ who: String) throws {
            for i in 1..<a.count where a[i - 1] > a[i] {
                throw BenchFailure(description: "\(who): not sorted at \(i)")
            }
            if a.reduce(0, &+) != sum || a.reduce(0, ^) != xor { throw BenchFailure(description: "\(who): not a permutation") }
        }
        let variants: [(String, (inout [UInt64]) -> Void)] = [
            ("ums", { parallelSort(&$0) }),
            ("ums-buffered", { parallelBufferedSort(&$0) }),
            ("ums-radix", { parallelRadixSort(&$0) }),
        ]
        for (impl, sortFn) in variants {
            let ms = try h.median("sort \(impl)") { () throws -> Double in
                var a = input
                // Copy-on-write: make `a` its own (written, faulted-in) storage
                // before the clock starts, so the sort is timed alone, in place.
                a.withUnsafeMutableBufferPointer { _ in }
                let t = timeNs { sortFn(&a) }
                try check(a, impl)
                return t / 1e6
            }
            h.report("sort", impl, ms, "ms")
        }
        let serial = try h.median("sort serial", reps: 1) { () throws -> Double in
            var a = input
            a.withUnsafeMutableBufferPointer { _ in }
            let t = timeNs { a.sort() }
            try check(a, "Array.sort")
            return t / 1e6
        }
        h.report("sort", "baseline-swift-sort", serial, "ms", "(Array.sort, one thread)")
    }
}

struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
