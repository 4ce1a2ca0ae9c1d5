// echo-server's command line: mode and load options, their checks, and
// the three modes' runs.
import ArgumentParser
import ConcRT
import Foundation
import PPL
import UMS

@main
struct EchoServerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "echo-server",
        abstract: "A TCP echo server with one task per connection, written with plain blocking calls.",
        discussion: """
            Every connection is served by an ordinary loop of Blocking.recv and \
            Blocking.sendAll; a recv that waits parks only its own context. All traffic \
            stays on 127.0.0.1.

            --self-test (the default mode) starts the server in-process on an ephemeral \
            port, runs the client against it, shuts the server down cleanly and prints \
            `echoed: OK connections: N bytes: TOTAL`. --serve PORT serves until killed. \
            --client PORT opens the connections against a running server; each sends its \
            bytes one chunk at a time, waits for the chunk's echo and checks every byte, \
            then throughput (MB/s) and the p50/p99 chunk round trip are printed.

            The exit status is non-zero on any mismatch, lost byte, or failed connection.
            """)

    @Flag(help: "Server and client in this process, on an ephemeral port (the default mode).")
    var selfTest = false

    @Option(help: ArgumentHelp("Serve 127.0.0.1:PORT until killed (0 picks a free port).", valueName: "PORT"))
    var serve: UInt16?

    @Option(help: ArgumentHelp("Run only the client, against a server on 127.0.0.1:PORT (1...65535).", valueName: "PORT"))
    var client: UInt16?

    @Option(help: ArgumentHelp("Concurrent client connections, 1...10000. Default: 1000, or 100 with --short.", valueName: "N"))
    var connections: Int?

    @Option(help: ArgumentHelp("Bytes each connection sends and checks (>= 1). Default: 16384, or 4096 with --short.", valueName: "B"))
    var bytes: Int?

    @Option(help: ArgumentHelp("Bytes per send, each waited for before the next, 1...1048576.", valueName: "C"))
    var chunk = 1024

    @Flag(help: "Quick run for tests: 100 connections x 4096 bytes unless given.")
    var short = false

    var options: Options {
        let mode: Mode = if let serve { .serve(serve) } else if let client { .client(client) } else { .selfTest }
        return Options(mode: mode, connections: connections ?? (short ? 100 : 1000),
                       bytes: bytes ?? (short ? 4096 : 16384), chunk: chunk)
    }

    func validate() throws {
        let modes = (selfTest ? 1 : 0) + (serve != nil ? 1 : 0) + (client != nil ? 1 : 0)
        if modes > 1 { throw ValidationError("choose one mode: --self-test, --serve PORT or --client PORT") }
        if client == 0 { throw ValidationError("--client needs the server's port (1...65535)") }
        let o = options
        if !(1...10_000).contains(o.connections) { throw ValidationError("--connections must be in 1...10000 (got \(o.connections))") }
        if o.bytes < 1 { throw ValidationError("--bytes must be >= 1 (got \(o.bytes))") }
        if !(1...(1 << 20)).contains(o.chunk) { throw ValidationError("--chunk must be in 1...1048576 (got \(o.chunk))") }
    }

    func run() throws {
        // A peer that vanishes must not kill us with SIGPIPE (send already
        // uses MSG_NOSIGNAL; this covers everything else).
        signal(SIGPIPE, SIG_IGN)
        let o = options
        let ok: Bool
        switch o.mode {
        case .serve(let port): try serveForever(port: port)
        case .client(let port): ok = try runClientOnly(port: port, o)
        case .selfTest: ok = try runSelfTest(o)
        }
        if !ok { throw ExitCode.failure }
    }
}
