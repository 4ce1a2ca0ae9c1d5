import ConcRT

/// Produces `value` after `interval`, once or repeatedly, into its output
/// queue (receivers and linked targets, as ``UnboundedBuffer``).
/// [concurrency::timer: start, stop, pause]
///
/// Protocol: the running state is under a `MigrationSafeMutex`. ``start()``
/// schedules one task with a fresh stop ``Event``; the task waits on that
/// event with the interval as timeout (its context blocks, no thread
/// sleeps), queues `value` on each timeout, and ends when the event is set
/// (``stop()``/``pause()``) or after the one tick of a non-repeating timer.
/// ``pause()`` lets a later ``start()`` run it again; ``stop()`` is final.
public final class TimerBlock<T: Sendable>: QueueBlock<T>, @unchecked Sendable {
    private struct Run { var stopEvent: Event?; var stopped = false }
    public let interval: Duration
    public let value: T
    public let repeating: Bool
    private let scheduler: Scheduler
    private let run = MigrationSafeMutex(Run(stopEvent: nil))

    /// - Throws: ``AgentsError/invalidArgument(_:)`` when `interval` <= 0.
    public init(interval: Duration, value: T, repeating: Bool, scheduler: Scheduler = .default) throws(AgentsError) {
        guard interval > .zero else { throw .invalidArgument("TimerBlock interval must be > 0 (got \(interval))") }
        self.interval = interval
        self.value = value
        self.repeating = repeating
        self.scheduler = scheduler
        super.init(capacity: .max, name: "TimerBlock")
    }

    /// Starts (or resumes after ``pause()``) the timer. False when it is
    /// running or stopped. [timer::start]
    @discardableResult
    public func start() -> Bool {
        let ev: Event? = run.withLock { r in
            if r.stopped || r.stopEvent != nil { return nil }
            let e = Event()
            r.stopEvent = e
            return e
        }
        guard let ev else { return false }
        let (interval, value, repeating) = (self.interval, self.value, self.repeating)
        scheduler.scheduleTask { [weak self] in
            while !ev.wait(timeout: interval) {
                guard let self else { return }
                _ = self.enqueue(value, from: nil)
                if !repeating {
                    self.run.withLock { r in if r.stopEvent === ev { r.stopEvent = nil } }
                    return
                }
            }
        }
        return true
    }

    /// Stops the timer; ``start()`` may run it again. [timer::pause]
    public func pause() {
        run.withLock { r in let e = r.stopEvent; r.stopEvent = nil; return e }?.set()
    }

    /// Stops the timer for good. [timer::stop]
    public func stop() {
        run.withLock { r in r.stopped = true; let e = r.stopEvent; r.stopEvent = nil; return e }?.set()
    }

    /// Stops the timer and shuts the output down (see ``QueueBlock/shutdown()``).
    public override func shutdown() {
        stop()
        super.shutdown()
    }
}
