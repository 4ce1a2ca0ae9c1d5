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

// Blocking: every call through pipes, socketpairs, a temp file and a
// loopback TCP listener (127.0.0.1, port 0), from contexts and from plain
// pthreads; byte-exact delivery under stress on 2 and 4 VPs; errors with
// the call's name and errno; and a blocked call never holds the VP.
// Every wait on the test thread is bounded.

/// Failures seen off the test thread (contexts, pthreads); asserted on it.
private final class IOFailures: Sendable {
    private let list = MigrationSafeMutex<[String]>([])
    func record(_ s: String) { list.withLock { if $0.count < 30 { $0.append(s) } } }
    func check(_ cond: Bool, _ msg: @autoclosure () -> String) { if !cond { record(msg()) } }
    var all: [String] { list.withLock { $0 } }

    /// `body` must throw BlockingError(call: call, errno: errno).
    func expect(call: String, errno: Int32, _ body: () throws -> Void) {
        do {
            try body()
            record("\(call): no error thrown (expected errno \(errno))")
        } catch let e as BlockingError {
            if e != BlockingError(call: call, errno: errno) { record("expected \(call)/\(errno), got \(e.call)/\(e.errno): \(e)") }
            if !e.description.contains(call) { record("description lacks the call name: \(e.description)") }
        } catch {
            record("\(call): unexpected error \(error)")
        }
    }

    /// Runs `body`, recording any error it throws.
    func run(_ what: String, _ body: () throws -> Void) {
        do { try body() } catch { record("\(what): \(error)") }
    }
}

private func ioTempPath(_ tag: String) -> String {
    NSTemporaryDirectory() + "concrt-blocking-\(tag)-\(getpid())-\(UUID().uuidString)"
}

/// FNV-1a over a byte stream.
private struct IOChecksum: Equatable {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    var count = 0
    mutating func add(_ bytes: UnsafeRawBufferPointer) {
        for b in bytes { hash = (hash ^ UInt64(b)) &* 0x100_0000_01b3 }
        count += bytes.count
    }
    static func of(_ a: [UInt8]) -> IOChecksum {
        var c = IOChecksum()
        a.withUnsafeBytes { c.add($0) }
        return c
    }
}

/// `n` pseudo-random bytes. A plain loop into the array's storage: in a
/// debug build `(0..<n).map` asks the Swift runtime for tuple metadata on
/// every element, under a process-wide lock (a priority-inheritance futex)
/// that 36 clients on 4 VPs then queue on in the kernel; under TSan that
/// made the loopback echo take 30-60 s here and time out on a slower CI
/// runner (perf: 80% of its samples in that lock).
private func ioBytes(_ n: Int, seed: UInt64) -> [UInt8] {
    var rng = TestRNG(seed: seed)
    return [UInt8](unsafeUninitializedCapacity: n) { buf, count in
        var i = 0
        while i < n { buf[i] = UInt8(truncatingIfNeeded: rng.next() >> 24); i += 1 }
        count = n
    }
}

/// Reads `fd` to end of file (read or recv), in chunks of random size.
private func ioDrain(_ fd: Int32, useRecv: Bool, seed: UInt64) throws -> IOChecksum {
    var rng = TestRNG(seed: seed)
    var sum = IOChecksum()
    let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 16 * 1024, alignment: 16)
    defer { buf.deallocate() }
    while true {
        let chunk = UnsafeMutableRawBufferPointer(rebasing: buf[0..<(1 + rng.below(buf.count))])
        let n: Int
        if useRecv { n = try Blocking.recv(fd, into: chunk) } else { n = try Blocking.read(fd, into: chunk) }
        if n == 0 { return sum }
        sum.add(UnsafeRawBufferPointer(rebasing: chunk[0..<n]))
    }
}

/// Writes `data` in chunks of random size (write/writeAll or send/sendAll).
private func ioPump(_ fd: Int32, _ data: [UInt8], useSend: Bool, seed: UInt64) throws {
    var rng = TestRNG(seed: seed)
    try data.withUnsafeBytes { all in
        var off = 0
        while off < all.count {
            let len = min(all.count - off, 1 + rng.below(16 * 1024))
            let piece = UnsafeRawBufferPointer(rebasing: all[off..<(off + len)])
            switch (rng.below(2) == 0, useSend) {
            case (true, true): try Blocking.sendAll(fd, from: piece); off += len
            case (true, false): try Blocking.writeAll(fd, from: piece); off += len
            case (false, true): off += try Blocking.send(fd, from: piece)
            case (false, false): off += try Blocking.write(fd, from: piece)
            }
        }
    }
}

/// A scheduler whose would-block calls take the ring (`ring`: the test
/// fails if io_uring is not in use) or lazy kernel entry.
private func makeIOScheduler(_ vps: Int, ring: Bool) throws -> Scheduler {
    let s = try Scheduler(policy: SchedulerPolicy(minConcurrency: vps, maxConcurrency: vps, useIORing: ring))
    if ring {
        XCTAssertEqual(s.ioPath, .ring, "io_uring is not in use on this machine: \(s.ioPath)")
    } else {
        XCTAssertNotEqual(s.ioPath, .ring)
    }
    return s
}

/// The counter of calls that left the VP on `ring`'s path.
private func offloaded(_ s: Scheduler, ring: Bool) -> Int {
    ring ? s.statistics.ringOperations : s.statistics.kernelBlocks + s.statistics.retakes + s.statistics.compensations
}

final class BlockingIOTests: XCTestCase {
    // MARK: Every call, from a context and from a plain pthread

    func testEveryCallFromContextsOnTheRing() throws { try everyCallFromContexts(ring: true) }
    func testEveryCallFromContextsByKernelEntry() throws { try everyCallFromContexts(ring: false) }

    private func everyCallFromContexts(ring: Bool) throws {
        let s = try makeIOScheduler(2, ring: ring)
        let f = IOFailures()
        let kernelBefore = s.statistics.kernelBlocks
        let done = runAsTask(s) {
            f.check(Context.current != nil, "not on a context")
            checkEveryCall(f, onContext: true, elsewhere: { runAsTask(s, $0) })
        }
        XCTAssertTrue(done.wait(timeout: .seconds(120)))
        XCTAssertEqual(f.all, [])
        try s.shutdown(timeout: .seconds(30))
        if ring {
            XCTAssertGreaterThan(s.statistics.ringOperations, 0, "no call went through the ring: \(s.statistics)")
            XCTAssertEqual(s.statistics.ringOperations, s.statistics.ringCompletions, "ring operations lost: \(s.statistics)")
        } else {
            // Calls that would block took lazy kernel entry (inline, and
            // retaken only if they stayed in the kernel long enough).
            XCTAssertGreaterThan(s.statistics.ringFallbacks, 0, "no call took lazy kernel entry: \(s.statistics)")
            _ = kernelBefore
            XCTAssertEqual(s.statistics.ringOperations, 0)
        }
    }

    func testEveryCallFromPlainThread() {
        let f = IOFailures()
        let done = runOnNewThread { checkEveryCall(f, onContext: false, elsewhere: { runOnNewThread($0) }) }
        XCTAssertTrue(done.wait(timeout: .seconds(120)))
        XCTAssertEqual(f.all, [])
    }

    /// The main test thread is a plain pthread too.
    func testCallsOnTheTestThread() throws {
        let (r, w) = ioPipe()
        defer { _ = Glibc.close(r); _ = Glibc.close(w) }
        let msg: [UInt8] = Array("hello".utf8)
        try msg.withUnsafeBytes { try Blocking.writeAll(w, from: $0) }
        var buf = [UInt8](repeating: 0, count: 16)
        let n = try buf.withUnsafeMutableBytes { try Blocking.read(r, into: $0) }
        XCTAssertEqual(Array(buf[0..<n]), msg)
        let tid = csup_gettid()
        XCTAssertEqual(Blocking.call { csup_gettid() }, tid, "outside a scheduler the call runs on the caller's thread")
        let t0 = monotonicNow()
        try Blocking.sleep(for: .milliseconds(20))
        XCTAssertGreaterThanOrEqual(monotonicNow() - t0, 20_000_000)
    }

    // MARK: Errors

    func testErrorsCarryCallNameAndErrnoOnTheRing() throws { try errorsCarryCallNameAndErrno(ring: true) }
    func testErrorsCarryCallNameAndErrnoByKernelEntry() throws { try errorsCarryCallNameAndErrno(ring: false) }

    private func errorsCarryCallNameAndErrno(ring: Bool) throws {
        let s = try makeIOScheduler(2, ring: ring)
        let f = IOFailures()
        let onCtx = runAsTask(s) { checkErrors(f, place: "context") }
        XCTAssertTrue(onCtx.wait(timeout: .seconds(60)))
        let onThread = runOnNewThread { checkErrors(f, place: "thread") }
        XCTAssertTrue(onThread.wait(timeout: .seconds(60)))
        XCTAssertEqual(f.all, [])
        try s.shutdown(timeout: .seconds(10))
        let e = BlockingError(call: "read", errno: EBADF)
        XCTAssertEqual(e.description, "read: EBADF (errno \(EBADF)): \(String(cString: strerror(EBADF)))",
                       "one errno style across UMS and ConcRT")
        XCTAssertTrue("\(UMSError.systemCallFailed(call: "read", errno: EBADF))".hasSuffix(e.description))
    }

    // MARK: Stress: byte-exact streams

    func testStreamsThroughPipesAndSocketPairsOn2VPsOnTheRing() throws { try streams(vps: 2, ring: true) }
    func testStreamsThroughPipesAndSocketPairsOn2VPsByKernelEntry() throws { try streams(vps: 2, ring: false) }
    func testStreamsThroughPipesAndSocketPairsOn4VPsOnTheRing() throws { try streams(vps: 4, ring: true) }
    func testStreamsThroughPipesAndSocketPairsOn4VPsByKernelEntry() throws { try streams(vps: 4, ring: false) }

    /// 64 writer tasks and 64 reader tasks, one pair per channel (32 pipes,
    /// 32 socketpairs), move 64 KiB each (4 MiB in all) in random chunks;
    /// every reader's checksum and length match its writer's data.
    private func streams(vps: Int, ring: Bool) throws {
        let s = try makeIOScheduler(vps, ring: ring)
        let channels = 64
        let perChannel = longMode ? 1 << 20 : 64 * 1024
        let f = IOFailures()
        let data = (0..<channels).map { ioBytes(perChannel, seed: UInt64($0 + 1)) }
        let expected = data.map { IOChecksum.of($0) }
        let results = MigrationSafeMutex<[Int: IOChecksum]>([:])
        let finished = Counter()
        let allDone = Event()
        let ends: [(Int32, Int32, Bool)] = (0..<channels).map { c in
            if c % 2 == 0 { let p = ioPipe(); return (p.r, p.w, false) }
            let (a, b) = ioSocketPair(); return (a, b, true)
        }
        let kernelBefore = s.statistics.kernelBlocks
        let start = monotonicNow()
        // Readers first, so most of them block on empty channels.
        for c in 0..<channels {
            let (r, _, sock) = ends[c]
            s.scheduleTask {
                f.run("reader \(c)") {
                    let sum = try ioDrain(r, useRecv: sock && c % 4 == 1, seed: UInt64(c + 100))
                    results.withLock { $0[c] = sum }
                    try Blocking.close(r)
                }
                if finished.add() == 2 * channels { allDone.set() }
            }
        }
        for c in 0..<channels {
            let (_, w, sock) = ends[c]
            let bytes = data[c]
            s.scheduleTask {
                f.run("writer \(c)") {
                    try ioPump(w, bytes, useSend: sock && c % 4 == 3, seed: UInt64(c + 200))
                    try Blocking.close(w)   // the reader sees end of file
                }
                if finished.add() == 2 * channels { allDone.set() }
            }
        }
        let ok = allDone.wait(timeout: .seconds(60))
        XCTAssertTrue(ok, "\(finished.value) of \(2 * channels) readers/writers finished; \(s.statistics)")
        XCTAssertEqual(f.all, [])
        guard ok else { return }
        let got = results.withLock { $0 }
        for c in 0..<channels {
            XCTAssertEqual(got[c], expected[c], "channel \(c) (\(ends[c].2 ? "socketpair" : "pipe"))")
        }
        try s.shutdown(timeout: .seconds(30))
        if ring {
            XCTAssertGreaterThan(s.statistics.ringOperations, 0, "\(s.statistics)")
            XCTAssertEqual(s.statistics.ringFallbacks, 0, "\(s.statistics)")
        } else {
            XCTAssertGreaterThan(s.statistics.kernelBlocks + s.statistics.retakes + s.statistics.compensations - kernelBefore, 0)
        }
        print("BlockingIOTests: \(channels * perChannel) bytes over \(channels) channels on \(vps) VPs in "
              + "\(String(format: "%.0f", Double(monotonicNow() - start) / 1e6)) ms; \(s.statistics)")
    }

    func testManyWritersOnePipeAtomicMessagesOn2VPsOnTheRing() throws { try manyWritersOnePipe(vps: 2, ring: true) }
    func testManyWritersOnePipeAtomicMessagesOn2VPsByKernelEntry() throws { try manyWritersOnePipe(vps: 2, ring: false) }
    func testManyWritersOnePipeAtomicMessagesOn4VPsOnTheRing() throws { try manyWritersOnePipe(vps: 4, ring: true) }
    func testManyWritersOnePipeAtomicMessagesOn4VPsByKernelEntry() throws { try manyWritersOnePipe(vps: 4, ring: false) }

    /// 64 writers share one pipe with 512-byte messages (below PIPE_BUF, so
    /// each write is atomic); one reader checks every message is whole and
    /// each writer's messages arrive in order.
    private func manyWritersOnePipe(vps: Int, ring: Bool) throws {
        let s = try makeIOScheduler(vps, ring: ring)
        let writers = 64, messages = longMode ? 1_000 : 100, size = 512
        let (r, w) = ioPipe()
        let f = IOFailures()
        let writersDone = Counter()
        let allWritten = Event()
        for id in 0..<writers {
            s.scheduleTask {
                f.run("writer \(id)") {
                    var msg = [UInt8](repeating: 0, count: size)
                    for seq in 0..<messages {
                        msg[0] = UInt8(id); msg[1] = UInt8(seq & 0xff); msg[2] = UInt8(seq >> 8)
                        for i in 3..<size { msg[i] = UInt8(truncatingIfNeeded: id &* 31 &+ seq &* 7 &+ i) }
                        let n = try msg.withUnsafeBytes { try Blocking.write(w, from: $0) }
                        if n != size { f.record("short write of \(n) bytes to a pipe (not atomic)") }
                        if seq % 16 == 0 { Context.yield() }
                    }
                }
                if writersDone.add() == writers { allWritten.set() }
            }
        }
        let readerResult = MigrationSafeMutex<(Int, [Int])?>(nil)
        let readerDone = runAsTask(s) {
            f.run("reader") {
                var next = [Int](repeating: 0, count: writers)
                var pending: [UInt8] = []
                var total = 0
                var buf = [UInt8](repeating: 0, count: 3_000)
                while total < writers * messages {
                    let n = try buf.withUnsafeMutableBytes { try Blocking.read(r, into: $0) }
                    if n == 0 { f.record("early end of file"); break }
                    pending.append(contentsOf: buf[0..<n])
                    var off = 0
                    while pending.count - off >= size {
                        let id = Int(pending[off]), seq = Int(pending[off + 1]) | Int(pending[off + 2]) << 8
                        if id >= writers || seq != next[id] {
                            f.record("message from \(id) #\(seq) out of order (expected #\(id < writers ? next[id] : -1))")
                            return
                        }
                        for i in 3..<size where pending[off + i] != UInt8(truncatingIfNeeded: id &* 31 &+ seq &* 7 &+ i) {
                            f.record("message from \(id) #\(seq) torn at byte \(i)")
                            return
                        }
                        next[id] += 1
                        total += 1
                        off += size
                    }
                    pending.removeFirst(off)
                }
                readerResult.withLock { $0 = (total, next) }
            }
        }
        XCTAssertTrue(allWritten.wait(timeout: .seconds(60)), "\(writersDone.value) of \(writers) writers finished")
        XCTAssertTrue(readerDone.wait(timeout: .seconds(60)))
        XCTAssertEqual(f.all, [])
        let (total, next) = try XCTUnwrap(readerResult.withLock { $0 })
        XCTAssertEqual(total, writers * messages)
        XCTAssertEqual(next, [Int](repeating: messages, count: writers))
        _ = Glibc.close(r); _ = Glibc.close(w)
        try s.shutdown(timeout: .seconds(30))
    }

    // MARK: TCP loopback

    func testLoopbackTCPEchoOn2VPsOnTheRing() throws { try loopbackEcho(vps: 2, ring: true) }
    func testLoopbackTCPEchoOn2VPsByKernelEntry() throws { try loopbackEcho(vps: 2, ring: false) }
    func testLoopbackTCPEchoOn4VPsOnTheRing() throws { try loopbackEcho(vps: 4, ring: true) }
    func testLoopbackTCPEchoOn4VPsByKernelEntry() throws { try loopbackEcho(vps: 4, ring: false) }

    /// A server task polls and accepts on 127.0.0.1 (port 0) and echoes
    /// every connection in its own task; 32 client tasks and 2 plain
    /// pthreads connect, send 64 KiB, half-close and check the echo.
    private func loopbackEcho(vps: Int, ring: Bool) throws {
        let s = try makeIOScheduler(vps, ring: ring)
        let (lfd, port) = ioListener()
        defer { _ = Glibc.close(lfd) }
        let taskClients = 32, threadClients = 2
        let clients = taskClients + threadClients
        let payload = longMode ? 1 << 20 : 64 * 1024
        let f = IOFailures()
        let served = Counter()
        let serverDone = runAsTask(s) {
            f.run("server") {
                var pfd = pollfd(fd: lfd, events: Int16(POLLIN), revents: 0)
                for _ in 0..<clients {
                    let ready = try Blocking.poll(&pfd, count: 1, timeoutMilliseconds: 20_000)
                    guard ready == 1, pfd.revents & Int16(POLLIN) != 0 else {
                        f.record("server: poll returned \(ready), revents \(pfd.revents)")
                        return
                    }
                    let conn = try Blocking.accept(lfd)
                    s.scheduleTask {
                        f.run("echo") {
                            var buf = [UInt8](repeating: 0, count: 8 * 1024)
                            while true {
                                let n = try buf.withUnsafeMutableBytes { try Blocking.recv(conn, into: $0) }
                                if n == 0 { break }
                                try buf.withUnsafeBytes { try Blocking.sendAll(conn, from: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                            }
                            try Blocking.close(conn)
                        }
                        served.add()
                    }
                }
            }
        }
        @Sendable func client(_ id: Int) {
            f.run("client \(id)") {
                let data = ioBytes(payload, seed: UInt64(id + 7))
                let fd = try ioConnect(port: port)
                try ioPump(fd, data, useSend: true, seed: UInt64(id))
                _ = shutdown(fd, Int32(SHUT_WR))
                let sum = try ioDrain(fd, useRecv: true, seed: UInt64(id + 1))
                if sum != IOChecksum.of(data) { f.record("client \(id): echo differs (\(sum.count) of \(payload) bytes)") }
                try Blocking.close(fd)
            }
        }
        var done: [Event] = []
        for id in 0..<taskClients { done.append(runAsTask(s) { client(id) }) }
        for id in 0..<threadClients { done.append(runOnNewThread { client(taskClients + id) }) }
        let limit: Duration = Sanitizer.thread ? .seconds(120) : .seconds(60)
        XCTAssertEqual(unfinished(done, within: limit), 0, "clients that did not finish")
        XCTAssertTrue(serverDone.wait(timeout: limit))
        XCTAssertTrue(eventually(timeout: 30) { served.value == clients })
        XCTAssertEqual(f.all, [])
        try s.shutdown(timeout: .seconds(30))
    }

    // MARK: A blocked call does not hold the virtual processor

    /// With one VP, a task blocked in each kind of call (read on an empty
    /// pipe, write to a full one, recv, accept, poll, sleep, call) lets
    /// another task run and complete; then the call is released.
    func testBlockedCallDoesNotHoldTheOnlyVirtualProcessorOnTheRing() throws { try blockedCallDoesNotHold(ring: true) }
    func testBlockedCallDoesNotHoldTheOnlyVirtualProcessorByKernelEntry() throws { try blockedCallDoesNotHold(ring: false) }

    private func blockedCallDoesNotHold(ring: Bool) throws {
        let s = try makeIOScheduler(1, ring: ring)
        let kinds = ["read", "write", "recv", "accept", "poll", "sleep", "call", "pread"]
        for kind in kinds {
            let f = IOFailures()
            let (r, w) = ioPipe()
            let (a, b) = ioSocketPair()
            let listener = ioListener()
            let entered = Event()
            let result = MigrationSafeMutex<Int>(-1)
            let before = s.statistics.kernelBlocks
            let retakesBefore = s.statistics.retakes
            let compensationsBefore = s.statistics.compensations
            let ringBefore = s.statistics.ringOperations
            let timerSleepsBefore = s.statistics.timerSleeps
            let blocked = runAsTask(s) {
                entered.set()
                f.run(kind) {
                    var buf = [UInt8](repeating: 0, count: 8)
                    switch kind {
                    case "read":
                        let n = try buf.withUnsafeMutableBytes { try Blocking.read(r, into: $0) }
                        result.withLock { $0 = n == 1 ? Int(buf[0]) : -n }
                    case "write":
                        // More than the pipe holds: blocks until drained.
                        let big = [UInt8](repeating: 7, count: 1 << 20)
                        try big.withUnsafeBytes { try Blocking.writeAll(w, from: $0) }
                        result.withLock { $0 = 42 }
                    case "recv":
                        let n = try buf.withUnsafeMutableBytes { try Blocking.recv(a, into: $0) }
                        result.withLock { $0 = n == 1 ? Int(buf[0]) : -n }
                    case "accept":
                        let c = try Blocking.accept(listener.fd)
                        result.withLock { $0 = c >= 0 ? 42 : -1 }
                        try Blocking.close(c)
                    case "poll":
                        var p = pollfd(fd: r, events: Int16(POLLIN), revents: 0)
                        let n = try Blocking.poll(&p, count: 1, timeoutMilliseconds: -1)
                        result.withLock { $0 = n == 1 && p.revents & Int16(POLLIN) != 0 ? 42 : -1 }
                    case "sleep":
                        try Blocking.sleep(for: .milliseconds(300))
                        result.withLock { $0 = 42 }
                    case "call":
                        let n = Blocking.call { csup_sys_read(r, &buf, 1) }
                        result.withLock { $0 = n.value == 1 ? Int(buf[0]) : -1 }
                    default:   // pread of a pipe is ESPIPE: no block, but no hang either
                        f.expect(call: "pread", errno: ESPIPE) {
                            _ = try buf.withUnsafeMutableBytes { try Blocking.pread(r, into: $0, offset: 0) }
                        }
                        let n = try buf.withUnsafeMutableBytes { try Blocking.read(r, into: $0) }
                        result.withLock { $0 = n == 1 ? Int(buf[0]) : -n }
                    }
                }
            }
            XCTAssertTrue(entered.wait(timeout: .seconds(10)), kind)
            // Let it reach its call: sleep hands off to a kernel thread at
            // once; the others run inline, in the kernel until released.
            if kind == "sleep" {
                // Both paths: the context parks on the scheduler's timers.
                XCTAssertTrue(eventually { s.statistics.timerSleeps > timerSleepsBefore },
                              "sleep: never parked on the timers: \(s.statistics)")
            } else {
                usleep(50_000)
            }
            let other = runAsTask(s) { _ = (0..<1_000).reduce(0, +) }
            XCTAssertTrue(other.wait(timeout: .seconds(10)), "\(kind): the only VP was held by a blocked call")
            if kind != "sleep" && kind != "pread" {
                // The only VP ran `other` while the call blocked: the call
                // was queued on the ring, or the monitor compensated for it
                // or retook the VP (lazy kernel entry), or the call was
                // handed off.
                if ring && kind != "call" {
                    XCTAssertGreaterThan(s.statistics.ringOperations, ringBefore, "\(kind): \(s.statistics)")
                } else {
                    XCTAssertGreaterThan(s.statistics.retakes + s.statistics.kernelBlocks + s.statistics.compensations,
                                         retakesBefore + before + compensationsBefore, "\(kind): \(s.statistics)")
                }
            }
            if kind != "sleep" { XCTAssertFalse(blocked.isSet, "\(kind): returned before it was released") }
            // Release it.
            switch kind {
            case "read", "poll", "call", "pread":
                var byte: UInt8 = 42
                _ = Glibc.write(w, &byte, 1)
            case "write":
                // Drain what the writer sends (bounded: stop when nothing
                // comes for 10 s).
                var sink = [UInt8](repeating: 0, count: 64 * 1024)
                var total = 0
                var p = pollfd(fd: r, events: Int16(POLLIN), revents: 0)
                while total < 1 << 20, Glibc.poll(&p, 1, 10_000) == 1 {
                    let n = Glibc.read(r, &sink, sink.count)
                    if n <= 0 { break }
                    total += n
                }
                XCTAssertEqual(total, 1 << 20, "write: bytes drained")
            case "recv":
                var byte: UInt8 = 42
                _ = Glibc.write(b, &byte, 1)
            case "accept":
                if let c = try? ioConnect(port: listener.port) { _ = Glibc.close(c) }
            default:
                break
            }
            XCTAssertTrue(blocked.wait(timeout: .seconds(10)), "\(kind): not released")
            XCTAssertEqual(result.withLock { $0 }, 42, kind)
            XCTAssertEqual(f.all, [], kind)
            for fd in [r, w, a, b, listener.fd] { _ = Glibc.close(fd) }
        }
        try s.shutdown(timeout: .seconds(10))
    }

    /// 200 contexts blocked in reads at once on 2 VPs: other tasks keep
    /// running, and every reader gets exactly its byte once released.
    func testManyContextsBlockedInTheKernelAtOnceOnTheRing() throws { try manyContextsBlocked(ring: true) }
    func testManyContextsBlockedInTheKernelAtOnceByKernelEntry() throws { try manyContextsBlocked(ring: false) }

    private func manyContextsBlocked(ring: Bool) throws {
        let s = try makeIOScheduler(2, ring: ring)
        let n = longMode ? 1_000 : 200
        let pipes = (0..<n).map { _ in ioPipe() }
        let f = IOFailures()
        let entered = Counter()
        let got = Counter()
        let allGot = Event()
        for i in 0..<n {
            let fd = pipes[i].r
            s.scheduleTask {
                entered.add()
                f.run("reader \(i)") {
                    var byte: UInt8 = 0
                    let k = try withUnsafeMutableBytes(of: &byte) { try Blocking.read(fd, into: $0) }
                    if k != 1 || byte != UInt8(truncatingIfNeeded: i) { f.record("reader \(i): got \(k) bytes, value \(byte)") }
                }
                if got.add() == n { allGot.set() }
            }
        }
        XCTAssertTrue(eventually(timeout: 30) { entered.value == n })
        // Each reader is in its call: handed off, or inline and retaken
        // (all but at most one per VP, whose VP has nothing else to run).
        XCTAssertTrue(eventually(timeout: 30) {
            offloaded(s, ring: ring) >= n - (ring ? 0 : s.virtualProcessorCount)
        }, "\(s.statistics)")
        // The VPs are free: a burst of tasks completes meanwhile.
        let burst = Counter()
        let burstDone = Event()
        for _ in 0..<1_000 { s.scheduleTask { if burst.add() == 1_000 { burstDone.set() } } }
        XCTAssertTrue(burstDone.wait(timeout: .seconds(10)))
        XCTAssertEqual(got.value, 0)
        for i in 0..<n {
            var byte = UInt8(truncatingIfNeeded: i)
            XCTAssertEqual(Glibc.write(pipes[i].w, &byte, 1), 1)
        }
        XCTAssertTrue(allGot.wait(timeout: .seconds(30)), "\(got.value) of \(n) readers released")
        XCTAssertEqual(f.all, [])
        for p in pipes { _ = Glibc.close(p.r); _ = Glibc.close(p.w) }
        try s.shutdown(timeout: .seconds(30))
    }
}

// MARK: - Shared checks

/// Every Blocking call, from the caller (a context when `onContext`, else a
/// plain pthread); `elsewhere` runs a peer body (another task or pthread).
private func checkEveryCall(_ f: IOFailures, onContext: Bool, elsewhere: (@escaping @Sendable () -> Void) -> Event) {
    // read / write / writeAll through a pipe, more than it holds at once.
    f.run("pipe") {
        let (r, w) = ioPipe()
        let data = ioBytes(300 * 1024, seed: 1)
        let writer = elsewhere {
            f.run("pipe writer") {
                try ioPump(w, data, useSend: false, seed: 2)
                try Blocking.close(w)
            }
        }
        let sum = try ioDrain(r, useRecv: false, seed: 3)
        f.check(sum == IOChecksum.of(data), "pipe: \(sum.count) of \(data.count) bytes, checksum differs or short")
        f.check(writer.wait(timeout: .seconds(30)), "pipe writer did not finish")
        try Blocking.close(r)
    }
    // A short exchange: exact byte counts.
    f.run("small write/read") {
        let (r, w) = ioPipe()
        let msg: [UInt8] = [1, 2, 3, 4, 5]
        let n = try msg.withUnsafeBytes { try Blocking.write(w, from: $0) }
        f.check(n == 5, "write returned \(n)")
        var buf = [UInt8](repeating: 0, count: 64)
        let k = try buf.withUnsafeMutableBytes { try Blocking.read(r, into: $0) }
        f.check(k == 5 && Array(buf[0..<5]) == msg, "read returned \(k): \(buf[0..<k])")
        try Blocking.close(w)
        let eof = try buf.withUnsafeMutableBytes { try Blocking.read(r, into: $0) }
        f.check(eof == 0, "read after the writer closed returned \(eof)")
        try Blocking.close(r)
    }
    // send / recv / sendAll through a socketpair, both directions.
    f.run("socketpair") {
        let (a, b) = ioSocketPair()
        let there = ioBytes(200 * 1024, seed: 4), back = ioBytes(100 * 1024, seed: 5)
        let peer = elsewhere {
            f.run("socketpair peer") {
                let sum = try ioDrain(b, useRecv: true, seed: 6)
                f.check(sum == IOChecksum.of(there), "socketpair a->b differs")
                try ioPump(b, back, useSend: true, seed: 7)
                try Blocking.close(b)
            }
        }
        try ioPump(a, there, useSend: true, seed: 8)
        _ = shutdown(a, Int32(SHUT_WR))
        let sum = try ioDrain(a, useRecv: true, seed: 9)
        f.check(sum == IOChecksum.of(back), "socketpair b->a differs")
        f.check(peer.wait(timeout: .seconds(30)), "socketpair peer did not finish")
        // recv flags: MSG_PEEK leaves the data queued.
        let (c, d) = ioSocketPair()
        let msg: [UInt8] = [9, 8, 7]
        try msg.withUnsafeBytes { try Blocking.sendAll(c, from: $0) }
        var buf = [UInt8](repeating: 0, count: 8)
        let peeked = try buf.withUnsafeMutableBytes { try Blocking.recv(d, into: $0, flags: Int32(MSG_PEEK)) }
        let taken = try buf.withUnsafeMutableBytes { try Blocking.recv(d, into: $0) }
        f.check(peeked == 3 && taken == 3 && Array(buf[0..<3]) == msg, "MSG_PEEK: \(peeked), \(taken)")
        for fd in [a, c, d] { try Blocking.close(fd) }
    }
    // A temp file: open, write, pwrite, pread, read at the offset, fsync,
    // close; reopen read-only and read it all back.
    f.run("file") {
        let path = ioTempPath("file")
        defer { unlink(path) }
        let fd = try Blocking.open(path, flags: O_CREAT | O_RDWR | O_TRUNC, mode: 0o600)
        let data = ioBytes(100_000, seed: 10)
        try data.withUnsafeBytes { try Blocking.writeAll(fd, from: $0) }
        let patch: [UInt8] = [0xAA, 0xBB, 0xCC, 0xDD]
        let pw = try patch.withUnsafeBytes { try Blocking.pwrite(fd, from: $0, offset: 1_000) }
        f.check(pw == 4, "pwrite returned \(pw)")
        var expected = data
        expected.replaceSubrange(1_000..<1_004, with: patch)
        var four = [UInt8](repeating: 0, count: 4)
        let pr = try four.withUnsafeMutableBytes { try Blocking.pread(fd, into: $0, offset: 1_000) }
        f.check(pr == 4 && four == patch, "pread returned \(pr): \(four)")
        let past = try four.withUnsafeMutableBytes { try Blocking.pread(fd, into: $0, offset: 1_000_000) }
        f.check(past == 0, "pread past the end returned \(past)")
        try Blocking.fsync(fd)
        // read uses the file offset: after the writes it is at the end.
        let atEnd = try four.withUnsafeMutableBytes { try Blocking.read(fd, into: $0) }
        f.check(atEnd == 0, "read at the end returned \(atEnd)")
        _ = lseek(fd, 999, SEEK_SET)
        let mid = try four.withUnsafeMutableBytes { try Blocking.read(fd, into: $0) }
        f.check(mid == 4 && four == Array(expected[999..<1_003]), "read at 999: \(mid) \(four)")
        try Blocking.close(fd)
        let ro = try Blocking.open(path, flags: O_RDONLY)
        let sum = try ioDrain(ro, useRecv: false, seed: 11)
        f.check(sum == IOChecksum.of(expected), "file read back: \(sum.count) bytes, differs")
        try Blocking.close(ro)
    }
    // poll: timeout, zero timeout, ready, and woken by a peer's write.
    f.run("poll") {
        let (r, w) = ioPipe()
        var p = pollfd(fd: r, events: Int16(POLLIN), revents: 0)
        var t0 = monotonicNow()
        var n = try Blocking.poll(&p, count: 1, timeoutMilliseconds: 30)
        f.check(n == 0 && monotonicNow() - t0 >= 30_000_000, "poll timeout: \(n) after \(monotonicNow() - t0) ns")
        n = try Blocking.poll(&p, count: 1, timeoutMilliseconds: 0)
        f.check(n == 0, "poll(0) on an empty pipe: \(n)")
        var byte: UInt8 = 1
        _ = Glibc.write(w, &byte, 1)
        n = try Blocking.poll(&p, count: 1, timeoutMilliseconds: 0)
        f.check(n == 1 && p.revents & Int16(POLLIN) != 0, "poll(0) with data: \(n) \(p.revents)")
        _ = Glibc.read(r, &byte, 1)
        let writer = elsewhere { usleep(20_000); var x: UInt8 = 2; _ = Glibc.write(w, &x, 1) }
        p.revents = 0
        t0 = monotonicNow()
        n = try Blocking.poll(&p, count: 1, timeoutMilliseconds: 20_000)
        f.check(n == 1 && p.revents & Int16(POLLIN) != 0, "poll woken by a write: \(n) \(p.revents)")
        f.check(writer.wait(timeout: .seconds(10)), "poll writer did not finish")
        for fd in [r, w] { try Blocking.close(fd) }
    }
    // sleep(for:): at least the duration; zero and negative return at once.
    f.run("sleep") {
        let t0 = monotonicNow()
        try Blocking.sleep(for: .milliseconds(25))
        f.check(monotonicNow() - t0 >= 25_000_000, "sleep returned early")
        try Blocking.sleep(for: .zero)
        try Blocking.sleep(for: .milliseconds(-5))
    }
    // call: result, typed rethrow; on a context (lazy kernel entry) the
    // body runs inline on the VP's pthread, as on a plain pthread: no
    // current context inside it.
    f.run("call") {
        let tid = csup_gettid()
        let (bodyTid, hadContext) = Blocking.call { (csup_gettid(), Context.current != nil) }
        f.check(!hadContext, "Context.current inside Blocking.call")
        if onContext {
            f.check(bodyTid == tid, "Blocking.call did not run inline on the VP's pthread (lazy kernel entry)")
            f.check(Context.current != nil, "not back on a context after Blocking.call")
        } else {
            f.check(bodyTid == tid, "outside a scheduler Blocking.call should run inline")
        }
        struct Oops: Error, Equatable { let code: Int }
        let failing = { () throws(Oops) -> Int in throw Oops(code: 7) }
        do throws(Oops) {
            _ = try Blocking.call(failing)   // typed: only Oops can come out
            f.record("call did not rethrow")
        } catch {
            f.check(error == Oops(code: 7), "call rethrew \(error)")
        }
        f.check(Blocking.call { 6 * 7 } == 42, "call result")
        let r = Blocking.call { csup_sys_close(-1) }
        f.check(r.value == -1 && r.err == EBADF, "errno read inside the call: \(r.err)")
    }
    // accept / connect on a loopback listener.
    f.run("tcp") {
        let listener = ioListener()
        let msg = ioBytes(10_000, seed: 12)
        let client = elsewhere {
            f.run("tcp client") {
                let fd = try ioConnect(port: listener.port)
                try ioPump(fd, msg, useSend: true, seed: 13)
                try Blocking.close(fd)
            }
        }
        let conn = try Blocking.accept(listener.fd)
        let sum = try ioDrain(conn, useRecv: true, seed: 14)
        f.check(sum == IOChecksum.of(msg), "tcp: \(sum.count) bytes, differs")
        f.check(client.wait(timeout: .seconds(30)), "tcp client did not finish")
        try Blocking.close(conn)
        try Blocking.close(listener.fd)
    }
}

/// Every error path: the call's name and its errno.
private func checkErrors(_ f: IOFailures, place: String) {
    var buf = [UInt8](repeating: 0, count: 16)
    let (r0, w) = ioPipe()
    // Closed descriptors. Not the number just closed: another thread of
    // the process (the runtime's monitor reading /proc, a test's pipe) may
    // be handed it at once, and then accept() says ENOTSOCK (seen in CI).
    // A number far above any descriptor this process opens is never open.
    _ = Glibc.close(r0)
    let r: Int32 = 1_000_003
    f.expect(call: "read", errno: EBADF) { _ = try buf.withUnsafeMutableBytes { try Blocking.read(r, into: $0) } }
    f.expect(call: "read", errno: EBADF) { _ = try buf.withUnsafeMutableBytes { try Blocking.read(1_000_000, into: $0) } }
    f.expect(call: "pread", errno: EBADF) { _ = try buf.withUnsafeMutableBytes { try Blocking.pread(r, into: $0, offset: 0) } }
    f.expect(call: "recv", errno: EBADF) { _ = try buf.withUnsafeMutableBytes { try Blocking.recv(r, into: $0) } }
    f.expect(call: "close", errno: EBADF) { try Blocking.close(r) }
    f.expect(call: "fsync", errno: EBADF) { try Blocking.fsync(r) }
    f.expect(call: "accept", errno: EBADF) { _ = try Blocking.accept(r) }
    // Wrong kind of descriptor.
    f.expect(call: "pwrite", errno: ESPIPE) { _ = try buf.withUnsafeBytes { try Blocking.pwrite(w, from: $0, offset: 0) } }
    f.expect(call: "send", errno: ENOTSOCK) { _ = try buf.withUnsafeBytes { try Blocking.send(w, from: $0) } }
    f.expect(call: "send", errno: ENOTSOCK) { try buf.withUnsafeBytes { try Blocking.sendAll(w, from: $0) } }
    f.expect(call: "fsync", errno: EINVAL) { try Blocking.fsync(w) }
    _ = Glibc.close(w)
    let closedW: Int32 = 1_000_005   // as `r` above
    f.expect(call: "write", errno: EBADF) { _ = try buf.withUnsafeBytes { try Blocking.write(closedW, from: $0) } }
    f.expect(call: "write", errno: EBADF) { try buf.withUnsafeBytes { try Blocking.writeAll(closedW, from: $0) } }
    // A missing path.
    let missing = ioTempPath("missing") + "/nope"
    f.expect(call: "open(\(missing))", errno: ENOENT) { _ = try Blocking.open(missing, flags: O_RDONLY) }
    // A peer that has gone: send gets EPIPE (no SIGPIPE).
    let (a, b) = ioSocketPair()
    _ = Glibc.close(b)
    f.expect(call: "send", errno: EPIPE) { _ = try buf.withUnsafeBytes { try Blocking.send(a, from: $0) } }
    _ = Glibc.close(a)
    // Sockets in the wrong state.
    let unlistened = ioListener(listening: false)
    f.expect(call: "accept", errno: EINVAL) { _ = try Blocking.accept(unlistened.fd) }
    _ = Glibc.close(unlistened.fd)   // nothing listens on that port now
    do {
        let fd = try ioConnect(port: unlistened.port)
        _ = Glibc.close(fd)
        f.record("\(place): connect to a closed port succeeded")
    } catch let e as BlockingError {
        f.check(e == BlockingError(call: "connect", errno: ECONNREFUSED), "\(place): connect: \(e)")
    } catch {
        f.record("\(place): connect: \(error)")
    }
    // poll with more descriptors than RLIMIT_NOFILE allows (EINVAL), timed
    // and untimed. The array really holds that many entries: poll(2)'s
    // contract is that `fds` points at `nfds` of them, and
    // AddressSanitizer's poll interceptor reads them all before the call.
    // (This test used to pass one pollfd with nfds = Int32.max: the kernel
    // rejects that before reading, but ASan reported a stack-buffer-overflow
    // on the context's stack, read from the kernel thread. A test bug, not
    // stale shadow; UMSTests' SanitizerTests cover
    // stale shadow on reused stacks.)
    let over = pollLimitPlusOne()
    let fds = UnsafeMutablePointer<pollfd>.allocate(capacity: over)
    fds.initialize(repeating: pollfd(fd: -1, events: 0, revents: 0), count: over)
    defer { fds.deinitialize(count: over); fds.deallocate() }
    f.expect(call: "poll", errno: EINVAL) { _ = try Blocking.poll(fds, count: over, timeoutMilliseconds: 10) }
    f.expect(call: "poll", errno: EINVAL) { _ = try Blocking.poll(fds, count: over, timeoutMilliseconds: 0) }
}

/// RLIMIT_NOFILE's soft limit + 1: the smallest nfds poll(2) rejects with
/// EINVAL. Bounded by fs.nr_open (at most 2^20 by default: 8 MiB of pollfds).
private func pollLimitPlusOne() -> Int {
    var lim = rlimit()
    precondition(getrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim) == 0, "getrlimit(RLIMIT_NOFILE) failed")
    precondition(lim.rlim_cur < 1 << 24, "RLIMIT_NOFILE soft limit \(lim.rlim_cur) too large for the poll EINVAL test")
    return Int(lim.rlim_cur) + 1
}
