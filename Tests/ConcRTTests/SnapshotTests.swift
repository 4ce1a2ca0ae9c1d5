import TestSupport
import Foundation
import Synchronization
import XCTest
@testable import ConcRT
import CSupport
import UMS

/// Process reflection: Scheduler.snapshot() while the VPs keep running.
final class SnapshotTests: XCTestCase {
    /// Parks the calling context on `e` (a named frame the backtraces must show).
    @inline(never)
    static func waitOnEventForSnapshot(_ e: Event) {
        e.wait()
        blackHole()
    }

    @inline(never)
    static func readPipeForSnapshot(_ fd: Int32) -> Int {
        var b: UInt8 = 0
        let n = (try? withUnsafeMutableBytes(of: &b) { try Blocking.read(fd, into: $0) }) ?? -1
        blackHole()
        return n
    }

    @inline(never) static func blackHole() { csup_cpu_relax() }

    /// 1,000 contexts in known states (the sizes scale down under the
    /// sanitizers, which keep a fiber state per context): waiting on 3
    /// events, in the kernel on a pipe, runnable, and running a spin. The
    /// snapshot reports each state and count exactly, names the events and
    /// the pipe, labels the spinners, and the blocked contexts' backtraces
    /// contain this file's function names.
    func testSnapshotReportsEveryStateExactly() throws {
        let perEvent = Sanitizer.scaled(300, underTSan: 60, underASan: 100)
        let inKernel = Sanitizer.scaled(50, underTSan: 10, underASan: 20)
        let runnable = Sanitizer.scaled(348, underTSan: 28, underASan: 78)
        let s = try makeScheduler(2)
        let events = [Event(), Event(), Event()]
        let release = Event()
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        defer { close(fds[0]); close(fds[1]) }
        let r = fds[0], w = fds[1]
        let finished = Counter()
        for e in events {
            for _ in 0..<perEvent {
                s.scheduleTask { Self.waitOnEventForSnapshot(e); finished.add() }
            }
        }
        for _ in 0..<inKernel {
            s.scheduleTask { XCTAssertEqual(Self.readPipeForSnapshot(r), 1); finished.add() }
        }
        for _ in 0..<runnable {
            s.scheduleTask { Self.waitOnEventForSnapshot(release); finished.add() }
        }
        let parked = 3 * perEvent + runnable
        XCTAssertTrue(eventually(timeout: 30) {
            let c = s.snapshot(backtraces: false).counts
            return c["waiting"] == parked && c["in-kernel"] == inKernel
        }, "contexts did not all park: \(s.snapshot(backtraces: false).counts)")
        // Both VPs spin in a labelled task; then the `release` waiters
        // become runnable and stay so (nothing preempts a spin).
        let stop = Flag(), spinning = Counter()
        for _ in 0..<2 {
            s.scheduleTask {
                Context.withLabel("spinner") {
                    spinning.add()
                    while !stop.isSet { csup_cpu_relax() }
                }
                finished.add()
            }
        }
        XCTAssertTrue(eventually { spinning.value == 2 })
        release.set()
        XCTAssertTrue(eventually { s.snapshot(backtraces: false).counts["runnable"] == runnable })

        let snap = s.snapshot()
        let counts = snap.counts
        XCTAssertEqual(counts["running"], 2, "\(counts)")
        XCTAssertEqual(counts["waiting"], 3 * perEvent, "\(counts)")
        XCTAssertEqual(counts["in-kernel"], inKernel, "\(counts)")
        XCTAssertEqual(counts["runnable"], runnable, "\(counts)")
        // Every waiter names its event, 300 on each.
        for e in events {
            let id = UInt(bitPattern: ObjectIdentifier(e))
            XCTAssertEqual(snap.contexts.filter { $0.activity == .waiting(.event(id)) }.count, perEvent)
        }
        for c in snap.contexts {
            switch c.activity {
            case .running(let vp):
                XCTAssertEqual(c.label, "spinner")
                XCTAssertTrue((0..<2).contains(vp), "running on VP \(vp)")
                XCTAssertNil(c.backtrace, "a running context is not stopped for a backtrace")
            case .waiting:
                let names = c.backtrace?.frames.compactMap(\.symbol).joined(separator: "\n") ?? ""
                XCTAssertTrue(names.contains("waitOnEventForSnapshot"), "context \(c.id) backtrace:\n\(names)")
                XCTAssertNotNil(c.duration)
            case .inKernel(let call):
                XCTAssertEqual(call.name, "read")
                XCTAssertEqual(call.descriptor, r)
                let names = c.backtrace?.frames.compactMap(\.symbol).joined(separator: "\n") ?? ""
                if call.path != .inline {
                    XCTAssertTrue(names.contains("readPipeForSnapshot"), "context \(c.id) backtrace:\n\(names)")
                }
            case .runnable, .idle:
                break
            }
        }
        // Text and JSON forms.
        let text = snap.description
        XCTAssertTrue(text.contains("-- waiting (\(3 * perEvent)) --"), text.prefix(2000).description)
        XCTAssertTrue(text.contains("\"spinner\""))
        let json = try JSONSerialization.jsonObject(with: Data(snap.json().utf8)) as? [String: Any]
        let ctxs = json?["contexts"] as? [[String: Any]]
        XCTAssertEqual(ctxs?.count, snap.contexts.count)
        XCTAssertEqual(ctxs?.filter { $0["state"] as? String == "in-kernel" }.count, inKernel)

        stop.set()
        for e in events { e.set() }
        for _ in 0..<inKernel { var b: UInt8 = 1; _ = Glibc.write(w, &b, 1) }
        XCTAssertTrue(eventually(timeout: 30) { finished.value == 3 * perEvent + inKernel + runnable + 2 })
        try s.shutdown()
    }

    /// Snapshots taken over and over during a stress run neither crash nor
    /// change its results.
    func testRepeatedSnapshotsDuringStress() throws {
        let s = try makeScheduler(2)
        let rounds = Sanitizer.scaled(longMode ? 1000 : 200, underTSan: 20)
        let snapshots = Counter(), stop = Flag()
        let taker = runOnNewThread {
            while !stop.isSet {
                let snap = s.snapshot()
                _ = snap.description
                _ = snap.json()
                snapshots.add()
            }
        }
        let total = Counter()
        for round in 0..<rounds {
            // Ping-pong on events, a lock, and fork/join, with a known sum.
            let pairs = 50
            let done = Counter()
            let lock = CriticalSection()
            let sum = Box<Int>(0)
            for i in 0..<pairs {
                let a = Event(), b = Event()
                s.scheduleTask {
                    for _ in 0..<10 { a.wait(); a.reset(); b.set() }
                    done.add()
                }
                s.scheduleTask {
                    for _ in 0..<10 { a.set(); b.wait(); b.reset() }
                    lock.withLock { sum.value += i + round }
                    done.add()
                }
            }
            XCTAssertTrue(eventually(timeout: 30) { done.value == 2 * pairs }, "round \(round) stalled")
            XCTAssertEqual(lock.withLock { sum.value }, (0..<pairs).reduce(0) { $0 + $1 + round })
            total.add(done.value)
        }
        stop.set()
        taker.wait()
        XCTAssertEqual(total.value, rounds * 100)
        XCTAssertGreaterThan(snapshots.value, 0)
        try s.shutdown()
    }

    /// The snapshot signal: a byte per signal wakes the helper thread, which
    /// writes every live scheduler's snapshot to stderr (captured here by
    /// pointing fd 2 at a pipe for the duration).
    func testSnapshotOnSignalWritesToStderr() throws {
        let s = try makeScheduler(1)
        let e = Event()
        let done = runAsTask(s) { Self.waitOnEventForSnapshot(e) }
        XCTAssertTrue(eventually { s.snapshot(backtraces: false).counts["waiting"] == 1 })
        try Scheduler.dumpSnapshotsOnSignal(SIGUSR2)
        var p: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&p), 0)
        let saved = dup(2)
        dup2(p[1], 2)
        kill(getpid(), SIGUSR2)
        var text = ""
        var buf = [UInt8](repeating: 0, count: 65536)
        _ = fcntl(p[0], F_SETFL, O_NONBLOCK)
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline && !(text.contains("waitOnEventForSnapshot") && text.contains("-- waiting")) {
            let n = Glibc.read(p[0], &buf, buf.count)
            if n > 0 { text += String(decoding: buf[0..<n], as: UTF8.self) } else { usleep(10_000) }
        }
        dup2(saved, 2)
        close(saved); close(p[0]); close(p[1])
        XCTAssertTrue(text.contains("== ums snapshot on signal"), text)
        XCTAssertTrue(text.contains("waitOnEventForSnapshot"), text)
        e.set()
        done.wait()
        try s.shutdown()
    }

    /// A signal that cannot be caught is refused with a clear error.
    func testSnapshotSignalRejectsSIGKILL() {
        XCTAssertThrowsError(try Scheduler.dumpSnapshotsOnSignal(SIGKILL)) { error in
            XCTAssertTrue("\(error)".contains("signal 9"), "\(error)")
        }
    }

    /// The caller's own backtrace names the caller, demangled.
    func testCurrentBacktraceIsSymbolized() {
        let bt = Backtrace.current()
        let names = bt.frames.compactMap(\.symbol)
        XCTAssertTrue(names.contains { $0.contains("testCurrentBacktraceIsSymbolized") }, names.joined(separator: "\n"))
    }
}
