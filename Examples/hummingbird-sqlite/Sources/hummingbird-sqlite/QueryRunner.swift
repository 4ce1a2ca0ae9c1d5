import ConcRT
import Synchronization

/// Runs one range query for a handler, where the executor mode says, and
/// counts what it did.
final class QueryRunner: Sendable {
    /// One pool per shard.
    let pools: [ConnectionPool]
    /// Set under `--executor ums --ums-placement task`.
    let scheduler: Scheduler?
    let rows: Int
    private let served = Atomic<Int>(0)          // relaxed: statistics
    private let slow = Atomic<Int>(0)
    private let nanosInQueries = Atomic<Int>(0)

    init(pools: [ConnectionPool], scheduler: Scheduler?, rows: Int) {
        precondition(!pools.isEmpty, "QueryRunner: no shard")
        self.pools = pools
        self.scheduler = scheduler
        self.rows = rows
    }

    /// Queries `lo ... lo + width` (a random `lo` when nil) on `shard` (a
    /// random one when nil).
    func query(lo: Int64?, shard: Int?) async throws -> RangeResult {
        let width = Database.rangeWidth(rows: rows)
        let lo = lo ?? Int64.random(in: 0..<(Database.valueSpace - width))
        let hi = lo + width
        let shard = shard ?? Int.random(in: 0..<pools.count)
        guard pools.indices.contains(shard) else { throw QueryError.noSuchShard(shard, pools.count) }
        let pool = pools[shard]
        let start = ContinuousClock.now
        let result: RangeResult
        if let scheduler {
            result = try await scheduler.runAsync { try pool.withReader { try $0.query(lo: lo, hi: hi) } }
        } else {
            result = try pool.withReader { try $0.query(lo: lo, hi: hi) }
        }
        let elapsed = ContinuousClock.now - start
        let ns = Int(elapsed.components.seconds) * 1_000_000_000 + Int(elapsed.components.attoseconds / 1_000_000_000)
        served.wrappingAdd(1, ordering: .relaxed)
        nanosInQueries.wrappingAdd(ns, ordering: .relaxed)
        if ns > 10_000_000 { slow.wrappingAdd(1, ordering: .relaxed) }
        return result
    }

    var summary: String {
        let n = served.load(ordering: .relaxed)
        let mean = n == 0 ? 0 : Double(nanosInQueries.load(ordering: .relaxed)) / Double(n) / 1e6
        let meanText = String(Int(mean * 1000)) + " µs"
        let opened = pools.reduce(0) { $0 + $1.connectionsOpened }
        return "queries \(n), mean wall time in the query \(meanText), over 10 ms \(slow.load(ordering: .relaxed)), connections opened \(opened)"
    }
}

/// A request the runner cannot serve.
enum QueryError: Error, CustomStringConvertible {
    case noSuchShard(Int, Int)
    var description: String {
        switch self {
        case .noSuchShard(let k, let n): return "no shard \(k) (there are \(n): 0...\(n - 1))"
        }
    }
}
