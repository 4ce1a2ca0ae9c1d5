import ConcRT
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Per-virtual-processor values, combined at the end. [combinable<T>]
///
/// Each virtual processor gets its own local value, created on first use
/// by the initializer, so a hot loop touches no shared memory. Callers
/// outside any scheduler get one value per pthread.
///
/// `withLocal`'s body must not block (cooperatively or in the kernel):
/// another context could then run on the same virtual processor and use
/// the same local value.
public final class Combinable<T>: @unchecked Sendable {
    // @unchecked Sendable: slot i belongs to the running VP with global
    // index i (one context at a time, see above); slots are published with
    // a CAS; the thread map is under a mutex.
    private final class Slot { var value: T; init(_ v: T) { value = v } }
    private static var capacity: Int { 1024 }
    private let slots: UnsafeMutablePointer<Atomic<UnsafeMutableRawPointer?>>
    private let threadSlots = MigrationSafeMutex<[Int: Slot]>([:])
    private let initializer: @Sendable () -> T

    /// [combinable::combinable(init)]
    public init(_ initializer: @escaping @Sendable () -> T) {
        self.initializer = initializer
        slots = .allocate(capacity: Self.capacity)
        for i in 0..<Self.capacity { (slots + i).initialize(to: Atomic(nil)) }
    }

    deinit {
        for i in 0..<Self.capacity {
            if let p = slots[i].load(ordering: .acquiring) { Unmanaged<Slot>.fromOpaque(p).release() }
        }
        slots.deinitialize(count: Self.capacity)
        slots.deallocate()
    }

    private func slot() -> Slot {
        if let i = Context.currentWorkerSlot {
            if i >= 0 && i < Self.capacity {
                if let p = slots[i].load(ordering: .acquiring) {
                    return Unmanaged<Slot>.fromOpaque(p).takeUnretainedValue()
                }
                let s = Slot(initializer())
                let p = Unmanaged.passRetained(s).toOpaque()
                let (won, existing) = slots[i].compareExchange(expected: nil, desired: p, ordering: .acquiringAndReleasing)
                if won { return s }
                Unmanaged<Slot>.fromOpaque(p).release()
                return Unmanaged<Slot>.fromOpaque(existing!).takeUnretainedValue()
            }
        }
        // Off a context (or past `capacity` VPs): one value per pthread.
        // A pthread_t is reused only after its thread has exited, so a
        // reused key never gives one value to two live threads.
        let key = Int(bitPattern: UInt(pthread_self()))
        return threadSlots.withLock { m in
            if let s = m[key] { return s }
            let s = Slot(initializer())
            m[key] = s
            return s
        }
    }

    /// Gives `body` this virtual processor's value. [combinable::local]
    public func withLocal<R>(_ body: (inout T) throws -> R) rethrows -> R {
        try body(&slot().value)
    }

    /// Folds every local value with `f` (left to right in slot order); the
    /// initializer's value when none exists. [combinable::combine]
    public func combine(_ f: (T, T) throws -> T) rethrows -> T {
        var acc: T?
        try combineEach { v in acc = try acc.map { try f($0, v) } ?? v }
        return acc ?? initializer()
    }

    /// Calls `f` with every local value. [combinable::combine_each]
    public func combineEach(_ f: (T) throws -> Void) rethrows {
        for i in 0..<Self.capacity {
            if let p = slots[i].load(ordering: .acquiring) { try f(Unmanaged<Slot>.fromOpaque(p).takeUnretainedValue().value) }
        }
        for s in threadSlots.withLock({ Array($0.values) }) { try f(s.value) }
    }

    /// Drops every local value. Not concurrent with users. [combinable::clear]
    public func clear() {
        for i in 0..<Self.capacity {
            if let p = slots[i].exchange(nil, ordering: .acquiringAndReleasing) { Unmanaged<Slot>.fromOpaque(p).release() }
        }
        threadSlots.withLock { $0.removeAll() }
    }
}
