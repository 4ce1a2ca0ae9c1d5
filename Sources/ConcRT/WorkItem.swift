import CSupport
import UMS

/// Work items on the deques are tagged pointers:
///   - low bits 00: a retained ``TaskNode`` (a heap task: scheduleTask,
///     task groups);
///   - low bit 0 set: a ``StackJob`` on some context's (or thread's) stack,
///     which that owner keeps alive until the job's latch says done;
///   - low bits 10: a Swift concurrency job or serial-executor drain
///     (Concurrency/SwiftJobItem.swift).
@usableFromInline
typealias WorkItem = UnsafeMutableRawPointer

/// Runs the tasks it pushed with ``Context/pushOwnedTask(_:_:)`` itself
/// (PPL's task group: its cancellation scope, first error and count go
/// around each task), so that a task costs one heap object, its node,
/// instead of a node plus a wrapping closure.
package protocol TaskOwner: AnyObject {
    /// Runs `body`, one of this owner's tasks, on the running context.
    func runOwnedTask(_ body: () throws -> Void)
}

/// A heap-allocated task.
@usableFromInline
final class TaskNode {
    @usableFromInline let body: () -> Void
    @usableFromInline unowned(unsafe) let group: ScheduleGroup?
    /// An owned task (``TaskOwner``): run as `taskOwner.runOwnedTask(ownedBody)`
    /// instead of `body`. The node holds its owner.
    let taskOwner: (any TaskOwner)?
    /// Not optional: a function value kept in an Optional is stored at
    /// maximal abstraction, and each call would allocate a thunk.
    let ownedBody: () throws -> Void

    @usableFromInline
    init(body: @escaping () -> Void, group: ScheduleGroup?) {
        self.body = body
        self.group = group
        taskOwner = nil
        ownedBody = {}   // never called (no owner); no captures, so no allocation
    }

    /// An owned task: `owner` runs `body` (see ``TaskOwner``).
    init(owner: any TaskOwner, _ body: @escaping () throws -> Void) {
        self.body = {}   // never called; no captures, so no allocation
        group = nil
        taskOwner = owner
        ownedBody = body
    }

    /// The identity of the task group (PPL) that spawned it, for its
    /// wait's inline help (compared, never dereferenced).
    @inline(__always)
    var ownerID: ObjectIdentifier? { taskOwner.map { ObjectIdentifier($0) } }

    /// Runs the task's work.
    @usableFromInline
    func runBody() {
        if let taskOwner { taskOwner.runOwnedTask(ownedBody) } else { body() }
    }

    @usableFromInline
    var item: WorkItem {
        // Balanced by takeRetainedValue in runWorkItem (or in discard).
        Unmanaged.passRetained(self).toOpaque()
    }
}

/// A job whose record lives on the stack of whoever waits for it: a fork
/// the joiner may run inline, or a closure an outside thread hands to the
/// scheduler and waits on. No heap allocation.
///
/// Latch protocol (32-bit word, also a futex for outside waiters):
///   pending(0) -> done(1)                 by the executor (exchange, acq_rel)
///   pending(0) -> contextWaiting(2)       by a waiting context (CAS), after
///                                         storing `waiter`
///   pending(0) -> threadWaiting(3)        by a waiting pthread (CAS), then
///                                         futex_wait while 3
/// The executor's exchange returns the old value: 0 means the owner will
/// see `done` itself, and the executor must not touch the record again
/// (the owner may return and pop the frame); 2 means read `waiter` and
/// unblock it (the record is alive: its owner is parked until then); 3
/// means futex_wake the word (a wake on a popped frame is harmless).
public struct StackJob {
    @usableFromInline var latch: UInt32 = 0
    /// The job's `() -> Void` closure as its two words (function, context),
    /// read with ``closureWords(_:)``: the owner keeps the closure alive
    /// until the latch says done, so no escaping copy (and no allocation)
    /// is made.
    @usableFromInline var closure: (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?)
    @usableFromInline var waiter: Unmanaged<Context>? = nil

    @usableFromInline static let pending: UInt32 = 0
    @usableFromInline static let done: UInt32 = 1
    @usableFromInline static let contextWaiting: UInt32 = 2
    @usableFromInline static let threadWaiting: UInt32 = 3

    /// A pending job that runs `body` (the caller keeps `body` alive until
    /// the latch says done: it is the caller's parameter and the caller
    /// waits for the latch). The closure's words come back in registers
    /// from one out-of-line call and are stored once (no zeroing first).
    @inlinable @inline(__always)
    init(_ body: () -> Void) {
        closure = closureWords(body)
    }

    @inlinable
    static func item(_ p: UnsafeMutablePointer<StackJob>) -> WorkItem {
        UnsafeMutableRawPointer(bitPattern: UInt(bitPattern: p) | 1)!
    }

    @inlinable
    static func latchWord(_ p: UnsafeMutablePointer<StackJob>) -> UnsafeMutablePointer<UInt32> {
        // `latch` is the first stored property: offset 0.
        UnsafeMutableRawPointer(p).assumingMemoryBound(to: UInt32.self)
    }

    /// Runs the job and releases its waiter. Called by whoever took it.
    @usableFromInline
    static func execute(_ p: UnsafeMutablePointer<StackJob>) {
        run(p)
        complete(p)
    }

    /// Calls the job's closure (without completing the latch).
    @inline(__always) @usableFromInline
    static func run(_ p: UnsafeMutablePointer<StackJob>) {
        csup_closure_call(p.pointee.closure.0, p.pointee.closure.1)
    }

    @usableFromInline
    static func complete(_ p: UnsafeMutablePointer<StackJob>) {
        let word = latchWord(p)
        let old = csup_u32_exchange_acq_rel(word, done)
        if old == contextWaiting {
            // Why this is sound: the waiter stored itself before its CAS to
            // contextWaiting (our acq_rel exchange read that CAS, so the
            // store is visible), and it stays parked, keeping the record
            // alive, until this unblock.
            p.pointee.waiter!.takeUnretainedValue().unblockInternal(wakeIdle: true)
        } else if old == threadWaiting {
            _ = csup_futex_wake(word, 1)
        }
    }

    @inlinable
    static func isDone(_ p: UnsafeMutablePointer<StackJob>) -> Bool {
        csup_u32_load_acquire(latchWord(p)) == done
    }
}

/// Runs one work item taken from a deque or queue, as a task: with a
/// fresh ContextLocal table on the running context (see ContextLocal).
@inline(__always) @usableFromInline
func runWorkItem(_ item: WorkItem) {
    guard let p = UMSThread.currentOnPrimaryUserContext else { runWorkItemBody(item); return }
    // Why this is sound: see Context.currentInternal (the running
    // context's +1 is held by its thread's user context).
    ContextLocalStorage.runTask(on: Unmanaged<Context>.fromOpaque(p)) { runWorkItemBody(item) }
}

@inline(__always)
private func runWorkItemBody(_ item: WorkItem) {
    let bits = UInt(bitPattern: item)
    if bits & 1 != 0 {
        StackJob.execute(UnsafeMutableRawPointer(bitPattern: bits & ~1)!.assumingMemoryBound(to: StackJob.self))
    } else if SwiftJobItem.isSwiftItem(bits) {
        SwiftJobItem.run(bits)
    } else {
        let t = Unmanaged<TaskNode>.fromOpaque(item).takeRetainedValue()
        guard let g = t.group else { t.runBody(); return }
        if g.scheduler.groups.accounts {
            // Fair share: charge the group its task's time (GroupUsage.swift).
            let clock = TaskClock()
            t.runBody()
            let (ns, now) = clock.elapsed()
            g.usage.charge(ns, now: now)
        } else {
            t.runBody()
        }
        g.taskFinished()
    }
}

/// The function and context words of a non-escaping `() -> Void` closure,
/// returned in registers (C shim in CSupport/closure.c, called with the
/// Swift calling convention; no escaping copy, no allocation).
@_silgen_name("csup_closure_words")
@usableFromInline
func closureWords(_ body: () -> Void) -> (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?)
