// ums-bench: the project's benchmark. One subcommand per workload
// (../shared/peers/WORKLOADS.md), output in the shared contract.
//
//   ums-bench WORKLOAD... [--reps N] [--json FILE] [--iterations N]
//   ums-bench all
import CSupport
import Foundation

let workloads: [(String, (Harness) throws -> Void)] = [
    ("switch", SwitchBench.run),
    ("handoff", HandoffBench.run),
    ("nullfork", ForkJoinBench.nullfork),
    ("fib", ForkJoinBench.run),
    ("sort", SortBench.run),
    ("signalwait", ConcRTBench.signalwait),
    ("blockmix", ConcRTBench.blockmix),
    ("idle", ConcRTBench.idle),
    ("contexts", ConcRTBench.contexts),
]

@MainActor func usage() -> Never {
    print("usage: ums-bench WORKLOAD... | all  [--reps N] [--warmup N] [--iterations N] [--json FILE]")
    print("workloads: \(workloads.map(\.0).joined(separator: " "))")
    exit(2)
}

let h = Harness()
var selected: [String] = []
var jsonPath: String?
var args = CommandLine.arguments.dropFirst()
while let a = args.popFirst() {
    switch a {
    case "--reps": h.reps = max(1, Int(args.popFirst() ?? "") ?? h.reps)
    case "--warmup": h.warmup = max(0, Int(args.popFirst() ?? "") ?? h.warmup)
    case "--json": jsonPath = args.popFirst()
    case "-h", "--help": usage()
    case let opt where opt.hasPrefix("--"):
        guard let v = args.popFirst() else { usage() }
        h.options[String(opt.dropFirst(2))] = v
    case "all": selected += workloads.map(\.0)
    default:
        guard workloads.contains(where: { $0.0 == a }) else {
            FileHandle.standardError.write("ums-bench: unknown workload '\(a)'\n".data(using: .utf8)!)
            usage()
        }
        selected.append(a)
    }
}
if selected.isEmpty { usage() }

do {
    for name in selected {
        h.progress("ums-bench: \(name)")
        try workloads.first { $0.0 == name }!.1(h)
    }
    if let jsonPath {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try enc.encode(h.figures).write(to: URL(fileURLWithPath: jsonPath))
    }
} catch {
    FileHandle.standardError.write("ums-bench: FAILED: \(error)\n".data(using: .utf8)!)
    exit(1)
}
