import Synchronization

/// A pool of reader connections: a request takes one (opening a new one
/// when none is idle), uses it for its query, and gives it back. The pool
/// never blocks a caller (a wait for a connection would block a thread of
/// the default executor); it grows to the peak number of queries in
/// flight, and keeps at most `maxIdle` idle connections.
///
/// Protocol: the idle list is under a `Mutex` held only for an array
/// push or pop (never across SQLite calls), so it is safe on ConcRT
/// contexts that move between pthreads (no lock is held across a switch).
final class ConnectionPool: Sendable {
    private let idle = Mutex<[Reader]>([])
    private let opened = Atomic<Int>(0)   // relaxed: a statistic
    let maxIdle: Int
    private let make: @Sendable () throws -> Reader

    init(maxIdle: Int, make: @escaping @Sendable () throws -> Reader) {
        precondition(maxIdle >= 1, "ConnectionPool: maxIdle must be at least 1, not \(maxIdle)")
        self.maxIdle = maxIdle
        self.make = make
    }

    /// Connections opened so far.
    var connectionsOpened: Int { opened.load(ordering: .relaxed) }

    /// Runs `body` with a connection of its own.
    func withReader<T>(_ body: (Reader) throws -> T) throws -> T {
        let reader: Reader
        if let r = idle.withLock({ $0.popLast() }) {
            reader = r
        } else {
            reader = try make()
            opened.wrappingAdd(1, ordering: .relaxed)
        }
        defer {
            idle.withLock { list in
                if list.count < maxIdle { list.append(reader) }
            }
        }
        return try body(reader)
    }
}
