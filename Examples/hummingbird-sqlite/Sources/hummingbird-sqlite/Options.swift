import ArgumentParser

/// Which executor runs the request handlers.
enum ExecutorMode: String, ExpressibleByArgument, Sendable {
    /// swift-ums's ConcRT scheduler, installed as Swift's global executor.
    case ums
    /// Swift's default global executor (the cooperative pool).
    case `default`
}

/// Where, under `--executor ums`, a handler's SQLite calls run.
enum UMSPlacement: String, ExpressibleByArgument, Sendable {
    /// In the handler's own Swift job. Swift jobs are pinned to their
    /// virtual processor, so each `Blocking.call` hands the call to a
    /// pooled kernel thread (no lazy kernel entry inside a job).
    case job
    /// In a ConcRT task (`Scheduler.runAsync`): each `Blocking.call` runs
    /// inline (lazy kernel entry) and the VP is retaken only if the call
    /// stays in it longer than `--retake-after-us`.
    case task
}

/// How, under `--executor ums`, a handler's SQLite calls block.
enum UMSStep: String, ExpressibleByArgument, Sendable {
    /// Plain libsqlite3 calls, as under the default executor: the
    /// scheduler has `detectUnwrappedBlocking`, and the monitor starts a
    /// temporary virtual processor beside a thread asleep in SQLite's busy
    /// handler (a compensation; the request keeps its pthread).
    case plain
    /// Each `sqlite3_step` (and a connection's opening) inside
    /// `Blocking.call { }`.
    case wrapped
}

struct Options: ParsableArguments {
    @Option(help: "ums: handlers on swift-ums's scheduler; default: on Swift's default executor.")
    var executor: ExecutorMode

    @Option(help: "Under --executor ums: run the SQLite calls in the handler's Swift job (job) or in a ConcRT task (task).")
    var umsPlacement: UMSPlacement = .task

    @Option(help: "Under --executor ums: plain libsqlite3 calls, found asleep by the runtime (plain), or each step inside Blocking.call (wrapped).")
    var umsStep: UMSStep = .plain

    @Option(help: "Under --executor ums: lazy kernel entry's retake threshold in µs (0: hand every blocking call to a kernel thread). CPU-bound sqlite3_step calls are never retaken (the monitor sees their CPU clock move); this threshold sets how long a step may sleep in SQLite's busy handler before its VP starts another request. The library's 20 µs starts one per sleep: every request becomes a reader holding a SHARED lock, the writer's EXCLUSIVE lock starves, and the readers convoy (measured: 288 requests/s against 1,092 on the default executor). 1500 lets SQLite's first 1 ms busy sleeps pass.")
    var retakeAfterUs: Int = 1500

    @Option(help: "TCP port on 127.0.0.1 (0: any free port; the port is printed).")
    var port: Int = 0

    @Option(help: "Database file (created afresh; default /tmp/hbsqlite-PID.db).")
    var db: String?

    @Option(help: "Rows seeded into the table (sets the cost of one full scan).")
    var rows: Int = 20_000

    @Option(help: "Database files (shards; a request queries one, at random). Each has its own writer, so a request waits only while its own shard is locked, as with one SQLite file per tenant. 1: a single database whose lock every request waits on.")
    var shards: Int = 16

    @Option(help: "Each writer takes its shard's exclusive lock every this many ms.")
    var writeIntervalMs: Int = 100

    @Option(help: "... and holds it this many ms.")
    var writeHoldMs: Int = 20

    @Option(help: "Rows the writer updates per transaction.")
    var writeRows: Int = 50

    @Option(help: "sqlite3_busy_timeout of the reader connections, in ms.")
    var busyTimeoutMs: Int32 = 10_000

    @Option(help: "Idle reader connections the pool keeps.")
    var poolIdle: Int = 512

    func validate() throws {
        if !(0...65535).contains(port) { throw ValidationError("--port must be in 0...65535, not \(port)") }
        if shards < 1 || shards > 256 { throw ValidationError("--shards must be in 1...256, not \(shards)") }
        if rows < 100 { throw ValidationError("--rows must be at least 100, not \(rows)") }
        if writeIntervalMs < 1 || writeHoldMs < 0 || writeHoldMs >= writeIntervalMs {
            throw ValidationError("need 0 <= --write-hold-ms < --write-interval-ms, got \(writeHoldMs) and \(writeIntervalMs)")
        }
        if writeRows < 0 { throw ValidationError("--write-rows must be >= 0, not \(writeRows)") }
        if busyTimeoutMs < 1 { throw ValidationError("--busy-timeout-ms must be >= 1, not \(busyTimeoutMs)") }
        if poolIdle < 1 { throw ValidationError("--pool-idle must be >= 1, not \(poolIdle)") }
        if retakeAfterUs < 0 || retakeAfterUs > 10_000_000 {
            throw ValidationError("--retake-after-us must be in 0...10000000, not \(retakeAfterUs)")
        }
    }
}
