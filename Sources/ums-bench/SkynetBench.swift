import CMallocCounter
import Foundation
import ConcRT
import CSupport
import PPL
import Synchronization

/// `skynet` (WORKLOADS.md): a 10-ary tree of tasks 6 levels deep, 1,000,000
/// leaves (1,111,111 tasks). A leaf returns its index; a node spawns its 10
/// children as tasks, waits, and sums them; the sum must be
/// 499999500000. One figure per task API a user would pick:
///   - `ums-taskgroup`: a ``TaskGroup`` per node, 10 `run`s, `wait`
///     (TBB's task_group; heap tasks);
///   - `ums-parallelfor`: ``parallelFor(_:step:partitioner:scheduler:token:_:)``
///     over `0..<10` per node (rayon's par_iter, the peer's idiom);
///   - `ums-invoke`: nested two-way ``parallelInvoke(_:_:)`` splitting the
///     10 children in halves (fork/join records on the stack, no heap);
///   - `ums-invoke-pack`: the parameter-pack `parallelInvoke` of 10
///     closures per node.
/// `--n` sets the leaf count (a power of 10; default 1,000,000).
/// `UMS_BENCH_SKYNET=ums-parallelfor,ums-taskgroup` runs only the named
/// forms (for a profiler run of one API).
enum SkynetBench {
    static func run(_ h: Harness) throws {
        let leaves = h.options.n ?? 1_000_000
        var p = 1
        while p < leaves { p *= 10 }
        guard p == leaves, leaves >= 1 else {
            throw BenchFailure(description: "skynet: --n must be a power of 10 (got \(leaves))")
        }
        let expected = leaves * (leaves - 1) / 2
        let tasks = Double((10 * leaves - 1) / 9)
        let impls: [(String, (Int, Int) throws -> Int)] = [
            ("ums-taskgroup", taskGroup),
            ("ums-parallelfor", parallelForNode),
            ("ums-invoke", invoke),
            ("ums-invoke-pack", invokePack),
        ]
        let only = ProcessInfo.processInfo.environment["UMS_BENCH_SKYNET"]?.split(separator: ",").map(String.init)
        if let only, let bad = only.first(where: { n in !impls.contains { $0.0 == n } }) {
            throw BenchFailure(description: "skynet: UMS_BENCH_SKYNET names \(bad); the forms are "
                               + impls.map(\.0).joined(separator: ", "))
        }
        let s = Scheduler.default
        for (name, f) in impls where only?.contains(name) ?? true {
            var allocs = 0.0
            let ms = try h.median("skynet \(name)") {
                try s.run { () throws -> Double in
                    let a0 = ums_malloc_count()
                    var r = 0
                    let t = try timeNs { r = try f(0, leaves) }
                    allocs = Double(ums_malloc_count() - a0) / tasks
                    guard r == expected else {
                        throw BenchFailure(description: "skynet \(name): sum \(r), expected \(expected)")
                    }
                    return t / 1e6
                }
            }
            h.report("skynet", name, ms, "ms", "(sum \(expected), heap allocations per task: " + String(format: "%.2f", allocs) + ")")
        }
        h.progress("  scheduler: \(s.statistics)")
    }

    /// One node per TaskGroup: 10 runs, then wait.
    static func taskGroup(_ num: Int, _ size: Int) throws -> Int {
        if size == 1 { return num }
        let sub = size / 10
        let sums = Sums()
        let g = TaskGroup()
        for i in 0..<10 {
            g.run { sums.add(try taskGroup(num + i * sub, sub)) }
        }
        try g.wait()
        return sums.total
    }

    /// One node per parallelFor over 0..<10; children write their own slot.
    static func parallelForNode(_ num: Int, _ size: Int) throws -> Int {
        if size == 1 { return num }
        let sub = size / 10
        return try withUnsafeTemporaryAllocation(of: Int.self, capacity: 10) { buf in
            let slots = Slots(base: buf.baseAddress!)
            try parallelFor(0..<10) { i in slots.base[i] = try parallelForNode(num + i * sub, sub) }
            return buf.reduce(0, +)
        }
    }

    /// One node: the 10 children split in halves with two-way parallelInvoke.
    static func invoke(_ num: Int, _ size: Int) -> Int {
        if size == 1 { return num }
        let sub = size / 10
        return children(num, sub, 0, 10)
    }

    /// Sum of children `lo..<hi` of a node whose children have `sub` leaves.
    static func children(_ num: Int, _ sub: Int, _ lo: Int, _ hi: Int) -> Int {
        if hi - lo == 1 { return invoke(num + lo * sub, sub) }
        let mid = (lo + hi) / 2
        let (a, b) = parallelInvoke({ children(num, sub, lo, mid) }, { children(num, sub, mid, hi) })
        return a + b
    }

    /// One node: the parameter-pack parallelInvoke of its 10 children.
    static func invokePack(_ num: Int, _ size: Int) throws -> Int {
        if size == 1 { return num }
        let s = size / 10
        let r = try parallelInvoke({ @Sendable in try invokePack(num, s) }, { @Sendable in try invokePack(num + s, s) },
                                   { @Sendable in try invokePack(num + 2 * s, s) }, { @Sendable in try invokePack(num + 3 * s, s) },
                                   { @Sendable in try invokePack(num + 4 * s, s) }, { @Sendable in try invokePack(num + 5 * s, s) },
                                   { @Sendable in try invokePack(num + 6 * s, s) }, { @Sendable in try invokePack(num + 7 * s, s) },
                                   { @Sendable in try invokePack(num + 8 * s, s) }, { @Sendable in try invokePack(num + 9 * s, s) })
        return r.0 + r.1 + r.2 + r.3 + r.4 + r.5 + r.6 + r.7 + r.8 + r.9
    }
}

/// A node's running total for the TaskGroup form (children add to it).
private final class Sums: Sendable {
    private let value = Atomic<Int>(0)
    func add(_ x: Int) { value.wrappingAdd(x, ordering: .relaxed) }
    /// Read after the group's wait (which orders the children's adds).
    var total: Int { value.load(ordering: .relaxed) }
}

/// The parallelFor node's 10 result slots, on the node's stack.
private struct Slots: @unchecked Sendable {
    // @unchecked Sendable: each iteration writes its own slot; the node
    // reads them after parallelFor returns (its join orders the writes).
    let base: UnsafeMutablePointer<Int>
}
