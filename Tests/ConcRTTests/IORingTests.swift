import TestSupport
import Foundation
import Synchronization
import XCTest
@testable import ConcRT
import CSupport
import UMS
#if canImport(Glibc)
import Glibc
#endif

// The syscall queues (io_uring) beside the Blocking suite, which runs every
// call on both paths: thousands of contexts parked at once, timeouts on
// both paths, end of stream / peer reset / short writes, shutdown with I/O
// in flight, and the fallback's statistics. Every wait here is bounded.

final class IORingTests: XCTestCase {
    /// 10,000 contexts parked in recv at once (both ends of 5,000
    /// socketpairs) on 2 VPs are each woken by their own data, and no
    /// kernel thread is used.
    func testTenThousandContextsParkedOnRecv() throws {
        let s = try ringScheduler(2)
        let pairs = 5_000
        let n = 2 * pairs
        var ends: [(Int32, Int32)] = []
        for _ in 0..<pairs { ends.append(ioSocketPair()) }
        let got = Counter(), allGot = Event()
        let bad = MigrationSafeMutex<[String]>([])
        let kernelBefore = s.statistics.kernelBlocks
        for i in 0..<n {
            let fd = i % 2 == 0 ? ends[i / 2].0 : ends[i / 2].1
            s.scheduleTask {
                var v: UInt32 = 0
                do {
                    let k = try withUnsafeMutableBytes(of: &v) { try Blocking.recv(fd, into: $0) }
                    if k != 4 || v != UInt32(i) { bad.withLock { $0.append("receiver \(i): \(k) bytes, value \(v)") } }
                } catch {
                    bad.withLock { $0.append("receiver \(i): \(error)") }
                }
                if got.add() == n { allGot.set() }
            }
        }
        XCTAssertTrue(eventually(timeout: 60) { s.statistics.ringOperations >= n }, "\(s.statistics)")
        XCTAssertEqual(got.value, 0, "a receiver returned before its data was sent")
        for i in 0..<n {
            // Receiver i reads the end it holds; write to the other end.
            let peer = i % 2 == 0 ? ends[i / 2].1 : ends[i / 2].0
            var v = UInt32(i)
            XCTAssertEqual(withUnsafeBytes(of: &v) { Glibc.write(peer, $0.baseAddress, 4) }, 4)
        }
        XCTAssertTrue(allGot.wait(timeout: .seconds(60)), "\(got.value) of \(n) receivers woken; \(s.statistics)")
        XCTAssertEqual(bad.withLock { $0 }, [])
        try s.shutdown(timeout: .seconds(30))
        XCTAssertEqual(s.statistics.kernelBlocks, kernelBefore, "a parked recv used a kernel thread: \(s.statistics)")
        XCTAssertEqual(s.statistics.ringFallbacks, 0)
        XCTAssertEqual(s.statistics.ringCompletions, s.statistics.ringOperations)
        for (a, b) in ends { _ = Glibc.close(a); _ = Glibc.close(b) }
    }

    func testReceiveTimeoutOnTheRing() throws { try receiveTimeout(ring: true) }
    func testReceiveTimeoutByKernelEntry() throws { try receiveTimeout(ring: false) }

    /// recv, accept and send with a timeout throw ETIMEDOUT no earlier than
    /// the timeout (and within 2 s of it: the stated slack for a loaded
    /// machine), and a recv whose data comes in time returns it.
    private func receiveTimeout(ring: Bool) throws {
        let s = try ringScheduler(2, ring: ring)
        let (a, b) = ioSocketPair()
        let listener = ioListener()
        let results = MigrationSafeMutex<[String]>([])
        let done = runAsTask(s) {
            func timed(_ what: String, _ body: () throws -> Void) {
                let t0 = csup_monotonic_ns()
                do {
                    try body()
                    results.withLock { $0.append("\(what): returned") }
                } catch let e as BlockingError {
                    let ms = (csup_monotonic_ns() - t0) / 1_000_000
                    if e.errno != ETIMEDOUT || e.call != what { results.withLock { $0.append("\(what): \(e)") } }
                    if ms < 50 || ms > 2_050 { results.withLock { $0.append("\(what): timed out after \(ms) ms") } }
                } catch {
                    results.withLock { $0.append("\(what): \(error)") }
                }
            }
            var buf = [UInt8](repeating: 0, count: 16)
            timed("recv") { _ = try buf.withUnsafeMutableBytes { try Blocking.recv(a, into: $0, timeout: .milliseconds(50)) } }
            timed("accept") { _ = try Blocking.accept(listener.fd, timeout: .milliseconds(50)) }
            // Fill the socket's send buffer, then one more send must time out.
            let chunk = [UInt8](repeating: 1, count: 64 * 1024)
            timed("send") {
                while true { _ = try chunk.withUnsafeBytes { try Blocking.send(a, from: $0, timeout: .milliseconds(50)) } }
            }
            // In time: the data arrives while the recv waits.
            let (c, d) = ioSocketPair()
            _ = runAsTask(s) {
                try? Blocking.sleep(for: .milliseconds(20))
                var byte: UInt8 = 9
                _ = Glibc.write(d, &byte, 1)
            }
            do {
                let n = try buf.withUnsafeMutableBytes { try Blocking.recv(c, into: $0, timeout: .seconds(10)) }
                if n != 1 || buf[0] != 9 { results.withLock { $0.append("recv in time: \(n) bytes") } }
            } catch {
                results.withLock { $0.append("recv in time: \(error)") }
            }
            _ = Glibc.close(c); _ = Glibc.close(d)
        }
        XCTAssertTrue(done.wait(timeout: .seconds(30)))
        XCTAssertEqual(results.withLock { $0 }, [])
        try s.shutdown(timeout: .seconds(10))
        if ring { XCTAssertGreaterThan(s.statistics.ringOperations, 0) }
        for fd in [a, b, listener.fd] { _ = Glibc.close(fd) }
    }

    func testEndOfStreamResetAndShortWriteOnTheRing() throws { try endResetShort(ring: true) }
    func testEndOfStreamResetAndShortWriteByKernelEntry() throws { try endResetShort(ring: false) }

    /// A parked recv sees end of stream (0) when the peer closes, and
    /// ECONNRESET when the peer resets (SO_LINGER 0); a parked write to a
    /// pipe whose reader closes gets EPIPE (SIGPIPE ignored here); a send
    /// of more than the socket holds returns a short count that sendAll
    /// completes.
    private func endResetShort(ring: Bool) throws {
        signal(SIGPIPE, SIG_IGN)
        let s = try ringScheduler(2, ring: ring)
        let results = MigrationSafeMutex<[String]>([])
        @Sendable func note(_ m: String) { results.withLock { $0.append(m) } }
        // End of stream.
        let (a, b) = ioSocketPair()
        let eof = runAsTask(s) {
            var buf = [UInt8](repeating: 0, count: 8)
            do {
                let n = try buf.withUnsafeMutableBytes { try Blocking.recv(a, into: $0) }
                if n != 0 { note("eof: recv returned \(n)") }
            } catch { note("eof: \(error)") }
        }
        usleep(20_000)
        _ = Glibc.close(b)
        XCTAssertTrue(eof.wait(timeout: .seconds(10)), "recv not woken by the peer's close")
        _ = Glibc.close(a)
        // Peer reset on TCP.
        let listener = ioListener()
        let client = try ioConnect(port: listener.port)
        let server = Glibc.accept(listener.fd, nil, nil)
        XCTAssertGreaterThanOrEqual(server, 0)
        let reset = runAsTask(s) {
            var buf = [UInt8](repeating: 0, count: 8)
            do {
                let n = try buf.withUnsafeMutableBytes { try Blocking.recv(server, into: $0) }
                note("reset: recv returned \(n)")
            } catch let e as BlockingError {
                if e.errno != ECONNRESET || e.call != "recv" { note("reset: \(e)") }
            } catch { note("reset: \(error)") }
        }
        usleep(20_000)
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(client, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        _ = Glibc.close(client)
        XCTAssertTrue(reset.wait(timeout: .seconds(10)), "recv not woken by the peer's reset")
        _ = Glibc.close(server); _ = Glibc.close(listener.fd)
        // EPIPE for a parked write whose reader goes away.
        let (r, w) = ioPipe()
        let broken = runAsTask(s) {
            let big = [UInt8](repeating: 3, count: 1 << 20)
            do {
                try big.withUnsafeBytes { try Blocking.writeAll(w, from: $0) }
                note("epipe: writeAll returned")
            } catch let e as BlockingError {
                if e.errno != EPIPE || e.call != "write" { note("epipe: \(e)") }
            } catch { note("epipe: \(error)") }
        }
        usleep(20_000)
        _ = Glibc.close(r)
        XCTAssertTrue(broken.wait(timeout: .seconds(10)), "write not woken by the reader's close")
        _ = Glibc.close(w)
        // Short sends completed by sendAll, byte-exact.
        let (c, d) = ioSocketPair()
        let payload = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let sender = runAsTask(s) {
            do {
                let first = try payload.withUnsafeBytes { try Blocking.send(c, from: $0) }
                if first <= 0 || first >= payload.count { note("short: first send took \(first) of \(payload.count)") }
                try payload.withUnsafeBytes { try Blocking.sendAll(c, from: UnsafeRawBufferPointer(rebasing: $0[first...])) }
                _ = Glibc.shutdown(c, Int32(SHUT_WR))
            } catch { note("short: \(error)") }
        }
        var received: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = Glibc.read(d, &buf, buf.count)
            if n <= 0 { break }
            received += buf[0..<n]
        }
        XCTAssertTrue(sender.wait(timeout: .seconds(10)))
        XCTAssertEqual(received.count, payload.count)
        XCTAssertTrue(received == payload, "short-write stream differs")
        _ = Glibc.close(c); _ = Glibc.close(d)
        XCTAssertEqual(results.withLock { $0 }, [])
        try s.shutdown(timeout: .seconds(10))
    }

    /// Shutdown with I/O in flight loses nothing: shutdown(timeout:) throws
    /// and keeps the parked receivers; once their data comes, they finish,
    /// shutdown completes, and threads and descriptors (the rings
    /// included) return to their baseline.
    func testShutdownWithIOInFlightLosesNothingAndLeaksNoDescriptor() throws {
        let baseline = try ResourceCounts.now()
        let pairs = (0..<64).map { _ in ioSocketPair() }
        do {
            let s = try ringScheduler(2)
            let got = Counter()
            for (i, p) in pairs.enumerated() {
                s.scheduleTask {
                    var v: UInt8 = 0
                    if (try? withUnsafeMutableBytes(of: &v) { try Blocking.recv(p.0, into: $0) }) == 1, v == UInt8(i) { got.add() }
                }
            }
            XCTAssertTrue(eventually(timeout: 30) { s.statistics.ringOperations >= pairs.count }, "\(s.statistics)")
            XCTAssertThrowsError(try s.shutdown(timeout: .milliseconds(50))) {
                XCTAssertEqual($0 as? ConcRTError, .shutdownTimedOut(pendingTasks: pairs.count))
            }
            for (i, p) in pairs.enumerated() {
                var v = UInt8(i)
                XCTAssertEqual(Glibc.write(p.1, &v, 1), 1)
            }
            try s.shutdown(timeout: .seconds(30))
            XCTAssertEqual(got.value, pairs.count, "a receiver lost its data")
        }
        for p in pairs { _ = Glibc.close(p.0); _ = Glibc.close(p.1) }
        XCTAssertTrue(eventually(timeout: 10) { (try? ResourceCounts.now())?.fds == baseline.fds },
                      "descriptors: \(baseline) before, \((try? ResourceCounts.now()).map { "\($0)" } ?? "?") after")
    }

    /// The policy turns the ring off: every would-block call takes lazy
    /// kernel entry, counted as a fallback, and ioPath says why.
    func testPolicyForcesTheFallbackAndStatisticsSaySo() throws {
        let s = try ringScheduler(1, ring: false)
        guard case .kernelEntry(let reason) = s.ioPath else { return XCTFail("ioPath \(s.ioPath)") }
        XCTAssertTrue(reason.contains("useIORing"), reason)
        let (r, w) = ioPipe()
        let done = runAsTask(s) {
            var b: UInt8 = 0
            _ = try? withUnsafeMutableBytes(of: &b) { try Blocking.read(r, into: $0) }
        }
        usleep(50_000)
        var one: UInt8 = 1
        _ = Glibc.write(w, &one, 1)
        XCTAssertTrue(done.wait(timeout: .seconds(10)))
        try s.shutdown(timeout: .seconds(10))
        XCTAssertEqual(s.statistics.ringOperations, 0)
        XCTAssertGreaterThanOrEqual(s.statistics.ringFallbacks, 1, "\(s.statistics)")
        _ = Glibc.close(r); _ = Glibc.close(w)
    }
}

// MARK: Interrupting parked I/O (Context.interruptIO)

final class IOInterruptionTests: XCTestCase {
    /// A recv parked on the ring ends with ECANCELED when another thread
    /// interrupts its context; one with a 10 s timeout too (not ETIMEDOUT).
    func testParkedRecvIsInterruptedFromAnotherThread() throws {
        let s = try ringScheduler(2)
        for timeout in [Duration?.none, Duration.seconds(10)] {
            let (a, b) = ioSocketPair()
            let ctx = Locked<Context?>(nil)
            let outcome = Locked<String>("")
            let done = runAsTask(s) {
                ctx.value = Context.current
                var buf = [UInt8](repeating: 0, count: 8)
                let t0 = csup_monotonic_ns()
                do {
                    let n = try buf.withUnsafeMutableBytes { try Blocking.recv(a, into: $0, timeout: timeout) }
                    outcome.value = "returned \(n)"
                } catch {
                    let ms = (csup_monotonic_ns() - t0) / 1_000_000
                    let e = error as? BlockingError
                    outcome.value = e?.errno == ECANCELED && e?.call == "recv" && ms < 5_000 ? "canceled" : "\(error) after \(ms) ms"
                }
            }
            XCTAssertTrue(eventually { ctx.value?.ioParkedTag.load(ordering: .acquiring) ?? 0 != 0 }, "recv never parked on the ring")
            XCTAssertTrue(ctx.value!.interruptIO(), "the parked call was not found")
            XCTAssertTrue(done.wait(timeout: .seconds(10)), "interrupted recv did not return")
            XCTAssertEqual(outcome.value, "canceled", "timeout \(String(describing: timeout))")
            _ = Glibc.close(a); _ = Glibc.close(b)
        }
        try s.shutdown(timeout: .seconds(10))
    }

    /// The only VP is asleep in its ring (untimed: no other VP, no timer)
    /// when the interruption comes: it must wake and send the cancel.
    func testInterruptionWakesAVirtualProcessorAsleepInItsRing() throws {
        let s = try ringScheduler(1)
        let (a, b) = ioSocketPair()
        let ctx = Locked<Context?>(nil)
        let outcome = Locked<Int32>(0)
        let done = runAsTask(s) {
            ctx.value = Context.current
            var buf = [UInt8](repeating: 0, count: 8)
            do {
                _ = try buf.withUnsafeMutableBytes { try Blocking.recv(a, into: $0) }
            } catch {
                outcome.value = (error as? BlockingError)?.errno ?? -1
            }
        }
        XCTAssertTrue(eventually { ctx.value?.ioParkedTag.load(ordering: .acquiring) ?? 0 != 0 })
        let sleeps = s.statistics.ringSleeps
        XCTAssertTrue(eventually { s.statistics.ringSleeps > sleeps || s.statistics.idleSleeps > 0 })
        usleep(100_000)   // past every spin: the VP sleeps in io_uring_enter
        ctx.value!.interruptIO()
        XCTAssertTrue(done.wait(timeout: .seconds(5)), "the VP asleep in its ring never sent the cancel")
        XCTAssertEqual(outcome.value, ECANCELED)
        try s.shutdown(timeout: .seconds(10))
        _ = Glibc.close(a); _ = Glibc.close(b)
    }

    /// An interruption that finds no parked call ends the next ring call at
    /// once; the call after that works normally.
    func testInterruptionBeforeTheCallEndsTheNextOne() throws {
        let s = try ringScheduler(1)
        let (a, b) = ioSocketPair()
        let results = Locked<[String]>([])
        let done = runAsTask(s) {
            if Context.current!.interruptIO() { results.value.append("interruptIO found a parked call") }
            var buf = [UInt8](repeating: 0, count: 8)
            do {
                _ = try buf.withUnsafeMutableBytes { try Blocking.recv(a, into: $0) }
                results.value.append("first returned")
            } catch { results.value.append("first \((error as? BlockingError)?.errno == ECANCELED ? "ECANCELED" : "\(error)")") }
            var one: UInt8 = 5
            _ = Glibc.write(b, &one, 1)
            do {
                let n = try buf.withUnsafeMutableBytes { try Blocking.recv(a, into: $0) }
                results.value.append("second \(n) \(buf[0])")
            } catch { results.value.append("second \(error)") }
        }
        XCTAssertTrue(done.wait(timeout: .seconds(10)))
        XCTAssertEqual(results.value, ["first ECANCELED", "second 1 5"])
        try s.shutdown(timeout: .seconds(10))
        _ = Glibc.close(a); _ = Glibc.close(b)
    }

    /// 200 contexts parked in recv on 2 VPs: the even ones are interrupted,
    /// the odd ones get their byte; each sees exactly its outcome.
    func testInterruptHalfOfManyParkedReceivers() throws {
        let s = try ringScheduler(2)
        let n = 200
        let pairs = (0..<n).map { _ in ioSocketPair() }
        let contexts = MigrationSafeMutex<[Int: Context]>([:])
        let bad = MigrationSafeMutex<[String]>([])
        let finished = Counter(), allDone = Event()
        for i in 0..<n {
            s.scheduleTask {
                contexts.withLock { $0[i] = Context.current! }
                var v: UInt8 = 0
                do {
                    let k = try withUnsafeMutableBytes(of: &v) { try Blocking.recv(pairs[i].0, into: $0) }
                    if i % 2 == 0 || k != 1 || v != UInt8(i) { bad.withLock { $0.append("\(i): got \(k) bytes, \(v)") } }
                } catch {
                    if i % 2 != 0 || (error as? BlockingError)?.errno != ECANCELED { bad.withLock { $0.append("\(i): \(error)") } }
                }
                if finished.add() == n { allDone.set() }
            }
        }
        XCTAssertTrue(eventually(timeout: 30) { s.statistics.ringOperations >= n }, "\(s.statistics)")
        let all = contexts.withLock { $0 }
        for i in 0..<n {
            if i % 2 == 0 {
                all[i]!.interruptIO()
            } else {
                var v = UInt8(i)
                XCTAssertEqual(Glibc.write(pairs[i].1, &v, 1), 1)
            }
        }
        XCTAssertTrue(allDone.wait(timeout: .seconds(30)), "\(finished.value) of \(n) finished; \(s.statistics)")
        XCTAssertEqual(bad.withLock { $0 }, [])
        try s.shutdown(timeout: .seconds(10))
        for p in pairs { _ = Glibc.close(p.0); _ = Glibc.close(p.1) }
    }
}

final class IORingExhaustionTests: XCTestCase {
    /// At the descriptor limit the rings cannot all be made: the scheduler
    /// starts on lazy kernel entry, says why, leaks no ring, and its
    /// blocking calls still work.
    func testDescriptorLimitFallsBackToKernelEntryAndSaysWhy() throws {
        var old = rlimit()
        XCTAssertEqual(getrlimit(Int32(RLIMIT_NOFILE.rawValue), &old), 0)
        let (r, w) = ioPipe()
        let open = try ResourceCounts.now().fds
        // Fill the table up to a limit, then free one slot: room for one
        // ring of two, then EMFILE.
        var tight = old
        tight.rlim_cur = rlim_t(open + 64)
        XCTAssertEqual(setrlimit(Int32(RLIMIT_NOFILE.rawValue), &tight), 0)
        var fillers: [Int32] = []
        while true {
            let fd = dup(r)
            if fd < 0 { break }
            fillers.append(fd)
        }
        XCTAssertGreaterThan(fillers.count, 0)
        _ = Glibc.close(fillers.removeLast())
        let made = Result { try Scheduler(policy: SchedulerPolicy(minConcurrency: 2, maxConcurrency: 2, useIORing: true)) }
        for fd in fillers { _ = Glibc.close(fd) }
        XCTAssertEqual(setrlimit(Int32(RLIMIT_NOFILE.rawValue), &old), 0)
        let s = try made.get()
        guard case .kernelEntry(let reason) = s.ioPath else { return XCTFail("expected the fallback, got \(s.ioPath)") }
        XCTAssertTrue(reason.contains("EMFILE"), reason)
        XCTAssertEqual(try ResourceCounts.now().fds, open, "a ring made before the failure was not closed")
        let done = runAsTask(s) {
            var b: UInt8 = 0
            _ = try? withUnsafeMutableBytes(of: &b) { try Blocking.read(r, into: $0) }
        }
        usleep(20_000)
        var one: UInt8 = 1
        _ = Glibc.write(w, &one, 1)
        XCTAssertTrue(done.wait(timeout: .seconds(10)))
        try s.shutdown(timeout: .seconds(10))
        XCTAssertEqual(s.statistics.ringOperations, 0)
        _ = Glibc.close(r); _ = Glibc.close(w)
    }
}
