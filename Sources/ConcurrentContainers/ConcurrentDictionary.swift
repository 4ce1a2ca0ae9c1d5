// ConcurrentDictionary: a hash map striped over independent shards, each a
// Swift Dictionary under its own migration-safe lock.
//
// Protocol
// --------
// A key's shard is fixed by its hash (the top bits of a mixed hashValue;
// the shard's Dictionary uses the low bits through its own hashing). Every
// operation takes exactly one shard's lock (CSupport's futex lock through
// UMS.MigrationSafeMutex: no thread identity, so a ConcRT context may take
// it on one pthread and, never across a switch, release it there) for the
// duration of one Dictionary operation, and never two locks at once, so
// there is no lock-order deadlock. The lock's acquire/release orders the
// shard's Dictionary; nothing is read outside a lock. `count` and
// `snapshot()` visit the shards one at a time: each shard is seen
// consistently, the whole map is not (entries added or removed meanwhile
// may or may not appear; an entry present throughout appears once).
//
// Why not liburcu's rculfhash (the suggestion, and this type's first
// version): on this 2-core machine it was slower than one mutex around one
// Dictionary (`ums-bench hashmap`: 1,314 ms against 423 ms), most of its
// time in split-ordered chain walks, and its background resize stopped in
// about half the runs of a million concurrent inserts (the table stopped
// growing; cause not found). Striping keeps a lookup to one uncontended lock
// and one open-addressing probe, and it cannot stall.
//
// Progress: blocking, per shard (a lock held for one Dictionary operation,
// no system call unless two threads meet on one shard, then a futex wait).
import CSupport
import UMS

/// A hash map that many threads insert into, look up and iterate at once,
/// with no global lock. Safe from ConcRT contexts, tasks and plain pthreads
/// alike. [ConcRT: `concurrency::concurrent_unordered_map<K, V>` (`insert`,
/// `find`, `at`, iteration)]
///
/// **Progress guarantee:** blocking per shard: each operation holds one of
/// the map's shard locks (there are at least 64, and 16 per CPU) for one
/// Dictionary operation; operations on different shards never wait for
/// each other. ``snapshot()`` and ``forEach(_:)`` visit the shards one at a
/// time and are weakly consistent: every entry present for the whole
/// traversal appears exactly once. Unlike `concurrent_unordered_map`,
/// removal is concurrency-safe.
///
/// `Key`'s `==` and `hash(into:)` run under a shard lock: they must not
/// block or yield.
public final class ConcurrentDictionary<Key: Hashable, Value>: @unchecked Sendable {
    // @unchecked Sendable: every shard's Dictionary is touched only under
    // that shard's lock (see the protocol at the top of the file).

    /// One shard: a lock and its Dictionary, in an object of its own (so
    /// two shards never share a cache line's lock word).
    @usableFromInline
    final class Shard: @unchecked Sendable {
        @usableFromInline let map: MigrationSafeMutex<[Key: Value]>
        init(capacity: Int) { map = MigrationSafeMutex(Dictionary(minimumCapacity: capacity)) }
    }

    @usableFromInline let shards: [Shard]
    @usableFromInline let shift: Int

    /// Creates an empty map with room for about `minimumCapacity` entries
    /// before any shard grows.
    public init(minimumCapacity: Int = 64) {
        precondition(minimumCapacity >= 0, "ConcurrentDictionary: minimumCapacity must be >= 0 (got \(minimumCapacity))")
        let cpus = max(1, Int(csup_affinity_count()))
        var n = 64
        while n < cpus * 16 && n < 4096 { n <<= 1 }
        shift = UInt.bitWidth - n.trailingZeroBitCount
        let per = (minimumCapacity + n - 1) / n
        shards = (0..<n).map { _ in Shard(capacity: per) }
    }

    /// The shard of a key: the top bits of its mixed hash.
    @inlinable
    func shard(_ key: Key) -> Shard {
        var h = UInt(bitPattern: key.hashValue)
        h = (h ^ (h >> 31)) &* 0x9E37_79B9_7F4A_7C15   // spread weak hashes
        return shards[Int(truncatingIfNeeded: h >> UInt(shift))]
    }

    /// The number of entries; exact when nothing runs at the same time.
    /// [concurrent_unordered_map::size]
    public var count: Int {
        shards.reduce(0) { n, s in n + s.map.withLock { $0.count } }
    }

    public var isEmpty: Bool { count == 0 }

    /// The value for `key`, or nil. [concurrent_unordered_map::find]
    @inlinable
    public subscript(key: Key) -> Value? {
        shard(key).map.withLock { $0[key] }
    }

    /// Inserts `value` for `key` if `key` is absent; returns false (and
    /// drops `value`) if it was present. [concurrent_unordered_map::insert]
    @inlinable
    @discardableResult
    public func insert(_ value: consuming Value, forKey key: Key) -> Bool {
        let v = value
        return shard(key).map.withLock { m in
            if m[key] != nil { return false }
            m[key] = v
            return true
        }
    }

    /// Sets the value for `key`, inserting or replacing; returns the old
    /// value, if any. [no concurrency-safe equivalent in concurrent_unordered_map]
    @inlinable
    @discardableResult
    public func updateValue(_ value: consuming Value, forKey key: Key) -> Value? {
        let v = value
        return shard(key).map.withLock { $0.updateValue(v, forKey: key) }
    }

    /// Removes `key`'s entry and returns its value, or nil if absent.
    /// Concurrency-safe. [concurrent_unordered_map::unsafe_erase, made safe]
    @inlinable
    @discardableResult
    public func removeValue(forKey key: Key) -> Value? {
        shard(key).map.withLock { $0.removeValue(forKey: key) }
    }

    /// The entries, copied shard by shard (weakly consistent: see the type's
    /// doc). [iteration of concurrent_unordered_map]
    public func snapshot() -> [(key: Key, value: Value)] {
        var out: [(key: Key, value: Value)] = []
        for s in shards {
            let part: [(key: Key, value: Value)] = s.map.withLock { m in m.map { ($0.key, $0.value) } }
            out += part
        }
        return out
    }

    /// Calls `body` for every entry of a ``snapshot()`` (no lock is held
    /// while `body` runs, so it may block or use this map).
    public func forEach(_ body: ((key: Key, value: Value)) throws -> Void) rethrows {
        for entry in snapshot() { try body(entry) }
    }
}
