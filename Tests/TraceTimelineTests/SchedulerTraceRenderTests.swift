import ConcRT
import Foundation
@testable import TraceTimeline
import XCTest

/// A real scheduler trace, rendered: the runtime's exporter and the
/// renderer agree (balanced tracks, task colour where tasks ran).
final class SchedulerTraceRenderTests: XCTestCase {
    func testRendersAShortSchedulerTrace() throws {
        let s = try Scheduler(policy: SchedulerPolicy(minConcurrency: 2, maxConcurrency: 2))
        try s.startTrace()
        let done = Event()
        let left = ManagedAtomicCounter(40)
        for _ in 0..<40 {
            s.scheduleTask {
                let end = DispatchTime.now().uptimeNanoseconds + 300_000
                while DispatchTime.now().uptimeNanoseconds < end {}
                try? Blocking.sleep(for: .microseconds(500))
                if left.decrement() == 0 { done.set() }
            }
        }
        done.wait()
        let trace = try s.stopTrace()
        try s.shutdown()
        let json = trace.chromeTraceJSON()
        let timeline = try Timeline(ChromeTrace.parse(Data(json.utf8)))
        XCTAssertEqual(timeline.tracks.count, 2, "one row per VP")
        let (raster, layout) = try TimelineRenderer(width: 1200).render(timeline)
        let png = raster.png()
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("ums-trace-\(getpid()).png")
        try Data(png).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int)
        XCTAssertGreaterThan(size, 1000, "the image is not empty")
        // Task colour appears in the VP rows (the tasks spun 300 µs each).
        let taskPixels = layout.rows.values.reduce(0) { n, rows in
            n + rows.reduce(0) { m, y in m + (0..<raster.width).filter { raster[$0, y] == Palette.states["task"] }.count }
        }
        XCTAssertGreaterThan(taskPixels, 100, "no task bars drawn")
        XCTAssertEqual(try PNGFile(png).pixels(), raster.pixels)
    }
}

/// A tiny counter (no ConcRT-internal types in this test target).
final class ManagedAtomicCounter: @unchecked Sendable {
    private var value: Int
    private let lock = NSLock()
    init(_ v: Int) { value = v }
    func decrement() -> Int { lock.lock(); defer { lock.unlock() }; value -= 1; return value }
}
