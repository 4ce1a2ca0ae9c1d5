// echo-server: a thread-per-connection style TCP server, one task per
// connection, written with plain blocking calls.
//
// Every connection is served by an ordinary loop: Blocking.recv, then
// Blocking.sendAll of what came in, until the peer closes. No event loop,
// no callbacks. Each recv that has to wait parks only its own context (queued
// on its virtual processor's io_uring, or on lazy kernel entry where there
// is none); the virtual processor runs other connections meanwhile. With 1000 connections there are 1000 contexts parked in recv
// on the server side, and 1000 more on the client side, on as many
// virtual processors as there are CPUs.
//
// All traffic stays on 127.0.0.1: the server binds the loopback address
// only, and the client connects only there.
//
// Modes: --self-test (default: server and client in one process),
// --serve PORT, --client PORT. Run `echo-server --help` for the options.
//
// The exit status is non-zero on any mismatch, lost byte, or failed
// connection. Every loop is bounded: reads time out (Blocking's timeout:), the
// server's accept loop ends on shutdown, and each client loop runs once
// per chunk.
import ConcRT
import Foundation
import PPL
import Synchronization
import UMS

// MARK: Options

/// Which side(s) run: both in one process, the server alone, or the client
/// against a server on 127.0.0.1:PORT.
enum Mode { case selfTest, serve(UInt16), client(UInt16) }

/// The mode and the client's load.
struct Options {
    var mode = Mode.selfTest
    var connections = 1000
    var bytes = 16384
    var chunk = 1024
}

/// Prints `echo-server: MESSAGE` on stderr.
func warn(_ message: String) {
    FileHandle.standardError.write("echo-server: \(message)\n".data(using: .utf8)!)
}

// MARK: Sockets (Glibc; these calls never wait, so they are made directly)

struct SocketError: Error, CustomStringConvertible {
    let call: String, errno: Int32
    var description: String { "\(call) failed: \(String(cString: strerror(errno)))" }
}

/// 127.0.0.1:port.
func loopbackAddress(port: UInt16) -> sockaddr_in {
    var a = sockaddr_in()
    a.sin_family = sa_family_t(AF_INET)
    a.sin_port = port.bigEndian
    a.sin_addr.s_addr = UInt32(INADDR_LOOPBACK).bigEndian
    return a
}

func newTCPSocket() throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    if fd < 0 { throw SocketError(call: "socket", errno: errno) }
    return fd
}

func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) {
    var v = value
    _ = setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size))
}

/// A socket listening on 127.0.0.1:port; port 0 picks a free one.
/// Returns the descriptor and the port actually bound.
func listenOnLoopback(port: UInt16) throws -> (fd: Int32, port: UInt16) {
    let fd = try newTCPSocket()
    setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1)
    var addr = loopbackAddress(port: port)
    let bound = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    if bound != 0 { let e = errno; close(fd); throw SocketError(call: "bind(127.0.0.1:\(port))", errno: e) }
    // The kernel caps the backlog at net.core.somaxconn.
    if listen(fd, 4096) != 0 { let e = errno; close(fd); throw SocketError(call: "listen", errno: e) }
    var actual = sockaddr_in()
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &actual) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
    }
    if named != 0 { let e = errno; close(fd); throw SocketError(call: "getsockname", errno: e) }
    return (fd, UInt16(bigEndian: actual.sin_port))
}

func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

// MARK: Server

/// The echo server. The accept loop and every connection are tasks of one
/// TaskGroup, so `stop()` can wait for all of them.
final class EchoServer: Sendable {
    let listenFD: Int32
    let port: UInt16
    /// How long a connection may stay silent before the server drops it.
    let idleTimeoutSeconds: Int
    private let group = TaskGroup(scheduler: Scheduler.default)
    private let stopping = Atomic<Bool>(false)
    let acceptorRunning = Atomic<Bool>(false)
    let accepted = Atomic<Int>(0)
    /// When the latest connection was accepted (monotonic nanoseconds).
    let lastAcceptTime = Atomic<UInt64>(0)
    let bytesEchoed = Atomic<Int>(0)
    let connectionErrors = Atomic<Int>(0)

    init(port: UInt16, idleTimeoutSeconds: Int) throws {
        (listenFD, self.port) = try listenOnLoopback(port: port)
        self.idleTimeoutSeconds = idleTimeoutSeconds
        // The accept loop wakes up at least once a second (accept's
        // timeout) to look at the stop flag.
    }

    /// Starts the accept loop, as a task of the server's group.
    func start() {
        group.run { [self] in acceptLoop() }
    }

    private func acceptLoop() {
        acceptorRunning.store(true, ordering: .releasing)
        while !stopping.load(ordering: .acquiring) {
            let fd: Int32
            do {
                fd = try Blocking.accept(listenFD, timeout: .seconds(1))
            } catch {
                if stopping.load(ordering: .acquiring) { break }
                switch error.errno {
                case ETIMEDOUT, EAGAIN, ECONNABORTED, EINTR: continue   // timeout tick, or a client gave up
                case EMFILE, ENFILE: try? Blocking.sleep(for: .milliseconds(10)); continue
                default: warn("accept: \(error)"); return
                }
            }
            accepted.wrappingAdd(1, ordering: .relaxed)
            lastAcceptTime.store(monotonicNanoseconds(), ordering: .relaxed)
            // The connection's task goes on this virtual processor's deque;
            // the next accept blocks and the VP picks it up at once.
            group.run { [self] in serve(fd) }
        }
    }

    /// One connection: receive, echo back, until the peer closes.
    private func serve(_ fd: Int32) {
        defer { try? Blocking.close(fd) }
        setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
        let idle = Duration.seconds(idleTimeoutSeconds)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 16384, alignment: 16)
        defer { buffer.deallocate() }
        // Bounded: every pass gets at least one byte, or the peer closed,
        // or the receive timed out.
        while true {
            do {
                let n = try Blocking.recv(fd, into: buffer, timeout: idle)
                if n == 0 { return }                     // orderly close by the peer
                try Blocking.sendAll(fd, from: UnsafeRawBufferPointer(rebasing: buffer[..<n]))
                bytesEchoed.wrappingAdd(n, ordering: .relaxed)
            } catch {
                connectionErrors.wrappingAdd(1, ordering: .relaxed)
                if error.errno != ECONNRESET && error.errno != EPIPE { warn("connection: \(error)") }
                return
            }
        }
    }

    /// Stops accepting, waits for every connection to finish, and closes
    /// the listening socket.
    func stop() throws {
        stopping.store(true, ordering: .releasing)
        // Wakes an accept that is waiting now (it fails with EINVAL).
        shutdown(listenFD, Int32(SHUT_RDWR))
        try group.wait()
        close(listenFD)
    }
}

// MARK: Client

/// What the client measured, summed over its connections.
final class ClientReport: Sendable {
    let bytesChecked = Atomic<Int>(0)
    let failedConnections = Atomic<Int>(0)
    let mismatches = Atomic<Int>(0)
    /// Round-trip time of every chunk, in nanoseconds (appended once per
    /// connection, so the lock is taken N times, not once per chunk).
    let latencies = MigrationSafeMutex<[UInt64]>([])
    /// The same without each connection's first chunk: the first one also
    /// waits for the server to accept the connection, which under a flood
    /// of connects is most of its time.
    let laterLatencies = MigrationSafeMutex<[UInt64]>([])
    let firstError = MigrationSafeMutex<String?>(nil)

    func failed(_ connection: Int, _ message: String) {
        failedConnections.wrappingAdd(1, ordering: .relaxed)
        firstError.withLock { if $0 == nil { $0 = "connection \(connection): \(message)" } }
    }
}

enum ClientError: Error, CustomStringConvertible {
    case closedEarly(received: Int), mismatch(offset: Int), extraBytes
    var description: String {
        switch self {
        case .closedEarly(let r): return "server closed the connection after \(r) bytes of a chunk"
        case .mismatch(let o): return "echoed byte at offset \(o) differs"
        case .extraBytes: return "server sent bytes that were never sent to it"
        }
    }
}

/// The test pattern: byte `offset` of connection `id`. Differs between
/// connections, so crossed streams would be caught too.
@inline(__always)
func patternByte(_ id: Int, _ offset: Int) -> UInt8 {
    UInt8(truncatingIfNeeded: (id &* 131) &+ (offset &* 7) &+ (offset >> 8))
}

/// One client connection: send `bytes` in chunks; after each chunk,
/// receive its echo, time the round trip, check every byte.
func clientConnection(id: Int, port: UInt16, bytes: Int, chunk: Int, report: ClientReport) throws {
    let fd = try newTCPSocket()
    defer { try? Blocking.close(fd) }
    setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
    var addr = loopbackAddress(port: port)
    try withUnsafeBytes(of: &addr) {
        try Blocking.connect(fd, address: $0.baseAddress!, length: UInt32(MemoryLayout<sockaddr_in>.size))
    }
    let out = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
    let back = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
    defer { out.deallocate(); back.deallocate() }
    var latencies: [UInt64] = []
    latencies.reserveCapacity((bytes + chunk - 1) / chunk)

    var offset = 0
    while offset < bytes {                              // once per chunk
        let len = min(chunk, bytes - offset)
        for i in 0..<len { out[i] = patternByte(id, offset + i) }
        let t0 = monotonicNanoseconds()
        try Blocking.sendAll(fd, from: UnsafeRawBufferPointer(rebasing: out[..<len]))
        var got = 0
        while got < len {                               // each pass gets >= 1 byte, or throws
            // A lost echo fails after 30 s instead of hanging.
            let n = try Blocking.recv(fd, into: UnsafeMutableRawBufferPointer(rebasing: back[got..<len]), timeout: .seconds(30))
            if n == 0 { throw ClientError.closedEarly(received: got) }
            got += n
        }
        latencies.append(monotonicNanoseconds() - t0)
        if memcmp(out.baseAddress!, back.baseAddress!, len) != 0 {
            let at = (0..<len).first { out[$0] != back[$0] } ?? 0
            report.mismatches.wrappingAdd(1, ordering: .relaxed)
            throw ClientError.mismatch(offset: offset + at)
        }
        report.bytesChecked.wrappingAdd(len, ordering: .relaxed)
        offset += len
    }
    // Half-close: the server sees end of file, closes its side, and we must
    // then read end of file too (not a stray byte).
    shutdown(fd, Int32(SHUT_WR))
    if try Blocking.recv(fd, into: UnsafeMutableRawBufferPointer(rebasing: back[..<1]), timeout: .seconds(30)) != 0 {
        throw ClientError.extraBytes
    }
    report.latencies.withLock { $0.append(contentsOf: latencies) }
    report.laterLatencies.withLock { $0.append(contentsOf: latencies.dropFirst()) }
}

/// Runs `connections` client connections at once, one task each. Returns
/// the report and the wall time in nanoseconds.
func runClient(port: UInt16, _ o: Options) throws -> (ClientReport, UInt64) {
    let report = ClientReport()
    // Created and waited for from the main thread: the tasks go to the
    // scheduler's queue, and wait() parks the main thread (it does not
    // help run tasks, so it never ends up running someone's long loop).
    let group = TaskGroup(scheduler: Scheduler.default)
    let start = monotonicNanoseconds()
    for id in 0..<o.connections {
        group.run {
            do {
                try clientConnection(id: id, port: port, bytes: o.bytes, chunk: o.chunk, report: report)
            } catch {
                // Counted, not thrown: a throw would cancel the other
                // connections' tasks.
                report.failed(id, "\(error)")
            }
        }
    }
    try group.wait()
    return (report, monotonicNanoseconds() - start)
}

/// Prints the client's results; returns true when everything was echoed.
func printClientReport(_ report: ClientReport, elapsed: UInt64, _ o: Options) -> Bool {
    let total = o.connections * o.bytes
    let checked = report.bytesChecked.load(ordering: .relaxed)
    let seconds = Double(elapsed) / 1e9
    let all = report.latencies.withLock { $0 }.sorted()
    let later = report.laterLatencies.withLock { $0 }.sorted()
    func percentile(_ lat: [UInt64], _ p: Double) -> String {
        if lat.isEmpty { return "-" }
        let i = min(lat.count - 1, Int(Double(lat.count) * p))
        return String(format: "%.1f us", Double(lat[i]) / 1e3)
    }
    print("client: \(o.connections) connections x \(o.bytes) bytes in \(o.chunk)-byte chunks:"
          + String(format: " %.1f ms, %.1f MB/s echoed", seconds * 1e3, Double(checked) / 1e6 / max(seconds, 1e-9)))
    print("  chunk round trip: p50 \(percentile(all, 0.50))  p99 \(percentile(all, 0.99))  (\(all.count) chunks)")
    print("  without first chunks (which include waiting to be accepted): p50 \(percentile(later, 0.50))"
          + "  p99 \(percentile(later, 0.99))")
    let failed = report.failedConnections.load(ordering: .relaxed)
    print("  bytes checked: \(checked) of \(total)  mismatches: \(report.mismatches.load(ordering: .relaxed))"
          + "  failed connections: \(failed)")
    if let e = report.firstError.withLock({ $0 }) { print("  first error: \(e)") }
    return failed == 0 && checked == total
}

func printSchedulerStatistics() {
    let s = Scheduler.default.statistics
    print("  scheduler (\(Scheduler.default.virtualProcessorCount) virtual processors): kernelBlocks \(s.kernelBlocks)"
          + "  contextSwitches \(s.contextSwitches)  contextsCreated \(s.contextsCreated)  idleSleeps \(s.idleSleeps)")
}
