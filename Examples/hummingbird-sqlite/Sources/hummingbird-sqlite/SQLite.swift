import CSQLite
import ConcRT

/// A failed libsqlite3 call: which call, its result code and message.
struct SQLiteError: Error, CustomStringConvertible {
    let call: String
    let code: Int32
    let message: String
    var description: String { "\(call): SQLite error \(code): \(message)" }
}

/// How `sqlite3_step` is made.
enum StepMode: Sendable {
    /// A plain C call (the default executor: the thread just blocks).
    case plain
    /// Inside `Blocking.call { }`: on a ConcRT context the call is a
    /// blocking call of the runtime (lazy kernel entry on a plain task, a
    /// hand-off to a pooled kernel thread inside a pinned Swift job), so a
    /// step that sleeps in SQLite's busy handler never holds a virtual
    /// processor.
    case blocking
}

/// One libsqlite3 connection (`sqlite3*`), used by one task at a time.
///
/// Opened with `SQLITE_OPEN_NOMUTEX` (multi-thread mode): the connection
/// pool hands a connection to one task at a time, and SQLite allows a
/// connection to be used from different pthreads one after the other,
/// which is what happens when a ConcRT context resumes on another pthread.
final class Connection: @unchecked Sendable {
    // @unchecked Sendable: the pool gives the connection to one task at a
    // time (its mutex orders the hand-over), so `db` is never used
    // concurrently.
    let db: OpaquePointer
    let stepMode: StepMode

    /// Opens (creating if asked) `path` in rollback-journal mode with a
    /// sleeping busy handler of `busyTimeoutMilliseconds`.
    ///
    /// Under ``StepMode/blocking`` the caller wraps this in `Blocking.call`
    /// (see `Reader.open`): preparing the first statement reads the schema,
    /// which takes the shared lock and can sleep in the busy handler too.
    init(path: String, create: Bool = false, busyTimeoutMilliseconds: Int32, stepMode: StepMode) throws {
        var handle: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0)
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        guard rc == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close_v2(handle)
            throw SQLiteError(call: "sqlite3_open_v2(\(path))", code: rc, message: message)
        }
        db = handle
        self.stepMode = stepMode
        // sqlite3_busy_timeout installs SQLite's own busy handler, which
        // sleeps (usleep: 1, 2, 5, 10, ... ms) inside sqlite3_step while
        // another connection holds a conflicting lock.
        sqlite3_busy_timeout(db, busyTimeoutMilliseconds)
    }

    deinit { sqlite3_close_v2(db) }

    /// Runs SQL with no result rows (plain calls: set-up and the writer).
    func exec(_ sql: String) throws {
        var err: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(db, sql, nil, nil, &err)
        if rc != SQLITE_OK {
            let message = err.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(db))
            sqlite3_free(err)
            throw SQLiteError(call: "sqlite3_exec(\(sql))", code: rc, message: message)
        }
    }

    /// Compiles one statement.
    func prepare(_ sql: String) throws -> Statement {
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v2(db, sql, -1, &stmt, nil)
        guard rc == SQLITE_OK, let stmt else {
            throw SQLiteError(call: "sqlite3_prepare_v2(\(sql))", code: rc, message: String(cString: sqlite3_errmsg(db)))
        }
        return Statement(stmt: stmt, connection: self)
    }

    func error(_ call: String, _ rc: Int32) -> SQLiteError {
        SQLiteError(call: call, code: rc, message: String(cString: sqlite3_errmsg(db)))
    }
}

/// A prepared statement of one ``Connection`` (cached by its owner).
final class Statement {
    let stmt: OpaquePointer
    unowned let connection: Connection

    init(stmt: OpaquePointer, connection: Connection) {
        self.stmt = stmt
        self.connection = connection
    }

    deinit { sqlite3_finalize(stmt) }

    func bind(_ index: Int32, _ value: Int64) throws {
        let rc = sqlite3_bind_int64(stmt, index, value)
        if rc != SQLITE_OK { throw connection.error("sqlite3_bind_int64", rc) }
    }

    /// One `sqlite3_step`: returns true for a row, false when done.
    /// The call is where SQLite scans pages (pread(2) on a cache miss) and
    /// where its busy handler sleeps while the writer holds the lock.
    func step() throws -> Bool {
        let rc: Int32
        switch connection.stepMode {
        case .plain:
            rc = sqlite3_step(stmt)
        case .blocking:
            // A ConcRT blocking call; `stmt` is only touched by this task.
            rc = Blocking.call { sqlite3_step(stmt) }
        }
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw connection.error("sqlite3_step", rc)
        }
    }

    /// Makes the statement reusable (releases its read lock).
    func reset() {
        sqlite3_reset(stmt)
        sqlite3_clear_bindings(stmt)
    }

    func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(stmt, column) }
}
