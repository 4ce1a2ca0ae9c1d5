// echo-server's three modes: serve, client, and self-test (both in one
// process).
import ConcRT
import Foundation

/// --serve: serves until the process is killed, reporting now and then.
func serveForever(port: UInt16) throws -> Never {
    let server = try EchoServer(port: port, idleTimeoutSeconds: 300)
    server.start()
    print("echo-server: listening on 127.0.0.1:\(server.port) (until killed)")
    fflush(nil)   // all output streams
    // Bounded only by the process's life: report now and then.
    var lastAccepted = -1
    while true {
        sleep(10)
        let a = server.accepted.load(ordering: .relaxed)
        if a != lastAccepted {
            print("echo-server: \(a) connections accepted, \(server.bytesEchoed.load(ordering: .relaxed)) bytes echoed")
            fflush(nil)   // all output streams
            lastAccepted = a
        }
    }
}

/// --client: the client alone, against a server already listening.
func runClientOnly(port: UInt16, _ o: Options) throws -> Bool {
    let (report, elapsed) = try runClient(port: port, o)
    let ok = printClientReport(report, elapsed: elapsed, o)
    printSchedulerStatistics()
    if ok { print("echoed: OK connections: \(o.connections) bytes: \(o.connections * o.bytes)") }
    return ok
}

/// --self-test: server and client in this process; true when every byte
/// came back and the server saw every connection.
func runSelfTest(_ o: Options) throws -> Bool {
    let server = try EchoServer(port: 0, idleTimeoutSeconds: 30)
    server.start()
    // Let the accept loop start before the client floods the scheduler,
    // so that the server is listening from a task of its own (bounded:
    // 10 s).
    for _ in 0..<10_000 where !server.acceptorRunning.load(ordering: .acquiring) { usleep(1000) }
    print("self-test: server on 127.0.0.1:\(server.port)")
    let clientStart = monotonicNanoseconds()
    let (report, elapsed) = try runClient(port: server.port, o)
    var ok = printClientReport(report, elapsed: elapsed, o)
    try server.stop()
    let accepted = server.accepted.load(ordering: .relaxed)
    let echoed = server.bytesEchoed.load(ordering: .relaxed)
    // Each accept is a blocking call, taken in turn with every other
    // context's: under a flood of connects, the last connection is
    // accepted late (which is why first-chunk times are reported apart).
    let acceptSpan = Double(server.lastAcceptTime.load(ordering: .relaxed) &- clientStart) / 1e6
    print("  server: accepted \(accepted) (the last \(String(format: "%.1f", acceptSpan)) ms after the client started)"
          + "  echoed \(echoed) bytes  connection errors \(server.connectionErrors.load(ordering: .relaxed))  shut down cleanly")
    printSchedulerStatistics()
    ok = ok && accepted == o.connections && echoed == o.connections * o.bytes
    if ok {
        print("echoed: OK connections: \(o.connections) bytes: \(o.connections * o.bytes)")
    } else {
        print("echoed: FAILED connections: \(o.connections) bytes: \(o.connections * o.bytes)")
    }
    return ok
}
