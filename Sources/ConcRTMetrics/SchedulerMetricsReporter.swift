import ConcRT
import CoreMetrics
import Dispatch
import Synchronization
import UMS

/// Publishes ``ConcRT/Scheduler/statistics`` and ``UMS/UMS/statistics``
/// through swift-metrics. [ConcRT's ETW scheduler events and performance
/// counters; here the server-side Swift metrics API]
///
/// Every field of `SchedulerStatistics` becomes `concrt_<field>` and every
/// field of `UMSStatistics` becomes `ums_<field>` (snake_case:
/// `tasksRun` → `concrt_tasks_run`), with the dimension
/// `scheduler=<label>`:
/// - counts (tasks run, steals, context switches, blocks, retakes, ring
///   operations, idle sleeps, ...) are `Counter`s, incremented at each
///   report by the change since the previous report;
/// - levels (`concrt_live_contexts`, `ums_kernel_threads_live`,
///   `ums_stacks_mapped`, `ums_stacks_cached`) are `Gauge`s set to the value.
///
/// `UMSStatistics` are process-wide: with several reporters, give only one
/// of them `includeUMS: true` or the UMS counts are added once per reporter.
///
/// ## Reaching Prometheus or OpenTelemetry
/// The reporter only calls the swift-metrics API. The application picks the
/// backend once at start-up with `MetricsSystem.bootstrap(_:)`:
/// - Prometheus: swift-prometheus's `PrometheusMetricsFactory` over a
///   `PrometheusCollectorRegistry`, whose `emit(into:)` output the
///   application serves at `/metrics`;
/// - OpenTelemetry: swift-otel's metrics factory (`OTel.bootstrap` or its
///   `OTLPMetricExporter` set-up), which pushes to an OTLP collector.
/// Neither is a dependency of this package. Without a bootstrap the
/// instruments go to swift-metrics' no-op handler.
///
/// ## Threads
/// ``report()`` may be called from any thread. ``start(interval:)`` reports
/// from a private Dispatch timer (a kernel-backed thread, never a ConcRT
/// task, so a saturated scheduler does not delay its own metrics). Reports
/// are serialized by a mutex; ``stop()`` waits for a report in progress.
public final class SchedulerMetricsReporter: Sendable {
    /// Fields of `SchedulerStatistics` that are levels, not counts.
    public static let schedulerGaugeFields: Set<String> = ["liveContexts"]
    /// Fields of `UMSStatistics` that are levels, not counts.
    public static let umsGaugeFields: Set<String> = ["kernelThreadsLive", "stacksMapped", "stacksCached"]

    private let scheduler: Scheduler
    private let includeUMS: Bool
    /// The publishers' instruments and last values; the mutex serializes
    /// reports from the user and from the timer.
    private let publishers: Mutex<(concrt: StatisticsPublisher, ums: StatisticsPublisher)>
    /// The running timer, if started.
    private let timer = Mutex<DispatchSourceTimer?>(nil)
    private let queue = DispatchQueue(label: "ConcRTMetrics.SchedulerMetricsReporter")

    /// - Parameters:
    ///   - scheduler: the scheduler whose statistics are published.
    ///   - label: the value of the `scheduler` dimension (for example the
    ///     scheduler's role, "io" or "compute"). Must not be empty.
    ///   - includeUMS: also publish the process-wide `UMS.statistics`.
    ///   - factory: the metrics backend; by default the bootstrapped one.
    public init(scheduler: Scheduler, label: String, includeUMS: Bool = true,
                factory: MetricsFactory = MetricsSystem.factory) {
        precondition(!label.isEmpty, "SchedulerMetricsReporter: the scheduler label must not be empty")
        self.scheduler = scheduler
        self.includeUMS = includeUMS
        let dims = [("scheduler", label)]
        publishers = Mutex((
            StatisticsPublisher(prefix: "concrt", gaugeFields: Self.schedulerGaugeFields, dimensions: dims, factory: factory),
            StatisticsPublisher(prefix: "ums", gaugeFields: Self.umsGaugeFields, dimensions: dims, factory: factory)
        ))
    }

    deinit {
        timer.withLock { $0?.cancel() }
    }

    /// Publishes the current statistics now. Returns what was published:
    /// each metric's name and the amount (a counter's increment, a gauge's
    /// value).
    @discardableResult
    public func report() -> [(name: String, amount: Int)] {
        // The statistics are read under the lock: two reports racing (the
        // user's and the timer's) then publish snapshots in the order they
        // were read, so every counter's delta is non-negative and no
        // change is counted twice.
        publishers.withLock { p in
            var out = p.concrt.publish(scheduler.statistics)
            if includeUMS { out += p.ums.publish(UMS.statistics) }
            return out
        }
    }

    /// Whether the periodic timer is running.
    public var isRunning: Bool { timer.withLock { $0 != nil } }

    /// Reports every `interval` from a private Dispatch timer until ``stop()``.
    /// Precondition: `interval` is positive and the reporter is not running.
    public func start(interval: Duration) {
        precondition(interval > .zero, "SchedulerMetricsReporter.start: interval must be positive, got \(interval)")
        let (sec, atto) = interval.components
        let ns = Int(max(sec * 1_000_000_000 + atto / 1_000_000_000, 1))
        timer.withLock { cur in
            precondition(cur == nil, "SchedulerMetricsReporter.start: already running; call stop() first")
            // Made, armed and stored under the lock: stop() cannot miss it.
            let t = DispatchSource.makeTimerSource(queue: queue)
            t.schedule(deadline: .now() + .nanoseconds(ns), repeating: .nanoseconds(ns))
            t.setEventHandler { [weak self] in _ = self?.report() }
            t.resume()
            cur = t
        }
    }

    /// Stops the periodic reports. When it returns, no timer report is in
    /// progress and none will start. Idempotent.
    public func stop() {
        guard let t = timer.withLock({ cur -> DispatchSourceTimer? in defer { cur = nil }; return cur }) else { return }
        t.cancel()
        // The timer's handler runs on `queue`; a barrier through it waits
        // for a handler already running (cancel stops later ones).
        queue.sync {}
    }
}
