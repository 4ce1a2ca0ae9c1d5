import CSupport

/// A mutex for code that runs on UMS threads (and so on any scheduler
/// built on them): its lock word records no thread identity, so it stays
/// correct when the code that uses it migrates between pthreads.
/// [no UMS equivalent; like an SRWLOCK in exclusive mode]
///
/// Why not `Synchronization.Mutex`: on Linux it stores the owner's thread
/// id (a priority-inheritance futex), read through a C thread-local that is
/// inlined into the caller. A UMS thread that blocks can resume on another
/// pthread, and in release builds the optimizer may keep that
/// thread-local's address across the blocking call (for example, a loop
/// that takes a `Mutex` and runs work that blocks). After a migration the
/// `Mutex` then names the wrong pthread and traps ("Recursive call to lock
/// Mutex", "Call to unlock Mutex on a thread which hasn't acquired the
/// lock"). This mutex uses a plain three-state futex word (CSupport's
/// `csup_lock`), out of line, with no thread identity.
///
/// Never hold it across a blocking call or a yield: a contended lock spins
/// briefly, then sleeps the whole pthread (the primary, and with it every
/// UMS thread it would run). For waits that should suspend only the UMS
/// thread, use a lock of the scheduler built on UMS that parks the waiting
/// thread and returns its primary to the scheduler.
public struct MigrationSafeMutex<Value: ~Copyable>: ~Copyable, @unchecked Sendable {
    // @unchecked Sendable: `value` is reached only between acquire and
    // release of `word` (acquire/release ordering in csup_lock.c).
    private let word: UnsafeMutablePointer<UInt32>
    private let value: UnsafeMutablePointer<Value>

    public init(_ initial: consuming Value) {
        word = .allocate(capacity: 1)
        word.initialize(to: 0)
        value = .allocate(capacity: 1)
        value.initialize(to: initial)
    }

    deinit {
        value.deinitialize(count: 1)
        value.deallocate()
        word.deallocate()
    }

    /// Runs `body` with exclusive access to the value.
    @inline(__always)
    public borrowing func withLock<Result: ~Copyable, E: Error>(
        _ body: (inout Value) throws(E) -> Result
    ) throws(E) -> Result {
        csup_lock_acquire(word)
        defer { csup_lock_release(word) }
        return try body(&value.pointee)
    }
}
