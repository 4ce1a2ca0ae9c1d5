import TestSupport
import Foundation
import Synchronization
import XCTest
@testable import ConcRT
import CSupport
import UMS

// Scheduler stress: a million tasks each run exactly once, cooperative
// block/unblock with no lost wake-up (ping-pong pairs, a token ring, random
// wakers), and shutdown with work queued and contexts in the kernel.
// Everything runs on 2 VPs (this machine's CPUs) and on 4 (oversubscribed).
// Every wait is bounded, so a bug fails a test instead of hanging it.

/// Failures seen off the test thread (contexts, pthreads); asserted on it.
private final class StressFailures: Sendable {
    private let list = MigrationSafeMutex<[String]>([])
    func record(_ s: String) { list.withLock { if $0.count < 20 { $0.append(s) } } }
    var all: [String] { list.withLock { $0 } }
}

/// Spins a little (no syscall), to vary interleavings.
@inline(never)
private func stressSpin(_ n: Int) {
    for _ in 0..<n { csup_cpu_relax() }
}

/// A binary tree of tasks over `counts[lo..<hi]`: each task marks its `lo`
/// and spawns (from inside the scheduler) tasks for the two halves of the
/// rest.
private final class TaskTree: Sendable {
    let scheduler: Scheduler
    let counts: Box<UnsafeMutableBufferPointer<UInt8>>
    init(_ s: Scheduler, _ c: Box<UnsafeMutableBufferPointer<UInt8>>) { scheduler = s; counts = c }

    func run(_ lo: Int, _ hi: Int) {
        counts.value[lo] &+= 1
        let rest = lo + 1
        if rest >= hi { return }
        let mid = (rest + hi) / 2
        if rest < mid { scheduler.scheduleTask { self.run(rest, mid) } }
        if mid < hi { scheduler.scheduleTask { self.run(mid, hi) } }
    }
}

private final class SyncedFlag: Sendable {
    private let v = Atomic<Bool>(false)
    func set() { v.store(true, ordering: .releasing) }
    var isSet: Bool { v.load(ordering: .acquiring) }
}

private final class PingPongPair: @unchecked Sendable {
    // Written by A before its first unblock of B; read by B after its first
    // block returned (the unblock's acquire-release CAS orders them).
    var a: Context?
}

final class StressTests: XCTestCase {
    // MARK: A million tasks

    func testMillionTasksRunExactlyOnceOn2VPs() throws { try millionTasks(vps: 2) }
    func testMillionTasksRunExactlyOnceOn4VPs() throws { try millionTasks(vps: 4) }

    private func millionTasks(vps: Int) throws {
        let n = longMode ? 4_000_000 : 1_000_000
        let s = try makeScheduler(vps)
        let counts = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: n)
        counts.initialize(repeating: 0)
        defer { counts.deallocate() }
        let cb = Box(counts)
        let start = monotonicNow()
        // Some straight from outside (the injection queue), from 4 pthreads
        // at once...
        let outside = 20_000
        DispatchQueue.concurrentPerform(iterations: 4) { t in
            for i in stride(from: t, to: outside, by: 4) { s.scheduleTask { cb.value[i] &+= 1 } }
        }
        // ...most spawned from inside, as trees rooted in tasks from outside.
        let tree = TaskTree(s, cb)
        let roots = 64
        let per = (n - outside) / roots
        for r in 0..<roots {
            let lo = outside + r * per
            let hi = r == roots - 1 ? n : lo + per
            s.scheduleTask { tree.run(lo, hi) }
        }
        try s.shutdown(timeout: .seconds(longMode ? 600 : 120))
        let seconds = Double(monotonicNow() - start) / 1e9
        var bad = 0
        var firstBad = -1
        for i in 0..<n where counts[i] != 1 {
            if firstBad < 0 { firstBad = i }
            bad += 1
        }
        XCTAssertEqual(bad, 0, "\(bad) of \(n) tasks did not run exactly once; first: #\(firstBad) ran \(firstBad >= 0 ? Int(counts[firstBad]) : 0) times")
        let st = s.statistics
        XCTAssertEqual(st.tasksRun, n, "\(st)")
        XCTAssertEqual(st.liveContexts, 0)
        XCTAssertTrue(s.isShutDown)
        print("StressTests: \(n) tasks on \(vps) VPs in \(String(format: "%.2f", seconds)) s; \(st)")
    }

    // MARK: Block / unblock

    func testPingPongPairsBlockUnblockOn2VPs() throws { try pingPong(vps: 2) }
    func testPingPongPairsBlockUnblockOn4VPs() throws { try pingPong(vps: 4) }

    /// Pairs of contexts: A unblocks B then blocks; B blocks then unblocks
    /// A. Random spins and yields make the unblock land before, during and
    /// after the partner's block.
    private func pingPong(vps: Int) throws {
        let pairs = longMode ? 256 : 128
        let rounds = longMode ? 20_000 : Sanitizer.any ? 1_000 : 2_000
        let s = try makeScheduler(vps)
        let failures = StressFailures()
        let finished = Counter()
        let allDone = Event()
        let blocksBefore = s.statistics.blocks
        for p in 0..<pairs {
            let pair = PingPongPair()
            s.scheduleTask {
                // B
                let b = Context.current!
                s.scheduleTask {
                    // A
                    pair.a = Context.current!
                    var rng = TestRNG(seed: UInt64(p * 2 + 1))
                    do {
                        for _ in 0..<rounds {
                            switch rng.below(8) {
                            case 0: Context.yield()
                            case 1, 2: stressSpin(rng.below(2_000))
                            default: break
                            }
                            try b.unblock()
                            try Context.block()
                        }
                    } catch {
                        failures.record("pair \(p) A: \(error)")
                    }
                    if finished.add() == 2 * pairs { allDone.set() }
                }
                var rng = TestRNG(seed: UInt64(p * 2 + 2))
                do {
                    for _ in 0..<rounds {
                        try Context.block()
                        switch rng.below(8) {
                        case 0: Context.yield()
                        case 1, 2: stressSpin(rng.below(2_000))
                        default: break
                        }
                        guard let a = pair.a else { failures.record("pair \(p): A not published"); break }
                        try a.unblock()
                    }
                } catch {
                    failures.record("pair \(p) B: \(error)")
                }
                if finished.add() == 2 * pairs { allDone.set() }
            }
        }
        // A lost wake-up stops the switches; a loaded machine (a sanitizer
        // on a busy CI runner) only slows them.
        let (ok, why) = eventuallyWhileProgressing(progress: { s.statistics.contextSwitches }) { allDone.isSet }
        XCTAssertTrue(ok, "ping-pong: \(finished.value) of \(2 * pairs) contexts finished, \(why) (lost wake-up?); \(s.statistics)")
        XCTAssertEqual(failures.all, [])
        guard ok else { return }
        try s.shutdown(timeout: .seconds(30))
        // Not every block parks (an unblock that came first is consumed at
        // once), but with random spins many do.
        XCTAssertGreaterThan(s.statistics.blocks - blocksBefore, 0)
    }

    func testEventPairsWithKernelBlocksOn2VPs() throws { try eventPairs(vps: 2) }
    func testEventPairsWithKernelBlocksOn4VPs() throws { try eventPairs(vps: 4) }

    /// Pairs of contexts handing a turn back and forth through two events
    /// (the park / runnext / directed-switch path), with random yields,
    /// spins and real blocking calls (kernelSleep) on either side, so
    /// chains of directed switches end in kernel blocks, yields and parks
    /// on every VP. Each side must see exactly `rounds` turns, in order.
    /// A random pause: a yield, a real blocking call, a spin, or nothing.
    private static func jitter(_ rng: inout TestRNG) {
        switch rng.below(32) {
        case 0: Context.yield()
        case 1: kernelSleep(microseconds: rng.below(50))
        case 2, 3: stressSpin(rng.below(1_000))
        default: break
        }
    }

    private func eventPairs(vps: Int) throws {
        let pairs = longMode ? 256 : 64
        let rounds = longMode ? 10_000 : 1_000
        let s = try makeScheduler(vps)
        let failures = StressFailures()
        let finished = Counter()
        let allDone = Event()
        for p in 0..<pairs {
            let toA = Event(), toB = Event()
            let turn = Atomic<Int>(0)   // even: A's turn, odd: B's
            s.scheduleTask {
                var rng = TestRNG(seed: UInt64(2 * p + 1))
                for k in 0..<rounds {
                    if turn.load(ordering: .acquiring) != 2 * k { failures.record("pair \(p) A: turn \(turn.load(ordering: .relaxed)) at round \(k)") }
                    StressTests.jitter(&rng)
                    turn.store(2 * k + 1, ordering: .releasing)
                    toB.set()
                    toA.wait()
                    toA.reset()
                }
                if finished.add() == 2 * pairs { allDone.set() }
            }
            s.scheduleTask {
                var rng = TestRNG(seed: UInt64(2 * p + 2))
                for k in 0..<rounds {
                    toB.wait()
                    toB.reset()
                    if turn.load(ordering: .acquiring) != 2 * k + 1 { failures.record("pair \(p) B: turn \(turn.load(ordering: .relaxed)) at round \(k)") }
                    StressTests.jitter(&rng)
                    turn.store(2 * k + 2, ordering: .releasing)
                    toA.set()
                }
                if finished.add() == 2 * pairs { allDone.set() }
            }
        }
        let ok = allDone.wait(timeout: .seconds(longMode ? 300 : 60))
        XCTAssertTrue(ok, "event pairs: \(finished.value) of \(2 * pairs) contexts finished (lost wake-up?); \(s.statistics)")
        XCTAssertEqual(failures.all, [])
        guard ok else { return }
        try s.shutdown(timeout: .seconds(30))
        let st = s.statistics
        XCTAssertGreaterThan(st.kernelBlocks, 0, "\(st)")
        XCTAssertEqual(st.liveContexts, 0)
    }

    func testTokenRingOn2VPs() throws { try tokenRing(vps: 2) }
    func testTokenRingOn4VPs() throws { try tokenRing(vps: 4) }

    /// N contexts in a ring pass one token by Context.unblock; each checks
    /// the global pass count (a plain variable only the token holder
    /// touches) to prove mutual exclusion and order.
    private func tokenRing(vps: Int) throws {
        let n = 100
        let rounds = longMode ? 20_000 : 3_000
        let s = try makeScheduler(vps)
        let failures = StressFailures()
        let registry = MigrationSafeMutex<[Context?]>(Array(repeating: nil, count: n))
        let passes = Box(0)
        let finished = Counter()
        let allDone = Event()
        for k in 0..<n {
            s.scheduleTask {
                registry.withLock { $0[k] = Context.current }
                var next: Context?
                do {
                    for r in 0..<rounds {
                        try Context.block()
                        if passes.value != r * n + k {
                            failures.record("context \(k) round \(r): pass count \(passes.value), expected \(r * n + k)")
                        }
                        passes.value += 1
                        if k == n - 1 && r == rounds - 1 { break }   // the last pass
                        if next == nil { next = registry.withLock { $0[(k + 1) % n] } }
                        try next!.unblock()
                    }
                } catch {
                    failures.record("context \(k): \(error)")
                }
                if finished.add() == n { allDone.set() }
            }
        }
        XCTAssertTrue(eventually(timeout: 30) { registry.withLock { $0.allSatisfy { $0 != nil } } }, "ring contexts did not start")
        let first = registry.withLock { $0[0] }
        try XCTUnwrap(first).unblock()   // from a plain thread
        let ok = allDone.wait(timeout: .seconds(60))
        XCTAssertTrue(ok, "token ring: \(finished.value) of \(n) finished after \(passes.value) passes (lost wake-up?)")
        XCTAssertEqual(failures.all, [])
        guard ok else { return }
        XCTAssertEqual(passes.value, n * rounds)
        try s.shutdown(timeout: .seconds(30))
    }

    func testRandomWakersOn2VPs() throws { try randomWakers(vps: 2) }
    func testRandomWakersOn4VPs() throws { try randomWakers(vps: 4) }

    /// Sleepers arm a slot then block; wakers (contexts and a plain pthread)
    /// pick random slots and unblock the sleeper of each slot they disarm.
    /// Every block gets exactly one unblock, often before the block.
    private func randomWakers(vps: Int) throws {
        let sleepers = longMode ? 1_000 : 300
        let rounds = longMode ? 2_000 : 300
        let s = try makeScheduler(vps)
        let failures = StressFailures()
        let contexts = MigrationSafeMutex<[Context?]>(Array(repeating: nil, count: sleepers))
        let armed = UnsafeMutablePointer<UInt32>.allocate(capacity: sleepers)
        armed.initialize(repeating: 0, count: sleepers)
        defer { armed.deallocate() }
        let armedBox = Box(armed)
        let sleepersDone = Counter()
        let wakes = Counter()
        let deadline = monotonicNow() + 60_000_000_000
        let allSleepersDone = Event()
        for k in 0..<sleepers {
            s.scheduleTask {
                contexts.withLock { $0[k] = Context.current }
                do {
                    for _ in 0..<rounds {
                        csup_u32_store_release(armedBox.value + k, 1)
                        try Context.block()
                    }
                } catch {
                    failures.record("sleeper \(k): \(error)")
                }
                if sleepersDone.add() == sleepers { allSleepersDone.set() }
            }
        }
        XCTAssertTrue(eventually(timeout: 30) { contexts.withLock { $0.allSatisfy { $0 != nil } } })
        let all = contexts.withLock { $0.map { $0! } }
        let ctxBox = Box(all)
        @Sendable func waker(seed: UInt64, onContext: Bool) {
            var rng = TestRNG(seed: seed)
            while sleepersDone.value < sleepers {
                if monotonicNow() > deadline { failures.record("waker \(seed): deadline passed"); return }
                let k = rng.below(sleepers)
                var expected: UInt32 = 1
                if csup_u32_cas_acq_rel(armedBox.value + k, &expected, 0) {
                    do { try ctxBox.value[k].unblock(); wakes.add() } catch { failures.record("waker \(seed) -> \(k): \(error)") }
                }
                if rng.below(16) == 0 {
                    if onContext { Context.yield() } else { sched_yield() }
                }
            }
        }
        let wakersDone = Counter()
        let allWakersDone = Event()
        let contextWakers = 2
        for w in 0..<contextWakers {
            s.scheduleTask {
                waker(seed: UInt64(1_000 + w), onContext: true)
                if wakersDone.add() == contextWakers + 1 { allWakersDone.set() }
            }
        }
        let thread = Thread {
            waker(seed: 7, onContext: false)
            if wakersDone.add() == contextWakers + 1 { allWakersDone.set() }
        }
        thread.start()
        let ok = allSleepersDone.wait(timeout: .seconds(60))
        XCTAssertTrue(ok, "random wakers: \(sleepersDone.value) of \(sleepers) sleepers finished; \(wakes.value) wakes")
        XCTAssertTrue(allWakersDone.wait(timeout: .seconds(60)))
        XCTAssertEqual(failures.all, [])
        guard ok else { return }
        XCTAssertEqual(wakes.value, sleepers * rounds)
        try s.shutdown(timeout: .seconds(30))
        XCTAssertGreaterThan(s.statistics.blocks, 0, "no sleeper ever parked: \(s.statistics)")
    }

    /// A context unblocked by a context that keeps computing runs on an
    /// idle VP meanwhile (the idle VP must be woken for it).
    func testUnblockedContextRunsOnIdleVirtualProcessor() throws {
        let s = try makeScheduler(2)
        let target = MigrationSafeMutex<Context?>(nil)
        let resumed = SyncedFlag()
        let targetDone = Event()
        s.scheduleTask {
            target.withLock { $0 = Context.current }
            try! Context.block()
            resumed.set()
            targetDone.set()
        }
        XCTAssertTrue(eventually { target.withLock { $0 }?.blockState.load(ordering: .acquiring) == Context.BlockState.blocked })
        usleep(100_000)   // both VPs go idle and sleep
        let sawIt = MigrationSafeMutex<Bool>(false)
        let wakerDone = Event()
        s.scheduleTask {
            try! target.withLock { $0 }!.unblock()
            let deadline = monotonicNow() + 2_000_000_000
            while !resumed.isSet && monotonicNow() < deadline { csup_cpu_relax() }
            sawIt.withLock { $0 = resumed.isSet }
            wakerDone.set()
        }
        XCTAssertTrue(wakerDone.wait(timeout: .seconds(30)))
        XCTAssertTrue(targetDone.wait(timeout: .seconds(30)))
        XCTAssertTrue(sawIt.withLock { $0 }, "the unblocked context waited for its busy waker instead of running on the idle VP")
        try s.shutdown(timeout: .seconds(10))
    }

    // MARK: Shutdown

    /// shutdown() waits for a Scheduler.run still in flight on another
    /// thread (its body blocked in the kernel), and that run returns.
    func testShutdownWaitsForRunInFlight() throws {
        let s = try makeScheduler(2)
        let started = Event()
        let result = MigrationSafeMutex<Int?>(nil)
        let runnerDone = Event()
        let runner = Thread {
            let v = s.run { () -> Int in
                started.set()
                try! Blocking.sleep(for: .milliseconds(300))
                return 42
            }
            result.withLock { $0 = v }
            runnerDone.set()
        }
        runner.start()
        XCTAssertTrue(started.wait(timeout: .seconds(10)))
        let t0 = monotonicNow()
        XCTAssertNoThrow(try s.shutdown(timeout: .seconds(10)))
        let waitedMs = Double(monotonicNow() - t0) / 1e6
        XCTAssertTrue(runnerDone.wait(timeout: .seconds(10)), "Scheduler.run never returned after shutdown (waited \(waitedMs) ms)")
        XCTAssertEqual(result.withLock { $0 }, 42)
        XCTAssertGreaterThanOrEqual(waitedMs, 200, "shutdown returned while a run was in flight")
    }


    func testShutdownWithQueuedWorkAndKernelBlockedContextsOn2VPs() throws { try shutdownLosesNothing(vps: 2) }
    func testShutdownWithQueuedWorkAndKernelBlockedContextsOn4VPs() throws { try shutdownLosesNothing(vps: 4) }

    /// shutdown() called while contexts sleep in the kernel (and will spawn
    /// more work when they wake), while contexts wait on an event set later
    /// by a plain thread, and with a full injection queue: every task runs.
    private func shutdownLosesNothing(vps: Int) throws {
        let s = try makeScheduler(vps)
        let ran = Counter()
        let inKernel = Counter()
        let sleepers = 64, childrenPerSleeper = 20
        let gateWaiters = 200
        let queued = longMode ? 500_000 : 100_000
        for i in 0..<sleepers {
            s.scheduleTask {
                inKernel.add()
                kernelSleep(microseconds: (150 + (i % 8) * 25) * 1_000)
                for c in 0..<childrenPerSleeper {
                    s.scheduleTask {
                        if c % 5 == 0 { kernelSleep(microseconds: 1_000) }
                        ran.add()
                    }
                }
                ran.add()
            }
        }
        let gate = Event()
        for _ in 0..<gateWaiters {
            s.scheduleTask {
                if gate.wait(timeout: .seconds(60)) { ran.add() }
            }
        }
        XCTAssertTrue(eventually(timeout: 30) { inKernel.value == sleepers }, "sleepers did not start")
        for _ in 0..<queued { s.scheduleTask { ran.add() } }
        let setter = Thread {
            usleep(100_000)
            gate.set()
        }
        setter.start()
        let start = monotonicNow()
        try s.shutdown(timeout: .seconds(60))
        let waited = Double(monotonicNow() - start) / 1e6
        XCTAssertTrue(s.isShutDown)
        XCTAssertEqual(ran.value, sleepers * (1 + childrenPerSleeper) + gateWaiters + queued)
        XCTAssertEqual(s.statistics.liveContexts, 0)
        XCTAssertGreaterThanOrEqual(s.statistics.kernelBlocks, sleepers)
        // The gate opens 100 ms after shutdown began and sleepers sleep
        // 150+ ms: shutdown must have waited for them.
        XCTAssertGreaterThanOrEqual(waited, 90, "shutdown returned after \(waited) ms")
    }
}

/// A real blocking system call: nanosleep(2) handed to a kernel thread (the
/// context is in the kernel, unlike Blocking.sleep, which parks on timers).
func kernelSleep(microseconds: Int) {
    _ = UMS.blockingCall(handOff: true) { usleep(UInt32(microseconds)) }
}
