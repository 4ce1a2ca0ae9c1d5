import TestSupport
import Foundation
import Synchronization
import XCTest
@testable import ConcRT
import CSupport
#if canImport(Glibc)
import Glibc
#endif

// An EINTR storm: a pthread sends a signal whose handler is installed
// without SA_RESTART to every other thread of the process every 200 µs,
// while byte-exact streams run through Blocking calls on both paths. Every
// interrupted system call (read, write, recv, send, poll, io_uring_enter,
// futex waits) must be retried; nothing may be lost, duplicated or hang.

private let signalsHandled = Atomic<Int>(0)

final class SignalStormTests: XCTestCase {
    func testStreamsSurviveAnEINTRStormOnTheRing() throws { try storm(ring: true) }
    func testStreamsSurviveAnEINTRStormByKernelEntry() throws { try storm(ring: false) }

    private func storm(ring: Bool) throws {
        // A handler without SA_RESTART: blocking calls return EINTR.
        var sa = sigaction(), old = sigaction()
        sa.__sigaction_handler.sa_handler = { _ in signalsHandled.add(1, ordering: .relaxed) }
        sigemptyset(&sa.sa_mask)
        sa.sa_flags = 0
        XCTAssertEqual(sigaction(SIGUSR2, &sa, &old), 0)
        defer { _ = sigaction(SIGUSR2, &old, nil) }

        let s = try makeScheduler(2, ring: ring)
        let channels = 16, perChannel = longMode ? 8 << 20 : 1 << 20
        let problems = MigrationSafeMutex<[String]>([])
        let finished = Counter(), allDone = Event()
        let pairs: [(Int32, Int32, Bool)] = (0..<channels).map { c in
            if c % 2 == 0 { let p = ioPipe(); return (p.r, p.w, false) }
            let p = ioSocketPair(); return (p.0, p.1, true)
        }
        for (c, (r, w, socket)) in pairs.enumerated() {
            s.scheduleTask {
                var rng = TestRNG(seed: UInt64(c + 1))
                var sent = 0
                var chunk = [UInt8](repeating: 0, count: 8192)
                do {
                    while sent < perChannel {
                        let n = min(1 + rng.below(chunk.count), perChannel - sent)
                        for i in 0..<n { chunk[i] = UInt8(truncatingIfNeeded: (sent + i) &* 7 &+ c) }
                        if socket {
                            try chunk.withUnsafeBytes { try Blocking.sendAll(w, from: UnsafeRawBufferPointer(rebasing: $0[..<n])) }
                        } else {
                            try chunk.withUnsafeBytes { try Blocking.writeAll(w, from: UnsafeRawBufferPointer(rebasing: $0[..<n])) }
                        }
                        sent += n
                        if rng.below(16) == 0 { try Blocking.sleep(for: .microseconds(rng.below(200))) }
                    }
                    try Blocking.close(w)
                } catch { problems.withLock { $0.append("writer \(c): \(error)") } }
                if finished.add() == 2 * channels { allDone.set() }
            }
            s.scheduleTask {
                var got = 0
                var buf = [UInt8](repeating: 0, count: 4096)
                do {
                    while true {
                        var p = pollfd(fd: r, events: Int16(POLLIN), revents: 0)
                        _ = try Blocking.poll(&p, count: 1, timeoutMilliseconds: 1_000)
                        let n = try buf.withUnsafeMutableBytes {
                            socket ? try Blocking.recv(r, into: $0) : try Blocking.read(r, into: $0)
                        }
                        if n == 0 { break }
                        for i in 0..<n where buf[i] != UInt8(truncatingIfNeeded: (got + i) &* 7 &+ c) {
                            problems.withLock { $0.append("reader \(c): byte \(got + i) differs") }
                            break
                        }
                        got += n
                    }
                    if got != perChannel { problems.withLock { $0.append("reader \(c): \(got) of \(perChannel) bytes") } }
                    try Blocking.close(r)
                } catch { problems.withLock { $0.append("reader \(c): \(error)") } }
                if finished.add() == 2 * channels { allDone.set() }
            }
        }
        // The storm: every thread but the signaller and the test's own.
        let stop = Flag()
        let me = csup_gettid()
        let before = signalsHandled.load(ordering: .relaxed)
        let signaller = runOnNewThread {
            let self_ = csup_gettid()
            while !stop.isSet {
                let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
                for t in tasks {
                    guard let tid = Int32(t), Int64(tid) != self_, Int64(tid) != me else { continue }
                    _ = csup_signal_thread(tid, SIGUSR2)
                }
                usleep(200)
            }
        }
        let ok = allDone.wait(timeout: .seconds(120))
        stop.set()
        XCTAssertTrue(signaller.wait(timeout: .seconds(10)))
        XCTAssertTrue(ok, "\(finished.value) of \(2 * channels) streams finished; \(s.statistics)")
        XCTAssertEqual(problems.withLock { $0 }, [])
        let handled = signalsHandled.load(ordering: .relaxed) - before
        XCTAssertGreaterThan(handled, 100, "the storm did not happen")
        try s.shutdown(timeout: .seconds(30))
        if ring { XCTAssertGreaterThan(s.statistics.ringOperations, 0, "\(s.statistics)") }
        print("SignalStormTests (\(ring ? "ring" : "kernel entry")): \(handled) signals handled; \(s.statistics)")
    }
}
