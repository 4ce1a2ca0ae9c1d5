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
        let policy = SchedulerPolicy(retakeAfter: options.retakeAfterUs == 0 ? nil : .microseconds(options.retakeAfterUs))
        let s = try Scheduler(policy: policy)
        try s.installAsGlobalExecutor()
        scheduler = s
    } catch {
        Output.warn("cannot start the ums executor: \(error)")
        exit(1)
    }
}

let path = options.db ?? "/tmp/hbsqlite-\(getpid()).db"
let stepMode: StepMode = options.executor == .ums ? .blocking : .plain
do {
    try Database.create(path: path, rows: options.rows)
    // Calibration, on this thread with no writer: one query's SQLite cost.
    let probe = try Reader.open(path: path, busyTimeoutMilliseconds: options.busyTimeoutMs, stepMode: .plain)
    let width = Database.rangeWidth(rows: options.rows)
    let n = 50
    let t0 = ContinuousClock.now
    for i in 0..<n { _ = try probe.query(lo: Int64(i) * 10_000, hi: Int64(i) * 10_000 + width) }
    let per = (ContinuousClock.now - t0) / n
    Output.say("database \(path): \(options.rows) rows, one query (full scan) \(per) of SQLite time")
} catch {
    Output.warn("database set-up failed: \(error)")
    exit(1)
}

let pool = ConnectionPool(maxIdle: options.poolIdle) { [busy = options.busyTimeoutMs] in
    try Reader.open(path: path, busyTimeoutMilliseconds: busy, stepMode: stepMode)
}
let runner = QueryRunner(pool: pool,
                         scheduler: options.umsPlacement == .task ? scheduler : nil,
                         rows: options.rows)
let writer = Writer(path: path, rows: options.rows,
                    interval: .milliseconds(options.writeIntervalMs),
                    hold: .milliseconds(options.writeHoldMs),
                    rowsPerCommit: options.writeRows)
writer.start()

let router = Router()
router.get("range") { request, _ -> String in
    let lo = request.uri.queryParameters.get("lo", as: Int64.self)
    do {
        return try await runner.query(lo: lo).json + "\n"
    } catch {
        throw HTTPError(.serviceUnavailable, message: "\(error)")
    }
}
router.get("health") { _, _ -> String in "ok\n" }

let mode = options.executor == .ums ? "ums (\(options.umsPlacement.rawValue))" : "default"
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
    writer.stop()
    exit(1)
}
writer.stop()
Output.say("stopped: \(runner.summary), writer commits \(writer.commits)")
if let e = writer.error { Output.say("writer failed: \(e)") }
if let s = scheduler { Output.say("scheduler: \(s.statistics)") }
unlink(path)
unlink(path + "-journal")
