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
/// API shape (shared with ``ReaderWriterLock``):
/// - ``lock()`` and ``unlock()`` do not throw. Misuse is a programming
///   error and traps with a message naming it: the owner locking again
///   (ConcRT's `improper_lock`), unlocking a lock the caller does not hold
///   (`improper_lock` on unlock in ConcRT).
/// - ``tryLock()`` returns false when the lock is held, by anyone,
///   including the caller itself (it does not trap: "not taken" is the
///   answer to "may I take it now").
/// - ``withLock(_:)`` throws exactly what its body throws.
///
/// The owner is the caller: a context (its id), or a plain pthread (its
/// thread id); a context keeps ownership across migrations between
/// virtual processors.
public final class CriticalSection: @unchecked Sendable {
    // @unchecked Sendable: all state under `state`'s mutex.
    private struct State {
        var owner = 0                     // 0: free
        var queue: [(Waiter, Int)] = []   // (waiter, its token)
        var head = 0
    }
    private let state = MigrationSafeMutex<State>(State())

    public init() {}

    /// Takes the lock, blocking the context (or the pthread, outside a
    /// context) while another owner holds it. [critical_section::lock]
    ///
    /// Precondition: the caller does not hold it (the lock is not
    /// reentrant; re-entry would deadlock, so it traps instead).
    public func lock() {
        let me = callerToken()
        let waiter: Waiter? = state.withLock { s -> Waiter? in
            if s.owner == 0 { s.owner = me; return nil }
            precondition(s.owner != me, "CriticalSection.lock: the owner locked it again (critical_section is not reentrant) [improper_lock]")
            let w = Waiter()
            s.queue.append((w, me))
            return w
        }
        // Ownership is handed over by unlock() before the wake.
        waiter?.park(.criticalSection, self)
    }

    /// Takes the lock if it is free, without waiting.
    /// [critical_section::try_lock]
    ///
    /// - Returns: true when the caller now owns it; false when anyone holds
    ///   it, the caller included (no re-entry, no trap).
    public func tryLock() -> Bool {
        let me = callerToken()
        return state.withLock { s -> Bool in
            if s.owner == 0 { s.owner = me; return true }
            return false
        }
    }

    /// Releases the lock, handing it to the oldest waiter.
    /// [critical_section::unlock]
    ///
    /// Precondition: the caller holds it.
    public func unlock() {
        let me = callerToken()
        let next: Waiter? = state.withLock { s -> Waiter? in
            precondition(s.owner != 0, "CriticalSection.unlock: the lock is not held [improper_unlock]")
            precondition(s.owner == me, "CriticalSection.unlock: the lock is held by another context or thread [improper_unlock]")
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

    /// Runs `body` holding the lock, and releases it however `body` ends.
    /// Throws exactly what `body` throws. [critical_section::scoped_lock]
    public func withLock<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        lock()
        defer { unlock() }
        return try body()
    }
}

/// A reader-writer lock with writer preference: once a writer waits, new
/// readers wait behind it. Blocks contexts, not threads.
/// [concurrency::reader_writer_lock]
///
/// Same API shape as ``CriticalSection``: ``lock()``, ``lockRead()`` and
/// ``unlock()`` do not throw and trap on misuse, naming it; ``tryLock()``
/// and ``tryLockRead()`` return false when they would wait;
/// ``withWriteLock(_:)`` and ``withReadLock(_:)`` throw exactly what their
/// body throws. Readers are not tracked by identity, so a reader that
/// takes a read lock again while a writer waits deadlocks (as in ConcRT):
/// do not nest read locks.
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
    ///
    /// Precondition: the caller is not the writer already.
    public func lock() {
        let me = callerToken()
        let w: Waiter? = state.withLock { s -> Waiter? in
            precondition(s.writer != me, "ReaderWriterLock.lock: the writer locked it again (reader_writer_lock is not reentrant) [improper_lock]")
            if s.writer == 0 && s.readers == 0 { s.writer = me; return nil }
            let w = Waiter()
            s.waitingWriters.append((w, me))
            return w
        }
        w?.park(.readerWriterLock, self)
    }

    /// Takes the lock for writing if nobody holds it, without waiting.
    /// [reader_writer_lock::try_lock]
    ///
    /// - Returns: false when readers or a writer (the caller included) hold it.
    public func tryLock() -> Bool {
        let me = callerToken()
        return state.withLock { s -> Bool in
            if s.writer == 0 && s.readers == 0 { s.writer = me; return true }
            return false
        }
    }

    /// Takes the lock for reading. [reader_writer_lock::lock_read]
    ///
    /// Precondition: the caller is not the writer (it would wait for
    /// itself).
    public func lockRead() {
        let me = callerToken()
        let w: Waiter? = state.withLock { s -> Waiter? in
            precondition(s.writer != me, "ReaderWriterLock.lockRead: the writer asked for a read lock (it would wait for itself) [improper_lock]")
            if s.writer == 0 && s.waitingWriters.isEmpty { s.readers += 1; return nil }
            let w = Waiter()
            s.waitingReaders.append(w)
            return w
        }
        w?.park(.readerWriterLock, self)
    }

    /// Takes the lock for reading if no writer holds it or waits for it,
    /// without waiting. [reader_writer_lock::try_lock_read]
    public func tryLockRead() -> Bool {
        state.withLock { s -> Bool in
            if s.writer == 0 && s.waitingWriters.isEmpty { s.readers += 1; return true }
            return false
        }
    }

    /// Releases a read or write hold. [reader_writer_lock::unlock]
    ///
    /// Precondition: the caller holds it (as the writer, or as one of the
    /// readers; readers are not tracked by identity).
    public func unlock() {
        let me = callerToken()
        let wake: [Waiter] = state.withLock { s -> [Waiter] in
            if s.writer != 0 {
                precondition(s.writer == me, "ReaderWriterLock.unlock: the lock is held by another writer [improper_unlock]")
                s.writer = 0
            } else {
                precondition(s.readers > 0, "ReaderWriterLock.unlock: the lock is not held [improper_unlock]")
                s.readers -= 1
                if s.readers > 0 { return [] }
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

    /// Runs `body` holding the write lock; throws exactly what `body`
    /// throws. [reader_writer_lock::scoped_lock]
    public func withWriteLock<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        lock()
        defer { unlock() }
        return try body()
    }

    /// Runs `body` holding a read lock; throws exactly what `body` throws.
    /// [reader_writer_lock::scoped_lock_read]
    public func withReadLock<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        lockRead()
        defer { unlock() }
        return try body()
    }
}
