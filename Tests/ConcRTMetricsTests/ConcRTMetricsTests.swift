import ConcRT
@testable import ConcRTMetrics
import CoreMetrics
import Foundation
import Synchronization
import UMS
import XCTest

/// A metrics backend that records every instrument's value in memory.
final class TestMetricsFactory: MetricsFactory, @unchecked Sendable {
    // @unchecked Sendable: state behind MigrationSafeMutex (Synchronization.Mutex waits on a futex TSan cannot see: it reported a race here).
    final class TestCounter: CounterHandler, @unchecked Sendable {
        let store = MigrationSafeMutex<Int64>(0)
        func increment(by amount: Int64) { store.withLock { $0 += amount } }
        func reset() { store.withLock { $0 = 0 } }
        var value: Int64 { store.withLock { $0 } }
    }
    final class TestRecorder: RecorderHandler, @unchecked Sendable {
        let store = MigrationSafeMutex<Double?>(nil)
        func record(_ value: Int64) { store.withLock { $0 = Double(value) } }
        func record(_ value: Double) { store.withLock { $0 = value } }
        var value: Double? { store.withLock { $0 } }
    }

    struct Key: Hashable { let label: String; let dims: [String] }
    private let counters = MigrationSafeMutex<[Key: TestCounter]>([:])
    private let recorders = MigrationSafeMutex<[Key: TestRecorder]>([:])

    private static func key(_ label: String, _ d: [(String, String)]) -> Key {
        Key(label: label, dims: d.map { "\($0.0)=\($0.1)" })
    }
    func makeCounter(label: String, dimensions: [(String, String)]) -> CounterHandler {
        counters.withLock { m in
            if let c = m[Self.key(label, dimensions)] { return c }
            let c = TestCounter(); m[Self.key(label, dimensions)] = c; return c
        }
    }
    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> FloatingPointCounterHandler {
        fatalError("ConcRTMetrics makes no floating-point counter (\(label))")
    }
    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> RecorderHandler {
        XCTAssertFalse(aggregate, "\(label): levels must be gauges (aggregate: false)")
        return recorders.withLock { m in
            if let r = m[Self.key(label, dimensions)] { return r }
            let r = TestRecorder(); m[Self.key(label, dimensions)] = r; return r
        }
    }
    func makeTimer(label: String, dimensions: [(String, String)]) -> TimerHandler {
        fatalError("ConcRTMetrics makes no timer (\(label))")
    }
    func destroyCounter(_ handler: CounterHandler) {}
    func destroyRecorder(_ handler: RecorderHandler) {}
    func destroyTimer(_ handler: TimerHandler) {}

    func counter(_ label: String, scheduler: String) -> Int64? {
        counters.withLock { $0[Self.key(label, [("scheduler", scheduler)])]?.value }
    }
    func gauge(_ label: String, scheduler: String) -> Double? {
        recorders.withLock { $0[Self.key(label, [("scheduler", scheduler)])]?.value }
    }
    var counterLabels: Set<String> { counters.withLock { Set($0.keys.map(\.label)) } }
    var gaugeLabels: Set<String> { recorders.withLock { Set($0.keys.map(\.label)) } }
}

final class ConcRTMetricsTests: XCTestCase {
    func testNames() {
        XCTAssertEqual(MetricNames.name(prefix: "concrt", field: "tasksRun"), "concrt_tasks_run")
        XCTAssertEqual(MetricNames.name(prefix: "ums", field: "kernelThreadsLive"), "ums_kernel_threads_live")
        XCTAssertEqual(MetricNames.name(prefix: "concrt", field: "steals"), "concrt_steals")
        XCTAssertEqual(MetricNames.name(prefix: "concrt", field: "idleTimeNanoseconds"), "concrt_idle_time_nanoseconds")
        struct S { var a: Int; var idleTime: Duration; var b: UInt64; var skipped: String }
        let f = StatisticsPublisher.fields(of: S(a: 3, idleTime: .milliseconds(2) + .nanoseconds(5), b: 9, skipped: "x"))
        XCTAssertEqual(f.map(\.0), ["a", "idleTimeNanoseconds", "b"])
        XCTAssertEqual(f.map(\.1), [3, 2_000_005, 9])
        XCTAssertEqual(MetricNames.name(prefix: "x", field: "httpServerURLCount"), "x_http_server_url_count")
        XCTAssertEqual(MetricNames.name(prefix: "x", field: "HTTPServer"), "x_http_server")
    }

    private func runTasks(_ s: Scheduler, _ n: Int) {
        let before = s.statistics.tasksRun
        let done = Atomic<Int>(0)
        let finished = Event()
        for _ in 0..<n {
            s.scheduleTask {
                if done.add(1, ordering: .relaxed).newValue == n { finished.set() }
            }
        }
        finished.wait()
        XCTAssertEqual(done.load(ordering: .relaxed), n)
        // The VP counts a task after its body returns: wait (bounded, 2 s)
        // until the statistic has caught up with the last body.
        let target = before + n
        let deadline = Date().addingTimeInterval(2)
        while s.statistics.tasksRun < target && Date() < deadline { usleep(500) }
        XCTAssertGreaterThanOrEqual(s.statistics.tasksRun, target, "tasksRun lags the tasks that ran")
    }

    func testReportPublishesEveryFieldAndThenOnlyTheDelta() throws {
        let s = try Scheduler(policy: SchedulerPolicy(minConcurrency: 2, maxConcurrency: 2))
        defer { try? s.shutdown() }
        let f = TestMetricsFactory()
        let r = SchedulerMetricsReporter(scheduler: s, label: "test", factory: f)

        let n = 500
        runTasks(s, n)
        let before = s.statistics.tasksRun
        XCTAssertGreaterThanOrEqual(before, n)
        r.report()
        let first = try XCTUnwrap(f.counter("concrt_tasks_run", scheduler: "test"))
        XCTAssertGreaterThanOrEqual(first, Int64(n))
        // Counters never run ahead of the statistic read after the report.
        XCTAssertLessThanOrEqual(first, Int64(s.statistics.tasksRun))

        // Every field of both statistics structs is published, under the
        // right kind of instrument.
        let concrtFields = StatisticsPublisher.fields(of: s.statistics).map(\.0)
        let umsFields = StatisticsPublisher.fields(of: UMS.statistics).map(\.0)
        XCTAssertGreaterThan(concrtFields.count, 15)
        XCTAssertGreaterThan(umsFields.count, 10)
        // No field of a type the publisher skips (a new statistic of a new
        // type must be taught to StatisticsPublisher.fields).
        XCTAssertEqual(concrtFields.count, Mirror(reflecting: s.statistics).children.count, "\(s.statistics)")
        XCTAssertEqual(umsFields.count, Mirror(reflecting: UMS.statistics).children.count)
        for fld in concrtFields {
            let name = MetricNames.name(prefix: "concrt", field: fld)
            if SchedulerMetricsReporter.schedulerGaugeFields.contains(fld) {
                XCTAssertTrue(f.gaugeLabels.contains(name), name)
            } else {
                XCTAssertTrue(f.counterLabels.contains(name), name)
            }
        }
        for fld in umsFields {
            let name = MetricNames.name(prefix: "ums", field: fld)
            if SchedulerMetricsReporter.umsGaugeFields.contains(fld) {
                XCTAssertTrue(f.gaugeLabels.contains(name), name)
            } else {
                XCTAssertTrue(f.counterLabels.contains(name), name)
            }
        }
        XCTAssertNotNil(f.gauge("concrt_live_contexts", scheduler: "test"))
        XCTAssertGreaterThanOrEqual(f.counter("concrt_contexts_created", scheduler: "test") ?? -1, 1)

        // A second report adds only the delta: the counter equals the
        // statistic at the second report, not twice it.
        let m = 300
        runTasks(s, m)
        let published = r.report()
        let second = try XCTUnwrap(f.counter("concrt_tasks_run", scheduler: "test"))
        let delta = try XCTUnwrap(published.first { $0.name == "concrt_tasks_run" }).amount
        XCTAssertEqual(second, first + Int64(delta))
        XCTAssertGreaterThanOrEqual(second - first, Int64(m))
        XCTAssertLessThanOrEqual(second, Int64(s.statistics.tasksRun))
        XCTAssertLessThan(second, 2 * first + Int64(m), "the second report re-added the whole count")

        // Quiescent: a third report adds nothing to tasks run.
        try s.shutdown()
        let settled = s.statistics.tasksRun
        r.report()
        XCTAssertEqual(f.counter("concrt_tasks_run", scheduler: "test"), Int64(settled))
        r.report()
        XCTAssertEqual(f.counter("concrt_tasks_run", scheduler: "test"), Int64(settled))
    }

    /// A value that goes down adds nothing and does not lower the base.
    func testCounterGoingDownIsNotCountedTwice() throws {
        struct Stat { var hits: Int; var level: Int }
        let f = TestMetricsFactory()
        var p = StatisticsPublisher(prefix: "t", gaugeFields: ["level"], dimensions: [("scheduler", "x")], factory: f)
        p.publish(Stat(hits: 10, level: 3))
        p.publish(Stat(hits: 7, level: 1))    // out of order: adds nothing
        p.publish(Stat(hits: 12, level: 2))   // adds 2, not 5
        XCTAssertEqual(f.counter("t_hits", scheduler: "x"), 12)
        XCTAssertEqual(f.gauge("t_level", scheduler: "x"), 2)
    }

    /// Reports from many threads at once while tasks run: the counter ends
    /// equal to the statistic (no change lost or counted twice).
    func testConcurrentReportsAddUpExactly() throws {
        let s = try Scheduler(policy: SchedulerPolicy(minConcurrency: 2, maxConcurrency: 2))
        defer { try? s.shutdown() }
        let f = TestMetricsFactory()
        let r = SchedulerMetricsReporter(scheduler: s, label: "race", factory: f)
        r.start(interval: .milliseconds(1))
        let rounds = ProcessInfo.processInfo.environment["LONG"] == "1" ? 50 : 5
        for _ in 0..<rounds {
            for _ in 0..<200 { s.scheduleTask {} }
            DispatchQueue.concurrentPerform(iterations: 4) { _ in for _ in 0..<20 { r.report() } }
        }
        r.stop()
        try s.shutdown()
        r.report()
        XCTAssertEqual(f.counter("concrt_tasks_run", scheduler: "race"), Int64(s.statistics.tasksRun))
        XCTAssertGreaterThanOrEqual(s.statistics.tasksRun, rounds * 200)
        XCTAssertEqual(f.counter("concrt_contexts_created", scheduler: "race"), Int64(s.statistics.contextsCreated))
    }

    func testDimensionsSeparateSchedulersAndUMSIsOptional() throws {
        let a = try Scheduler(policy: SchedulerPolicy(minConcurrency: 1, maxConcurrency: 1))
        let b = try Scheduler(policy: SchedulerPolicy(minConcurrency: 1, maxConcurrency: 1))
        defer { try? a.shutdown(); try? b.shutdown() }
        let f = TestMetricsFactory()
        let ra = SchedulerMetricsReporter(scheduler: a, label: "a", factory: f)
        let rb = SchedulerMetricsReporter(scheduler: b, label: "b", includeUMS: false, factory: f)
        runTasks(a, 200)
        runTasks(b, 20)
        try a.shutdown(); try b.shutdown()
        ra.report(); rb.report()
        XCTAssertEqual(f.counter("concrt_tasks_run", scheduler: "a"), Int64(a.statistics.tasksRun))
        XCTAssertEqual(f.counter("concrt_tasks_run", scheduler: "b"), Int64(b.statistics.tasksRun))
        XCTAssertGreaterThanOrEqual(a.statistics.tasksRun, 200)
        XCTAssertNotNil(f.counter("ums_threads_created", scheduler: "a"))
        XCTAssertNil(f.counter("ums_threads_created", scheduler: "b"))
    }

    func testPeriodicReportsStartAndStop() throws {
        let s = try Scheduler(policy: SchedulerPolicy(minConcurrency: 1, maxConcurrency: 1))
        defer { try? s.shutdown() }
        let f = TestMetricsFactory()
        let r = SchedulerMetricsReporter(scheduler: s, label: "periodic", factory: f)
        runTasks(s, 100)
        r.start(interval: .milliseconds(5))
        XCTAssertTrue(r.isRunning)
        // Bounded wait (2 s) for the timer to publish without report().
        let deadline = Date().addingTimeInterval(2)
        while (f.counter("concrt_tasks_run", scheduler: "periodic") ?? 0) < 100 && Date() < deadline {
            usleep(2_000)
        }
        XCTAssertGreaterThanOrEqual(f.counter("concrt_tasks_run", scheduler: "periodic") ?? 0, 100)
        r.stop()
        XCTAssertFalse(r.isRunning)
        // After stop, new work is not published until report() is called.
        runTasks(s, 50)
        let atStop = f.counter("concrt_tasks_run", scheduler: "periodic") ?? 0
        usleep(30_000)
        XCTAssertEqual(f.counter("concrt_tasks_run", scheduler: "periodic"), atStop)
        r.report()
        XCTAssertGreaterThanOrEqual((f.counter("concrt_tasks_run", scheduler: "periodic") ?? 0) - atStop, 50)
        r.stop()   // idempotent
    }
}
