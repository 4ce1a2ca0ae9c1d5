// ConcurrentDictionary: a hash map on liburcu's RCU lock-free resizable hash
// table (rculfhash: split-ordered lists, resized in the background), on the
// bulletproof RCU flavor (urcu-bp; see Sources/CURCUCDS/shim.h).
//
// Protocol
// --------
// Each entry is one node (DictionaryNode.swift): the table's link, an RCU
// callback head, then the Key and the Value, initialized before the node is
// published and never written again (an update replaces the whole node).
// Every table operation runs inside an RCU read-side critical section
// (ccds_read_lock/unlock) that opens and closes inside one call of ours and
// encloses no blocking, yielding or context switch: only the table's own
// code, the Key's `==` (through the match callback) and copies of the Key
// and Value. So the section begins and ends on the same pthread even for a
// ConcRT context that migrates between pthreads across blocking calls.
// urcu-bp registers each pthread as a reader on its first section; nothing
// else is per thread. (Key's `==` and `hash(into:)` must not block or
// yield, which holds for every ordinary Hashable type.)
//
// Ordering: rculfhash publishes a node with a release store (cmpxchg) in
// add_unique / add_replace, and lookups read links with rcu_dereference
// (dependency ordering), so a reader that finds a node sees its Key and
// Value initialized. `storedCount` is a relaxed counter (approximate).
//
// Reclamation: a removed or replaced node is unlinked (cds_lfht_del /
// add_replace) and handed to call_rcu; liburcu's call_rcu thread destroys
// its Key and Value and frees it after a grace period, i.e. once every
// read-side section that could still see it has ended, so a reader that
// found the node may copy its Value until the end of its section. The
// callback reaches the node's types through a reclaimer object that the
// node retains while the callback is pending. deinit (no other reference
// exists) unlinks every node, destroys the table (which waits for a
// resize in progress) and frees the nodes at once.
//
// Progress: lookups are wait-free apart from the Key's `==` (a read-side
// section is a few plain stores on the reader's own counter); insert,
// update and remove are lock-free (CAS loops on the split-ordered list);
// resizing runs on liburcu's worker thread and never blocks an operation.
// deinit may block its pthread for a grace period.
import CURCUCDS
import Synchronization

/// A hash map that many threads insert into, look up and iterate at once,
/// with no global lock. Safe from ConcRT contexts, tasks and plain pthreads
/// alike. [ConcRT: `concurrency::concurrent_unordered_map<K, V>` (`insert`,
/// `find`, `at`, iteration); liburcu `cds_lfht`]
///
/// **Progress guarantee:** lookup (``subscript(_:)``) is wait-free (apart
/// from the Key's `==`); ``insert(_:forKey:)``, ``updateValue(_:forKey:)``
/// and ``removeValue(forKey:)`` are lock-free; ``snapshot()`` is lock-free
/// and weakly consistent: every entry present for the whole traversal
/// appears exactly once, entries added or removed meanwhile may or may not.
/// Unlike `concurrent_unordered_map`, removal is concurrency-safe: removed
/// entries are destroyed after an RCU grace period (see the protocol at the
/// top of ConcurrentDictionary.swift).
///
/// `Key`'s `==` and `hash(into:)` must not block or yield (they run inside
/// an RCU read-side critical section).
///
/// Known issue: with a million concurrent inserts, rculfhash's background
/// resize has been seen to stop (the table stops growing and inserts slow
/// to a chain walk); see the README's "Concurrent containers" section.
public final class ConcurrentDictionary<Key: Hashable, Value> {
    @usableFromInline let table: OpaquePointer
    @usableFromInline let storedCount = Atomic<Int>(0)
    @usableFromInline let reclaimer: NodeReclaimer

    /// Creates an empty dictionary. `minimumCapacity` sizes the initial
    /// bucket array (rounded up to a power of two); the table grows and
    /// shrinks by itself.
    public init(minimumCapacity: Int = 64) {
        precondition(minimumCapacity >= 0, "ConcurrentDictionary: minimumCapacity must be >= 0 (got \(minimumCapacity))")
        var buckets: UInt = 1
        while buckets < UInt(minimumCapacity) { buckets <<= 1 }
        guard let t = ccds_lfht_new(buckets, 1, 0, Int32(CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING)) else {
            fatalError("ConcurrentDictionary: cds_lfht_new failed (out of memory or no resize thread)")
        }
        table = t
        reclaimer = TypedNodeReclaimer<Key, Value>()
    }

    deinit {
        var nodes: [UnsafeMutableRawPointer] = []
        nodes.reserveCapacity(storedCount.load(ordering: .relaxed))
        ccds_read_lock()
        var iter = cds_lfht_iter()
        cds_lfht_first(table, &iter)
        while let node = cds_lfht_iter_get_node(&iter) {
            let r = cds_lfht_del(table, node)
            assert(r == 0, "ConcurrentDictionary.deinit: a node vanished while no one else holds the dictionary")
            nodes.append(UnsafeMutableRawPointer(node))
            cds_lfht_next(table, &iter)
        }
        ccds_read_unlock()
        let r = cds_lfht_destroy(table, nil)
        precondition(r == 0, "ConcurrentDictionary.deinit: cds_lfht_destroy failed (\(r))")
        // Why this is sound: the table is gone and no reader exists (no
        // reference to the dictionary is left), so no one can reach them.
        for node in nodes { DictionaryNode<Key, Value>.destroy(node) }
    }

    /// The number of entries; exact when nothing runs at the same time.
    /// [concurrent_unordered_map::size]
    @inlinable
    public var count: Int { storedCount.load(ordering: .relaxed) }

    @inlinable
    public var isEmpty: Bool { count == 0 }

    /// The value for `key`, or nil. [concurrent_unordered_map::find]
    @inlinable
    public subscript(key: Key) -> Value? {
        let hash = UInt(bitPattern: key.hashValue)
        return withUnsafePointer(to: key) { kp in
            withMatchContext(kp) { ctx in
                ccds_read_lock()
                defer { ccds_read_unlock() }
                var iter = cds_lfht_iter()
                cds_lfht_lookup(table, hash, dictionaryMatch, ctx, &iter)
                guard let node = cds_lfht_iter_get_node(&iter) else { return nil }
                // Why this is sound: the node stays allocated until our
                // section ends (reclamation waits a grace period); its Value
                // is never written after publication.
                return DictionaryNode<Key, Value>.value(UnsafeMutableRawPointer(node)).pointee
            }
        }
    }

    /// Inserts `value` for `key` if `key` is absent; returns false (and
    /// drops `value`) if it was present. [concurrent_unordered_map::insert]
    @inlinable
    @discardableResult
    public func insert(_ value: consuming Value, forKey key: Key) -> Bool {
        let hash = UInt(bitPattern: key.hashValue)
        let node = DictionaryNode<Key, Value>.allocate(key: key, value: value)
        let winner = withMatchContext(DictionaryNode<Key, Value>.key(node)) { ctx in
            ccds_read_lock()
            defer { ccds_read_unlock() }
            return cds_lfht_add_unique(table, hash, dictionaryMatch, ctx, node.assumingMemoryBound(to: cds_lfht_node.self))
        }
        assert(winner != nil, "ConcurrentDictionary.insert: cds_lfht_add_unique returned no node")
        if UnsafeMutableRawPointer(winner) == node {
            storedCount.wrappingAdd(1, ordering: .relaxed)
            return true
        }
        // Why this is sound: add_unique did not publish our node.
        DictionaryNode<Key, Value>.destroy(node)
        return false
    }

    /// Sets the value for `key`, inserting or replacing; returns the old
    /// value, if any. The replaced entry is reclaimed after a grace period.
    /// [no concurrency-safe equivalent in concurrent_unordered_map]
    @discardableResult
    public func updateValue(_ value: consuming Value, forKey key: Key) -> Value? {
        let hash = UInt(bitPattern: key.hashValue)
        let node = DictionaryNode<Key, Value>.allocate(key: key, value: value)
        let (old, oldValue): (UnsafeMutableRawPointer?, Value?) = withMatchContext(DictionaryNode<Key, Value>.key(node)) { ctx in
            ccds_read_lock()
            defer { ccds_read_unlock() }
            guard let old = cds_lfht_add_replace(table, hash, dictionaryMatch, ctx,
                                                 node.assumingMemoryBound(to: cds_lfht_node.self)) else { return (nil, nil) }
            let raw = UnsafeMutableRawPointer(old)
            return (raw, DictionaryNode<Key, Value>.value(raw).pointee)
        }
        if let old { retire(old) } else { storedCount.wrappingAdd(1, ordering: .relaxed) }
        return oldValue
    }

    /// Removes `key`'s entry and returns its value, or nil if absent.
    /// Concurrency-safe: the entry is reclaimed after a grace period.
    /// [concurrent_unordered_map::unsafe_erase, made safe]
    @discardableResult
    public func removeValue(forKey key: Key) -> Value? {
        let hash = UInt(bitPattern: key.hashValue)
        let (node, value): (UnsafeMutableRawPointer?, Value?) = withUnsafePointer(to: key) { kp in
            withMatchContext(kp) { ctx in
                ccds_read_lock()
                defer { ccds_read_unlock() }
                var iter = cds_lfht_iter()
                cds_lfht_lookup(table, hash, dictionaryMatch, ctx, &iter)
                guard let node = cds_lfht_iter_get_node(&iter), cds_lfht_del(table, node) == 0 else { return (nil, nil) }
                let raw = UnsafeMutableRawPointer(node)
                return (raw, DictionaryNode<Key, Value>.value(raw).pointee)
            }
        }
        guard let node else { return nil }
        storedCount.wrappingAdd(-1, ordering: .relaxed)
        retire(node)
        return value
    }

    /// The entries, copied in one traversal (no lock). Weakly consistent:
    /// each entry present throughout appears exactly once.
    /// [concurrent_unordered_map::begin/end]
    public func snapshot() -> [(key: Key, value: Value)] {
        var out: [(key: Key, value: Value)] = []
        out.reserveCapacity(count)
        ccds_read_lock()
        defer { ccds_read_unlock() }
        var iter = cds_lfht_iter()
        cds_lfht_first(table, &iter)
        while let node = cds_lfht_iter_get_node(&iter) {
            let raw = UnsafeMutableRawPointer(node)
            // Why this is sound: as in the subscript; copies only.
            out.append((DictionaryNode<Key, Value>.key(raw).pointee, DictionaryNode<Key, Value>.value(raw).pointee))
            cds_lfht_next(table, &iter)
        }
        return out
    }

    /// Calls `body` with each entry of a ``snapshot()`` (outside any RCU
    /// section, so `body` may block or yield).
    public func forEach(_ body: ((key: Key, value: Value)) throws -> Void) rethrows {
        for entry in snapshot() { try body(entry) }
    }

    /// Hands an unlinked node to call_rcu.
    @usableFromInline
    func retire(_ node: UnsafeMutableRawPointer) {
        DictionaryNode<Key, Value>.setReclaimer(node, Unmanaged.passRetained(reclaimer))
        ccds_call_rcu(DictionaryNode<Key, Value>.rcuHead(node), reclaimNodeAfterGracePeriod)
    }

    /// Runs `body` with a match context for `key` (the C match callback
    /// compares through it with Key's `==`). No allocation: the closure's
    /// context lives on this stack frame.
    @inlinable
    func withMatchContext<R>(_ key: UnsafePointer<Key>, _ body: (UnsafeRawPointer) -> R) -> R {
        withoutActuallyEscaping({ (node: UnsafeRawPointer) -> Bool in
            DictionaryNode<Key, Value>.key(UnsafeMutableRawPointer(mutating: node)).pointee == key.pointee
        }) { equal in
            var ctx = MatchContext(equal: equal)
            return withUnsafePointer(to: &ctx) { body(UnsafeRawPointer($0)) }
        }
    }
}

extension ConcurrentDictionary: @unchecked Sendable where Key: Sendable, Value: Sendable {}
// @unchecked Sendable: entries are immutable once published (RCU), counts
// are Atomics, and the table is rculfhash's own concurrency-safe structure.
