import ConcRT
import Hummingbird
#if canImport(Glibc)
import Glibc
#endif

// A Hummingbird 2 server whose handlers query SQLite with plain
// libsqlite3 calls. See README.md for the design and load.sh for the load.

let options = Options.parseOrExit()

// The scheduler first, before any task exists, so that every job of the
// global executor runs on it.
var scheduler: Scheduler? = nil
if options.executor == .ums {
    do {
        // A wrapped call that blocks is compensated for (a temporary VP
        // beside it; the request keeps its pthread), not retaken; plain
        // calls are found asleep by the monitor (detectUnwrappedBlocking).
        let policy = SchedulerPolicy(retakeAfter: options.retakeAfterUs == 0 ? nil : .microseconds(options.retakeAfterUs),
                                     retakeBlockedCalls: false,
                                     detectUnwrappedBlocking: options.umsStep == .plain)
        let s = try Scheduler(policy: policy)
        try s.installAsGlobalExecutor()
        scheduler = s
    } catch {
        Output.warn("cannot start the ums executor: \(error)")
        exit(1)
    }
}

let base = options.db ?? "/tmp/hbsqlite-\(getpid()).db"
// One file per shard ("-shardK" appended when there are several).
let paths = options.shards == 1 ? [base] : (0..<options.shards).map { "\(base)-shard\($0)" }
let stepMode: StepMode = options.executor == .ums && options.umsStep == .wrapped ? .blocking : .plain
do {
    for path in paths { try Database.create(path: path, rows: options.rows) }
    // Calibration, on this thread with no writer: one query's SQLite cost.
    let probe = try Reader.open(path: paths[0], busyTimeoutMilliseconds: options.busyTimeoutMs, stepMode: .plain)
    let width = Database.rangeWidth(rows: options.rows)
    let n = 50
    let t0 = ContinuousClock.now
    for i in 0..<n { _ = try probe.query(lo: Int64(i) * 10_000, hi: Int64(i) * 10_000 + width) }
    let per = (ContinuousClock.now - t0) / n
    Output.say("database \(base): \(paths.count) shard(s) of \(options.rows) rows, one query (full scan) \(per) of SQLite time")
} catch {
    Output.warn("database set-up failed: \(error)")
    exit(1)
}

let pools = paths.map { path in
    ConnectionPool(maxIdle: options.poolIdle) { [busy = options.busyTimeoutMs] in
        try Reader.open(path: path, busyTimeoutMilliseconds: busy, stepMode: stepMode)
    }
}
let runner = QueryRunner(pools: pools,
                         scheduler: options.umsPlacement == .task ? scheduler : nil,
                         rows: options.rows)
// One writer per shard, their transactions staggered over the interval.
let writers = paths.enumerated().map { k, path in
    Writer(path: path, rows: options.rows,
           interval: .milliseconds(options.writeIntervalMs),
           hold: .milliseconds(options.writeHoldMs),
           rowsPerCommit: options.writeRows,
           phase: .milliseconds(options.writeIntervalMs) * k / paths.count)
}
for w in writers { w.start() }

let router = Router()
router.get("range") { request, _ -> String in
    let lo = request.uri.queryParameters.get("lo", as: Int64.self)
    let shard = request.uri.queryParameters.get("shard", as: Int.self)
    do {
        return try await runner.query(lo: lo, shard: shard).json + "\n"
    } catch {
        throw HTTPError(.serviceUnavailable, message: "\(error)")
    }
}
router.get("health") { _, _ -> String in "ok\n" }

let mode = options.executor == .ums ? "ums (\(options.umsPlacement.rawValue), \(options.umsStep.rawValue) steps)" : "default"
let app = Application(
    router: router,
    configuration: .init(address: .hostname("127.0.0.1", port: options.port), serverName: "hummingbird-sqlite"),
    onServerRunning: { channel in
        Output.say("listening on 127.0.0.1:\(channel.localAddress?.port ?? -1) executor \(mode)")
    }
)
do {
    try await app.runService()
} catch {
    Output.warn("server failed: \(error)")
    for w in writers { w.stop() }
    exit(1)
}
for w in writers { w.stop() }
Output.say("stopped: \(runner.summary), writer commits \(writers.reduce(0) { $0 + $1.commits })")
for e in writers.compactMap(\.error) { Output.say("writer failed: \(e)") }
if let s = scheduler { Output.say("scheduler: \(s.statistics)") }
for path in paths {
    unlink(path)
    unlink(path + "-journal")
}
