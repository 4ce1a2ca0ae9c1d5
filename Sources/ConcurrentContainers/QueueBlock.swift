// The segments of ConcurrentQueue (protocol: ConcurrentQueue.swift) and the
// spin-wait helper shared by the containers.
//
// Block layout, one raw allocation (16-byte aligned, or the element's
// alignment: a larger alignment would leave malloc's fast per-thread cache):
//   @0                                   next block, as an address (Atomic<UInt>; 0 = none)
//   @slotsOffset + i*slotStride          slot i's state (Atomic<UInt8>: WRITE | READ | DESTROY)
//   @slotsOffset + i*slotStride + valueInSlot
//                                        slot i's element (initialized iff WRITE and not yet moved out)
// Each slot's state sits beside its element (16 bytes a slot for an Int),
// so a producer and a consumer a few slots apart touch different cache
// lines. (All the states packed in one line, as before, bounced that line
// between the cores on every push and pop: `ums-bench queue` took 4x longer
// on two cores than on one.)
import CSupport
import Glibc
import Synchronization

@usableFromInline
enum QueueLayout {
    /// Slot positions per lap; `blockCap` of them are slots, one is the
    /// phantom between-blocks position.
    @usableFromInline static let lap: UInt = 64
    @usableFromInline static let blockCap = 63
    /// Index bits below the position: bit 0 is `hasNext` in the head index.
    @usableFromInline static let shift: UInt = 1
    @usableFromInline static let hasNext: UInt = 1
    /// Slot states.
    @usableFromInline static let write: UInt8 = 1
    @usableFromInline static let read: UInt8 = 2
    @usableFromInline static let destroy: UInt8 = 4
}

@usableFromInline
enum QueueBlock<Element> {
    @inlinable static var alignment: Int { max(16, MemoryLayout<Element>.alignment) }
    /// The slots start after the next-block word, aligned for the element.
    @inlinable static var slotsOffset: Int { alignment }
    /// The element's offset in its slot (after the state byte).
    @inlinable static var valueInSlot: Int { MemoryLayout<Element>.alignment }
    @inlinable static var slotStride: Int {
        let a = MemoryLayout<Element>.alignment
        return (valueInSlot + MemoryLayout<Element>.size + a - 1) / a * a
    }
    @inlinable static var byteCount: Int { slotsOffset + QueueLayout.blockCap * slotStride }

    /// A block with no next block and every slot empty (state 0).
    @inlinable
    static func allocate() -> UnsafeMutableRawPointer {
        let p = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: alignment)
        p.bindMemory(to: Atomic<UInt>.self, capacity: 1).initialize(to: Atomic(0))
        for i in 0..<QueueLayout.blockCap {
            (p + slotsOffset + i * slotStride).bindMemory(to: Atomic<UInt8>.self, capacity: 1).initialize(to: Atomic(0))
        }
        return p
    }

    /// Frees the memory only: the caller has moved out or deinitialized
    /// every element.
    @inlinable
    static func free(_ block: UnsafeMutableRawPointer) { block.deallocate() }

    @inlinable
    static func next(_ block: UnsafeMutableRawPointer) -> UnsafeMutablePointer<Atomic<UInt>> {
        block.assumingMemoryBound(to: Atomic<UInt>.self)
    }

    @inlinable
    static func state(_ block: UnsafeMutableRawPointer, _ i: Int) -> UnsafeMutablePointer<Atomic<UInt8>> {
        (block + slotsOffset + i * slotStride).assumingMemoryBound(to: Atomic<UInt8>.self)
    }

    @inlinable
    static func value(_ block: UnsafeMutableRawPointer, _ i: Int) -> UnsafeMutablePointer<Element> {
        (block + slotsOffset + i * slotStride + valueInSlot).assumingMemoryBound(to: Element.self)
    }

    /// Waits until the producer that installs `block`'s successor has linked
    /// it (acquire: the successor's initialization is visible).
    @inlinable
    static func waitNext(_ block: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer {
        var backoff = Backoff()
        while true {
            let n = next(block).pointee.load(ordering: .acquiring)
            if n != 0 { return UnsafeMutableRawPointer(bitPattern: n).unsafelyUnwrapped }
            backoff.snooze()
        }
    }

    /// Waits until slot `i`'s producer has set WRITE (acquire: pairs with
    /// the producer's release, so its element is initialized).
    @inlinable
    static func waitWrite(_ block: UnsafeMutableRawPointer, _ i: Int) {
        var backoff = Backoff()
        while state(block, i).pointee.load(ordering: .acquiring) & QueueLayout.write == 0 { backoff.snooze() }
    }

    /// Frees `block` once every slot from `start` on has been read; stops
    /// early (leaving the rest to that slot's consumer) at a slot still
    /// being read. The last slot's consumer always calls this with 0.
    @usableFromInline
    static func destroy(_ block: UnsafeMutableRawPointer, from start: Int) {
        // The last slot is not checked: its consumer is the one that
        // started the destruction (from 0), so it has been read.
        var i = start
        while i < QueueLayout.blockCap - 1 {
            let s = state(block, i)
            // acq_rel on DESTROY: if the slot's consumer sets READ after
            // this, its fetch-or sees DESTROY and takes over; if before,
            // this sees READ and the consumer is done with the block.
            if s.pointee.load(ordering: .acquiring) & QueueLayout.read == 0
                && s.pointee.bitwiseOr(QueueLayout.destroy, ordering: .acquiringAndReleasing).oldValue & QueueLayout.read == 0 {
                return
            }
            i += 1
        }
        // Why this is sound: every slot was read and every consumer is past
        // its last access; producers finished with their WRITEs before that.
        free(block)
    }
}

/// Spin-wait with exponential PAUSE bursts, then sched_yield(2) (which
/// lets a preempted thread we wait for run on this CPU). It holds no
/// per-thread state beyond the caller's stack.
@usableFromInline
struct Backoff {
    @usableFromInline var step: UInt32 = 0
    @inlinable init() {}

    /// After a lost CAS: a short PAUSE burst.
    @inlinable
    mutating func spin() {
        let n = 1 << min(step, 6)
        for _ in 0..<n { csup_cpu_relax() }
        if step <= 6 { step += 1 }
    }

    /// While waiting for another thread: PAUSE bursts, then yield the CPU.
    @inlinable
    mutating func snooze() {
        if step <= 6 {
            for _ in 0..<(1 << step) { csup_cpu_relax() }
            step += 1
        } else {
            sched_yield()
        }
    }
}
