import ConcRT
import Synchronization

/// Thrown by ``checkCancellation()`` and by waits on canceled work.
/// [task_canceled]
public struct TaskCanceled: Error, Equatable, Sendable, CustomStringConvertible {
    public init() {}
    public var description: String { "PPL: the task was canceled" }
}

/// Owns a cancellation token and cancels it. [cancellation_token_source]
public final class CancellationTokenSource: Sendable {
    /// The token to hand to task groups, futures and algorithms.
    public let token: CancellationToken

    public init() { token = CancellationToken(state: CancellationState()) }

    /// Cancels the token: registered callbacks run once, on this thread.
    /// [cancellation_token_source::cancel]
    public func cancel() { token.state?.cancel() }
}

/// A view of a cancellation request. [cancellation_token]
public struct CancellationToken: Sendable {
    let state: CancellationState?

    init(state: CancellationState?) { self.state = state }

    /// A token that is never canceled. [cancellation_token::none]
    public static let none = CancellationToken(state: nil)

    /// [cancellation_token::is_canceled]
    public var isCanceled: Bool { state?.isCanceled ?? false }

    /// Runs `callback` once when the token is canceled (at once if it
    /// already is). Keep the registration to undo it.
    /// [cancellation_token::register_callback]
    @discardableResult
    public func register(_ callback: @escaping @Sendable () -> Void) -> CancellationRegistration {
        guard let state else { return CancellationRegistration(state: nil, id: 0) }
        return state.register(callback)
    }
}

/// A callback registration. [cancellation_token_registration]
public struct CancellationRegistration: Sendable {
    let state: CancellationState?
    let id: Int

    /// Removes the callback; true if it had not run yet.
    /// [cancellation_token::deregister_callback]
    @discardableResult
    public func deregister() -> Bool { state?.deregister(id) ?? false }
}

/// Shared state behind a source and its tokens.
final class CancellationState: Sendable {
    private struct Inner {
        var canceled = false
        var nextID = 1
        var callbacks: [(Int, @Sendable () -> Void)] = []
    }
    private let inner = MigrationSafeMutex<Inner>(Inner())
    /// Mirror of `canceled` for lock-free polling (release on cancel).
    private let flag = Atomic<Bool>(false)

    var isCanceled: Bool { flag.load(ordering: .acquiring) }

    func cancel() {
        let cbs: [(Int, @Sendable () -> Void)] = inner.withLock { s in
            if s.canceled { return [] }
            s.canceled = true
            let c = s.callbacks
            s.callbacks.removeAll()
            return c
        }
        flag.store(true, ordering: .releasing)
        for (_, cb) in cbs { cb() }
    }

    func register(_ cb: @escaping @Sendable () -> Void) -> CancellationRegistration {
        let id: Int? = inner.withLock { s in
            if s.canceled { return nil }
            let id = s.nextID
            s.nextID += 1
            s.callbacks.append((id, cb))
            return id
        }
        guard let id else { cb(); return CancellationRegistration(state: nil, id: 0) }
        return CancellationRegistration(state: self, id: id)
    }

    func deregister(_ id: Int) -> Bool {
        inner.withLock { s in
            guard let i = s.callbacks.firstIndex(where: { $0.0 == id }) else { return false }
            s.callbacks.remove(at: i)
            return true
        }
    }
}

/// A cancellation scope: a task group (or an algorithm's run), its token,
/// and the scope it is nested in. Work checks the whole chain.
final class CancellationScope: Sendable {
    let parent: CancellationScope?
    let token: CancellationToken
    private let canceled = Atomic<Bool>(false)

    init(parent: CancellationScope?, token: CancellationToken) {
        self.parent = parent
        self.token = token
    }

    func cancel() { canceled.store(true, ordering: .releasing) }

    /// Cancels this scope; true for the caller that canceled it first (a
    /// loop's first error: its winner stores the error). Acquire-release:
    /// the winner is decided by this exchange alone.
    func cancelFirst() -> Bool { !canceled.exchange(true, ordering: .acquiringAndReleasing) }

    /// True when this scope itself was canceled (not an enclosing one or
    /// the token).
    var isCanceledHere: Bool { canceled.load(ordering: .acquiring) }

    /// This scope, an enclosing one, or a token on the chain was canceled.
    /// The walk touches no reference count: each scope holds its parent,
    /// and the caller holds `self`, so the whole chain outlives the loop.
    var isCanceled: Bool {
        var s = Unmanaged.passUnretained(self)
        while true {
            let (hit, next) = s._withUnsafeGuaranteedRef { c -> (Bool, Unmanaged<CancellationScope>?) in
                if c.canceled.load(ordering: .acquiring) || c.token.isCanceled { return (true, nil) }
                guard let p = c.parent else { return (false, nil) }
                return (false, Unmanaged.passUnretained(p))
            }
            if hit { return true }
            guard let next else { return false }
            s = next
        }
    }

    /// The scope of the running task: a context-local value (it stays with
    /// the context when it blocks and migrates; per pthread off a context).
    static let currentKey = ContextLocal<CancellationScope?>(default: nil)

    static var current: CancellationScope? { currentKey.value }

    /// ``current`` on the running context `ctx`: a context that has stored
    /// no context-local value has no scope, and skips the table lookup.
    @inline(__always)
    static func current(on ctx: Unmanaged<Context>) -> CancellationScope? {
        ctx._withUnsafeGuaranteedRef { $0.hasContextLocals } ? currentKey.value : nil
    }

    /// Runs `body` with `scope` as the current scope.
    @inline(__always)
    static func with<T, E: Error>(_ scope: CancellationScope, _ body: () throws(E) -> T) throws(E) -> T {
        try currentKey.withValue(scope, body)
    }
}

/// True when the running task's group (or any enclosing group, or its
/// token) has been canceled. [is_task_cancellation_requested]
public func isTaskCancellationRequested() -> Bool {
    CancellationScope.current?.isCanceled ?? false
}

/// Throws ``TaskCanceled`` when ``isTaskCancellationRequested()``.
/// [interruption_point]
public func checkCancellation() throws(TaskCanceled) {
    if isTaskCancellationRequested() { throw TaskCanceled() }
}
