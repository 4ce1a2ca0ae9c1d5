import ConcRT
import CSQLite
#if canImport(Glibc)
import Glibc
#endif

/// The example's database: one table, `items`, seeded at start-up, with no
/// index on `val`, so a range query on `val` is a full-table scan.
enum Database {
    /// Values of `val` are uniform in `0..<valueSpace`.
    static let valueSpace: Int64 = 1_000_000
    /// Rows a range query matches, on average.
    static let rowsPerQuery: Int64 = 16

    static let schema = """
        CREATE TABLE items(id INTEGER PRIMARY KEY, val INTEGER NOT NULL, name TEXT NOT NULL);
        """

    /// Creates `path` afresh (removing an old file and its journal) and
    /// inserts `rows` rows in one transaction.
    static func create(path: String, rows: Int) throws {
        unlink(path)
        unlink(path + "-journal")
        let c = try Connection(path: path, create: true, busyTimeoutMilliseconds: 10_000, stepMode: .plain)
        // Rollback journal (the default; said here because it matters), not
        // WAL: a reader must wait while the writer holds its exclusive lock.
        try c.exec("PRAGMA journal_mode=DELETE")
        try c.exec(schema)
        try c.exec("BEGIN")
        let insert = try c.prepare("INSERT INTO items(id, val, name) VALUES (?1, ?2, printf('item-%08d-%s', ?1, hex(randomblob(12))))")
        var rng = SystemRandomNumberGenerator()
        for id in 1...Int64(rows) {
            try insert.bind(1, id)
            try insert.bind(2, Int64.random(in: 0..<valueSpace, using: &rng))
            _ = try insert.step()
            insert.reset()
        }
        try c.exec("COMMIT")
    }

    /// Half-width of the `val` range so that a query matches about
    /// ``rowsPerQuery`` of `rows` rows.
    static func rangeWidth(rows: Int) -> Int64 {
        max(1, valueSpace * rowsPerQuery / Int64(max(rows, 1)))
    }
}

/// What one range query found.
struct RangeResult: Sendable {
    var lo: Int64
    var hi: Int64
    var rows = 0
    var sum: Int64 = 0
    var firstID: Int64 = -1

    var json: String {
        #"{"lo":\#(lo),"hi":\#(hi),"rows":\#(rows),"sum":\#(sum),"first":\#(firstID)}"#
    }
}

/// A pooled reader: a connection and its prepared range query.
final class Reader: @unchecked Sendable {
    // @unchecked Sendable: used by one task at a time (see ConnectionPool).
    let connection: Connection
    private let range: Statement

    /// Opens a reader. Under ``StepMode/blocking`` the whole open (open,
    /// schema read, prepare) is one `Blocking.call`: the schema read takes
    /// the shared lock and may sleep in the busy handler while the writer
    /// holds its exclusive lock. Left unwrapped, that sleep held a virtual
    /// processor, and with both VPs asleep there the readers holding shared
    /// locks could not run to release them: the writer waited its whole
    /// busy timeout.
    static func open(path: String, busyTimeoutMilliseconds: Int32, stepMode: StepMode) throws -> Reader {
        switch stepMode {
        case .plain:
            return try Reader(path: path, busyTimeoutMilliseconds: busyTimeoutMilliseconds, stepMode: stepMode)
        case .blocking:
            return try Blocking.call { () throws -> Reader in
                try Reader(path: path, busyTimeoutMilliseconds: busyTimeoutMilliseconds, stepMode: stepMode)
            }
        }
    }

    private init(path: String, busyTimeoutMilliseconds: Int32, stepMode: StepMode) throws {
        connection = try Connection(path: path, busyTimeoutMilliseconds: busyTimeoutMilliseconds, stepMode: stepMode)
        // No index on `val`: every query scans the whole table.
        range = try connection.prepare("SELECT id, val FROM items WHERE val BETWEEN ?1 AND ?2")
    }

    /// The rows with `lo <= val <= hi`: one `sqlite3_step` per row, plus
    /// the last; the first step takes the shared lock (waiting in SQLite's
    /// busy handler while the writer holds its exclusive lock).
    func query(lo: Int64, hi: Int64) throws -> RangeResult {
        defer { range.reset() }
        try range.bind(1, lo)
        try range.bind(2, hi)
        var r = RangeResult(lo: lo, hi: hi)
        while try range.step() {
            if r.rows == 0 { r.firstID = range.int64(0) }
            r.rows += 1
            r.sum &+= range.int64(1)
        }
        return r
    }
}
