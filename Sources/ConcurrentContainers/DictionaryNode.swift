// The nodes of ConcurrentDictionary (protocol: ConcurrentDictionary.swift)
// and the C callbacks rculfhash and call_rcu invoke.
//
// Node layout, one raw allocation:
//   @0            struct cds_lfht_node (the table's link; 16 bytes)
//   @16           struct rcu_head (call_rcu's link; 16 bytes)
//   @32           the reclaimer, retained, while a call_rcu is pending
//   @keyOffset    Key
//   @valueOffset  Value
import CURCUCDS

@usableFromInline
enum DictionaryNode<Key: Hashable, Value> {
    @inlinable static var keyOffset: Int {
        let a = MemoryLayout<Key>.alignment
        return (40 + a - 1) / a * a
    }
    @inlinable static var valueOffset: Int {
        let a = MemoryLayout<Value>.alignment
        return (keyOffset + MemoryLayout<Key>.size + a - 1) / a * a
    }
    @inlinable static var byteCount: Int { valueOffset + MemoryLayout<Value>.size }
    @inlinable static var alignment: Int { max(16, MemoryLayout<Key>.alignment, MemoryLayout<Value>.alignment) }

    /// A node not yet in any table, with its Key and Value initialized.
    @inlinable
    static func allocate(key: Key, value: consuming Value) -> UnsafeMutableRawPointer {
        assert(MemoryLayout<cds_lfht_node>.size == 16 && MemoryLayout<rcu_head>.size == 16,
               "DictionaryNode: liburcu's node layout changed")
        let p = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: alignment)
        p.initializeMemory(as: cds_lfht_node.self, repeating: cds_lfht_node(), count: 1)
        (p + 16).initializeMemory(as: rcu_head.self, repeating: rcu_head(), count: 1)
        (p + 32).initializeMemory(as: UInt.self, repeating: 0, count: 1)
        (p + keyOffset).initializeMemory(as: Key.self, repeating: key, count: 1)
        (p + valueOffset).bindMemory(to: Value.self, capacity: 1).initialize(to: value)
        return p
    }

    /// Destroys the Key and Value and frees the node: it is in no table,
    /// and no reader can reach it.
    @usableFromInline
    static func destroy(_ node: UnsafeMutableRawPointer) {
        key(node).deinitialize(count: 1)
        value(node).deinitialize(count: 1)
        node.deallocate()
    }

    @inlinable
    static func key(_ node: UnsafeMutableRawPointer) -> UnsafeMutablePointer<Key> {
        (node + keyOffset).assumingMemoryBound(to: Key.self)
    }

    @inlinable
    static func value(_ node: UnsafeMutableRawPointer) -> UnsafeMutablePointer<Value> {
        (node + valueOffset).assumingMemoryBound(to: Value.self)
    }

    @usableFromInline
    static func rcuHead(_ node: UnsafeMutableRawPointer) -> UnsafeMutablePointer<rcu_head> {
        (node + 16).assumingMemoryBound(to: rcu_head.self)
    }

    @usableFromInline
    static func setReclaimer(_ node: UnsafeMutableRawPointer, _ r: Unmanaged<NodeReclaimer>) {
        (node + 32).storeBytes(of: UInt(bitPattern: r.toOpaque()), as: UInt.self)
    }
}

/// Destroys nodes of one dictionary's Key and Value types from the
/// non-generic call_rcu callback.
@usableFromInline
class NodeReclaimer: @unchecked Sendable {
    // @unchecked Sendable: stateless.
    @usableFromInline init() {}
    @usableFromInline func reclaim(_ node: UnsafeMutableRawPointer) {
        fatalError("NodeReclaimer.reclaim: abstract")
    }
}

@usableFromInline
final class TypedNodeReclaimer<Key: Hashable, Value>: NodeReclaimer, @unchecked Sendable {
    @usableFromInline override init() {}
    @usableFromInline override func reclaim(_ node: UnsafeMutableRawPointer) {
        DictionaryNode<Key, Value>.destroy(node)
    }
}

/// The match context passed through rculfhash as its `key` argument.
@usableFromInline
struct MatchContext {
    @usableFromInline var equal: (UnsafeRawPointer) -> Bool
    @inlinable init(equal: @escaping (UnsafeRawPointer) -> Bool) { self.equal = equal }
}

/// rculfhash's match callback: `ctx` is a MatchContext on the caller's stack.
@usableFromInline
let dictionaryMatch: cds_lfht_match_fct = { node, ctx in
    // Why this is sound: ctx points to the MatchContext of the call in
    // progress (withMatchContext); node is a published, live node.
    ctx.unsafelyUnwrapped.assumingMemoryBound(to: MatchContext.self).pointee.equal(UnsafeRawPointer(node.unsafelyUnwrapped)) ? 1 : 0
}

/// call_rcu's callback: runs on liburcu's call_rcu thread after a grace
/// period; takes back the reclaimer's retain and destroys the node.
@usableFromInline
let reclaimNodeAfterGracePeriod: @convention(c) (UnsafeMutablePointer<rcu_head>?) -> Void = { head in
    let node = UnsafeMutableRawPointer(head.unsafelyUnwrapped) - 16
    let bits = node.load(fromByteOffset: 32, as: UInt.self)
    let r = Unmanaged<NodeReclaimer>.fromOpaque(UnsafeRawPointer(bitPattern: bits).unsafelyUnwrapped).takeRetainedValue()
    r.reclaim(node)
}
