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
/// Cost: a read is a C thread-local read, an array index and a cast; no
/// lock, no atomic, no allocation once a context's table has grown to the
/// key's slot. Keys are meant to be created once (a `static let` or a
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
    let slot: Int

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
    public var value: Value {
        let stored = ContextLocalStorage.withCurrent(forWriting: false) { $0.get(slot) }
        guard let stored else { return defaultValue }
        // Why `as!` holds: only this key stores into `slot`, always a Value.
        return stored as! Value
    }

    /// Stores `newValue` for the rest of the running task (until the
    /// pthread exits, off a context). The value it replaces is released.
    /// - Precondition: not inside a blocking call's closure.
    public func set(_ newValue: Value) {
        let old = ContextLocalStorage.withCurrent(forWriting: true) { $0.exchange(slot, newValue) }
        _ = old   // released here, outside the table access (its deinit may use keys)
    }

    /// Removes the stored value: ``value`` is ``defaultValue`` again.
    /// - Precondition: not inside a blocking call's closure.
    public func reset() {
        let old = ContextLocalStorage.withCurrent(forWriting: true) { $0.exchange(slot, nil) }
        _ = old
    }

    /// Runs `body` with `newValue` stored, then puts back what was there
    /// before (also when `body` throws). The usual way to use a key: the
    /// value cannot leak past `body`. Allowed everywhere, including inside
    /// a blocking call's closure. [like TaskLocal.withValue]
    public func withValue<R, E: Error>(_ newValue: Value, _ body: () throws(E) -> R) throws(E) -> R {
        let saved = ContextLocalStorage.withCurrent(forWriting: false) { $0.exchange(slot, newValue) }
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

/// One context's (or one pthread's) table of context-local values,
/// indexed by key slot. `nil`: nothing stored.
///
/// Invariant (checked in debug builds): `count` is the number of non-nil
/// entries.
struct ContextLocalStorage {
    private var values: [Any?] = []
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    func get(_ slot: Int) -> Any? {
        slot < values.count ? values[slot] : nil
    }

    /// Stores `new` (nil: removes) and returns what was there; the caller
    /// drops it after the table access ends.
    mutating func exchange(_ slot: Int, _ new: Any?) -> Any? {
        if slot >= values.count {
            if new == nil { return nil }
            values.append(contentsOf: repeatElement(nil, count: slot + 1 - values.count))
        }
        let old = values[slot]
        values[slot] = new
        count += (new == nil ? 0 : 1) - (old == nil ? 0 : 1)
        assert(count == values.reduce(0) { $0 + ($1 == nil ? 0 : 1) }, "ConcRT: ContextLocal table count out of step")
        return old
    }

    /// Removes and returns one stored value (nil when empty). The table
    /// keeps its capacity, so the next task stores without allocating.
    mutating func takeAny() -> Any? {
        guard count > 0 else { return nil }
        for i in values.indices where values[i] != nil {
            return exchange(i, nil)
        }
        preconditionFailure("ConcRT: ContextLocal table count \(count) with no stored value")
    }

    // MARK: Where the current table is

    /// Runs `body` on the current table: the running context's, else the
    /// pthread's. `body` must not run user code (no value is released
    /// inside it: callers return replaced values and drop them after).
    @inline(__always)
    static func withCurrent<R>(forWriting: Bool, _ body: (inout ContextLocalStorage) -> R) -> R {
        if let p = UMSThread.currentOnPrimaryUserContext {
            // Why this is sound: a UMS thread on a primary is a context
            // whose thread's user context holds a +1 on it while it runs
            // (see Context.currentInternal), and only that context touches
            // its table.
            return Unmanaged<Context>.fromOpaque(p)._withUnsafeGuaranteedRef { body(&$0.contextLocals) }
        }
        if forWriting {
            precondition(UMSThread.current == nil,
                         "ConcRT: ContextLocal.set/reset inside a blocking call's closure: it runs on a pooled "
                         + "kernel thread, where the value would outlive the call; set it before the call, "
                         + "or use withValue(_:_:)")
        }
        return PThreadLocals.table()._withUnsafeGuaranteedRef { body(&$0.storage) }
    }

    /// Runs a task's work item with a fresh table on the context `ctx`,
    /// then releases what the task stored and puts back the enclosing
    /// task's table (non-empty only for a task run nested on another
    /// task's frame). Called by `runWorkItem`; the common case (top-level
    /// task, nothing stored) costs two loads and two branches.
    @inline(__always)
    static func runTask(on ctx: Unmanaged<Context>, _ body: () -> Void) {
        var enclosing: ContextLocalStorage?
        ctx._withUnsafeGuaranteedRef { c in
            if !c.contextLocals.isEmpty {
                enclosing = c.contextLocals
                c.contextLocals = ContextLocalStorage()
            }
        }
        body()
        // The same context: a task returns on the context that started it.
        ctx._withUnsafeGuaranteedRef { c in
            if !c.contextLocals.isEmpty { releaseAll(c) }
            if let enclosing { c.contextLocals = enclosing }
        }
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
final class PThreadLocals {
    var storage = ContextLocalStorage()

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
    static func table() -> Unmanaged<PThreadLocals> {
        if let raw = pthread_getspecific(key) { return Unmanaged.fromOpaque(raw) }
        let t = Unmanaged.passRetained(PThreadLocals())
        pthread_setspecific(key, t.toOpaque())
        return t
    }
}

import Synchronization
