import TestSupport
import Foundation
import Synchronization
import XCTest
@testable import ConcRT
import CSupport
import UMS

// Per-VP timer queues (Timers/TimerQueues.swift): a context arms on its
// VP's queue, an outside thread round robin; any thread cancels by id; an
// idle VP fires the due timers of a VP stuck in a long task; sleepers on
// several VPs fire within their windows. Slack for a loaded machine:
// timerSlack (RandomSleepers.swift).

/// Lateness allowed while a VP is stuck: well under what a stuck queue
/// would show (the spin outlasts the deadlines by 620 ms or more).
private let stuckSlack: Int64 = 300_000_000

final class PerVPTimerTests: XCTestCase {
    /// A task arms three timers (20, 40, 60 ms) on its VP's queue, then
    /// spins for 800 ms without switching. The other VP is idle: it must
    /// fire them near their deadlines, long before the spin ends.
    func testTimersOfAStuckVirtualProcessorFireOnAnIdleOne() throws {
        let s = try makeScheduler(2)
        let fires = MigrationSafeMutex<[(at: Int64, deadline: Int64, vp: Int)]>([])
        let armed = MigrationSafeMutex<(vp: Int, queues: [Int], spinEnd: Int64)>((-1, [], 0))
        let done = Event()
        s.scheduleTask {
            let me = Context.current!.vp.index
            let t0 = csup_monotonic_ns()
            var queues: [Int] = []
            for k in 1...3 {
                let deadline = t0 + Int64(k) * 20_000_000
                let id = s.armTimeout(deadline) { vp in
                    let now = csup_monotonic_ns()
                    fires.withLock { $0.append((now, deadline, vp.index)) }
                }
                queues.append(TimerQueue.queueIndex(of: id))
            }
            var x: UInt64 = 1
            while csup_monotonic_ns() - t0 < 800_000_000 { x = x &* 6364136223846793005 &+ 1442695040888963407 }
            let end = csup_monotonic_ns()
            armed.withLock { $0 = (me, queues, x == 0 ? 0 : end) }
            done.set()
        }
        XCTAssertTrue(done.wait(timeout: .seconds(20)))
        try s.shutdown(timeout: .seconds(10))
        let a = armed.withLock { $0 }
        let f = fires.withLock { $0 }
        XCTAssertEqual(a.queues, [a.vp, a.vp, a.vp], "a context arms on the queue of its VP")
        XCTAssertEqual(f.count, 3, "every timer fired: \(f)")
        for e in f {
            XCTAssertGreaterThanOrEqual(e.at, e.deadline, "fired before its deadline")
            XCTAssertLessThan(e.at - e.deadline, stuckSlack, "fired \(e.at - e.deadline) ns late while its VP was busy")
            XCTAssertLessThan(e.at, a.spinEnd, "fired only after the stuck task ended")
            XCTAssertNotEqual(e.vp, a.vp, "fired by the stuck VP itself?")
        }
    }

    /// As above, but the other VP is busy too (a context yielding in a
    /// loop, so it never reaches the idle path): its every-16th-pass scan
    /// of the other queues must fire the stuck VP's timers.
    func testTimersOfAStuckVirtualProcessorFireOnABusyOne() throws {
        let s = try makeScheduler(2)
        let fires = MigrationSafeMutex<[(at: Int64, deadline: Int64, vp: Int)]>([])
        let stuckVP = Atomic<Int>(-1), spinEnd = Atomic<Int64>(0)
        let stop = Atomic<Bool>(false)
        let done = Counter(), allDone = Event()
        let yielderVP = Atomic<Int>(-1)
        s.scheduleTask {
            let t0 = csup_monotonic_ns()
            for k in 1...3 {
                let deadline = t0 + 100_000_000 + Int64(k) * 20_000_000
                _ = s.armTimeout(deadline) { vp in
                    let now = csup_monotonic_ns()
                    fires.withLock { $0.append((now, deadline, vp.index)) }
                }
            }
            stuckVP.store(Context.current!.vp.index, ordering: .releasing)
            var x: UInt64 = 1
            while csup_monotonic_ns() - t0 < 800_000_000 { x = x &* 6364136223846793005 &+ 1442695040888963407 }
            spinEnd.store(x == 0 ? 0 : csup_monotonic_ns(), ordering: .releasing)
            stop.store(true, ordering: .releasing)
            if done.add() == 2 { allDone.set() }
        }
        XCTAssertTrue(eventually { stuckVP.load(ordering: .acquiring) >= 0 })
        s.scheduleTask {
            yielderVP.store(Context.current!.vp.index, ordering: .releasing)
            while !stop.load(ordering: .acquiring) { Context.yield() }
            if done.add() == 2 { allDone.set() }
        }
        XCTAssertTrue(allDone.wait(timeout: .seconds(20)))
        try s.shutdown(timeout: .seconds(10))
        let stuck = stuckVP.load(ordering: .acquiring), end = spinEnd.load(ordering: .acquiring)
        XCTAssertNotEqual(yielderVP.load(ordering: .acquiring), stuck, "the yielder ran on the stuck VP")
        let f = fires.withLock { $0 }
        XCTAssertEqual(f.count, 3, "every timer fired: \(f)")
        for e in f {
            XCTAssertGreaterThanOrEqual(e.at, e.deadline, "fired before its deadline")
            XCTAssertLessThan(e.at - e.deadline, stuckSlack, "fired \(e.at - e.deadline) ns late while its VP was stuck")
            XCTAssertLessThan(e.at, end, "fired only after the stuck task ended")
            XCTAssertNotEqual(e.vp, stuck, "fired by the stuck VP itself?")
        }
    }

    /// Entries armed by a context on its VP are cancelled from plain
    /// pthreads: none fires, the queue is empty at once; an entry left
    /// armed does fire (the harness sees firings).
    func testCancelFromAPlainPthreadOfEntriesArmedOnAVirtualProcessor() throws {
        let s = try makeScheduler(2)
        let n = longMode ? 10_000 : 500
        let fired = Atomic<Int>(0)
        let ids = MigrationSafeMutex<(vp: Int, ids: [Int], keep: Int)>((-1, [], 0))
        let armed = Event()
        s.scheduleTask {
            let deadline = csup_monotonic_ns() + 150_000_000
            var out: [Int] = []
            for _ in 0..<n { out.append(s.armTimeout(deadline) { _ in fired.add(1, ordering: .relaxed) }) }
            let keep = s.armTimeout(deadline) { _ in fired.add(1000_000, ordering: .relaxed) }
            ids.withLock { $0 = (Context.current!.vp.index, out, keep) }
            armed.set()
        }
        XCTAssertTrue(armed.wait(timeout: .seconds(10)))
        let (vp, all, keep) = ids.withLock { $0 }
        XCTAssertTrue(all.allSatisfy { TimerQueue.queueIndex(of: $0) == vp }, "armed on another VP's queue")
        XCTAssertEqual(s.timers.queues[vp].count, n + 1)
        // Two plain pthreads cancel half each, concurrently.
        let half = all.count / 2
        let other = Thread { for id in all[half...] { s.timers.cancel(id) } }
        other.start()
        for id in all[..<half] { s.timers.cancel(id) }
        XCTAssertTrue(eventually { s.timers.count == 1 }, "cancelled entries left in the queue: \(s.timers.count)")
        // A second cancel of the same ids (stale) changes nothing.
        for id in all { s.timers.cancel(id) }
        XCTAssertEqual(s.timers.count, 1)
        XCTAssertTrue(eventually { fired.load(ordering: .relaxed) >= 1_000_000 }, "the kept entry never fired")
        usleep(50_000)
        XCTAssertEqual(fired.load(ordering: .relaxed), 1_000_000, "cancelled entries fired")
        XCTAssertEqual(s.timers.count, 0)
        _ = keep
        try s.shutdown(timeout: .seconds(10))
    }

    /// Timed event waits on contexts, set from a plain pthread: each waiter
    /// wakes signaled and cancels its timer (wherever it then runs).
    func testEventSetFromAPlainPthreadCancelsTheWaitersTimers() throws {
        let s = try makeScheduler(2)
        let n = 16
        let e = Event()
        let ok = Counter(), done = Event()
        for _ in 0..<n {
            s.scheduleTask {
                if e.wait(timeout: .seconds(30)) { if ok.add() == n { done.set() } }
            }
        }
        XCTAssertTrue(eventually { s.timers.count == n }, "waiters armed \(s.timers.count) timers")
        e.set()
        XCTAssertTrue(done.wait(timeout: .seconds(10)))
        XCTAssertTrue(eventually { s.timers.count == 0 }, "timers left after the waits ended: \(s.timers.count)")
        try s.shutdown(timeout: .seconds(10))
    }

    /// Queue-level: ids name their queue (up to the last index), a stale
    /// id does not cancel the next entry of its slot, and the published
    /// times follow adds, cancels and firings.
    func testQueueIdsStaleCancelsAndPublishedTimes() {
        let last = TimerQueue(index: TimerQueue.maxQueues - 1)
        let (hi, first) = last.add(deadline: 100, fire: { _ in })
        XCTAssertTrue(first)
        XCTAssertEqual(TimerQueue.queueIndex(of: hi), TimerQueue.maxQueues - 1)
        let q = TimerQueue(index: 3)
        let (a, ea) = q.add(deadline: 1_000, tolerance: 500, fire: { _ in })
        let (b, eb) = q.add(deadline: 2_000, tolerance: 0, fire: { _ in })
        XCTAssertTrue(ea); XCTAssertFalse(eb)
        XCTAssertEqual(TimerQueue.queueIndex(of: a), 3)
        XCTAssertEqual(q.nextWakeUp, 1_500); XCTAssertEqual(q.earliestDeadline, 1_000)
        var out: [(VirtualProcessor) -> Void] = []
        XCTAssertEqual(q.takeDue(999, into: &out), 0, "fired before its deadline")
        XCTAssertEqual(q.takeDue(1_000, into: &out), 1)
        XCTAssertEqual(q.nextWakeUp, 2_000); XCTAssertEqual(q.earliestDeadline, 2_000)
        // a's slot is reused by c: cancelling the stale a leaves c armed.
        let (c, _) = q.add(deadline: 3_000, fire: { _ in })
        q.cancel(a)
        XCTAssertEqual(q.count, 2)
        q.cancel(b)
        XCTAssertEqual(q.count, 1)
        XCTAssertEqual(q.nextWakeUp, 3_000); XCTAssertEqual(q.earliestDeadline, 3_000)
        q.cancel(c)
        XCTAssertEqual(q.count, 0)
        XCTAssertEqual(q.nextWakeUp, Int64.max); XCTAssertEqual(q.earliestDeadline, Int64.max)
        // A deadline near the end of time saturates instead of wrapping.
        let (_, e) = q.add(deadline: Int64.max - 10, tolerance: 100, fire: { _ in })
        XCTAssertTrue(e)
        XCTAssertEqual(q.nextWakeUp, Int64.max - 1)
        XCTAssertEqual(q.takeDue(1 << 62, into: &out), 0)
    }

    /// Bounded stress: contexts on 3 VPs do short timed waits on events
    /// that plain pthreads set at random; timers are armed on one VP's
    /// queue and cancelled from wherever the waiter wakes, while idle VPs
    /// fire other queues. Every wait ends signaled or after its timeout,
    /// and no entry is left armed.
    func testTimedWaitsRacingSetsFromPlainPthreads() throws {
        let s = try makeScheduler(3)
        let contexts = longMode ? 2_000 : 200, rounds = longMode ? 100 : 20
        let events = (0..<16).map { _ in Event() }
        let problems = MigrationSafeMutex<[String]>([])
        let signaled = Atomic<Int>(0), timedOut = Atomic<Int>(0)
        let done = Counter(), allDone = Event()
        let stop = Atomic<Bool>(false), settersLeft = Atomic<Int>(2)
        for i in 0..<contexts {
            s.scheduleTask {
                var rng = TestRNG(seed: UInt64(i + 101))
                for _ in 0..<rounds {
                    let e = events[rng.below(events.count)]
                    let t = Int64(200_000 + rng.below(2_000_000))
                    let t0 = csup_monotonic_ns()
                    if e.wait(timeout: .nanoseconds(t), tolerance: .nanoseconds(Int64(rng.below(500_000)))) {
                        signaled.add(1, ordering: .relaxed)
                    } else {
                        timedOut.add(1, ordering: .relaxed)
                        let w = csup_monotonic_ns() - t0
                        if w < t { problems.withLock { if $0.count < 10 { $0.append("timed out after \(w) ns of \(t)") } } }
                    }
                }
                if done.add() == contexts { allDone.set() }
            }
        }
        let setters = (0..<2).map { k in
            Thread {
                var rng = TestRNG(seed: UInt64(k + 9))
                while !stop.load(ordering: .relaxed) {
                    let e = events[rng.below(events.count)]
                    e.set(); e.reset()
                    usleep(UInt32(50 + rng.below(300)))
                }
                settersLeft.subtract(1, ordering: .releasing)
            }
        }
        setters.forEach { $0.start() }
        let finished = allDone.wait(timeout: .seconds(60))
        stop.store(true, ordering: .relaxed)
        XCTAssertTrue(finished, "waits did not finish")
        XCTAssertTrue(eventually { settersLeft.load(ordering: .acquiring) == 0 })
        XCTAssertTrue(eventually { s.timers.count == 0 }, "entries left armed: \(s.timers.count)")
        try s.shutdown(timeout: .seconds(10))
        XCTAssertEqual(problems.withLock { $0 }, [])
        XCTAssertEqual(signaled.load(ordering: .relaxed) + timedOut.load(ordering: .relaxed), contexts * rounds)
        XCTAssertGreaterThan(timedOut.load(ordering: .relaxed), 0, "no wait timed out: the timers were not exercised")
        XCTAssertGreaterThan(signaled.load(ordering: .relaxed), 0, "no wait was signaled: the cancels were not exercised")
    }

    /// Arms from outside the scheduler spread round robin over every queue.
    func testArmsFromOutsideSpreadRoundRobin() throws {
        let s = try makeScheduler(3)
        let far = csup_monotonic_ns() + 60_000_000_000
        let ids = (0..<9).map { _ in s.armTimeout(far) { _ in } }
        XCTAssertEqual(Set(ids.map(TimerQueue.queueIndex(of:))), [0, 1, 2])
        XCTAssertEqual(s.timers.queues.map(\.count), [3, 3, 3])
        for id in ids { s.timers.cancel(id) }
        XCTAssertEqual(s.timers.count, 0)
        XCTAssertNil(s.timers.nanosecondsUntilNextDeadline())
        try s.shutdown(timeout: .seconds(10))
    }

    /// Many contexts on 3 VPs sleep with random deadlines and tolerances:
    /// none wakes before its deadline or past deadline + tolerance + slack,
    /// and the sleeps use more than one VP's queue.
    func testManySleepersOnSeveralVirtualProcessorsFireWithinTheirWindows() throws {
        let s = try makeScheduler(3)
        let n = longMode ? 3_000 : 600
        let sleepers = RandomSleepers(on: s, tasks: n, seedOffset: 7, deadlineSpread: 20_000_000, maxTolerance: 5_000_000)
        let allDone = sleepers.allDone
        var busiest = 0
        let deadline = csup_monotonic_ns() + 60_000_000_000
        while !allDone.isSet && csup_monotonic_ns() < deadline {
            busiest = max(busiest, s.timers.queues.filter { $0.count > 0 }.count)
            usleep(1_000)
        }
        XCTAssertTrue(allDone.wait(timeout: .seconds(60)))
        try s.shutdown(timeout: .seconds(10))
        XCTAssertEqual(sleepers.problems, [])
        XCTAssertGreaterThanOrEqual(busiest, 2, "every sleep armed on one queue")
        XCTAssertEqual(s.statistics.timerSleeps, 5 * n)
        XCTAssertEqual(s.timers.count, 0)
    }
}
