import ConcRT
import Synchronization

/// How a future ended. [task_status]
public enum FutureStatus: Sendable, Equatable {
    case completed
    case canceled
}

/// The eventual result of a task. [task<T>]
///
/// Made from a closure scheduled on a scheduler, from a value or an error,
/// or from a ``Promise``. Continuations run as new tasks when it completes.
///
/// | PPL                         | here                          |
/// |-----------------------------|-------------------------------|
/// | `task<T>(f)` / `create_task` | ``init(scheduler:token:_:)`` |
/// | `task::get` / `task::wait`  | ``get()`` / ``wait()``         |
/// | value-based `then`          | ``then(_:)`` (skipped after an error or cancellation) |
/// | task-based `then`           | ``continueWith(_:)`` (always runs, sees the Result) |
/// | `when_all` / `when_any`     | ``whenAll(_:)`` / ``whenAny(_:)`` |
/// | `task_from_result` / `task_from_exception` | ``init(value:)`` / ``init(error:)`` |
public final class Future<Value: Sendable>: @unchecked Sendable {
    // @unchecked Sendable: all state is under `state`'s mutex.
    private struct State {
        var result: Result<Value, any Error>?
        var continuations: [@Sendable (Result<Value, any Error>) -> Void] = []
        var waiters: [Event] = []
    }
    private let state = MigrationSafeMutex<State>(State())
    let scheduler: Scheduler

    /// Schedules `body`; the future completes with what it returns or
    /// throws. If `token` is canceled before the task starts, the future
    /// completes as canceled (``get()`` throws ``TaskCanceled``).
    public init(scheduler: Scheduler? = nil, token: CancellationToken = .none,
                _ body: @escaping @Sendable () throws -> Value) {
        self.scheduler = scheduler ?? Scheduler.current ?? Scheduler.default
        let scope = CancellationScope(parent: CancellationScope.current, token: token)
        self.scheduler.scheduleTask { [self] in
            if scope.isCanceled { complete(.failure(TaskCanceled())); return }
            complete(Result { try CancellationScope.with(scope) { try body() } })
        }
    }

    /// A future that already holds `value`. [task_from_result]
    public init(value: Value) {
        scheduler = Scheduler.current ?? Scheduler.default
        state.withLock { $0.result = .success(value) }
    }

    /// A future that already failed with `error`. [task_from_exception]
    public init(error: any Error) {
        scheduler = Scheduler.current ?? Scheduler.default
        state.withLock { $0.result = .failure(error) }
    }

    /// Dropping a pending future drops its continuations, which own the
    /// futures they complete: released iteratively (see FutureTeardown),
    /// so a chain of any length is torn down in constant stack depth.
    deinit {
        if state.withLock({ $0.continuations.isEmpty }) { return }
        // Moved straight from the state into the work list: no local here
        // may keep the array, or its release would come back on this frame.
        FutureTeardown.release { list in
            state.withLock { s in
                list.items.append(s.continuations)
                s.continuations = []
            }
        }
    }

    /// A pending future completed by a ``Promise``.
    init(pendingOn scheduler: Scheduler?) {
        self.scheduler = scheduler ?? Scheduler.current ?? Scheduler.default
    }

    /// True once it holds a value, an error, or a cancellation. [task::is_done]
    public var isDone: Bool { state.withLock { $0.result != nil } }

    /// Waits; returns `.canceled` when the task was canceled (its error is
    /// ``TaskCanceled``), else `.completed` (value or error). [task::wait]
    @discardableResult
    public func wait() -> FutureStatus {
        let r = awaitResult()
        if case .failure(let e) = r, e is TaskCanceled { return .canceled }
        return .completed
    }

    /// Waits and returns the value, or rethrows the task's error.
    /// Blocks the context, not the thread. [task::get]
    public func get() throws -> Value { try awaitResult().get() }

    /// Runs `f` on the value once it is there, as a new task. After an
    /// error or cancellation `f` is skipped and the error passes on.
    /// [task::then, value-based continuation]
    public func then<U: Sendable>(_ f: @escaping @Sendable (Value) throws -> U) -> Future<U> {
        let next = Future<U>(pendingOn: scheduler)
        onComplete { r in
            switch r {
            case .success(let v): next.complete(Result { try f(v) })
            case .failure(let e): next.complete(.failure(e))
            }
        }
        return next
    }

    /// Runs `f` with the outcome (value or error) once it is there, as a new
    /// task; always runs. [task::then, task-based continuation]
    public func continueWith<U: Sendable>(_ f: @escaping @Sendable (Result<Value, any Error>) throws -> U) -> Future<U> {
        let next = Future<U>(pendingOn: scheduler)
        onComplete { r in next.complete(Result { try f(r) }) }
        return next
    }

    // MARK: Internals

    /// Registers `f` to run as a task on completion (at once, as a task, if
    /// already complete).
    func onComplete(_ f: @escaping @Sendable (Result<Value, any Error>) -> Void) {
        let done: Result<Value, any Error>? = state.withLock { s in
            if let r = s.result { return r }
            s.continuations.append(f)
            return nil
        }
        if let done { scheduler.scheduleTask { f(done) } }
    }

    /// Completes once; later calls return false.
    @discardableResult
    func complete(_ r: Result<Value, any Error>) -> Bool {
        let (ok, conts, waiters) = state.withLock { s -> (Bool, [@Sendable (Result<Value, any Error>) -> Void], [Event]) in
            if s.result != nil { return (false, [], []) }
            s.result = r
            defer { s.continuations.removeAll(); s.waiters.removeAll() }
            return (true, s.continuations, s.waiters)
        }
        for w in waiters { w.set() }
        for c in conts { scheduler.scheduleTask { c(r) } }
        return ok
    }

    private func awaitResult() -> Result<Value, any Error> {
        let ev = Event()
        let r: Result<Value, any Error>? = state.withLock { s in
            if let r = s.result { return r }
            s.waiters.append(ev)
            return nil
        }
        if let r { return r }
        ev.wait()
        return state.withLock { $0.result! }
    }
}

extension Future {
    /// A future of every value, in order; fails with the first error (by
    /// position) if any fails. [when_all]
    public static func whenAll(_ futures: [Future<Value>]) -> Future<[Value]> {
        let out = Future<[Value]>(pendingOn: futures.first?.scheduler)
        if futures.isEmpty { out.complete(.success([])); return out }
        let remaining = Atomic<Int>(futures.count)
        let box = ResultsBox<Value>(count: futures.count)
        for (i, f) in futures.enumerated() {
            f.onComplete { r in
                box.set(i, r)
                if remaining.wrappingSubtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
                    out.complete(box.collect())
                }
            }
        }
        return out
    }

    /// A future of the first value to arrive, with its index. Failures are
    /// skipped while another future may still succeed; if all fail, it fails
    /// with the first error to arrive. [when_any]
    public static func whenAny(_ futures: [Future<Value>]) -> Future<(index: Int, value: Value)> {
        let out = Future<(index: Int, value: Value)>(pendingOn: futures.first?.scheduler)
        precondition(!futures.isEmpty, "PPL: whenAny needs at least one future")
        let failures = Atomic<Int>(0)
        let firstError = MigrationSafeMutex<(any Error)?>(nil)
        for (i, f) in futures.enumerated() {
            f.onComplete { r in
                switch r {
                case .success(let v):
                    out.complete(.success((i, v)))
                case .failure(let e):
                    firstError.withLock { if $0 == nil { $0 = e } }
                    if failures.wrappingAdd(1, ordering: .acquiringAndReleasing).newValue == futures.count {
                        out.complete(.failure(firstError.withLock { $0! }))
                    }
                }
            }
        }
        return out
    }
}

/// Per-position results for whenAll.
///
/// The slots are a fixed buffer, not an `Array` property: completions run
/// on several virtual processors at once, and `array[i] = r` from two of
/// them is two overlapping modify accesses of the one array variable (a
/// data race, even for distinct `i`; ThreadSanitizer reported it here).
/// Distinct buffer elements are distinct memory locations.
final class ResultsBox<Value: Sendable>: @unchecked Sendable {
    // @unchecked Sendable: each slot is written once, by one completion,
    // before the atomic countdown (acq_rel) that makes the last one read
    // them all.
    private let slots: UnsafeMutableBufferPointer<Result<Value, any Error>?>
    init(count: Int) {
        slots = .allocate(capacity: count)
        slots.initialize(repeating: nil)
    }
    deinit {
        slots.deinitialize()
        slots.deallocate()
    }
    func set(_ i: Int, _ r: Result<Value, any Error>) { slots[i] = r }
    func collect() -> Result<[Value], any Error> {
        Result { try slots.map { try $0!.get() } }
    }
}

/// Completes a future from outside any task. [task_completion_event]
public final class Promise<Value: Sendable>: Sendable {
    /// The future this promise completes.
    public let future: Future<Value>

    public init(scheduler: Scheduler? = nil) { future = Future(pendingOn: scheduler) }

    /// Completes the future with `value`; false if it was already complete.
    /// [task_completion_event::set]
    @discardableResult
    public func set(_ value: Value) -> Bool { future.complete(.success(value)) }

    /// Completes the future with `error`; false if it was already complete.
    /// [task_completion_event::set_exception]
    @discardableResult
    public func fail(_ error: any Error) -> Bool { future.complete(.failure(error)) }
}
