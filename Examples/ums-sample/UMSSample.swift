// ums-sample: a UMS scheduler in the style of the Windows UMS sample.
//
// One primary per CPU, pinned, all sharing one completion list and one
// ready queue. Each scheduling pass first drains the completion list into
// the ready queue (the UMS rule: completions before anything else runs),
// then executes the oldest ready thread.
//
// Workers compute, yield, and block in real system calls: nanosleep, and
// reads from pipes that their partner workers write to. When a worker
// blocks, its primary goes straight on with another worker.
//
// Run `ums-sample --help` for the options.
import CSupport
import Foundation
import Synchronization
import UMS

/// How many workers, and how many rounds each runs.
struct Options {
    var workers = 16
    var rounds = 5
}

/// Event counters (relaxed: totals read after every primary has returned).
final class Tally: Sendable {
    let executions = Atomic<Int>(0), yields = Atomic<Int>(0)
    let blocks = Atomic<Int>(0), completions = Atomic<Int>(0)
    let bytesPiped = Atomic<Int>(0), terminated = Atomic<Int>(0)
}

/// The ready queue shared by all primaries.
final class ReadyQueue: Sendable {
    private let q = Mutex<[UMSThread]>([])
    func append(_ t: UMSThread) { q.withLock { $0.append(t) } }
    func popFirst() -> UMSThread? { q.withLock { $0.isEmpty ? nil : $0.removeFirst() } }
}

@inline(never)
func recurse(_ depth: Int) -> Int {
    // A 1 KiB frame per level; the volatile-ish use keeps it from being
    // optimised into a loop.
    var frame = (UInt64(depth), UInt64(0), UInt64(0), UInt64(0))
    return withUnsafeMutableBytes(of: &frame) { raw in
        var big = [UInt8](repeating: 0, count: 0)
        return withExtendedLifetime(big) {
            raw.withMemoryRebound(to: UInt64.self) { $0[1] = UInt64(recurse(depth + 1)) }
            big.append(1)
            return Int(raw.load(fromByteOffset: 8, as: UInt64.self)) + depth
        }
    }
}

/// Runs a thread that recurses until it overflows its 64 KiB stack.
func runOverflowDemo() throws {
    let list = try UMSCompletionList()
    _ = try UMSThread(completionList: list, stackSize: 64 * 1024, name: "overflow-demo") {
        print(recurse(0))
    }
    try UMS.enterSchedulingMode { p in
        for t in list.dequeue(timeout: .zero) { _ = try p.execute(t) }
    }
}

/// Runs the workers on one pinned primary per CPU and prints the tallies.
func runSample(_ o: Options) throws {
    let list = try UMSCompletionList()
    let ready = ReadyQueue()
    let tally = Tally()
    let pairs = o.workers / 2
    var pipes: [(r: Int32, w: Int32)] = []
    for _ in 0..<pairs {
        var fds: [Int32] = [0, 0]
        let r = csup_sys_pipe(&fds, 0)
        guard r.value == 0 else { throw UMSError.systemCallFailed(call: "pipe2", errno: r.err) }
        pipes.append((fds[0], fds[1]))
    }
    defer { for p in pipes { close(p.r); close(p.w) } }

    let rounds = o.rounds
    for i in 0..<o.workers {
        let pipe = pipes[i / 2]
        let isWriter = i % 2 == 0
        _ = try UMSThread(completionList: list, name: "worker-\(i)") {
            var acc: UInt64 = UInt64(i)
            for round in 0..<rounds {
                for k in 0..<200_000 { acc = acc &* 6364136223846793005 &+ UInt64(k) }   // compute
                try! UMSThread.yield(round)                                             // yield
                _ = UMS.blockingCall { csup_sys_nanosleep(1_000_000) }                  // sleep 1 ms
                var msg = [UInt8](repeating: UInt8(truncatingIfNeeded: round), count: 64)
                if isWriter {
                    let w = UMS.blockingCall { csup_sys_write(pipe.w, &msg, 64) }
                    precondition(w.value == 64, "pipe write failed: errno \(w.err)")
                } else {
                    var got = 0
                    while got < 64 {  // blocks until the partner writes
                        let r = msg.withUnsafeMutableBytes { b in
                            UMS.blockingCall { csup_sys_read(pipe.r, b.baseAddress! + got, 64 - got) }
                        }
                        precondition(r.value > 0, "pipe read failed: errno \(r.err)")
                        got += Int(r.value)
                    }
                    precondition(msg.allSatisfy { $0 == UInt8(truncatingIfNeeded: round) })
                    tally.bytesPiped.wrappingAdd(got, ordering: .relaxed)
                }
            }
            withExtendedLifetime(acc) {}
        }
    }

    let cpus = Int(csup_affinity_count())
    let workers = o.workers
    let start = Date()
    let group = DispatchGroup()
    for index in 0..<cpus {
        group.enter()
        let thread = Thread {
            defer { group.leave() }
            let cpu = Int(csup_affinity_cpu_at(Int32(index)))
            do {
                try UMS.enterSchedulingMode(cpu: cpu) { p in
                    while tally.terminated.load(ordering: .relaxed) < workers {
                        // 1. Completion list first, into the ready queue.
                        let n = list.drain(timeout: .zero) { ready.append($0) }
                        tally.completions.wrappingAdd(n, ordering: .relaxed)
                        // 2. Run the oldest ready thread, or wait for one.
                        guard let t = ready.popFirst() else {
                            let n = list.drain(timeout: .milliseconds(5)) { ready.append($0) }
                            tally.completions.wrappingAdd(n, ordering: .relaxed)
                            continue
                        }
                        tally.executions.wrappingAdd(1, ordering: .relaxed)
                        switch try p.execute(t) {
                        case .yielded: tally.yields.wrappingAdd(1, ordering: .relaxed); ready.append(t)
                        case .blocked: tally.blocks.wrappingAdd(1, ordering: .relaxed)
                        case .terminated: tally.terminated.wrappingAdd(1, ordering: .relaxed)
                        }
                    }
                    list.wakeAllWaiters()
                }
            } catch {
                FileHandle.standardError.write("ums-sample: primary on CPU \(cpu) failed: \(error)\n".data(using: .utf8)!)
                exit(1)
            }
        }
        thread.start()
    }
    group.wait()
    let elapsed = Date().timeIntervalSince(start)
    try list.delete()
    let s = UMS.statistics
    print("ums-sample: \(workers) workers x \(rounds) rounds on \(cpus) primaries (pinned), one shared completion list")
    print("  executions   \(tally.executions.load(ordering: .relaxed))")
    print("  yields       \(tally.yields.load(ordering: .relaxed))")
    print("  blocks       \(tally.blocks.load(ordering: .relaxed))   (system calls run on kernel threads)")
    print("  completions  \(tally.completions.load(ordering: .relaxed))   (threads taken from the completion list, incl. \(workers) initial)")
    print("  terminated   \(tally.terminated.load(ordering: .relaxed))")
    print("  piped bytes  \(tally.bytesPiped.load(ordering: .relaxed))")
    print("  kernel threads created \(s.kernelThreadsCreated) for \(s.blockingCalls) blocking calls")
    print(String(format: "  elapsed      %.1f ms", elapsed * 1000))
}
