import CSupport
import Synchronization
import UMS

/// Per-NUMA-node idle state, for schedule groups that prefer a node
/// (``ScheduleGroup/homeNode``). Exists only for a scheduler with
/// `.enhanceScheduleGroupLocality` whose regular VPs are placed on two or
/// more nodes (``Scheduler/nodeIdle`` is nil otherwise, and nothing here
/// runs). The protocol, with the ordering of every atomic and why no
/// wake-up is lost, is in `Idle/README.md` ("Node-preferring groups");
/// `Tests/Models/nodewake.pml` checks it.
///
/// Per node `d` (its dense index: the position of its id in ``nodeIDs``):
/// - `free[d]`: VPs of node `d` with their **free mark** set: from the
///   scheduler's start, the start of a search
///   (``VirtualProcessor/search(_:)``) or of a sleep until the VP next runs something: a task (`runCounted`, wherever the
///   task came from) or a context from its run queue (the VP loop). A VP
///   woken from its sleep stays free until it has a task, so VPs racing
///   for the same tasks do not all look busy. A node **has capacity**
///   while `free[d] > 0`; it has none when every VP of the node is running
///   a task or a context.
/// - `searching[d]`: VPs of node `d` in a search now.
/// - `sleeping[d]`: VPs of node `d` inside ``IdleProtocol/sleep(_:napNanoseconds:)``
///   (from their announcement to its undoing), each registered on the
///   completion list's futex with ``mask(_:)`` of `d` as its futex bitset.
///
/// All read-modify-writes and loads of the three are seq_cst. A producer
/// of a task for a group homed on `d` publishes it, then (a seq_cst fence)
/// loads `searching[d]` and `sleeping[d]` (``notifyHome(_:)``); a sleeper
/// of node `d` increments `sleeping[d]` (then a seq_cst fence) before its
/// re-check: the Dekker pair of the idle protocol's pair B, per node.
final class NodeIdle: @unchecked Sendable {
    // @unchecked Sendable: immutable arrays of atomics and ids, set in init.

    /// One node's counters, on its own cache lines.
    final class Counters: Sendable {
        let free = Atomic<Int>(0)
        let searching = Atomic<Int>(0)
        let sleeping = Atomic<Int>(0)
        // Pads the object past one 64-byte line, so two nodes' counters do
        // not share one (objects are 16-byte aligned: 16 + 24 + 40 > 64).
        private let pad: (Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0)
    }

    /// Topology node ids of the scheduler's regular VPs, ascending; a
    /// node's dense index is its position here.
    let nodeIDs: [Int]
    /// Dense node index of each regular VP, by VP index.
    let vpNodes: [Int]
    let counters: [Counters]
    /// Next node for a group created from outside the scheduler.
    private let roundRobin = Atomic<Int>(0)
    /// Unretained: the scheduler owns both and outlives this object.
    private let list: Unmanaged<UMSCompletionList>
    private unowned(unsafe) let idle: IdleProtocol

    /// Futex bitset of a VP placed on no node (a temporary VP): no node
    /// wake matches it (node masks use bits 0...30).
    static let unplacedMask: UInt32 = 1 << 31

    /// Node locality for `layout`'s VPs under `policy`; nil unless the
    /// policy is `.enhanceScheduleGroupLocality` and the VPs are placed
    /// on two or more nodes.
    init?(policy: SchedulerPolicy, layout: VirtualProcessorLayout, list: UMSCompletionList, idle: IdleProtocol) {
        let ids = layout.scheduleGroupHomeNodes(for: policy)
        if ids.isEmpty { return nil }
        nodeIDs = ids
        vpNodes = layout.slots.map { ids.firstIndex(of: $0.node!)! }
        counters = ids.map { _ in Counters() }
        self.list = Unmanaged.passUnretained(list)
        self.idle = idle
    }

    /// Futex bitset of the VPs of dense node `d`. Past 31 nodes, nodes
    /// share bits (`d % 31`); a node wake then wakes every sleeper of its
    /// bit (``notifyHome(_:)``), so the home node's sleepers are among them.
    @inline(__always)
    static func mask(_ d: Int) -> UInt32 { 1 << UInt32(d % 31) }

    /// Dense index of topology node `id`, nil when no regular VP is there.
    func index(ofNode id: Int) -> Int? { nodeIDs.firstIndex(of: id) }

    /// The next node of the round-robin (a group created from outside).
    func nextRoundRobin() -> Int {
        roundRobin.wrappingAdd(1, ordering: .relaxed).oldValue % nodeIDs.count
    }

    /// True while node `d` has capacity (a VP of it is free: see the type).
    @inline(__always)
    func hasCapacity(_ d: Int) -> Bool { counters[d].free.load(ordering: .sequentiallyConsistent) > 0 }

    // MARK: Free marks (owner: the VP's own pthread)

    /// Sets `vp`'s free mark (no-op if set).
    @inline(__always)
    func markFree(_ vp: VirtualProcessor) {
        if vp.nodeFree { return }
        vp.nodeFree = true
        counters[vp.node].free.wrappingAdd(1, ordering: .sequentiallyConsistent)
    }

    /// Clears `vp`'s free mark (it set; callers check ``VirtualProcessor/nodeFree``).
    func clearFree(_ vp: VirtualProcessor) {
        assert(vp.nodeFree && vp.node >= 0, "NodeIdle.clearFree: VP \(vp.index) has no free mark")
        vp.nodeFree = false
        let was = counters[vp.node].free.wrappingSubtract(1, ordering: .sequentiallyConsistent).oldValue
        assert(was > 0, "NodeIdle.clearFree: node \(nodeIDs[vp.node]) free count was \(was)")
    }

    // MARK: Searchers and sleepers

    func beginSearch(_ vp: VirtualProcessor) {
        markFree(vp)
        counters[vp.node].searching.wrappingAdd(1, ordering: .sequentiallyConsistent)
    }

    func endSearch(_ vp: VirtualProcessor) {
        counters[vp.node].searching.wrappingSubtract(1, ordering: .sequentiallyConsistent)
    }

    /// Step 2 of the sleep, per node: after the global announcement and
    /// before the re-check.
    func announceSleep(_ vp: VirtualProcessor) {
        markFree(vp)
        counters[vp.node].sleeping.wrappingAdd(1, ordering: .sequentiallyConsistent)
        // The re-check's loads (queue counts, relaxed) must not pass the
        // increment: the store-load half of the pair with notifyHome.
        atomicMemoryFence(ordering: .sequentiallyConsistent)
    }

    func endSleep(_ vp: VirtualProcessor) {
        counters[vp.node].sleeping.wrappingSubtract(1, ordering: .sequentiallyConsistent)
    }

    // MARK: Producers

    /// After a task was queued to a group homed on node `d`: a searcher of
    /// `d` will find it (no wake); else wake a sleeper of `d`; else (no VP
    /// of `d` searches or sleeps) the usual wake of any one sleeper,
    /// unless any VP searches (``IdleProtocol/notifyWork(force:)``).
    @inline(__always)
    func notifyHome(_ d: Int) {
        // The publication (a release add of the group's count) must not
        // pass the loads below: the load half of the pair (see the type).
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        let c = counters[d]
        if c.searching.load(ordering: .sequentiallyConsistent) > 0 { return }
        if c.sleeping.load(ordering: .sequentiallyConsistent) > 0 {
            wakeNode(d)
            return
        }
        idle.notifyWork()
    }

    /// Wakes a sleeper of node `d` (every sleeper of its bit past 31 nodes).
    func wakeNode(_ d: Int) {
        let n = nodeIDs.count > 31 ? Int(Int32.max) : 1
        list._withUnsafeGuaranteedRef { $0.notifyWaiters(n, wakeMask: Self.mask(d)) }
    }

    /// A VP of another node that declines a homed task (its home has
    /// capacity) passes a wake to that home: when a VP of it sleeps and
    /// none searches, one is woken. Called by a VP going to sleep, before
    /// it registers (IdleProtocol.sleep), for each home it declines.
    func forwardDeclined(home d: Int) {
        let c = counters[d]
        if c.searching.load(ordering: .sequentiallyConsistent) == 0,
           c.sleeping.load(ordering: .sequentiallyConsistent) > 0 {
            wakeNode(d)
        }
    }
}
