import CSupport
import Synchronization
import UMS

/// Who is calling: a context (its id) or a plain pthread (minus its tid).
@inline(__always)
func callerToken() -> Int {
    if let c = Context.currentInternal { return c.id }
    return -Int(csup_gettid())
}

/// A non-reentrant mutual-exclusion lock that blocks the waiting context,
/// not its thread. Waiters are served in FIFO order and ownership is handed
/// to the next waiter directly (no barging). [concurrency::critical_section]
///
/// Re-entry by the owner and unlock by a non-owner are reported as
/// ``ConcRTError/improperLock(_:)`` / ``ConcRTError/improperUnlock(_:)``.
public final class CriticalSection: @unchecked Sendable {
    // @unchecked Sendable: all state under `state`'s mutex.
    private struct State {
        var owner = 0                     // 0: free
        var queue: [(Waiter, Int)] = []   // (waiter, its token)
        var head = 0
    }
    private let state = MigrationSafeMutex<State>(State())

    public init() {}

    /// Takes the lock, blocking the context while another owner holds it.
    /// [critical_section::lock]
    public func lock() throws(ConcRTError) {
        let me = callerToken()
        let waiter: Waiter? = try state.withLock { (s) throws(ConcRTError) -> Waiter? in
            if s.owner == 0 { s.owner = me; return nil }
            if s.owner == me { throw .improperLock("critical_section is not reentrant: the owner tried to lock it again") }
            let w = Waiter()
            s.queue.append((w, me))
            return w
        }
        // Ownership is handed over by unlock() before the wake.
        waiter?.park()
    }

    /// Takes the lock if it is free. [critical_section::try_lock]
    public func tryLock() throws(ConcRTError) -> Bool {
        let me = callerToken()
        return try state.withLock { (s) throws(ConcRTError) -> Bool in
            if s.owner == 0 { s.owner = me; return true }
            if s.owner == me { throw .improperLock("critical_section is not reentrant: the owner tried to lock it again") }
            return false
        }
    }

    /// Releases the lock, handing it to the oldest waiter. [critical_section::unlock]
    public func unlock() throws(ConcRTError) {
        let me = callerToken()
        let next: Waiter? = try state.withLock { (s) throws(ConcRTError) -> Waiter? in
            guard s.owner == me else {
                throw .improperUnlock(s.owner == 0 ? "critical_section is not locked" : "critical_section is held by another context")
            }
            if s.head < s.queue.count {
                let (w, token) = s.queue[s.head]
                s.head += 1
                if s.head > 64 && s.head * 2 > s.queue.count { s.queue.removeFirst(s.head); s.head = 0 }
                s.owner = token
                return w
            }
            s.owner = 0
            s.queue.removeAll(keepingCapacity: true)
            s.head = 0
            return nil
        }
        if let next, next.claim() { next.wake(result: 0) }
    }

    /// Runs `body` holding the lock. [critical_section::scoped_lock]
    public func withLock<T, E: Error>(_ body: () throws(E) -> T) throws -> T {
        try lock()
        defer { try? unlock() }
        return try body()
    }
}

/// A reader-writer lock with writer preference: once a writer waits, new
/// readers wait behind it. Blocks contexts, not threads.
/// [concurrency::reader_writer_lock]
public final class ReaderWriterLock: @unchecked Sendable {
    // @unchecked Sendable: all state under `state`'s mutex.
    private struct State {
        var readers = 0
        var writer = 0                        // token of the writer, 0: none
        var waitingWriters: [(Waiter, Int)] = []
        var waitingReaders: [Waiter] = []
    }
    private let state = MigrationSafeMutex<State>(State())

    public init() {}

    /// Takes the lock for writing. [reader_writer_lock::lock]
    public func lock() throws(ConcRTError) {
        let me = callerToken()
        let w: Waiter? = try state.withLock { (s) throws(ConcRTError) -> Waiter? in
            if s.writer == me { throw .improperLock("reader_writer_lock: the writer tried to lock it again") }
            if s.writer == 0 && s.readers == 0 { s.writer = me; return nil }
            let w = Waiter()
            s.waitingWriters.append((w, me))
            return w
        }
        w?.park()
    }

    /// Takes the lock for reading. [reader_writer_lock::lock_read]
    public func lockRead() {
        let w: Waiter? = state.withLock { s -> Waiter? in
            if s.writer == 0 && s.waitingWriters.isEmpty { s.readers += 1; return nil }
            let w = Waiter()
            s.waitingReaders.append(w)
            return w
        }
        w?.park()
    }

    /// Releases a read or write hold. [reader_writer_lock::unlock]
    public func unlock() throws(ConcRTError) {
        let me = callerToken()
        let wake: [Waiter] = try state.withLock { (s) throws(ConcRTError) -> [Waiter] in
            if s.writer != 0 {
                guard s.writer == me else { throw .improperUnlock("reader_writer_lock is held by another writer") }
                s.writer = 0
            } else if s.readers > 0 {
                s.readers -= 1
                if s.readers > 0 { return [] }
            } else {
                throw .improperUnlock("reader_writer_lock is not locked")
            }
            // Writer preference: the next writer first, else every reader.
            if !s.waitingWriters.isEmpty {
                let (w, token) = s.waitingWriters.removeFirst()
                s.writer = token
                return [w]
            }
            let readers = s.waitingReaders
            s.waitingReaders.removeAll()
            s.readers += readers.count
            return readers
        }
        for w in wake where w.claim() { w.wake(result: 0) }
    }

    public func withWriteLock<T, E: Error>(_ body: () throws(E) -> T) throws -> T {
        try lock()
        defer { try? unlock() }
        return try body()
    }

    public func withReadLock<T, E: Error>(_ body: () throws(E) -> T) throws -> T {
        lockRead()
        defer { try? unlock() }
        return try body()
    }
}
