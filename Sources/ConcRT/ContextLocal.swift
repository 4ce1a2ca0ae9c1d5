import UMS
#if canImport(Glibc)
import Glibc
#endif

/// Context-local storage: a typed key whose value belongs to the running
/// scheduler context, not to the pthread under it.
/// [no ConcRT name; replaces `TlsAlloc`/`__declspec(thread)` for code on
/// contexts, which ConcRT itself warns do not follow a UMS context]
///
/// Why not a thread-local: a context runs on whichever pthread executes it,
/// and it changes pthread whenever it blocks (an ``Event``, a lock, a join,
/// ``Blocking``). A C or Swift thread-local read after such a wait names the
/// pthread's value, which another context may be using. A `ContextLocal`
/// value stays with the context.
///
/// ```swift
/// let requestID = ContextLocal<Int?>(default: nil)      // a key: make it once
/// scheduler.scheduleTask {
///     requestID.withValue(42) {
///         gate.wait()                                  // may resume on another pthread
///         log("request \(requestID.value!)")           // still 42
///     }
/// }
/// ```
///
/// Rules (the contract):
/// - **Tasks start empty.** Contexts run tasks one after another, so a
///   value a task stores with ``set(_:)`` is released when that task
///   returns: the next task on the same context sees ``defaultValue``.
///   Values are not inherited by tasks the task schedules or forks
///   (capture them instead). A task run nested on another task's frame
///   (a task group's wait helping with its own tasks, or a stolen fork run
///   by its joiner) also starts empty, and the enclosing task's values are
///   back when it returns. A fork run inline by its forker is an ordinary
///   call and sees the forker's values.
/// - **Across blocking** (event waits, locks, joins, ``Context/block()``,
///   ``Blocking`` calls) the value is unchanged, whatever pthread the
///   context resumes on.
/// - **Off a context** (the main thread, any plain pthread, a primary's own
///   scheduler code) a key has one value per pthread, like a thread-local,
///   released when the pthread exits. Values do not cross
///   ``Scheduler/run(_:)`` from an outside thread (the body runs as a task
///   on a context).
/// - **Inside a blocking call's closure** (`UMS.blockingCall`, the kernel
///   thread behind ``Blocking``) the calling context's values are not
///   visible: the closure runs on a pooled kernel thread and sees that
///   thread's values (``defaultValue`` unless set by ``withValue(_:_:)``
///   inside the same closure). ``set(_:)`` there is a precondition failure:
///   the value would outlive the call on a pooled thread. Read what you
///   need before the call.
///
/// Values are `Sendable` because the key (and its default) is shared by
/// every context; a value itself is only touched by the context holding it.
///
/// Cost: a read is a C thread-local read, an array index and a load; no
/// lock, no atomic, no cast, and no allocation once the table has a box
/// for the key (made on the key's first store in that context). Keys are meant to be created once (a `static let` or a
/// global): each one takes a slot number for the life of the process, and
/// a context's table grows to the highest slot it has stored.
///
/// Memory ordering: none is needed. A context's table is touched only by
/// the code the context is running; a context that moves to another
/// pthread does so through the runtime's switch hand-off (acquire-release
/// on the context's block state or the completion list), which orders
/// every earlier write before the later reads.
public final class ContextLocal<Value: Sendable>: Sendable {
    /// The value seen where none is stored.
    public let defaultValue: Value
    /// This key's slot in every context's table.
    @usableFromInline let slot: Int

    /// Makes a key. Create keys once: each takes a slot for the life of
    /// the process (at most ``maximumKeys``).
    public init(default defaultValue: Value) {
        self.defaultValue = defaultValue
        slot = ContextLocalSlots.allocate()
    }

    /// The largest number of keys a process may create.
    public static var maximumKeys: Int { ContextLocalSlots.limit }

    /// The calling context's value (per pthread off a context), or
    /// ``defaultValue`` when none is stored.
    @inlinable
    public var value: Value {
        let stored = ContextLocalStorage.withCurrent(forWriting: false) { $0.get(slot, Value.self) }
        guard let stored else { return defaultValue }
        return stored
    }

    /// Stores `newValue` for the rest of the running task (until the
    /// pthread exits, off a context). The value it replaces is released.
    /// - Precondition: not inside a blocking call's closure.
    @inlinable
    public func set(_ newValue: Value) {
        let old = ContextLocalStorage.withCurrent(forWriting: true) { $0.exchange(slot, Optional(newValue)) }
        _ = old   // released here, outside the table access (its deinit may use keys)
    }

    /// Removes the stored value: ``value`` is ``defaultValue`` again.
    /// - Precondition: not inside a blocking call's closure.
    @inlinable
    public func reset() {
        let old = ContextLocalStorage.withCurrent(forWriting: true) { $0.exchange(slot, Value?.none) }
        _ = old
    }

    /// Runs `body` with `newValue` stored, then puts back what was there
    /// before (also when `body` throws). The usual way to use a key: the
    /// value cannot leak past `body`. Allowed everywhere, including inside
    /// a blocking call's closure. [like TaskLocal.withValue]
    @inlinable
    public func withValue<R, E: Error>(_ newValue: Value, _ body: () throws(E) -> R) throws(E) -> R {
        let saved = ContextLocalStorage.withCurrent(forWriting: false) { $0.exchange(slot, Optional(newValue)) }
        defer {
            let replaced = ContextLocalStorage.withCurrent(forWriting: false) { $0.exchange(slot, saved) }
            _ = replaced
        }
        return try body()
    }
}

/// Slot numbers for keys: handed out once, never reused (a reused slot
/// could show a dead key's value, of another type, to a new key).
enum ContextLocalSlots {
    static let limit = 1 << 16
    // Relaxed: the number only has to be unique; nothing is published with it.
    private static let next = Atomic<Int>(0)

    static func allocate() -> Int {
        let s = next.wrappingAdd(1, ordering: .relaxed).oldValue
        precondition(s < limit, "ConcRT: more than \(limit) ContextLocal keys were created; "
                     + "make keys once (static let), not per object or per call")
        return s
    }
}

/// A table entry: one key's value in one table. Boxes are made on a key's
/// first store in a table and kept (emptied) after, so steady-state stores
/// allocate nothing and reads cast nothing (`unsafeDowncast`, checked in
/// debug builds: a slot only ever holds its key's `Value`).
@usableFromInline
class ContextLocalBoxBase {
    @usableFromInline init() {}
    /// Empties the box; returns the value it held (type-erased, for the
    /// caller to release outside the table access), or nil when empty.
    func takeErased() -> Any? { preconditionFailure("ConcRT: ContextLocalBoxBase is abstract") }
    /// True when the box holds a value (debug checks).
    var hasValue: Bool { preconditionFailure("ConcRT: ContextLocalBoxBase is abstract") }
}

@usableFromInline
final class ContextLocalBox<Value>: ContextLocalBoxBase {
    // Unchecked exclusivity: a box is touched only by the one context (or
    // pthread) owning its table, in short accesses that call no user code.
    @usableFromInline @exclusivity(unchecked) var value: Value?
    @usableFromInline override init() {}
    override func takeErased() -> Any? {
        guard let v = value else { return nil }
        value = nil
        return v
    }
    override var hasValue: Bool { value != nil }
}

/// One context's (or one pthread's) table of context-local values,
/// indexed by key slot.
///
/// Invariant (checked in debug builds by `checkCount`): `count` is the
/// number of boxes holding a value.
@usableFromInline
struct ContextLocalStorage {
    @usableFromInline var boxes: [ContextLocalBoxBase?] = []
    @usableFromInline var count = 0

    @usableFromInline init() {}

    @inlinable var isEmpty: Bool { count == 0 }

    @inlinable
    func get<V>(_ slot: Int, _: V.Type) -> V? {
        guard slot < boxes.count, let b = boxes[slot] else { return nil }
        return unsafeDowncast(b, to: ContextLocalBox<V>.self).value
    }

    /// Stores `new` (nil: removes) and returns what was there; the caller
    /// drops it after the table access ends.
    @inlinable
    mutating func exchange<V>(_ slot: Int, _ new: V?) -> V? {
        let box: ContextLocalBox<V>
        if slot < boxes.count, let b = boxes[slot] {
            box = unsafeDowncast(b, to: ContextLocalBox<V>.self)
        } else {
            if new == nil { return nil }
            box = makeBox(slot)
        }
        let old = box.value
        box.value = new
        count += (new == nil ? 0 : 1) - (old == nil ? 0 : 1)
        assert(checkCount(), "ConcRT: ContextLocal table count out of step")
        return old
    }

    @usableFromInline
    mutating func makeBox<V>(_ slot: Int) -> ContextLocalBox<V> {
        if slot >= boxes.count { boxes.append(contentsOf: repeatElement(nil, count: slot + 1 - boxes.count)) }
        let b = ContextLocalBox<V>()
        boxes[slot] = b
        return b
    }

    @usableFromInline
    func checkCount() -> Bool {
        var n = 0
        for b in boxes where b?.hasValue == true { n += 1 }
        return n == count
    }

    /// Empties one box and returns its value (nil when the table is
    /// empty). The boxes stay, so the next task stores without allocating.
    mutating func takeAny() -> Any? {
        guard count > 0 else { return nil }
        for b in boxes {
            if let b, let v = b.takeErased() {
                count -= 1
                return v
            }
        }
        preconditionFailure("ConcRT: ContextLocal table count \(count) with no stored value")
    }

    // MARK: Where the current table is

    /// Runs `body` on the current table: the running context's, else the
    /// pthread's. `body` must not run user code (no value is released
    /// inside it: callers return replaced values and drop them after).
    @inlinable @inline(__always)
    static func withCurrent<R>(forWriting: Bool, _ body: (inout ContextLocalStorage) -> R) -> R {
        if let p = UMSThread.currentOnPrimaryUserContext {
            // Why this is sound: a UMS thread on a primary is a context
            // whose thread's user context holds a +1 on it while it runs
            // (see Context.currentInternal), and only that context touches
            // its table.
            return Unmanaged<Context>.fromOpaque(p)._withUnsafeGuaranteedRef { body(&$0.contextLocals) }
        }
        if forWriting { checkWritableOffContext() }
        return PThreadLocals.table()._withUnsafeGuaranteedRef { body(&$0.storage) }
    }

    /// A UMS thread with no context here: inside a blocking call's closure
    /// (or a UMS thread of another scheduler than ConcRT).
    @usableFromInline
    static func checkWritableOffContext() {
        precondition(UMSThread.current == nil,
                     "ConcRT: ContextLocal.set/reset inside a blocking call's closure (or on a UMS thread that "
                     + "is not a ConcRT context): it runs on a pooled kernel thread, where the value would "
                     + "outlive the call; set it before the call, or use withValue(_:_:)")
    }

    /// Runs a task's work item with a fresh table on the context `ctx`,
    /// then releases what the task stored and puts back the enclosing
    /// task's table (non-empty only for a task run nested on another
    /// task's frame). Called by `runWorkItem`; the common case (top-level
    /// task, nothing stored) costs two loads and two branches.
    ///
    /// A nested task's table is one of the context's spare tables (emptied
    /// but with its boxes), and goes back there after: a task group's wait
    /// that runs its own tasks inline, with a scope stored, allocates no
    /// table, box or metadata per task.
    @inline(__always)
    static func runTask(on ctx: Unmanaged<Context>, _ body: () -> Void) {
        var enclosing: ContextLocalStorage?
        ctx._withUnsafeGuaranteedRef { c in
            if !c.contextLocals.isEmpty {
                enclosing = c.contextLocals
                c.contextLocals = c.spareContextLocals.popLast() ?? ContextLocalStorage()
            }
        }
        body()
        // The same context: a task returns on the context that started it.
        ctx._withUnsafeGuaranteedRef { c in
            if !c.contextLocals.isEmpty { releaseAll(c) }
            if let enclosing { restore(c, enclosing) }
        }
    }

    /// The most spare tables a context keeps (one per level of nested
    /// task runs; deeper nesting allocates a table per task, as before).
    static let maxSpareTables = 16

    /// Keeps the nested task's (now empty) table as a spare and puts the
    /// enclosing task's table back.
    @inline(never)
    private static func restore(_ c: Context, _ enclosing: ContextLocalStorage) {
        if c.spareContextLocals.count < maxSpareTables { c.spareContextLocals.append(c.contextLocals) }
        c.contextLocals = enclosing
    }

    /// Releases every value of `c`'s table, one at a time outside the
    /// table access (a value's deinit may itself store or reset keys; what
    /// it stores is released too).
    @inline(never)
    private static func releaseAll(_ c: Context) {
        while true {
            let v = c.contextLocals.takeAny()
            if v == nil { break }
        }
    }
}

/// The per-pthread table for code off a context, in a pthread key whose
/// destructor releases it (and its values) when the pthread exits.
@usableFromInline
final class PThreadLocals {
    // Unchecked exclusivity: only this pthread touches it (see ContextLocalBox).
    @usableFromInline @exclusivity(unchecked) var storage = ContextLocalStorage()

    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        let rc = pthread_key_create(&k) { raw in
            // Why this is sound: the slot holds a +1 Unmanaged reference,
            // set once by table() below.
            if let raw { Unmanaged<PThreadLocals>.fromOpaque(raw).release() }
        }
        precondition(rc == 0, "ConcRT: pthread_key_create failed (\(rc)) for ContextLocal's per-pthread table")
        return k
    }()

    /// This pthread's table (made on first use), unretained: the pthread
    /// key keeps it until the pthread exits, which cannot happen during
    /// the caller's access.
    @usableFromInline
    static func table() -> Unmanaged<PThreadLocals> {
        if let raw = pthread_getspecific(key) { return Unmanaged.fromOpaque(raw) }
        let t = Unmanaged.passRetained(PThreadLocals())
        pthread_setspecific(key, t.toOpaque())
        return t
    }
}

import Synchronization
