import CSQLite3

/// A libsqlite3 failure: the call, its result code and SQLite's message.
struct SQLiteError: Error, CustomStringConvertible {
    let call: String
    let code: Int32
    let message: String
    var description: String { "\(call): \(String(cString: sqlite3_errstr(code))) (\(code)): \(message)" }
}

/// One libsqlite3 connection for the tests, opened in serialized mode
/// (`SQLITE_OPEN_FULLMUTEX`): a task that waits on a runtime event may go
/// on on another pthread, and SQLite allows a serialized connection to be
/// used from any thread. Closed when the last reference goes (the tasks'
/// closures hold it, so no task still uses it then).
final class SQLiteConnection: @unchecked Sendable {
    // @unchecked Sendable: libsqlite3 serializes every call on the handle
    // (SQLITE_OPEN_FULLMUTEX); `db` itself is never reassigned.
    private let db: OpaquePointer

    /// Opens (creating if needed) the database at `path`. `busyTimeoutMs`:
    /// SQLite's own busy handler, which retries a locked database with
    /// plain sleeps (unwrapped blocking) for up to that long.
    init(path: String, busyTimeoutMs: Int32) throws {
        var handle: OpaquePointer?
        let rc = sqlite3_open_v2(path, &handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nil)
        guard rc == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "no handle"
            sqlite3_close_v2(handle)
            throw SQLiteError(call: "sqlite3_open_v2(\(path))", code: rc, message: message)
        }
        db = handle
        try check(sqlite3_busy_timeout(db, busyTimeoutMs), "sqlite3_busy_timeout")
        // No fsync: the tests need locking, not durability, and a commit
        // that waits for a busy disk (a parallel build) took seconds.
        try exec("PRAGMA synchronous=OFF")
    }

    deinit { sqlite3_close_v2(db) }

    /// Runs `sql` (one or more statements, rows ignored).
    func exec(_ sql: String) throws {
        try check(sqlite3_exec(db, sql, nil, nil, nil), "sqlite3_exec(\(sql))")
    }

    /// Prepares one statement and steps it once; returns the step's result
    /// code (SQLITE_DONE, SQLITE_ROW, SQLITE_BUSY, ...) without throwing
    /// for it, so that a caller can report which one it got.
    func stepOnce(_ sql: String) throws -> Int32 {
        let stmt = try prepare(sql)
        defer { sqlite3_finalize(stmt) }
        return sqlite3_step(stmt)
    }

    /// The first column of the first row of `sql`, as an integer.
    func scalarInt(_ sql: String) throws -> Int64 {
        let stmt = try prepare(sql)
        defer { sqlite3_finalize(stmt) }
        let rc = sqlite3_step(stmt)
        guard rc == SQLITE_ROW else {
            throw SQLiteError(call: "sqlite3_step(\(sql))", code: rc, message: String(cString: sqlite3_errmsg(db)))
        }
        return sqlite3_column_int64(stmt, 0)
    }

    /// SQLite's message for the connection's last error.
    var lastMessage: String { String(cString: sqlite3_errmsg(db)) }

    private func prepare(_ sql: String) throws -> OpaquePointer {
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v2(db, sql, -1, &stmt, nil)
        guard rc == SQLITE_OK, let stmt else {
            throw SQLiteError(call: "sqlite3_prepare_v2(\(sql))", code: rc, message: lastMessage)
        }
        return stmt
    }

    private func check(_ rc: Int32, _ call: String) throws {
        guard rc == SQLITE_OK else { throw SQLiteError(call: call, code: rc, message: lastMessage) }
    }
}

/// The name of a SQLite result code, for failure messages.
func sqliteCodeName(_ rc: Int32) -> String { "\(String(cString: sqlite3_errstr(rc))) (\(rc))" }
