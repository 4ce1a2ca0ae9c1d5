import ConcRT
import Synchronization

/// How a group's (or a future's) work ended. [task_group_status]
public enum TaskGroupStatus: Sendable, Equatable {
    /// Every task ran to completion. [completed]
    case completed
    /// The group was canceled; tasks not yet started were discarded.
    /// [canceled]
    case canceled
}

/// A set of tasks that are waited for together. [task_group]
///
/// - Tasks run on the group's scheduler (the caller's, else the default
///   one). From a scheduler context, ``run(_:)`` pushes onto the virtual
///   processor's own deque; from outside it injects.
/// - The first error thrown by a task cancels the group: tasks not yet
///   started are discarded, running ones see ``isTaskCancellationRequested()``.
///   ``wait()`` rethrows that error. When several tasks throw, the error
///   recorded first (in time) wins; later ones are dropped.
/// - **Cancellation contract** (PPL's): ``wait()`` returns `.canceled`
///   when the group was canceled — by ``cancel()``, by its token, by an
///   enclosing group's cancellation, or by a task that ended with
///   ``TaskCanceled`` — whether its tasks then returned early or threw
///   ``TaskCanceled`` (``checkCancellation()``, a canceled future's `get()`).
///   ``TaskCanceled`` is never rethrown by ``wait()``; it cancels the group,
///   like PPL's `task_canceled` escaping a task. Any other error is
///   rethrown, canceled or not. ``runAndWait(_:)``'s body follows the same
///   rules as a task.
/// - ``wait()`` helps: it runs this group's own queued tasks itself (never
///   unrelated ones, which could block on something the caller does later),
///   then blocks the context (not the thread) until the last task finishes.
/// - Canceling a group also cancels the groups nested inside its tasks.
public final class TaskGroup: @unchecked Sendable {
    // @unchecked Sendable: counters are atomics; the rest is under `lock`.
    let scheduler: Scheduler
    let scope: CancellationScope
    private let pending = Atomic<Int>(0)
    private let lock = MigrationSafeMutex<State>(State())
    private let failed = Atomic<Bool>(false)

    private struct State {
        var error: (any Error)?
        var waiters: [GroupWaiter] = []
    }

    /// - Parameters:
    ///   - scheduler: where tasks run; default: the caller's scheduler, or
    ///     ``Scheduler/default``.
    ///   - token: cancels the group when canceled.
    public init(scheduler: Scheduler? = nil, token: CancellationToken = .none) {
        self.scheduler = scheduler ?? Scheduler.current ?? Scheduler.default
        let parent: CancellationScope?
        if let here = Context.currentUnretained {
            parent = CancellationScope.current(on: here)
        } else {
            parent = CancellationScope.current
        }
        self.scope = CancellationScope(parent: parent, token: token)
    }

    /// Schedules `body` in the group. [task_group::run]
    ///
    /// From a context of the group's scheduler a task costs one heap
    /// object, its node (it holds the group and `body`; see
    /// ``runOwnedTask(_:)``), besides `body`'s own captures.
    public func run(_ body: @escaping @Sendable () throws -> Void) {
        pending.wrappingAdd(1, ordering: .relaxed)
        if let c = onOwnScheduler() {
            c._withUnsafeGuaranteedRef { $0.pushOwnedTask(self, body) }
        } else {
            scheduler.scheduleTask { [self] in runOwnedTask(body) }
        }
    }

    /// Runs one of the group's tasks: skipped once the group is canceled,
    /// else run in the group's scope; its error is recorded. Then the task
    /// counts as finished. (ConcRT calls it for the nodes `run` pushed.)
    package func runOwnedTask(_ body: () throws -> Void) {
        if !scope.isCanceled {
            do {
                try CancellationScope.with(scope) { try body() }
            } catch {
                record(error)
            }
        }
        finishOne()
    }

    /// The running context, unretained, if it belongs to the group's
    /// scheduler (nil elsewhere).
    @inline(__always)
    private func onOwnScheduler() -> Unmanaged<Context>? {
        guard let c = Context.currentUnretained, c._withUnsafeGuaranteedRef({ $0.belongs(to: scheduler) }) else {
            return nil
        }
        return c
    }

    /// Waits for every task; rethrows the first error other than
    /// ``TaskCanceled``. Returns `.canceled` when the group (or its token,
    /// or an enclosing group) was canceled, or a task ended with
    /// ``TaskCanceled``; else `.completed`. [task_group::wait]
    @discardableResult
    public func wait() throws -> TaskGroupStatus {
        if pending.load(ordering: .acquiring) > 0 {
            if let c = onOwnScheduler() {
                // Help with our own tasks only (see Context.runOwnTasks).
                while pending.load(ordering: .acquiring) > 0,
                      c._withUnsafeGuaranteedRef({ $0.runOwnTasks(of: self) }) > 0 {}
            }
            if pending.load(ordering: .acquiring) > 0 { park() }
        }
        if let e = lock.withLock({ $0.error }) { throw e }
        return scope.isCanceled ? .canceled : .completed
    }

    /// Runs `body` on the caller, then waits. `body` ending with
    /// ``TaskCanceled`` cancels the group (the result is `.canceled`); any
    /// other error it throws is rethrown like a task's.
    /// [task_group::run_and_wait]
    @discardableResult
    public func runAndWait(_ body: () throws -> Void) throws -> TaskGroupStatus {
        do {
            try CancellationScope.with(scope) { try body() }
        } catch {
            record(error)
        }
        return try wait()
    }

    /// Cancels the group: tasks not yet started are discarded; running ones
    /// see the request. [task_group::cancel]
    public func cancel() { scope.cancel() }

    /// True once the group (or an enclosing one, or its token) is canceled.
    /// [task_group::is_canceling]
    public var isCanceling: Bool { scope.isCanceled }

    // MARK: Internals

    /// A task (or runAndWait's body) ended with `error`. ``TaskCanceled``
    /// cancels the group and is not recorded (wait reports `.canceled`);
    /// the first other error is kept for wait to rethrow.
    private func record(_ error: any Error) {
        if error is TaskCanceled { scope.cancel(); return }
        if failed.exchange(true, ordering: .acquiringAndReleasing) { return }
        lock.withLock { $0.error = error }
        scope.cancel()
    }

    /// A task ended. The task that brings `pending` to zero wakes the
    /// waiters, but only if `pending` is still zero under the lock.
    ///
    /// Why the re-check: zero can be transient. Tasks may finish while
    /// `run` is still adding more. A `run` and a `park` can both happen
    /// between this decrement and this lock (a preempted pthread). That
    /// `park` registered against the newer tasks, so this older zero must
    /// not wake it. The task that brings the count to zero again will.
    /// (Seen once in the soak: `wait()` returned `.completed` with 92
    /// tasks not started. The model is `Tests/Models/taskgroup.pml`.)
    ///
    /// Orderings: the acquire-release decrement orders each task's effects
    /// before the zero; the load under the lock is acquiring, and `park`'s
    /// check is under the same lock, so a waiter sees one of: zero before
    /// registering (no wait), or a later finisher's wake.
    private func finishOne() {
        if pending.wrappingSubtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
            if TaskGroup._zeroHookArmed.load(ordering: .acquiring) { TaskGroup._afterCountReachedZero?(self) }
            let ws = lock.withLock { s -> [GroupWaiter] in
                if pending.load(ordering: .acquiring) != 0 { return [] }
                defer { s.waiters.removeAll() }
                return s.waiters
            }
            for w in ws { w.event.set() }
        }
    }

    /// Tests only: called between a task's decrement to zero and its lock
    /// (to hold a finisher there as a preempted pthread would), while
    /// `_zeroHookArmed`. The closure is written only while disarmed; the
    /// release store that arms it publishes it to the acquire load above.
    nonisolated(unsafe) static var _afterCountReachedZero: (@Sendable (TaskGroup) -> Void)?
    static let _zeroHookArmed = Atomic<Bool>(false)

    /// Waiters registered now (tests).
    var _waiterCount: Int { lock.withLock { $0.waiters.count } }

    private func park() {
        let w = GroupWaiter()
        let mustWait = lock.withLock { s -> Bool in
            if pending.load(ordering: .acquiring) == 0 { return false }
            s.waiters.append(w)
            return true
        }
        if mustWait { w.event.wait() }
    }
}

extension TaskGroup: TaskOwner {}

/// One waiter on a group: an event, so contexts block cooperatively and
/// outside threads on a futex.
final class GroupWaiter: Sendable {
    let event = Event()
}

/// A task group that must be waited for before it goes away: a
/// non-copyable value, consumed by ``wait()``. [structured_task_group]
///
/// Dropping it without waiting is a programming error (its tasks would
/// outlive the scope that started them) and stops the program with a
/// message naming the misuse.
///
/// Cancellation contract: the same as ``TaskGroup``'s. ``wait()`` and
/// ``runAndWait(_:)`` return `.canceled` when the group was canceled (by
/// ``cancel()``, its token, an enclosing group, or a task ending with
/// ``TaskCanceled``), whether tasks returned early or threw
/// ``TaskCanceled``; other errors are rethrown.
public struct StructuredTaskGroup: ~Copyable {
    // Unmanaged (a trivial value) so that `wait` can `discard self`.
    private let ref: Unmanaged<TaskGroup>
    private var group: TaskGroup { ref.takeUnretainedValue() }

    public init(scheduler: Scheduler? = nil, token: CancellationToken = .none) {
        ref = Unmanaged.passRetained(TaskGroup(scheduler: scheduler, token: token))
    }

    /// [structured_task_group::run]
    public func run(_ body: @escaping @Sendable () throws -> Void) { group.run(body) }

    /// [structured_task_group::cancel]
    public func cancel() { group.cancel() }

    /// [structured_task_group::is_canceling]
    public var isCanceling: Bool { group.isCanceling }

    /// Waits for every task and consumes the group; `.canceled` or
    /// `.completed`, or rethrows the first error other than
    /// ``TaskCanceled`` (see the type's cancellation contract).
    /// [structured_task_group::wait]
    @discardableResult
    public consuming func wait() throws -> TaskGroupStatus {
        let g = ref.takeRetainedValue()
        discard self
        return try g.wait()
    }

    /// Runs `body` on the caller, then waits; consumes the group. `body`
    /// ending with ``TaskCanceled`` cancels the group.
    /// [structured_task_group::run_and_wait]
    @discardableResult
    public consuming func runAndWait(_ body: () throws -> Void) throws -> TaskGroupStatus {
        let g = ref.takeRetainedValue()
        discard self
        return try g.runAndWait(body)
    }

    deinit {
        structuredGroupDropped()
    }
}

@inline(never)
func structuredGroupDropped() {
    preconditionFailure("PPL: a StructuredTaskGroup was dropped without wait(); call wait() or runAndWait(_:) before it goes out of scope")
}
