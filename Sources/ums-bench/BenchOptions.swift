/// The workloads' options, as given on the command line (see
/// UMSBench.swift for their help). Each workload applies its own default
/// where a value is nil, so one option name can mean a different default
/// size in each workload (`--iterations`, `--n`).
struct BenchOptions {
    /// switch, handoff, nullfork, signalwait, async-nullfork, async-pingpong:
    /// operations (async-pingpong: messages) per measured run.
    var iterations: Int?
    /// nullfork, signalwait: operations per baseline run.
    var baselineIterations: Int?
    /// signalwait, pipeline, queue: virtual processors (nil: the default scheduler);
    /// idle --busy: virtual processors (nil: 2).
    var vps: Int?
    /// blockmix, blockmix-unwrapped, async-blockmix: tasks, rounds, CPU and
    /// blocking time per round; rm: rounds (reclaim and handover each).
    var tasks: Int?
    var rounds: Int?
    var cpuUs: Int?
    var blockUs: Int?
    /// nullfork... blockmix: run the in-process baselines too.
    var baselines = true
    /// contexts: tasks that block at once.
    var contexts: Int?
    /// fib, async-fib: which Fibonacci number; sort: element count; skynet: leaves;
    /// pipeline: integers passed.
    var n: Int?
    /// idle: measure beside one busy virtual processor.
    var busy = false
    /// blockmix, nullfork, fib: record a timeline trace of the measured runs and
    /// write it here as Chrome trace JSON.
    var trace: String?
}
