// ums-sample's command line: options, their checks, and which run.
import ArgumentParser

@main
struct UMSSampleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ums-sample",
        abstract: "A Windows-style UMS scheduler: one pinned primary per CPU, one shared completion list.",
        discussion: """
            Each primary's scheduling pass first drains the completion list into the \
            shared ready queue, then executes the oldest ready thread. Workers come in \
            pairs joined by a pipe; every round each computes, yields, sleeps 1 ms in \
            nanosleep(2), and then the writer writes 64 bytes that its partner reads, all \
            through UMS.blockingCall. Prints the executions, yields, blocks, completions, \
            terminations, piped bytes, kernel threads and elapsed time.
            """)

    @Option(help: ArgumentHelp("Worker threads; an even number >= 2 (they pair up over pipes).", valueName: "N"))
    var workers = 16

    @Option(help: ArgumentHelp("Rounds each worker runs (>= 1).", valueName: "R"))
    var rounds = 5

    @Flag(help: "Overflow a thread's 64 KiB stack on purpose to show the guard-page report (the process aborts).")
    var overflowDemo = false

    func validate() throws {
        if workers < 2 || workers % 2 != 0 { throw ValidationError("--workers must be an even number >= 2 (got \(workers))") }
        if rounds < 1 { throw ValidationError("--rounds must be >= 1 (got \(rounds))") }
    }

    func run() throws {
        if overflowDemo { try runOverflowDemo(); return }
        try runSample(Options(workers: workers, rounds: rounds))
    }
}
