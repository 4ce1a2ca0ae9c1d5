import CSQLite
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The background writer: a pthread of its own (the same in both executor
/// modes, outside either executor) that every `interval` takes SQLite's
/// exclusive lock, updates some rows, holds the lock for `hold` in all,
/// and commits.
///
/// Why `BEGIN EXCLUSIVE` and not `BEGIN IMMEDIATE`: in rollback-journal
/// mode an IMMEDIATE transaction takes only the RESERVED lock, which
/// readers ignore until the commit; EXCLUSIVE takes the lock readers wait
/// for, so for `hold` every reader's first `sqlite3_step` sleeps in the
/// busy handler installed by `sqlite3_busy_timeout`.
///
/// Stop protocol: `stop` is an atomic flag (relaxed: it only ends the
/// loop; `join` orders everything the thread did before `stop()` returns).
final class Writer: @unchecked Sendable {
    // @unchecked Sendable: `thread` is written by start() and read by
    // stop() on the same thread of the caller; the rest is atomic or
    // immutable.
    let path: String
    let interval: Duration
    let hold: Duration
    let rowsPerCommit: Int
    let rows: Int
    private let stopFlag = Atomic<Bool>(false)
    private let commitCount = Atomic<Int>(0)
    private let failure = Mutex<String?>(nil)
    private var thread: pthread_t?

    /// How long the writer waits before its first transaction (writers of
    /// different shards are staggered over the interval).
    let phase: Duration

    init(path: String, rows: Int, interval: Duration, hold: Duration, rowsPerCommit: Int, phase: Duration = .zero) {
        precondition(hold < interval, "Writer: the hold (\(hold)) must be shorter than the interval (\(interval))")
        self.path = path
        self.rows = rows
        self.interval = interval
        self.hold = hold
        self.rowsPerCommit = rowsPerCommit
        self.phase = phase
    }

    var commits: Int { commitCount.load(ordering: .relaxed) }
    var error: String? { failure.withLock { $0 } }

    func start() {
        let box = Unmanaged.passRetained(self).toOpaque()
        var t = pthread_t()
        let rc = pthread_create(&t, nil, { arg in
            let w = Unmanaged<Writer>.fromOpaque(arg!).takeRetainedValue()
            w.loop()
            return nil
        }, box)
        precondition(rc == 0, "Writer: pthread_create failed (\(rc))")
        thread = t
    }

    func stop() {
        stopFlag.store(true, ordering: .relaxed)
        if let t = thread { pthread_join(t, nil) }
        thread = nil
    }

    private func loop() {
        do {
            let c = try Connection(path: path, busyTimeoutMilliseconds: 10_000, stepMode: .plain)
            let update = try c.prepare("UPDATE items SET val = ?2 WHERE id = ?1")
            var rng = SystemRandomNumberGenerator()
            if phase > .zero { Self.sleep(phase) }
            while !stopFlag.load(ordering: .relaxed) {
                Self.sleep(interval - hold)
                let start = ContinuousClock.now
                try c.exec("BEGIN EXCLUSIVE")
                for _ in 0..<rowsPerCommit {
                    try update.bind(1, Int64.random(in: 1...Int64(rows), using: &rng))
                    try update.bind(2, Int64.random(in: 0..<Database.valueSpace, using: &rng))
                    _ = try update.step()
                    update.reset()
                }
                let left = hold - (ContinuousClock.now - start)
                if left > .zero { Self.sleep(left) }
                try c.exec("COMMIT")
                commitCount.wrappingAdd(1, ordering: .relaxed)
            }
        } catch {
            failure.withLock { $0 = "\(error)" }
            Output.warn("writer: \(error)")
        }
    }

    private static func sleep(_ d: Duration) {
        let (s, atto) = d.components
        var ts = timespec(tv_sec: Int(s), tv_nsec: Int(atto / 1_000_000_000))
        var left = timespec()
        while nanosleep(&ts, &left) != 0 && errno == EINTR { ts = left }
    }
}
