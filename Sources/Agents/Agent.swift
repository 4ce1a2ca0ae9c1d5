import ConcRT
import Synchronization

/// An asynchronous agent: subclass it, override ``run()``, and call
/// ``done()`` when its work is finished. [concurrency::agent]
///
/// Life cycle (agent_status): `created` → (``start()``) `runnable` → (its
/// task begins) `started` → (``done()``) `done`; ``cancel()`` moves a
/// `created` or `runnable` agent to `canceled` (a started agent cannot be
/// canceled). `done` and `canceled` are final. As in agents.h, returning
/// from ``run()`` does not finish the agent: call ``done()`` (from `run` or
/// later, from anywhere), or the waits below never return.
///
/// Protocol: `status` is one atomic word; every transition is one
/// acquire-release CAS from the single state it may leave, so start, the
/// task's begin, done and cancel race safely (exactly one of "begin" and
/// "cancel" wins a runnable agent). Reaching `done` or `canceled` sets an
/// ``Event`` once (only the winning CAS sets it); waits wait on that event,
/// blocking the context, not its thread, or parking a plain pthread.
open class Agent: @unchecked Sendable {
    // @unchecked Sendable: the status word is atomic, the event is
    // thread-safe, the scheduler is immutable.

    /// [agent_status]
    public enum Status: UInt8, Sendable, AtomicRepresentable, CustomStringConvertible {
        /// [agent_created]
        case created
        /// [agent_runnable]: started, its task not yet running.
        case runnable
        /// [agent_started]: ``run()`` was entered.
        case started
        /// [agent_done]
        case done
        /// [agent_canceled]
        case canceled

        public var isFinal: Bool { self == .done || self == .canceled }
        public var description: String {
            switch self {
            case .created: "created"
            case .runnable: "runnable"
            case .started: "started"
            case .done: "done"
            case .canceled: "canceled"
            }
        }
    }

    private let statusWord = Atomic<Status>(.created)
    private let finished = Event()
    /// The scheduler its ``run()`` task runs on. [agent(Scheduler&)]
    public let scheduler: Scheduler

    /// An agent whose task will run on `scheduler`. [agent::agent]
    public init(scheduler: Scheduler = .default) {
        self.scheduler = scheduler
    }

    /// The current state. [agent::status]
    public final var status: Status { statusWord.load(ordering: .acquiring) }

    /// The agent's work. Override it; call ``done()`` when finished. [agent::run]
    open func run() {
        preconditionFailure("Agent.run: \(type(of: self)) must override run()")
    }

    private func transition(from: Status, to: Status) -> Bool {
        statusWord.compareExchange(expected: from, desired: to, ordering: .acquiringAndReleasing).exchanged
    }

    /// Moves a created agent to `runnable` and schedules a task that runs
    /// ``run()``. False when the agent was not `created`. [agent::start]
    @discardableResult
    public final func start() -> Bool {
        guard transition(from: .created, to: .runnable) else { return false }
        scheduler.scheduleTask { [self] in
            if transition(from: .runnable, to: .started) { run() }
        }
        return true
    }

    /// Marks a started agent `done` and releases its waiters. False when
    /// it was not `started`. [agent::done]
    @discardableResult
    public final func done() -> Bool {
        guard transition(from: .started, to: .done) else { return false }
        finished.set()
        return true
    }

    /// Cancels an agent that has not started running. False when it already
    /// started or finished. [agent::cancel]
    @discardableResult
    public final func cancel() -> Bool {
        guard transition(from: .created, to: .canceled) || transition(from: .runnable, to: .canceled) else { return false }
        finished.set()
        return true
    }

    /// Waits until `agent` is done or canceled; returns that status.
    /// [agent::wait]
    /// - Throws: ``AgentsError/timeout(_:)``.
    @discardableResult
    public static func wait(_ agent: Agent, timeout: Duration? = nil) throws(AgentsError) -> Status {
        if let timeout {
            if !agent.finished.wait(timeout: timeout) { throw .timeout(timeout) }
        } else {
            agent.finished.wait()
        }
        return agent.status
    }

    /// Waits until every agent is done or canceled; returns their states.
    /// [agent::wait_for_all]
    /// - Throws: ``AgentsError/timeout(_:)`` (`timeout` bounds the whole wait).
    @discardableResult
    public static func waitForAll(_ agents: [Agent], timeout: Duration? = nil) throws(AgentsError) -> [Status] {
        if agents.isEmpty { return [] }
        let r = Event.waitForMultiple(agents.map(\.finished), waitAll: true, timeout: timeout)
        if r == Event.timeoutResult { throw .timeout(timeout ?? .zero) }
        return agents.map(\.status)
    }

    /// Waits until any one agent is done or canceled; returns its index and
    /// status. [agent::wait_for_one]
    /// - Throws: ``AgentsError/invalidArgument(_:)`` for no agents;
    ///   ``AgentsError/timeout(_:)``.
    public static func waitForOne(_ agents: [Agent], timeout: Duration? = nil) throws(AgentsError) -> (index: Int, status: Status) {
        if agents.isEmpty { throw .invalidArgument("Agent.waitForOne needs at least one agent") }
        let r = Event.waitForMultiple(agents.map(\.finished), waitAll: false, timeout: timeout)
        if r == Event.timeoutResult { throw .timeout(timeout ?? .zero) }
        return (r, agents[r].status)
    }
}
