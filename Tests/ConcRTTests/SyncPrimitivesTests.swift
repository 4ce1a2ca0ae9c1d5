import TestSupport
import Foundation
import Synchronization
import XCTest
@testable import ConcRT
import CSupport
import UMS

// Event, CriticalSection and ReaderWriterLock: every API and error case,
// from contexts and from plain pthreads, plus hammer tests on 2 and on 4
// virtual processors (4 oversubscribes this 2-CPU machine on purpose).
// Every wait on the test thread is bounded.

/// Failures seen off the test thread (contexts, pthreads); asserted on it.
private final class SyncFailures: Sendable {
    private let list = MigrationSafeMutex<[String]>([])
    func record(_ s: String) { list.withLock { if $0.count < 30 { $0.append(s) } } }
    func check(_ cond: Bool, _ msg: @autoclosure () -> String) { if !cond { record(msg()) } }
    var all: [String] { list.withLock { $0 } }

    /// `body` must throw a ConcRTError accepted by `matches`.
    func expect(_ what: String, _ matches: (ConcRTError) -> Bool, _ body: () throws -> Void) {
        do {
            try body()
            record("\(what): no error thrown")
        } catch let e as ConcRTError {
            if !matches(e) { record("\(what): wrong error \(e)") }
        } catch {
            record("\(what): unexpected error \(error)")
        }
    }
}

/// Gives up the processor: Context.yield on a context, sched_yield on a
/// pthread.
private func syncYield(_ onContext: Bool) {
    if onContext { Context.yield() } else { sched_yield() }
}

private final class SyncFlag: Sendable {
    private let v = Atomic<Bool>(false)
    func set() { v.store(true, ordering: .releasing) }
    var isSet: Bool { v.load(ordering: .acquiring) }
}

private final class SyncGauge: Sendable {
    private let v = Atomic<Int>(0)
    @discardableResult func add(_ n: Int) -> Int { v.wrappingAdd(n, ordering: .acquiringAndReleasing).newValue }
    var value: Int { v.load(ordering: .acquiring) }
    /// Raises the value to at least `n`.
    func raise(to n: Int) {
        var cur = v.load(ordering: .relaxed)
        while n > cur {
            let (done, seen) = v.compareExchange(expected: cur, desired: n, ordering: .relaxed)
            if done { return }
            cur = seen
        }
    }
}

private func isBlocked(_ c: Context?) -> Bool {
    c?.isWaiting == true
}

/// True when pthread `tid` of this process sits in futex(2) (it parked).
private func inFutexWait(_ tid: Int64) -> Bool {
    #if arch(x86_64)
    let futexNumber = "202 "
    #else
    let futexNumber = "98 "
    #endif
    var stable = 0
    for _ in 0..<3 {
        guard let s = try? String(contentsOfFile: "/proc/self/task/\(tid)/syscall", encoding: .utf8),
              s.hasPrefix(futexNumber) else { return false }
        stable += 1
        usleep(2_000)
    }
    return stable == 3
}

final class SyncPrimitivesTests: XCTestCase {
    // MARK: Event: API

    func testEventSetResetIsSet() {
        let e = Event()
        XCTAssertFalse(e.isSet)
        XCTAssertFalse(e.wait(timeout: .zero))
        e.set()
        XCTAssertTrue(e.isSet)
        e.set()   // idempotent
        XCTAssertTrue(e.isSet)
        XCTAssertTrue(e.wait(timeout: .zero))
        // Untimed waits on a set event return at once (run on a helper
        // thread so a bug fails the test instead of hanging it).
        let untimed = runOnNewThread {
            _ = e.wait(timeout: nil)
            e.wait()
            _ = Event.waitForMultiple([e], waitAll: true, timeout: nil)
        }
        XCTAssertTrue(untimed.wait(timeout: .seconds(10)), "an untimed wait on a set event blocked")
        XCTAssertTrue(e.isSet, "waiting does not consume a manual-reset event")
        e.reset()
        XCTAssertFalse(e.isSet)
        e.reset()
        XCTAssertFalse(e.isSet)
        XCTAssertFalse(e.wait(timeout: .milliseconds(1)))
        XCTAssertEqual(Event.timeoutResult, -1)
    }

    /// Timed waits from a plain pthread (the test thread): false / timeout
    /// result after at least the timeout.
    func testEventTimeoutsFromPlainThread() {
        let f = SyncFailures()
        XCTAssertTrue(runOnNewThread { checkEventTimeouts(f, context: "thread") }.wait(timeout: .seconds(60)))
        XCTAssertEqual(f.all, [])
    }

    /// The same from a context; on a 1-VP scheduler, another task runs to
    /// completion while the context waits (it blocks the context, not the VP).
    func testEventTimeoutsFromContext() throws {
        let s = try makeScheduler(1)
        let f = SyncFailures()
        let other = Event()
        let done = runAsTask(s) {
            checkEventTimeouts(f, context: "context")
            // While this context waits, the only VP runs the other task.
            s.scheduleTask { other.set() }
            f.check(other.wait(timeout: .seconds(10)), "the other task did not run while a context waited")
            let t0 = monotonicNow()
            let r = Event().wait(timeout: .milliseconds(100))
            f.check(!r && monotonicNow() - t0 >= 100_000_000, "second timed wait")
        }
        XCTAssertTrue(done.wait(timeout: .seconds(30)))
        XCTAssertEqual(f.all, [])
        try s.shutdown(timeout: .seconds(10))
    }

    func testEventWaitReleasedBySetForContextsAndThreads() throws {
        let s = try makeScheduler(2)
        let e = Event()
        let returned = Counter()
        let results = MigrationSafeMutex<[Bool]>([])
        var done: [Event] = []
        for i in 0..<6 {
            done.append(runAsTask(s) {
                if i % 2 == 0 { e.wait(); results.withLock { $0.append(true) } } else {
                    let r = e.wait(timeout: .seconds(60)); results.withLock { $0.append(r) }
                }
                returned.add()
            })
        }
        for i in 0..<3 {
            done.append(runOnNewThread {
                if i == 0 { e.wait(); results.withLock { $0.append(true) } } else {
                    let r = e.wait(timeout: .seconds(60)); results.withLock { $0.append(r) }
                }
                returned.add()
            })
        }
        usleep(50_000)
        XCTAssertEqual(returned.value, 0, "a wait returned while the event was not set")
        e.set()
        XCTAssertEqual(unfinished(done, within: .seconds(30)), 0)
        XCTAssertEqual(returned.value, 9)
        XCTAssertEqual(results.withLock { $0 }, Array(repeating: true, count: 9))
        try s.shutdown(timeout: .seconds(10))
    }

    /// A set immediately followed by a reset still releases every waiter
    /// registered before the set (no lost wake-up), context or pthread.
    func testSetThenResetStillWakesRegisteredWaiters() throws {
        let s = try makeScheduler(2)
        for round in 0..<20 {
            let e = Event()
            let ctx = MigrationSafeMutex<Context?>(nil)
            let tid = MigrationSafeMutex<Int64>(0)
            let ctxDone = runAsTask(s) {
                ctx.withLock { $0 = Context.current }
                e.wait()
            }
            let threadDone = runOnNewThread {
                tid.withLock { $0 = csup_gettid() }
                e.wait()
            }
            XCTAssertTrue(eventually { isBlocked(ctx.withLock { $0 }) }, "round \(round): context never blocked")
            XCTAssertTrue(eventually { let t = tid.withLock { $0 }; return t != 0 && inFutexWait(t) },
                          "round \(round): thread never parked")
            e.set()
            e.reset()
            XCTAssertTrue(ctxDone.wait(timeout: .seconds(10)), "round \(round): context waiter lost its wake-up")
            XCTAssertTrue(threadDone.wait(timeout: .seconds(10)), "round \(round): thread waiter lost its wake-up")
            XCTAssertFalse(e.isSet)
        }
        try s.shutdown(timeout: .seconds(10))
    }

    func testWaitForMultipleFromPlainThread() {
        let f = SyncFailures()
        let done = runOnNewThread { checkWaitForMultiple(f, spawn: { body in runOnNewThread(body) }) }
        XCTAssertTrue(done.wait(timeout: .seconds(60)))
        XCTAssertEqual(f.all, [])
    }

    func testWaitForMultipleFromContext() throws {
        let s = try makeScheduler(2)
        let f = SyncFailures()
        let done = runAsTask(s) {
            checkWaitForMultiple(f, spawn: { body in runAsTask(s, body) })
        }
        XCTAssertTrue(done.wait(timeout: .seconds(60)))
        XCTAssertEqual(f.all, [])
        try s.shutdown(timeout: .seconds(10))
    }

    /// A context waits with a long timeout; a set from a plain thread wakes
    /// it well before the deadline, and the wait reports success.
    func testTimedWaitWokenBySetBeforeDeadline() throws {
        let s = try makeScheduler(2)
        let e = Event()
        let ctx = MigrationSafeMutex<Context?>(nil)
        let result = MigrationSafeMutex<(Bool, Int64)?>(nil)
        let done = runAsTask(s) {
            ctx.withLock { $0 = Context.current }
            let t0 = monotonicNow()
            let r = e.wait(timeout: .seconds(30))
            result.withLock { $0 = (r, monotonicNow() - t0) }
        }
        XCTAssertTrue(eventually { isBlocked(ctx.withLock { $0 }) })
        e.set()
        XCTAssertTrue(done.wait(timeout: .seconds(10)))
        let (r, ns) = try XCTUnwrap(result.withLock { $0 })
        XCTAssertTrue(r)
        XCTAssertLessThan(ns, 10_000_000_000)
        try s.shutdown(timeout: .seconds(10))
    }

    /// A context that sets an event and keeps computing must not keep the
    /// woken waiters from running on an idle VP: with 2 VPs, one busy with
    /// the setter, the waiters run on the other one meanwhile.
    func testWaitersWokenByABusyContextRunOnAnIdleVirtualProcessor() throws {
        let s = try makeScheduler(2)
        for waiters in [1, 8] {
            let e = Event()
            let ran = Counter()
            let ctxs = MigrationSafeMutex<[Context]>([])
            var done: [Event] = []
            for _ in 0..<waiters {
                done.append(runAsTask(s) {
                    ctxs.withLock { $0.append(Context.current!) }
                    e.wait()
                    ran.add()
                })
            }
            XCTAssertTrue(eventually { ctxs.withLock { $0.count == waiters && $0.allSatisfy(isBlocked) } })
            usleep(100_000)   // both VPs go idle and sleep
            let sawWaitersRun = MigrationSafeMutex<Bool>(false)
            let setter = runAsTask(s) {
                e.set()
                // Busy for up to 2 s (never blocks or yields), watching for
                // the waiters to run elsewhere.
                let deadline = monotonicNow() + 2_000_000_000
                while ran.value < waiters && monotonicNow() < deadline { csup_cpu_relax() }
                sawWaitersRun.withLock { $0 = ran.value == waiters }
            }
            XCTAssertTrue(setter.wait(timeout: .seconds(30)))
            XCTAssertEqual(unfinished(done, within: .seconds(30)), 0)
            XCTAssertTrue(sawWaitersRun.withLock { $0 },
                          "\(waiters) waiter(s) woken by a busy context did not run on the idle VP while it computed")
        }
        try s.shutdown(timeout: .seconds(10))
    }

    // MARK: Event: hammers

    func testEventHammerOn2VPs() throws { try eventHammer(vps: 2) }
    func testEventHammerOn4VPs() throws { try eventHammer(vps: 4) }

    /// Many waiters (contexts and pthreads) wait on random subsets of a set
    /// of events (any / all / timed / untimed) while setters randomly set
    /// and reset them. Invariants: results are in range; a reported event
    /// was set at least once; a timeout comes no earlier than asked and
    /// never once every event is set for good. After the final set every
    /// waiter returns (no lost wake-up).
    private func eventHammer(vps: Int) throws {
        let s = try makeScheduler(vps)
        let nEvents = 12
        let events = (0..<nEvents).map { _ in Event() }
        let sets = (0..<nEvents).map { _ in Counter() }
        let finalSet = SyncFlag()
        let f = SyncFailures()
        let waiterTasks = longMode ? 5_000 : 1_000
        let waiterThreads = 3
        let rounds = longMode ? 100 : 30
        let setterTasks = 6
        let setterOps = longMode ? 100_000 : 20_000
        let waitsDone = Counter(), timeouts = Counter(), wakes = Counter()

        @Sendable func waiterLoop(seed: UInt64) {
            var rng = TestRNG(seed: seed)
            for _ in 0..<rounds {
                let k = 1 + rng.below(3)
                var idx: [Int] = []
                while idx.count < k { let i = rng.below(nEvents); if !idx.contains(i) { idx.append(i) } }
                let evs = idx.map { events[$0] }
                let afterFinal = finalSet.isSet
                let timeoutMs = rng.below(4)
                let t0 = monotonicNow()
                switch rng.below(5) {
                case 0:   // any, untimed
                    let r = Event.waitForMultiple(evs, waitAll: false, timeout: nil)
                    f.check((0..<k).contains(r), "untimed any returned \(r)")
                    if (0..<k).contains(r) { f.check(sets[idx[r]].value > 0, "any returned event \(idx[r]) that was never set") }
                    wakes.add()
                case 1:   // any, timed
                    let r = Event.waitForMultiple(evs, waitAll: false, timeout: .milliseconds(timeoutMs))
                    if r == Event.timeoutResult {
                        timeouts.add()
                        f.check(monotonicNow() - t0 >= Int64(timeoutMs) * 1_000_000, "timed any: early timeout")
                        f.check(!afterFinal, "timed any: timeout with every event set")
                    } else {
                        f.check((0..<k).contains(r), "timed any returned \(r)")
                        if (0..<k).contains(r) { f.check(sets[idx[r]].value > 0, "timed any: event never set") }
                        wakes.add()
                    }
                case 2:   // all, timed
                    let r = Event.waitForMultiple(evs, waitAll: true, timeout: .milliseconds(timeoutMs))
                    if r == Event.timeoutResult {
                        timeouts.add()
                        f.check(monotonicNow() - t0 >= Int64(timeoutMs) * 1_000_000, "timed all: early timeout")
                        f.check(!afterFinal, "timed all: timeout with every event set")
                    } else {
                        f.check(r == 0, "all returned \(r)")
                        for i in idx { f.check(sets[i].value > 0, "all: event \(i) never set") }
                        wakes.add()
                    }
                case 3:   // all, untimed
                    let r = Event.waitForMultiple(evs, waitAll: true, timeout: nil)
                    f.check(r == 0, "untimed all returned \(r)")
                    for i in idx { f.check(sets[i].value > 0, "untimed all: event \(i) never set") }
                    wakes.add()
                default:  // single event
                    if rng.below(2) == 0 {
                        evs[0].wait()
                        f.check(sets[idx[0]].value > 0, "wait(): event never set")
                        wakes.add()
                    } else if evs[0].wait(timeout: .milliseconds(timeoutMs)) {
                        f.check(sets[idx[0]].value > 0, "wait(timeout:): event never set")
                        wakes.add()
                    } else {
                        timeouts.add()
                        f.check(monotonicNow() - t0 >= Int64(timeoutMs) * 1_000_000, "wait(timeout:): early timeout")
                        f.check(!afterFinal, "wait(timeout:): timeout with the event set")
                    }
                }
                waitsDone.add()
            }
        }
        @Sendable func setterLoop(seed: UInt64, onContext: Bool) {
            var rng = TestRNG(seed: seed)
            for _ in 0..<setterOps {
                let i = rng.below(nEvents)
                if rng.below(2) == 0 {
                    sets[i].add()
                    events[i].set()
                } else {
                    events[i].reset()
                }
                switch rng.below(64) {
                case 0..<8: syncYield(onContext)
                case 8: try? Blocking.sleep(for: .microseconds(200))   // let waiters pile up
                default: break
                }
            }
        }

        let waitersFinished = Counter()
        let allWaitersDone = Event()
        let totalWaiters = waiterTasks + waiterThreads
        for w in 0..<waiterTasks {
            s.scheduleTask {
                waiterLoop(seed: UInt64(w + 1))
                if waitersFinished.add() == totalWaiters { allWaitersDone.set() }
            }
        }
        for w in 0..<waiterThreads {
            runOnNewThread {
                waiterLoop(seed: UInt64(100_000 + w))
                if waitersFinished.add() == totalWaiters { allWaitersDone.set() }
            }
        }
        var setters: [Event] = []
        for i in 0..<setterTasks {
            setters.append(runAsTask(s) { setterLoop(seed: UInt64(500 + i), onContext: true) })
        }
        setters.append(runOnNewThread { setterLoop(seed: 999, onContext: false) })
        XCTAssertEqual(unfinished(setters, within: .seconds(60)), 0, "setters that did not finish")
        // Final set: every event signaled for good; every waiter must return.
        for i in 0..<nEvents { sets[i].add(); events[i].set() }
        finalSet.set()
        let ok = allWaitersDone.wait(timeout: .seconds(60))
        XCTAssertTrue(ok, "\(waitersFinished.value) of \(totalWaiters) waiters returned after the final set "
                          + "(\(waitsDone.value) waits done): lost wake-up? \(s.statistics)")
        XCTAssertEqual(f.all, [])
        XCTAssertEqual(waitsDone.value, totalWaiters * rounds)
        XCTAssertEqual(wakes.value + timeouts.value, totalWaiters * rounds)
        guard ok else { return }
        try s.shutdown(timeout: .seconds(30))
    }

    func testEventTokenRingWithThreadsOn2VPs() throws { try eventRing(vps: 2) }
    func testEventTokenRingWithThreadsOn4VPs() throws { try eventRing(vps: 4) }

    /// A token passed around a ring of contexts and two plain pthreads by
    /// set(next) / wait(own) / reset(own). A lost wake-up stops the ring.
    private func eventRing(vps: Int) throws {
        let s = try makeScheduler(vps)
        let n = 32
        let rounds = longMode ? 3_000 : 300
        let threadSlots: Set<Int> = [0, n / 2]
        let events = (0..<n).map { _ in Event() }
        let passes = Box(0)   // touched only by the token holder
        let f = SyncFailures()
        let finished = Counter()
        let allDone = Event()
        for k in 0..<n {
            let body: @Sendable () -> Void = {
                for r in 0..<rounds {
                    if threadSlots.contains(k) {
                        guard events[k].wait(timeout: .seconds(60)) else { f.record("thread \(k) round \(r): timed out"); break }
                    } else {
                        events[k].wait()
                    }
                    events[k].reset()
                    f.check(passes.value == r * n + k, "participant \(k) round \(r): pass \(passes.value)")
                    passes.value += 1
                    events[(k + 1) % n].set()
                }
                if finished.add() == n { allDone.set() }
            }
            if threadSlots.contains(k) { runOnNewThread(body) } else { s.scheduleTask(body) }
        }
        events[0].set()
        let ok = allDone.wait(timeout: .seconds(60))
        XCTAssertTrue(ok, "event ring stopped after \(passes.value) of \(n * rounds) passes")
        XCTAssertEqual(f.all, [])
        guard ok else { return }
        XCTAssertEqual(passes.value, n * rounds)
        try s.shutdown(timeout: .seconds(30))
    }

    // MARK: CriticalSection

    func testCriticalSectionFromPlainThreads() {
        let f = SyncFailures()
        let done = runOnNewThread { checkCriticalSection(f, elsewhere: { body in runOnNewThread(body) }) }
        XCTAssertTrue(done.wait(timeout: .seconds(60)))
        XCTAssertEqual(f.all, [])
    }

    func testCriticalSectionFromContexts() throws {
        let s = try makeScheduler(2)
        let f = SyncFailures()
        let done = runAsTask(s) { checkCriticalSection(f, elsewhere: { body in runAsTask(s, body) }) }
        XCTAssertTrue(done.wait(timeout: .seconds(60)))
        XCTAssertEqual(f.all, [])
        try s.shutdown(timeout: .seconds(10))
    }

    /// A pthread and a context are different owners of the same lock.
    func testCriticalSectionOwnerIsTheCallerNotTheLockObject() throws {
        let s = try makeScheduler(1)
        let cs = CriticalSection()
        cs.lock()   // the test thread owns it
        let f = SyncFailures()
        let done = runAsTask(s) {
            f.check(cs.tryLock() == false, "a context took a lock held by a pthread")
        }
        XCTAssertTrue(done.wait(timeout: .seconds(10)))
        cs.unlock()
        XCTAssertEqual(f.all, [])
        try s.shutdown(timeout: .seconds(10))
    }

    /// Waiting for the lock blocks the context, not the VP: with one VP,
    /// another task runs while a context waits for a lock the test thread
    /// holds.
    func testCriticalSectionBlocksTheContextNotTheVirtualProcessor() throws {
        let s = try makeScheduler(1)
        let cs = CriticalSection()
        cs.lock()
        let ctx = MigrationSafeMutex<Context?>(nil)
        let got = SyncFlag()
        let waiterDone = runAsTask(s) {
            ctx.withLock { $0 = Context.current }
            cs.lock()
            got.set()
            cs.unlock()
        }
        XCTAssertTrue(eventually { isBlocked(ctx.withLock { $0 }) })
        let other = runAsTask(s) {}
        XCTAssertTrue(other.wait(timeout: .seconds(10)), "the VP was held by a context waiting for a lock")
        XCTAssertFalse(got.isSet)
        cs.unlock()
        XCTAssertTrue(waiterDone.wait(timeout: .seconds(10)))
        XCTAssertTrue(got.isSet)
        try s.shutdown(timeout: .seconds(10))
    }

    /// Waiters get the lock in arrival order, and ownership is handed over
    /// on unlock (the unlocker cannot take it back with tryLock).
    func testCriticalSectionFIFOHandOff() throws {
        let s = try makeScheduler(2)
        let cs = CriticalSection()
        let order = MigrationSafeMutex<[Int]>([])
        let hold = Event()
        cs.lock()
        var done: [Event] = []
        for k in 1...5 {
            let ctx = MigrationSafeMutex<Context?>(nil)
            done.append(runAsTask(s) {
                ctx.withLock { $0 = Context.current }
                cs.lock()
                order.withLock { $0.append(k) }
                if k == 1 { _ = hold.wait(timeout: .seconds(30)) }
                cs.unlock()
            })
            XCTAssertTrue(eventually { isBlocked(ctx.withLock { $0 }) }, "waiter \(k) did not block")
        }
        // A pthread queues last.
        let tid = MigrationSafeMutex<Int64>(0)
        done.append(runOnNewThread {
            tid.withLock { $0 = csup_gettid() }
            cs.lock()
            order.withLock { $0.append(6) }
            cs.unlock()
        })
        XCTAssertTrue(eventually { let t = tid.withLock { $0 }; return t != 0 && inFutexWait(t) })
        cs.unlock()
        XCTAssertFalse(cs.tryLock(), "unlock must hand the lock to the oldest waiter, not leave it free")
        hold.set()
        XCTAssertEqual(unfinished(done, within: .seconds(10)), 0)
        XCTAssertEqual(order.withLock { $0 }, [1, 2, 3, 4, 5, 6])
        XCTAssertTrue(cs.tryLock())
        cs.unlock()
        try s.shutdown(timeout: .seconds(10))
    }

    func testCriticalSectionHammerOn2VPs() throws { try criticalSectionHammer(vps: 2) }
    func testCriticalSectionHammerOn4VPs() throws { try criticalSectionHammer(vps: 4) }

    /// 1,000 tasks (and two pthreads) increment a plain counter under one
    /// lock, sometimes yielding inside it; an `inside` flag must be false
    /// on entry and no increment may be lost.
    private func criticalSectionHammer(vps: Int) throws {
        let s = try makeScheduler(vps)
        let tasks = longMode ? 10_000 : 1_000
        let iterations = longMode ? 500 : 100
        let threadIterations = longMode ? 20_000 : 2_000
        let cs = CriticalSection()
        let inside = Box(false)
        let counter = Box(0)
        let f = SyncFailures()
        let blocksBefore = s.statistics.blocks

        @Sendable func critical(_ yield: Bool, onContext: Bool) {
            f.check(!inside.value, "two owners inside the critical section")
            inside.value = true
            let v = counter.value
            if yield { syncYield(onContext) }
            counter.value = v + 1
            inside.value = false
        }
        @Sendable func worker(seed: UInt64, iterations: Int, onContext: Bool) {
            var rng = TestRNG(seed: seed)
            for _ in 0..<iterations {
                let yield = rng.below(4) == 0
                switch rng.below(6) {
                case 0:
                    if cs.tryLock() {
                        critical(yield, onContext: onContext)
                        cs.unlock()
                    } else {
                        cs.withLock { critical(yield, onContext: onContext) }
                    }
                case 1:
                    cs.withLock { critical(yield, onContext: onContext) }
                default:
                    cs.lock()
                    critical(yield, onContext: onContext)
                    cs.unlock()
                }
            }
        }
        let finished = Counter()
        let allDone = Event()
        let total = tasks + 2
        for t in 0..<tasks {
            s.scheduleTask {
                worker(seed: UInt64(t + 1), iterations: iterations, onContext: true)
                if finished.add() == total { allDone.set() }
            }
        }
        for t in 0..<2 {
            runOnNewThread {
                worker(seed: UInt64(50_000 + t), iterations: threadIterations, onContext: false)
                if finished.add() == total { allDone.set() }
            }
        }
        let ok = allDone.wait(timeout: .seconds(60))
        XCTAssertTrue(ok, "\(finished.value) of \(total) workers finished (lost hand-off?)")
        XCTAssertEqual(f.all, [])
        guard ok else { return }
        XCTAssertEqual(counter.value, tasks * iterations + 2 * threadIterations)
        XCTAssertFalse(inside.value)
        XCTAssertTrue(cs.tryLock(), "the lock is free at the end")
        cs.unlock()
        try s.shutdown(timeout: .seconds(30))
        XCTAssertGreaterThan(s.statistics.blocks - blocksBefore, 0, "contexts never contended: \(s.statistics)")
    }

    // MARK: ReaderWriterLock

    func testReaderWriterLockFromPlainThreads() {
        let f = SyncFailures()
        let done = runOnNewThread { checkReaderWriterLock(f, elsewhere: { body in runOnNewThread(body) }) }
        XCTAssertTrue(done.wait(timeout: .seconds(60)))
        XCTAssertEqual(f.all, [])
    }

    func testReaderWriterLockFromContexts() throws {
        let s = try makeScheduler(2)
        let f = SyncFailures()
        let done = runAsTask(s) { checkReaderWriterLock(f, elsewhere: { body in runAsTask(s, body) }) }
        XCTAssertTrue(done.wait(timeout: .seconds(60)))
        XCTAssertEqual(f.all, [])
        try s.shutdown(timeout: .seconds(10))
    }

    /// Writer preference: once a writer waits, a new reader waits behind it
    /// (and behind a second writer); writers go one at a time, then the
    /// readers.
    func testReaderWriterLockWriterPreference() throws {
        let s = try makeScheduler(2)
        let rw = ReaderWriterLock()
        let log = MigrationSafeMutex<[String]>([])
        @Sendable func append(_ s: String) { log.withLock { $0.append(s) } }
        let r1Held = Event(), releaseR1 = Event(), releaseW1 = Event()
        let r1 = runAsTask(s) {
            rw.lockRead()
            append("R1 in")
            r1Held.set()
            _ = releaseR1.wait(timeout: .seconds(30))
            append("R1 out")
            rw.unlock()
        }
        XCTAssertTrue(r1Held.wait(timeout: .seconds(10)))
        let w1Ctx = MigrationSafeMutex<Context?>(nil), w2Ctx = MigrationSafeMutex<Context?>(nil), r2Ctx = MigrationSafeMutex<Context?>(nil)
        let w1 = runAsTask(s) {
            w1Ctx.withLock { $0 = Context.current }
            rw.lock()
            append("W1 in")
            _ = releaseW1.wait(timeout: .seconds(30))
            append("W1 out")
            rw.unlock()
        }
        XCTAssertTrue(eventually { isBlocked(w1Ctx.withLock { $0 }) }, "a writer did not wait for a reader")
        let w2 = runAsTask(s) {
            w2Ctx.withLock { $0 = Context.current }
            rw.lock()
            append("W2 in")
            append("W2 out")
            rw.unlock()
        }
        XCTAssertTrue(eventually { isBlocked(w2Ctx.withLock { $0 }) })
        let r2 = runAsTask(s) {
            r2Ctx.withLock { $0 = Context.current }
            rw.lockRead()
            append("R2 in")
            rw.unlock()
        }
        XCTAssertTrue(eventually { isBlocked(r2Ctx.withLock { $0 }) || r2.isSet })
        XCTAssertFalse(r2.isSet, "a new reader got in while a writer was waiting")
        XCTAssertEqual(log.withLock { $0 }, ["R1 in"])
        releaseR1.set()
        XCTAssertTrue(eventually { log.withLock { $0.contains("W1 in") } })
        usleep(20_000)
        XCTAssertEqual(log.withLock { $0 }, ["R1 in", "R1 out", "W1 in"])
        releaseW1.set()
        XCTAssertEqual(unfinished([r1, w1, w2, r2], within: .seconds(10)), 0)
        XCTAssertEqual(log.withLock { $0 }, ["R1 in", "R1 out", "W1 in", "W1 out", "W2 in", "W2 out", "R2 in"])
        try s.shutdown(timeout: .seconds(10))
    }

    func testReaderWriterLockHammerOn2VPs() throws { try readerWriterHammer(vps: 2) }
    func testReaderWriterLockHammerOn4VPs() throws { try readerWriterHammer(vps: 4) }

    /// Readers (many at once) and writers (alone) over a plain array that
    /// writers rewrite whole: readers must never see a torn array, writers
    /// never share.
    private func readerWriterHammer(vps: Int) throws {
        let s = try makeScheduler(vps)
        let tasks = longMode ? 5_000 : 1_000
        let iterations = longMode ? 500 : 100
        let rw = ReaderWriterLock()
        let data = Box([Int](repeating: 0, count: 16))
        let readersIn = SyncGauge(), writersIn = SyncGauge()
        let writes = Counter(), maxReaders = SyncGauge()
        let f = SyncFailures()
        let finished = Counter()
        let allDone = Event()
        let total = tasks + 2
        @Sendable func worker(seed: UInt64, onContext: Bool) {
            var rng = TestRNG(seed: seed)
            for _ in 0..<iterations {
                let yield = rng.below(4) == 0
                if rng.below(5) == 0 {
                    rw.withWriteLock {
                        f.check(writersIn.add(1) == 1 && readersIn.value == 0, "writer not alone")
                        let v = data.value[0] + 1
                        for i in 0..<8 { data.value[i] = v }
                        if yield { syncYield(onContext) }
                        for i in 8..<16 { data.value[i] = v }
                        writes.add()
                        writersIn.add(-1)
                    }
                } else {
                    rw.withReadLock {
                        let n = readersIn.add(1)
                        maxReaders.raise(to: n)
                        f.check(writersIn.value == 0, "reader with a writer inside")
                        let first = data.value[0]
                        if yield { syncYield(onContext) }
                        f.check(data.value.allSatisfy { $0 == first }, "torn read")
                        readersIn.add(-1)
                    }
                }
            }
            if finished.add() == total { allDone.set() }
        }
        for t in 0..<tasks { s.scheduleTask { worker(seed: UInt64(t + 1), onContext: true) } }
        for t in 0..<2 { runOnNewThread { worker(seed: UInt64(9_000 + t), onContext: false) } }
        let ok = allDone.wait(timeout: .seconds(60))
        XCTAssertTrue(ok, "\(finished.value) of \(total) workers finished")
        XCTAssertEqual(f.all, [])
        guard ok else { return }
        XCTAssertEqual(data.value, [Int](repeating: writes.value, count: 16))
        XCTAssertGreaterThan(maxReaders.value, 1, "readers never shared the lock")
        try s.shutdown(timeout: .seconds(30))
    }
}

// MARK: - Shared checks (run from a pthread or from a context)

/// Timed waits that must time out, from whatever the caller is.
private func checkEventTimeouts(_ f: SyncFailures, context: String) {
    let a = Event(), b = Event(), c = Event()
    var t0 = monotonicNow()
    f.check(!a.wait(timeout: .milliseconds(50)), "\(context): wait(timeout:) on an unset event returned true")
    f.check(monotonicNow() - t0 >= 50_000_000, "\(context): wait(timeout:) returned before the timeout")
    f.check(!a.wait(timeout: .zero), "\(context): zero timeout")
    t0 = monotonicNow()
    var r = Event.waitForMultiple([a, b, c], waitAll: false, timeout: .milliseconds(30))
    f.check(r == Event.timeoutResult, "\(context): any: \(r)")
    f.check(monotonicNow() - t0 >= 30_000_000, "\(context): any returned before the timeout")
    b.set()
    t0 = monotonicNow()
    r = Event.waitForMultiple([a, b, c], waitAll: true, timeout: .milliseconds(30))
    f.check(r == Event.timeoutResult, "\(context): all with one set: \(r)")
    f.check(monotonicNow() - t0 >= 30_000_000, "\(context): all returned before the timeout")
    r = Event.waitForMultiple([a, b, c], waitAll: true, timeout: .zero)
    f.check(r == Event.timeoutResult, "\(context): all, zero timeout: \(r)")
    a.set(); c.set()
    f.check(a.wait(timeout: .milliseconds(30)), "\(context): set event, timed wait")
    r = Event.waitForMultiple([a, b, c], waitAll: true, timeout: .zero)
    f.check(r == 0, "\(context): all set, zero timeout: \(r)")
}

/// waitForMultiple: any (pre-set and set later), all, timeouts, duplicates.
/// `spawn` runs a body somewhere else (another pthread or task).
private func checkWaitForMultiple(_ f: SyncFailures, spawn: (@escaping @Sendable () -> Void) -> Event) {
    // Any, one already set: its index, at once.
    do {
        let evs = (0..<3).map { _ in Event() }
        evs[1].set()
        let r = Event.waitForMultiple(evs, waitAll: false, timeout: nil)
        f.check(r == 1, "any with #1 set returned \(r)")
        evs[2].set()
        let r2 = Event.waitForMultiple(evs, waitAll: false, timeout: .zero)
        f.check(r2 == 1 || r2 == 2, "any with #1, #2 set returned \(r2)")
    }
    // Any, set later by someone else.
    for target in 0..<3 {
        let evs = (0..<3).map { _ in Event() }
        let setter = spawn {
            usleep(10_000)
            evs[target].set()
        }
        let r = Event.waitForMultiple(evs, waitAll: false, timeout: .seconds(30))
        f.check(r == target, "any, #\(target) set later, returned \(r)")
        f.check(setter.wait(timeout: .seconds(10)), "setter did not finish")
    }
    // Untimed any.
    do {
        let evs = (0..<4).map { _ in Event() }
        let setter = spawn { usleep(10_000); evs[3].set() }
        let r = Event.waitForMultiple(evs, waitAll: false, timeout: nil)
        f.check(r == 3, "untimed any returned \(r)")
        f.check(setter.wait(timeout: .seconds(10)), "setter did not finish")
    }
    // All: already set; then set one by one later, with and without timeout.
    do {
        let evs = (0..<3).map { _ in Event() }
        for e in evs { e.set() }
        f.check(Event.waitForMultiple(evs, waitAll: true, timeout: nil) == 0, "all, all set")
        for e in evs { e.reset() }
        evs[0].set()
        let setter = spawn {
            usleep(10_000); evs[2].set()
            usleep(10_000); evs[1].set()
        }
        let t0 = monotonicNow()
        let r = Event.waitForMultiple(evs, waitAll: true, timeout: .seconds(30))
        f.check(r == 0, "all, set later, returned \(r)")
        f.check(monotonicNow() - t0 >= 15_000_000, "all returned before the last event was set")
        f.check(setter.wait(timeout: .seconds(10)), "setter did not finish")
        for e in evs { e.reset() }
        let setter2 = spawn { usleep(5_000); for e in evs { e.set() } }
        f.check(Event.waitForMultiple(evs, waitAll: true, timeout: nil) == 0, "untimed all")
        f.check(setter2.wait(timeout: .seconds(10)), "setter did not finish")
    }
    // All times out while one stays unset, even though the others get set.
    do {
        let evs = (0..<3).map { _ in Event() }
        let setter = spawn { usleep(5_000); evs[0].set(); evs[1].set() }
        let t0 = monotonicNow()
        let r = Event.waitForMultiple(evs, waitAll: true, timeout: .milliseconds(60))
        f.check(r == Event.timeoutResult, "all with #2 unset returned \(r)")
        f.check(monotonicNow() - t0 >= 60_000_000, "all timed out early")
        f.check(setter.wait(timeout: .seconds(10)), "setter did not finish")
    }
    // The same event listed twice: one wake, a valid index.
    do {
        let e = Event()
        let setter = spawn { usleep(5_000); e.set() }
        let r = Event.waitForMultiple([e, e], waitAll: false, timeout: .seconds(30))
        f.check(r == 0 || r == 1, "duplicate events returned \(r)")
        f.check(setter.wait(timeout: .seconds(10)), "setter did not finish")
    }
    // A waiter registered on several events and woken by one: later sets
    // of the others must not wake the caller's next waits (no stale
    // registration delivers a second wake-up).
    do {
        let evs = (0..<3).map { _ in Event() }
        let setter = spawn { usleep(10_000); evs[0].set() }
        let r = Event.waitForMultiple(evs, waitAll: false, timeout: .seconds(30))
        f.check(r == 0, "any returned \(r)")
        f.check(setter.wait(timeout: .seconds(10)), "setter did not finish")
        evs[1].set(); evs[2].set()
        let other = Event()
        let t0 = monotonicNow()
        f.check(!other.wait(timeout: .milliseconds(20)), "a stale registration woke a later wait")
        f.check(monotonicNow() - t0 >= 20_000_000, "a later timed wait returned early")
    }
}

/// CriticalSection: every API, from two owners. `elsewhere` runs a body
/// as a different owner (another pthread or context). Misuse (re-entry,
/// unlock by a non-owner) traps: see LockMisuseTests.
private func checkCriticalSection(_ f: SyncFailures, elsewhere: (@escaping @Sendable () -> Void) -> Event) {
    let cs = CriticalSection()
    func awaitElsewhere(_ what: String, _ body: @escaping @Sendable () -> Void) {
        f.check(elsewhere(body).wait(timeout: .seconds(30)), "\(what) did not finish")
    }
    cs.lock()
    f.check(!cs.tryLock(), "tryLock by the owner must return false (not reentrant)")
    awaitElsewhere("non-owner") {
        f.check(!cs.tryLock(), "tryLock by a non-owner succeeded on a held lock")
    }
    cs.unlock()   // still ours after the refused tryLocks
    f.check(cs.tryLock(), "tryLock of a free lock failed")
    cs.unlock()
    // withLock: returns the value, throws exactly the body's error (typed),
    // and releases in both cases.
    let v = cs.withLock { 42 }
    f.check(v == 42, "withLock result \(v)")
    struct Boom: Error, Equatable { var code: Int }
    do {
        try cs.withLock { () throws(Boom) in throw Boom(code: 7) }
        f.record("withLock swallowed the error")
    } catch {
        f.check(error == Boom(code: 7), "withLock threw \(error)")   // `error` is a Boom
    }
    awaitElsewhere("lock after withLock threw") {
        f.check(cs.tryLock(), "lock not released after withLock threw")
        cs.unlock()
    }
    // Held elsewhere: lock() waits for it.
    let held = Event(), release = Event()
    let other = elsewhere {
        cs.lock()
        held.set()
        _ = release.wait(timeout: .seconds(30))
        cs.unlock()
    }
    f.check(held.wait(timeout: .seconds(10)), "other owner never got the lock")
    f.check(!cs.tryLock(), "tryLock succeeded while another owner held the lock")
    let setter = elsewhere { usleep(20_000); release.set() }
    let t0 = monotonicNow()
    cs.lock()
    f.check(monotonicNow() - t0 >= 10_000_000, "lock() did not wait for the owner")
    f.check(release.isSet, "lock() returned before the owner released")
    cs.unlock()
    f.check(other.wait(timeout: .seconds(10)) && setter.wait(timeout: .seconds(10)), "helpers did not finish")
}

/// ReaderWriterLock: every API, from two owners. `elsewhere` runs a body
/// as another pthread or context. Misuse traps: see LockMisuseTests.
private func checkReaderWriterLock(_ f: SyncFailures, elsewhere: (@escaping @Sendable () -> Void) -> Event) {
    let rw = ReaderWriterLock()
    func awaitElsewhere(_ what: String, _ body: @escaping @Sendable () -> Void) {
        f.check(elsewhere(body).wait(timeout: .seconds(30)), "\(what) did not finish")
    }
    // Write lock: exclusive; try forms refuse while it is held.
    rw.lock()
    f.check(!rw.tryLock(), "tryLock by the writer must return false (not reentrant)")
    f.check(!rw.tryLockRead(), "tryLockRead by the writer must return false")
    awaitElsewhere("non-owner try") {
        f.check(!rw.tryLock() && !rw.tryLockRead(), "a try form succeeded with a writer inside")
    }
    // A reader from elsewhere waits until the writer leaves.
    let readerIn = Event()
    let reader = elsewhere {
        rw.lockRead()
        readerIn.set()
        rw.unlock()
    }
    f.check(!readerIn.wait(timeout: .milliseconds(30)), "a reader got in with a writer inside")
    rw.unlock()
    f.check(readerIn.wait(timeout: .seconds(10)), "the reader was not released by the writer's unlock")
    f.check(reader.wait(timeout: .seconds(10)), "reader did not finish")

    // Read lock: shared (another reader gets in at once); a writer
    // waits for every reader.
    rw.lockRead()
    f.check(!rw.tryLock(), "tryLock succeeded with a reader inside")
    awaitElsewhere("second reader") {
        rw.lockRead()   // must not wait: only readers hold it
        f.check(rw.tryLockRead(), "tryLockRead refused with only readers inside")
        rw.unlock()
        rw.unlock()
    }
    let writerIn = Event()
    let writer = elsewhere {
        rw.lock()
        writerIn.set()
        rw.unlock()
    }
    f.check(!writerIn.wait(timeout: .milliseconds(30)), "a writer got in with a reader inside")
    // Writer preference: with a writer waiting, a new reader is refused.
    f.check(!rw.tryLockRead(), "tryLockRead got in ahead of a waiting writer")
    rw.unlock()
    f.check(writerIn.wait(timeout: .seconds(10)), "the writer was not released by the last reader")
    f.check(writer.wait(timeout: .seconds(10)), "writer did not finish")

    // Scoped forms: value, typed rethrow, release.
    f.check(rw.withReadLock { 1 } == 1, "withReadLock result")
    f.check(rw.withWriteLock { 2 } == 2, "withWriteLock result")
    struct Boom: Error, Equatable {}
    do { try rw.withWriteLock { () throws(Boom) in throw Boom() }; f.record("withWriteLock swallowed the error") } catch { f.check(error == Boom(), "\(error)") }
    do { try rw.withReadLock { () throws(Boom) in throw Boom() }; f.record("withReadLock swallowed the error") } catch { f.check(error == Boom(), "\(error)") }
    awaitElsewhere("writer after the scoped forms threw") {
        f.check(rw.tryLock(), "lock not released after a scoped form threw")
        rw.unlock()
    }
    f.check(rw.tryLock(), "nothing held at the end")
    rw.unlock()
}
