import ConcRT
import CSupport
import Foundation
import Synchronization
import TestSupport
import UMS
import XCTest
@testable import ConcRT

#if canImport(Glibc)
import Glibc
#endif

/// Unwrapped-block compensation under stress (`detectUnwrappedBlocking`;
/// `Sources/UMS/LazyKernelEntry/Compensation.swift`): random mixes of
/// unwrapped blocking (plain `read(2)` on pipes, `usleep`), wrapped calls,
/// failing calls and plain compute, on 2 and 4 VPs. Every task runs
/// exactly once, every errno is right, no context changes pthread across
/// an unwrapped call, compensations happen and all retire, and pthreads,
/// descriptors and stacks return to their baseline.
final class CompensationTests: XCTestCase {
    func testUnwrappedMixOn2VPs() throws { try unwrappedMix(vps: 2) }
    func testUnwrappedMixOn4VPs() throws { try unwrappedMix(vps: 4) }

    private func unwrappedMix(vps: Int) throws {
        let baseline = try ResourceCounts.now()
        let compensationsBefore = UMS.statistics.unwrappedCompensations
        do {
            let s = try Scheduler(policy: SchedulerPolicy(minConcurrency: vps, maxConcurrency: vps, detectUnwrappedBlocking: true,
                                                          useIORing: false))
            let pairs = longMode ? 2_000 : Sanitizer.scaled(200, underTSan: 60)
            let t = PipePairs(pairs)
            // A wall first: every VP blocks in an unwrapped read, and the
            // task that releases them sleeps on a timer meanwhile. No VP is
            // left to fire that timer: only a compensation's temporary VP
            // can, so without compensation this never finishes.
            var wall: [(Int32, Int32)] = []
            for _ in 0..<vps {
                var fds: [Int32] = [0, 0]
                XCTAssertEqual(pipe(&fds), 0)
                wall.append((fds[0], fds[1]))
            }
            let wallStarted = Counter(), wallDone = Counter(), wallReleased = Event()
            let wallPipes = wall
            for k in 0..<vps {
                s.scheduleTask {
                    wallStarted.add()
                    var b: UInt8 = 0
                    if Glibc.read(wallPipes[k].0, &b, 1) != 1 { t.fail("wall reader \(k): errno \(errno)") }
                    if wallDone.add() == vps { wallReleased.set() }
                }
            }
            s.scheduleTask {
                do {
                    while wallStarted.value < vps { try Blocking.sleep(for: .milliseconds(1)) }
                    try Blocking.sleep(for: .milliseconds(20))
                } catch {
                    t.fail("wall releaser: \(error)")
                }
                for (_, w) in wallPipes { var b: UInt8 = 1; _ = Glibc.write(w, &b, 1) }
            }
            XCTAssertTrue(wallReleased.wait(timeout: .seconds(30)),
                          "every VP blocked in an unwrapped read and nothing ran the releaser's timer: \(s.statistics)")
            XCTAssertGreaterThan(s.statistics.compensations, 0, "the wall was not compensated for: \(s.statistics)")
            for (r, w) in wall { close(r); close(w) }

            var rng = TestRNG(seed: UInt64(vps) &* 7_919)
            for i in 0..<pairs {
                let (r, w) = t.pipes[i]
                let writerKind = rng.below(4), readerUnwrapped = rng.below(4) != 0
                let delayUs = UInt32(200 + rng.below(1_500))
                // Writer first: it only sleeps or computes before writing, so
                // it never waits for its reader (no deadlock by design; a
                // blocked reader's VP is freed by compensation alone).
                s.scheduleTask {
                    t.started(2 * i + 1)
                    switch writerKind {
                    case 0: usleep(delayUs)                                          // unwrapped sleep
                    case 1: Blocking.call { _ = usleep(delayUs) }                     // wrapped
                    case 2:                                                          // a failing call
                        errno = 0
                        if Glibc.read(-1, nil, 0) != -1 || errno != EBADF {
                            t.fail("writer \(i): read(-1) errno \(errno), not EBADF")
                        }
                        usleep(delayUs)
                    default:                                                         // compute
                        var x: UInt64 = 1
                        for k in 0..<(Int(delayUs) * 50) { x = x &* 6_364_136_223_846_793_005 &+ UInt64(k) }
                        if x == 0 { t.fail("unlikely") }
                    }
                    var b = UInt8(truncatingIfNeeded: i)
                    if Glibc.write(w, &b, 1) != 1 { t.fail("writer \(i): write errno \(errno)") }
                    t.finished()
                }
                s.scheduleTask {
                    t.started(2 * i)
                    let me = pthread_self()
                    var b: UInt8 = 0
                    if readerUnwrapped {
                        let n = Glibc.read(r, &b, 1)   // unwrapped: sleeps until the writer writes
                        if n != 1 || b != UInt8(truncatingIfNeeded: i) {
                            t.fail("reader \(i): read \(n), \(b), errno \(errno)")
                        }
                        if pthread_equal(me, pthread_self()) == 0 {
                            t.fail("reader \(i): changed pthread across an unwrapped read")
                        }
                    } else {
                        do {
                            let n = try withUnsafeMutableBytes(of: &b) { try Blocking.read(r, into: $0) }
                            if n != 1 || b != UInt8(truncatingIfNeeded: i) { t.fail("reader \(i): \(n), \(b)") }
                        } catch {
                            t.fail("reader \(i): \(error)")
                        }
                    }
                    t.finished()
                }
            }
            t.check(s)
            XCTAssertGreaterThan(UMS.statistics.unwrappedCompensations, compensationsBefore)
            // Every compensation ends: the temporary VPs retire (bounded wait).
            let deadline = monotonicNow() + 10_000_000_000
            while s.temporarySlotsInUse > 0 && monotonicNow() < deadline { usleep(1_000) }
            XCTAssertEqual(s.temporarySlotsInUse, 0, "temporary VPs still running: \(s.statistics)")
            print("CompensationTests (\(vps) VPs, \(pairs) pairs): \(s.statistics.compensations) compensations, "
                  + "\(s.statistics.compensationFailures) failed; ended by the thread: \(UMS.statistics.compensationsEndedByThread)")
            try s.shutdown(timeout: .seconds(30))
            t.close()
        }
        let (ok, last) = try ResourceCounts.settle(within: baseline)
        XCTAssertTrue(ok, "resources did not return to baseline \(baseline): \(last)")
    }

    /// A compensation that outlives its scheduler's shutdown is ended as the
    /// VP's primary leaves: shutdown completes and leaves nothing behind.
    func testShutdownWhileCompensating() throws {
        let baseline = try ResourceCounts.now()
        do {
            let s = try Scheduler(policy: SchedulerPolicy(minConcurrency: 1, maxConcurrency: 1, detectUnwrappedBlocking: true,
                                                          useIORing: false))
            var fds: [Int32] = [0, 0]
            XCTAssertEqual(pipe(&fds), 0)
            let r = fds[0], w = fds[1]
            let started = Event()
            s.scheduleTask {
                s.scheduleTask {}   // other work waits: worth compensating
                started.set()
                var b: UInt8 = 0
                _ = Glibc.read(r, &b, 1)   // unwrapped, until the test writes
            }
            XCTAssertTrue(started.wait(timeout: .seconds(10)))
            let deadline = monotonicNow() + 10_000_000_000
            while s.statistics.compensations == 0 && monotonicNow() < deadline { usleep(1_000) }
            XCTAssertGreaterThan(s.statistics.compensations, 0, "\(s.statistics)")
            // Release the read shortly after shutdown begins waiting for it.
            let writer = Thread { usleep(50_000); var b: UInt8 = 1; _ = Glibc.write(w, &b, 1) }
            writer.start()
            try s.shutdown(timeout: .seconds(30))
            XCTAssertEqual(s.temporarySlotsInUse, 0)
            close(r); close(w)
        }
        let (ok, last) = try ResourceCounts.settle(within: baseline)
        XCTAssertTrue(ok, "resources did not return to baseline \(baseline): \(last)")
    }
    /// The work a blocked thread's VP would have stolen sits in another,
    /// busy VP's deque (async children and `parallelFor` bodies are pushed
    /// on the spawner's VP). That is worth a compensation too: before, only
    /// the blocked VP's own queues and the scheduler's injection queue
    /// counted, and here nothing would ever run the writer.
    ///
    /// VP A: task B reads a pipe (unwrapped). VP B: task P, once B is in
    /// its read, pushes the writer onto its own deque and computes until
    /// the byte is read (at most 10 s), never entering the runtime.
    func testBlockedThreadIsCompensatedForWorkInAnotherVPsDeque() throws {
        let baseline = try ResourceCounts.now()
        do {
            let s = try Scheduler(policy: SchedulerPolicy(minConcurrency: 2, maxConcurrency: 2, detectUnwrappedBlocking: true,
                                                          useIORing: false))
            for round in 0..<(longMode ? 20 : 3) {
                var fds: [Int32] = [0, 0]
                XCTAssertEqual(pipe(&fds), 0)
                let r = fds[0], w = fds[1]
                let reading = Atomic<Bool>(false), read = Atomic<Bool>(false), readWhileSpawnerComputed = Atomic<Bool>(false)
                let readerVP = Atomic<Int>(-1), spawnerVP = Atomic<Int>(-2)
                let done = Counter(), finished = Event()
                s.scheduleTask {
                    readerVP.store(Context.current!.virtualProcessorID, ordering: .relaxed)
                    reading.store(true, ordering: .releasing)
                    var b: UInt8 = 0
                    let n = Glibc.read(r, &b, 1)   // unwrapped
                    read.store(n == 1, ordering: .releasing)
                    if done.add() == 2 { finished.set() }
                }
                s.scheduleTask {
                    // Computes on the other VP (the reader holds its own)
                    // until the reader is in its read.
                    let give = monotonicNow() + 10_000_000_000
                    while !reading.load(ordering: .acquiring) && monotonicNow() < give {}
                    spawnerVP.store(Context.current!.virtualProcessorID, ordering: .relaxed)
                    // Computes 2 ms more: the reader is asleep in read(2) by then.
                    let settle = monotonicNow() + 2_000_000
                    while monotonicNow() < settle {}
                    s.scheduleTask {   // onto this VP's deque
                        var b: UInt8 = 1
                        _ = Glibc.write(w, &b, 1)
                    }
                    while !read.load(ordering: .acquiring) && monotonicNow() < give {}
                    readWhileSpawnerComputed.store(read.load(ordering: .acquiring), ordering: .relaxed)
                    if done.add() == 2 { finished.set() }
                }
                XCTAssertTrue(finished.wait(timeout: .seconds(30)), "round \(round): the tasks did not finish")
                XCTAssertTrue(read.load(ordering: .acquiring), "round \(round): the reader read nothing")
                XCTAssertTrue(readWhileSpawnerComputed.load(ordering: .relaxed),
                              "round \(round): the writer queued on the busy VP never ran while the reader's VP was blocked: \(s.statistics)")
                XCTAssertNotEqual(readerVP.load(ordering: .relaxed), spawnerVP.load(ordering: .relaxed))
                close(r); close(w)
            }
            XCTAssertGreaterThan(s.statistics.compensations, 0, "\(s.statistics)")
            try s.shutdown(timeout: .seconds(30))
        }
        let (ok, last) = try ResourceCounts.settle(within: baseline)
        XCTAssertTrue(ok, "resources did not return to baseline \(baseline): \(last)")
    }
}
