// ConcurrentQueue: an unbounded multi-producer multi-consumer FIFO queue of
// segments ("blocks") of slots, each slot with its own state word (the design
// of crossbeam's SegQueue and of oneTBB's micro-queues; written from the
// published algorithm, no code copied).
//
// Protocol
// --------
// Two cache-line-separated positions, `head` (consumers) and `tail`
// (producers). Each is an index word plus a block pointer word. An index
// counts slots shifted left by `shift` (1): bit 0 of the head index is
// `hasNext` ("the head block is known to have a successor", which spares a
// consumer the look at the tail). Slot positions run in laps of `lap` (64);
// offsets 0..<blockCap (63) are slots of a block, offset `blockCap` is a
// phantom "between blocks" position that nobody may claim.
//
// push: read tail (acquire). If its offset is `blockCap`, another producer
//   is installing the next block: wait (spin). Otherwise claim the slot by
//   CAS tail.index -> +1 (seq_cst: orders against a consumer's emptiness
//   check, see pop). The producer that claimed the last slot (offset
//   blockCap-1) installs the block it pre-allocated before its CAS: it
//   stores tail.block (release) and then tail.index = first slot of the new
//   block (release; this ends the phantom position), then links
//   block.next (release). Finally it moves the element into its slot and
//   sets WRITE in the slot's state (release: publishes the element).
// pop: read head (acquire). Offset blockCap: wait as above. If `hasNext` is
//   clear, a seq_cst fence and a load of tail.index decide emptiness (same
//   slot position: empty, return nil) and whether head and tail are in
//   different blocks (then set hasNext in the new head). Claim the slot by
//   CAS head.index (seq_cst). The consumer that claimed the last slot of a
//   block waits for block.next (acquire), then publishes head.block
//   (release) and head.index (release). The consumer then waits for WRITE
//   in its slot (acquire: the element is initialized), moves the element
//   out, and retires the slot (below).
// Reclamation (no garbage collector): a block is freed by whoever sees the
//   last of its slots read. The consumer of the last slot starts
//   `destroy(block, from: 0)`; any other consumer sets READ on its slot
//   (acq_rel) and, if it finds DESTROY already set, continues the
//   destruction from its slot + 1. `destroy` walks slots 0..<blockCap-1:
//   a slot not yet READ gets DESTROY (acq_rel); if that slot is still not
//   READ, its consumer will finish the job, so `destroy` returns. Exactly
//   one thread frees each block, after every consumer of it is done with it.
//   Producers never touch a block after their WRITE, and a block is only
//   freed once all its slots were read, i.e. after all its WRITEs.
//
// Progress: no locks and no system calls on the common path. push and pop
//   each finish in a bounded number of their own steps unless they meet a
//   thread that is *inside* one of two windows of a few instructions: a
//   producer between its slot claim and its WRITE (a consumer that claimed
//   that slot waits for it), or a thread installing the next block (others
//   at the block boundary wait). Like SegQueue and TBB's concurrent_queue,
//   this is therefore lock-free in practice but formally blocking if a
//   thread is suspended inside such a window (kernel preemption only: no
//   ConcRT context can switch inside one, since nothing in them blocks or
//   yields). Waits spin with PAUSE and fall back to sched_yield(2).
//
// Context migration: the queue keeps no per-thread state, so a context may
// move between pthreads between (and, for that matter, inside) calls.
import CSupport
import Glibc
import Synchronization

/// An unbounded, many-producer many-consumer FIFO queue, safe from ConcRT
/// contexts, tasks and plain pthreads alike.
/// [ConcRT: `concurrency::concurrent_queue<T>` (`push`, `try_pop`, `empty`,
/// `unsafe_size`)]
///
/// **Progress guarantee:** lock-free in practice, no locks or system calls:
/// ``push(_:)`` and ``tryPop()`` only ever wait for another thread that is
/// inside a window of a few instructions (a producer between claiming its
/// slot and writing it, or installing the next segment); formally blocking
/// if that thread is preempted by the kernel inside the window (as for
/// crossbeam's `SegQueue` and TBB's `concurrent_queue`). Elements are moved
/// in and out; each is destroyed exactly once (on pop, or when the queue is
/// deinitialized).
public final class ConcurrentQueue<Element> {
    /// head index @0, head block @8; tail index @128, tail block @136.
    @usableFromInline let positions: UnsafeMutableRawPointer

    @inlinable var headIndex: UnsafeMutablePointer<Atomic<UInt>> { positions.assumingMemoryBound(to: Atomic<UInt>.self) }
    @inlinable var headBlock: UnsafeMutablePointer<Atomic<UInt>> { (positions + 8).assumingMemoryBound(to: Atomic<UInt>.self) }
    @inlinable var tailIndex: UnsafeMutablePointer<Atomic<UInt>> { (positions + 128).assumingMemoryBound(to: Atomic<UInt>.self) }
    @inlinable var tailBlock: UnsafeMutablePointer<Atomic<UInt>> { (positions + 136).assumingMemoryBound(to: Atomic<UInt>.self) }

    /// Creates an empty queue.
    public init() {
        positions = .allocate(byteCount: 256, alignment: 128)
        let first = QueueBlock<Element>.allocate()
        for offset in [0, 8, 128, 136] {
            (positions + offset).bindMemory(to: Atomic<UInt>.self, capacity: 1).initialize(to: Atomic(0))
        }
        headBlock.pointee.store(UInt(bitPattern: first), ordering: .relaxed)
        tailBlock.pointee.store(UInt(bitPattern: first), ordering: .relaxed)
    }

    deinit {
        // No other reference exists: plain (relaxed) loads see every write,
        // which happened-before the last release of the queue.
        var head = headIndex.pointee.load(ordering: .acquiring) & ~QueueLayout.hasNext
        let tail = tailIndex.pointee.load(ordering: .acquiring) & ~QueueLayout.hasNext
        var block = UnsafeMutableRawPointer(bitPattern: headBlock.pointee.load(ordering: .acquiring))!
        while head != tail {
            let offset = Int((head >> QueueLayout.shift) % QueueLayout.lap)
            if offset < QueueLayout.blockCap {
                // Why this is sound: slots between head and tail were
                // claimed and written by completed pushes and never popped.
                assert(QueueBlock<Element>.state(block, offset).pointee.load(ordering: .acquiring) & QueueLayout.write != 0,
                       "ConcurrentQueue.deinit: an unwritten slot between head and tail")
                QueueBlock<Element>.value(block, offset).deinitialize(count: 1)
            } else {
                let next = QueueBlock<Element>.next(block).pointee.load(ordering: .acquiring)
                QueueBlock<Element>.free(block)
                block = UnsafeMutableRawPointer(bitPattern: next)!
            }
            head &+= 1 << QueueLayout.shift
        }
        QueueBlock<Element>.free(block)
        positions.deallocate()
    }

    /// Appends `element` at the tail.
    /// [concurrent_queue::push]
    @inlinable
    public func push(_ element: consuming Element) {
        var backoff = Backoff()
        var tail = tailIndex.pointee.load(ordering: .acquiring)
        var block = UnsafeMutableRawPointer(bitPattern: tailBlock.pointee.load(ordering: .acquiring))!
        var nextBlock: UnsafeMutableRawPointer? = nil
        while true {
            let offset = Int((tail >> QueueLayout.shift) % QueueLayout.lap)
            if offset == QueueLayout.blockCap {
                // Another producer is installing the next block.
                backoff.snooze()
                tail = tailIndex.pointee.load(ordering: .acquiring)
                block = UnsafeMutableRawPointer(bitPattern: tailBlock.pointee.load(ordering: .acquiring))!
                continue
            }
            // Allocate the next block before claiming the last slot, so the
            // window in which other producers wait holds no malloc.
            if offset + 1 == QueueLayout.blockCap && nextBlock == nil {
                nextBlock = QueueBlock<Element>.allocate()
            }
            let newTail = tail &+ (1 << QueueLayout.shift)
            let (won, seen) = tailIndex.pointee.weakCompareExchange(expected: tail, desired: newTail,
                                                                   successOrdering: .sequentiallyConsistent,
                                                                   failureOrdering: .acquiring)
            if won {
                if offset + 1 == QueueLayout.blockCap {
                    // We took the last slot: install the next block. Order:
                    // block pointer first, then the index that ends the
                    // phantom position (release: a producer that sees the
                    // new index sees the new block), then the link that
                    // consumers follow.
                    let nb = nextBlock.unsafelyUnwrapped
                    nextBlock = nil
                    tailBlock.pointee.store(UInt(bitPattern: nb), ordering: .releasing)
                    tailIndex.pointee.store(newTail &+ (1 << QueueLayout.shift), ordering: .releasing)
                    QueueBlock<Element>.next(block).pointee.store(UInt(bitPattern: nb), ordering: .releasing)
                }
                // Why this is sound: the CAS gave this producer the slot
                // exclusively; the block cannot be freed before the slot is
                // read, which waits for the WRITE below.
                assert(QueueBlock<Element>.state(block, offset).pointee.load(ordering: .relaxed) & QueueLayout.write == 0,
                       "ConcurrentQueue.push: claimed a slot that was already written")
                QueueBlock<Element>.value(block, offset).initialize(to: element)
                QueueBlock<Element>.state(block, offset).pointee.bitwiseOr(QueueLayout.write, ordering: .releasing)
                if let nb = nextBlock { QueueBlock<Element>.free(nb) }   // allocated, then not needed
                return
            }
            tail = seen
            block = UnsafeMutableRawPointer(bitPattern: tailBlock.pointee.load(ordering: .acquiring))!
            backoff.spin()
        }
    }

    /// Removes and returns the element at the head, or nil if the queue is
    /// empty. [concurrent_queue::try_pop]
    @inlinable
    public func tryPop() -> Element? {
        var backoff = Backoff()
        var head = headIndex.pointee.load(ordering: .acquiring)
        var block = UnsafeMutableRawPointer(bitPattern: headBlock.pointee.load(ordering: .acquiring))!
        while true {
            let offset = Int((head >> QueueLayout.shift) % QueueLayout.lap)
            if offset == QueueLayout.blockCap {
                // Another consumer is moving head to the next block.
                backoff.snooze()
                head = headIndex.pointee.load(ordering: .acquiring)
                block = UnsafeMutableRawPointer(bitPattern: headBlock.pointee.load(ordering: .acquiring))!
                continue
            }
            var newHead = head &+ (1 << QueueLayout.shift)
            if newHead & QueueLayout.hasNext == 0 {
                // seq_cst fence + the seq_cst CASes of push: if a push's
                // claim of this position is not visible here, that push has
                // not completed its CAS, so "empty" is a correct answer.
                atomicMemoryFence(ordering: .sequentiallyConsistent)
                let tail = tailIndex.pointee.load(ordering: .relaxed)
                if head >> QueueLayout.shift == tail >> QueueLayout.shift { return nil }
                if (head >> QueueLayout.shift) / QueueLayout.lap != (tail >> QueueLayout.shift) / QueueLayout.lap {
                    newHead |= QueueLayout.hasNext
                }
            }
            let (won, seen) = headIndex.pointee.weakCompareExchange(expected: head, desired: newHead,
                                                                   successOrdering: .sequentiallyConsistent,
                                                                   failureOrdering: .acquiring)
            if won {
                if offset + 1 == QueueLayout.blockCap {
                    // Last slot of the block: move head to the next block.
                    let next = QueueBlock<Element>.waitNext(block)
                    var nextIndex = (newHead & ~QueueLayout.hasNext) &+ (1 << QueueLayout.shift)
                    if QueueBlock<Element>.next(next).pointee.load(ordering: .relaxed) != 0 {
                        nextIndex |= QueueLayout.hasNext
                    }
                    headBlock.pointee.store(UInt(bitPattern: next), ordering: .releasing)
                    headIndex.pointee.store(nextIndex, ordering: .releasing)
                }
                // Why this is sound: the CAS gave this consumer the slot
                // exclusively; WRITE (acquire) means the producer's
                // initialize happened-before; the block stays allocated
                // until this consumer marks the slot READ below.
                QueueBlock<Element>.waitWrite(block, offset)
                assert(QueueBlock<Element>.state(block, offset).pointee.load(ordering: .relaxed) & QueueLayout.read == 0,
                       "ConcurrentQueue.tryPop: claimed a slot that was already read")
                let element = QueueBlock<Element>.value(block, offset).move()
                if offset + 1 == QueueLayout.blockCap {
                    QueueBlock<Element>.destroy(block, from: 0)
                } else if QueueBlock<Element>.state(block, offset).pointee
                            .bitwiseOr(QueueLayout.read, ordering: .acquiringAndReleasing).oldValue & QueueLayout.destroy != 0 {
                    QueueBlock<Element>.destroy(block, from: offset + 1)
                }
                return element
            }
            head = seen
            block = UnsafeMutableRawPointer(bitPattern: headBlock.pointee.load(ordering: .acquiring))!
            backoff.spin()
        }
    }

    /// True if the queue held no element at the moment of the check.
    /// [concurrent_queue::empty]
    @inlinable
    public var isEmpty: Bool {
        let head = headIndex.pointee.load(ordering: .sequentiallyConsistent)
        let tail = tailIndex.pointee.load(ordering: .sequentiallyConsistent)
        return head >> QueueLayout.shift == tail >> QueueLayout.shift
    }

    /// The number of elements, exact when no push or pop runs at the same
    /// time, otherwise a value the count had at some moment during the call
    /// (pushes and pops in flight may or may not be counted).
    /// [concurrent_queue::unsafe_size]
    public var count: Int {
        while true {
            var tail = tailIndex.pointee.load(ordering: .sequentiallyConsistent)
            var head = headIndex.pointee.load(ordering: .sequentiallyConsistent)
            // A consistent pair: tail did not move while head was read.
            guard tailIndex.pointee.load(ordering: .sequentiallyConsistent) == tail else { continue }
            tail &= ~QueueLayout.hasNext
            head &= ~QueueLayout.hasNext
            // Phantom positions count as the first slot of the next block.
            if (tail >> QueueLayout.shift) % QueueLayout.lap == QueueLayout.lap - 1 { tail &+= 1 << QueueLayout.shift }
            if (head >> QueueLayout.shift) % QueueLayout.lap == QueueLayout.lap - 1 { head &+= 1 << QueueLayout.shift }
            let laps = (head >> QueueLayout.shift) / QueueLayout.lap
            tail = (tail &- ((laps * QueueLayout.lap) << QueueLayout.shift)) >> QueueLayout.shift
            head = (head &- ((laps * QueueLayout.lap) << QueueLayout.shift)) >> QueueLayout.shift
            // One phantom position per lap between them is not a slot.
            return Int(tail - head - tail / QueueLayout.lap)
        }
    }
}

extension ConcurrentQueue: @unchecked Sendable where Element: Sendable {}
// @unchecked Sendable: every shared word is an Atomic; element slots are
// handed from one producer to one consumer through the WRITE bit (see the
// protocol at the top of this file).
