import Synchronization
import UMS

/// A mutable box shared with closures. Unsynchronised: share it only
/// between code that runs one at a time (UMS threads of one primary, or
/// with a join or another happens-before edge in between).
public final class Box<T>: @unchecked Sendable {
    public var value: T
    public init(_ v: T) { value = v }
}

/// A flag shared between pthreads (release store, acquire load).
public final class Flag: Sendable {
    private let v = Atomic<Bool>(false)
    public init() {}
    public var isSet: Bool { v.load(ordering: .acquiring) }
    public func set() { v.store(true, ordering: .releasing) }
}

/// A counter shared between pthreads. Relaxed: only totals are read, after
/// a join or a bounded wait.
public final class Counter: Sendable {
    private let v = Atomic<Int>(0)
    public init() {}
    public var value: Int { v.load(ordering: .relaxed) }
    @discardableResult public func add(_ n: Int = 1) -> Int { v.wrappingAdd(n, ordering: .relaxed).newValue }
}

/// Small fast PRNG (xorshift64*), one per task or thread.
public struct TestRNG {
    public var state: UInt64
    public init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
    public mutating func next() -> UInt64 {
        state ^= state >> 12; state ^= state << 25; state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }
    public mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

/// A value shared between pthreads or UMS threads that one side polls while
/// another writes (a `Box` would be a data race there). Every get and set
/// takes UMS's MigrationSafeMutex (acquire/release, safe to use from a UMS
/// thread that migrates), so a reader that sees a new value also sees
/// everything the writer did before setting it.
public final class Locked<T>: @unchecked Sendable {
    // @unchecked Sendable: the value is reached only under `lock`.
    private let lock: MigrationSafeMutex<T>
    public init(_ v: T) { lock = MigrationSafeMutex(v) }
    public var value: T {
        get { lock.withLock { $0 } }
        set { lock.withLock { $0 = newValue } }
    }
}
