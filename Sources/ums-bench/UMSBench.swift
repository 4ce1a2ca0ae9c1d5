// ums-bench: the project's benchmark. One workload per name
// (../shared/peers/WORKLOADS.md), output in the shared contract: one line
// per figure on stdout, `<workload> <impl> <value> <unit> [free text]`;
// progress on stderr.
//
//   ums-bench WORKLOAD... [options]     e.g. ums-bench handoff idle contexts --reps 3
//   ums-bench all
import ArgumentParser
import CSupport
import Foundation

/// The workloads, in the order `all` runs them: name, one-line summary for
/// --help, and the function that runs and reports it.
let workloads: [(name: String, summary: String, run: @Sendable (Harness) throws -> Void)] = [
    ("switch", "two contexts ping-pong through the raw switch; ns/switch", SwitchBench.run),
    ("handoff", "one UMS.blockingCall round trip (UT->KT->UT); ns/op", HandoffBench.run),
    ("syscall", "a wrapped call that does not block, inline vs handed off vs direct; ns/op; and a 100 us one", SyscallBench.run),
    ("nullfork", "spawn one empty task and wait for it; ns/op", ForkJoinBench.nullfork),
    ("fib", "fib(30), one task per call; ms", ForkJoinBench.run),
    ("skynet", "10-ary task tree, 1,000,000 leaves, 4 task APIs; ms", SkynetBench.run),
    ("sort", "sort 10,000,000 random UInt64 keys in place; ms", SortBench.run),
    ("queue", "2 producers, 2 consumers pass 4,000,000 Ints through ConcurrentQueue; ms", ContainersBench.queue),
    ("hashmap", "4 tasks insert 1,000,000 keys into ConcurrentDictionary, 4 look them up; vs mutex + Dictionary; ms", ContainersBench.hashmap),
    ("signalwait", "two tasks alternate waiting on events; ns/roundtrip", ConcRTBench.signalwait),
    ("blockmix", "256 tasks x 10 rounds: 500 us CPU, 2000 us nanosleep(2); ms", ConcRTBench.blockmix),
    ("blockmix-unwrapped", "blockmix with a plain, unwrapped nanosleep(2); ms", UnwrappedBench.blockmix),
    ("detect", "unwrapped read(2) blocks on the only VP: time until another task starts; us (median, p99)", UnwrappedBench.detect),
    ("pthread-changes", "blockmix's shape: percent of blocking calls after which the task is on another pthread (hand-off, lazy, unwrapped)", PThreadChangesBench.run),
    ("timers", "10,000 contexts sleep 10 ms in a loop for 1 s, tolerance 0 and 1 ms; VP wake-ups/s, cpu-ms/s", TimersBench.run),
    ("iops", "256 contexts, 4 KiB random preads of a cached 256 MiB file for 1 s; ops/s", IOBench.run),
    ("idle", "CPU burnt by an idle scheduler; --busy: beside a busy VP; cpu-ms/s", IdleBench.run),
    ("rm", "two default schedulers share the cores (Resource Manager): reclaim and handover latency (us), fair split, most tasks at once", ResourceManagerBench.run),
    ("scale", "nullfork and signalwait with 2, 8, 32, 64 VPs (oversubscribed on purpose); ns/op and 64:2 throughput", ScaleBench.run),
    ("fairshare", "schedule groups with shares 3:1, a 25% cap, one group alone; percent of the VPs' time", FairShareBench.run),
    ("pipeline", "producer -> transformer -> consumer over two BoundedBuffer(64), 1,000,000 ints; ms", PipelineBench.run),
    ("contexts", "100,000 tasks blocked on an event; KiB RSS each, ms", ConcRTBench.contexts),
    ("snapshot", "10,000 contexts (--contexts) blocked on events: one Scheduler.snapshot(), without and with backtraces, and as text; ms", ReflectionBench.run),
    ("async-blockmix", "blockmix as 256 async TaskGroup children, unwrapped nanosleep(2); on our executor (+ wrapped) vs default; ms", AsyncBench.blockmix),
    ("async-nullfork", "TaskGroup: spawn one empty async child and await it, 100,000 times; ours vs default; ns/op", AsyncBench.nullfork),
    ("async-fib", "fib(25), one TaskGroup child per call (25: the default executor is slow); ours vs default; ms", AsyncBench.fib),
    ("async-pingpong", "two actors call each other back, 1,000,000 messages; SchedulerSerialExecutors vs default actors; ns/msg", AsyncBench.pingpong),
    ("async-global", "async-nullfork and async-fib with a scheduler installed as the global executor (for the life of the process: runs last); vs default", AsyncBench.global),
]

@main
struct UMSBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ums-bench",
        abstract: "The project's benchmark: the shared workloads and in-process baselines.",
        discussion: """
            Output: one line per figure on stdout, `<workload> <impl> <value> <unit> [free text]` \
            (the contract of ../shared/peers/README.md); progress and scheduler statistics go \
            to stderr. Figures whose impl starts with `baseline-` are in-process comparisons \
            (Swift TaskGroup, Dispatch, pthreads), not the runtime. Each figure is the median \
            of --reps measured runs after --warmup unmeasured ones (baselines: one run; idle \
            and contexts: one run).

            `ums-bench topology [--root DIR] [--nodes SET] [--groups SET] [--vps N]` prints, \
            instead of figures, the topology ConcRT reads (this machine or a fixture such as \
            Tests/Fixtures/topology/seed-256): processor groups, NUMA nodes, and the layout a \
            scheduler gets there: each VP's CPU, node and group, and its steal order by tier.

            Workloads (`all` runs every one, in this order):
            \(workloads.map { "  \($0.name.padding(toLength: workloads.map(\.name.count).max()! + 1, withPad: " ", startingAt: 0))\($0.summary)" }.joined(separator: "\n"))

            idle --busy prints `idle-busy ums <value> cpu-ms/s`: on a scheduler of --vps \
            (default 2) virtual processors, one runs a single task that spins for 1 s without \
            blocking; value = (process CPU time over that window, CLOCK_PROCESS_CPUTIME_ID, \
            minus the task's own CPU time, CLOCK_THREAD_CPUTIME_ID read inside the task) / \
            window seconds. That is what the idle virtual processors burn beside a busy one; \
            the free text gives the scheduler's idleSleeps count over the run.

            The async-* workloads run the same Swift-concurrency code with a ConcRT scheduler \
            as the task executor (impl `ums`: Task.detached(executorPreference:), \
            TaskGroup.addTask(executorPreference:), actors whose unownedExecutor is a \
            SchedulerSerialExecutor) and on Swift's default executor (impl \
            `baseline-swift-default`), each on its own default-policy scheduler, shut down at \
            the end, unless said here. async-blockmix: blockmix's shape (--tasks, --rounds, \
            --cpu-us, --block-us) as async children of one withTaskGroup, blocking in a plain \
            Glibc nanosleep(2) with no wrapper; `ums` uses a scheduler with \
            detectUnwrappedBlocking (experimental) on, `ums-wrapped` the same sleep inside \
            Blocking.call on a default scheduler; goal <= 1.15x ideal. async-nullfork: \
            --iterations times (default 100,000) a withTaskGroup with one empty child, \
            awaited; ns per spawn+await; goal >= 2x faster than default. async-fib: fib(--n, \
            default 25) with one TaskGroup child per call; goal >= 2x faster than default. \
            async-pingpong: actors A and B; A loops `await b.ping(from: a)`, B.ping counts a \
            message and calls `await a.pong()` back, A.pong counts a message: two messages \
            per round (each a cross-actor call and its return), --iterations messages \
            (default 1,000,000); ns per message. The default-executor baselines of \
            async-blockmix and async-fib take one measured run, the others --reps; \
            async-blockmix's `ums` (seconds a run while unwrapped blocks in async jobs are \
            not retaken) and baseline skip the --warmup run.
            """)

    @Argument(help: ArgumentHelp("Workloads to run, in order; `all` for every one.", valueName: "workload"))
    var workloadNames: [String]

    @Option(help: ArgumentHelp("Measured runs per figure; the median is reported (>= 1).", valueName: "N"))
    var reps = 5

    @Option(help: ArgumentHelp("Unmeasured runs before the measured ones (>= 0).", valueName: "N"))
    var warmup = 1

    @Option(help: ArgumentHelp("Also write every figure as JSON to FILE.", valueName: "FILE"))
    var json: String?

    @Option(help: ArgumentHelp("Operations per run: switch (default 10,000,000; ucontext a tenth), handoff (100,000), nullfork (1,000,000), signalwait (1,000,000), async-nullfork (100,000), async-pingpong (messages, 1,000,000).",
                               valueName: "N"))
    var iterations: Int?

    @Option(help: ArgumentHelp("Operations per baseline run: nullfork (default 50,000), signalwait (100,000).", valueName: "N"))
    var baselineIterations: Int?

    @Option(help: ArgumentHelp("Virtual processors: signalwait, pipeline (default: the default scheduler's, one per CPU); idle --busy (default 2, >= 2).",
                               valueName: "N"))
    var vps: Int?

    @Option(help: ArgumentHelp("blockmix, async-blockmix: tasks (default 256).", valueName: "N"))
    var tasks: Int?

    @Option(help: ArgumentHelp("blockmix, async-blockmix: rounds of CPU then block per task (default 10).", valueName: "N"))
    var rounds: Int?

    @Option(help: ArgumentHelp("blockmix, async-blockmix: CPU spun per round, in microseconds (default 500).", valueName: "US"))
    var cpuUs: Int?

    @Option(help: ArgumentHelp("blockmix, async-blockmix: nanosleep(2) per round, in microseconds (default 2000).", valueName: "US"))
    var blockUs: Int?

    @Option(help: ArgumentHelp("contexts: tasks that block on one event at once (default 100,000).", valueName: "N"))
    var contexts: Int?

    @Option(help: ArgumentHelp("fib: which Fibonacci number (default 30; async-fib 25); sort: element count (default 10,000,000); skynet: leaves, a power of 10 (default 1,000,000); pipeline: integers (default 1,000,000); queue: items (default 4,000,000); hashmap: keys (default 1,000,000).", valueName: "N"))
    var n: Int?

    @Flag(inversion: .prefixedNo, help: "Run the in-process baselines of fib, blockmix and hashmap too.")
    var baselines = true

    @Option(help: ArgumentHelp("blockmix, nullfork, fib: record a timeline trace of the measured runs and write it as Chrome / Perfetto trace JSON to FILE (render it with `ums-trace png`).", valueName: "FILE"))
    var trace: String?

    @Flag(help: "idle: measure the idle virtual processors beside one busy one instead (prints idle-busy).")
    var busy = false

    @Option(help: ArgumentHelp("topology: read a fixture tree mirroring /sys and /proc/self instead of this machine (default: $UMS_SYSFS_ROOT, else this machine).", valueName: "DIR"))
    var root: String?

    @Option(help: ArgumentHelp("topology: select NUMA nodes, a CPU-list style set such as 0,2-3 (default: all).", valueName: "SET"))
    var nodes: String?

    @Option(help: ArgumentHelp("topology: select processor groups, such as 0-1 (default: all).", valueName: "SET"))
    var groups: String?

    /// The workloads to run, `all` expanded, in command-line order.
    var selected: [(name: String, summary: String, run: @Sendable (Harness) throws -> Void)] {
        workloadNames.flatMap { name in name == "all" ? workloads : workloads.filter { $0.name == name } }
    }

    func validate() throws {
        let valid = workloads.map(\.name) + ["all", "topology"]
        for name in workloadNames where !valid.contains(name) {
            throw ValidationError("unknown workload '\(name)'; valid workloads: \(valid.joined(separator: " "))")
        }
        // async-global installs a scheduler as the global executor for the
        // life of the process: a default-executor baseline after it would
        // run on that scheduler.
        if let i = workloadNames.firstIndex(of: "async-global"), i != workloadNames.count - 1 {
            throw ValidationError("async-global installs the global executor for the rest of the process: name it last")
        }
        if reps < 1 { throw ValidationError("--reps must be >= 1 (got \(reps))") }
        if warmup < 0 { throw ValidationError("--warmup must be >= 0 (got \(warmup))") }
        let counts: [(String, Int?)] = [("--iterations", iterations), ("--baseline-iterations", baselineIterations),
                                        ("--tasks", tasks), ("--rounds", rounds), ("--contexts", contexts)]
        for (flag, value) in counts {
            if let value, value < 1 { throw ValidationError("\(flag) must be >= 1 (got \(value))") }
        }
        if let cpuUs, cpuUs < 0 { throw ValidationError("--cpu-us must be >= 0 (got \(cpuUs))") }
        if let blockUs, blockUs < 0 { throw ValidationError("--block-us must be >= 0 (got \(blockUs))") }
        if let n, n < 0 { throw ValidationError("--n must be >= 0 (got \(n))") }
        if let vps, vps < 1 { throw ValidationError("--vps must be >= 1 (got \(vps))") }
        if busy {
            if !selected.contains(where: { $0.name == "idle" }) { throw ValidationError("--busy is a mode of the idle workload; name idle (or all)") }
            if let vps, vps < 2 { throw ValidationError("idle --busy needs --vps >= 2: one busy and at least one idle (got \(vps))") }
        }
    }

    func run() throws {
        if workloadNames.contains("topology") {
            // Not a workload (prints a layout, not figures): run alone.
            guard workloadNames == ["topology"] else { throw ValidationError("topology prints a layout; name it alone") }
            do {
                try TopologyCommand.run(root: root, nodes: TopologyCommand.parseSet(nodes, flag: "--nodes"),
                                        groups: TopologyCommand.parseSet(groups, flag: "--groups"), vps: vps)
            } catch {
                FileHandle.standardError.write("ums-bench topology: \(error)\n".data(using: .utf8)!)
                throw ExitCode.failure
            }
            return
        }
        if root != nil || nodes != nil || groups != nil { throw ValidationError("--root, --nodes and --groups are options of topology") }
        let h = Harness()
        h.reps = reps
        h.warmup = warmup
        h.options = BenchOptions(iterations: iterations, baselineIterations: baselineIterations, vps: vps,
                                 tasks: tasks, rounds: rounds, cpuUs: cpuUs, blockUs: blockUs,
                                 baselines: baselines, contexts: contexts, n: n, busy: busy, trace: trace)
        do {
            for w in selected {
                h.progress("ums-bench: \(w.name)")
                try w.run(h)
            }
            if let json {
                let enc = JSONEncoder()
                enc.outputFormatting = [.prettyPrinted, .sortedKeys]
                try enc.encode(h.figures).write(to: URL(fileURLWithPath: json))
            }
        } catch {
            h.progress("ums-bench: FAILED: \(error)")
            throw ExitCode.failure
        }
    }
}
