import TestSupport
import Foundation
import Synchronization
import XCTest
@testable import ConcRT
import CSupport
import UMS

final class ContextTests: XCTestCase {
    func testCurrentContextInfo() throws {
        let s = try makeScheduler(2)
        XCTAssertNil(Context.current)
        let (id, vp) = s.run { (Context.current!.id, Context.current!.virtualProcessorID) }
        XCTAssertGreaterThan(id, 0)
        XCTAssertTrue((0..<2).contains(vp))
        try s.shutdown()
    }

    func testBlockAndUnblockIncludingUnblockFirst() throws {
        let s = try makeScheduler(2)
        let parked = Box<Context?>(nil)
        let ready = Event()
        let resumed = Event()
        s.scheduleTask {
            parked.value = Context.current
            ready.set()
            try! Context.block()
            resumed.set()
        }
        ready.wait()
        XCTAssertTrue(eventually { parked.value!.blockState.load(ordering: .acquiring) == Context.BlockState.blocked })
        try parked.value!.unblock()
        XCTAssertTrue(resumed.wait(timeout: .seconds(10)))
        // Unblock before block: the next block returns at once.
        let done = Event()
        s.scheduleTask {
            let me = Context.current!
            let unblocked = Counter()
            // Stay running (yielding, never waiting on a primitive) until the
            // unblock has landed, so it is an unblock *before* block.
            s.scheduleTask { try! me.unblock(); unblocked.add() }
            while unblocked.value == 0 { Context.yield() }
            XCTAssertEqual(me.userBlock.load(ordering: .acquiring), Context.UserBlock.permit)
            try! Context.block()   // consumes the early unblock
            done.set()
        }
        XCTAssertTrue(done.wait(timeout: .seconds(10)))
        try s.shutdown()
    }

    /// An unblock that comes before block() is kept for that block(): a
    /// lock wait, a timed event wait and a plain event wait in between
    /// neither take it (a contended lock is still waited for) nor are
    /// woken by it.
    func testEarlyUnblockIsNotTakenByRuntimeWaits() throws {
        let s = try makeScheduler(2)
        let cs = CriticalSection()
        cs.lock()   // held by this pthread
        let me = Locked<Context?>(nil)   // polled below while the task sets it
        let unblocked = Event(), timedOut = Box(false), gotLock = Box(false), finished = Event()
        let released = Atomic<Bool>(false)
        s.scheduleTask {
            me.value = Context.current
            unblocked.wait()   // the unblock lands while we wait here
            timedOut.value = !Event().wait(timeout: .milliseconds(20))
            cs.lock()     // contended: must wait for the unlock below
            gotLock.value = released.load(ordering: .acquiring)
            cs.unlock()
            try! Context.block()   // takes the early unblock: returns at once
            finished.set()
        }
        XCTAssertTrue(eventually { me.value != nil })
        try me.value!.unblock()
        XCTAssertThrowsError(try me.value!.unblock()) { XCTAssertEqual($0 as? ConcRTError, .unbalancedUnblock) }
        unblocked.set()
        XCTAssertTrue(eventually { me.value!.isWaiting }, "the context did not wait for the held lock")
        usleep(20_000)
        XCTAssertFalse(finished.isSet)
        released.store(true, ordering: .releasing)
        cs.unlock()
        XCTAssertTrue(finished.wait(timeout: .seconds(10)))
        XCTAssertTrue(timedOut.value, "a timed wait returned early")
        XCTAssertTrue(gotLock.value, "the lock wait returned before the lock was released")
        try s.shutdown(timeout: .seconds(10))
    }

    func testDoubleUnblockAndSelfUnblockAreErrors() throws {
        let s = try makeScheduler(1)
        let errors = Box<[ConcRTError]>([])
        s.run {
            let me = Context.current!
            do { try me.unblock() } catch { errors.value.append(error as! ConcRTError) }
        }
        let target = Box<Context?>(nil)
        let started = Event()
        let release = Event()
        s.scheduleTask {
            target.value = Context.current
            started.set()
            release.wait()
        }
        started.wait()
        // The target is blocked on `release` (cooperatively); one unblock
        // would wake it spuriously, so use a fresh running context instead:
        // unblock twice a context that is running (not blocked).
        let spinner = Box<Context?>(nil)
        let spinning = Event()
        let stop = Flag()   // polled by the spinner while this thread sets it
        s.scheduleTask {
            spinner.value = Context.current
            spinning.set()
            while !stop.isSet { Context.yield(); usleep(100) }
            try! Context.block()   // consume the early unblock
        }
        spinning.wait()
        try spinner.value!.unblock()
        XCTAssertThrowsError(try spinner.value!.unblock()) { errors.value.append($0 as! ConcRTError) }
        stop.set()
        release.set()
        try s.shutdown()
        XCTAssertEqual(errors.value, [.selfUnblock, .unbalancedUnblock])
        XCTAssertThrowsError(try Context.block()) { XCTAssertEqual($0 as? ConcRTError, .notOnContext) }
    }

    /// Two contexts on one VP that append and yield must interleave
    /// exactly: 0, 10, 1, 11, 2, 12 (or starting with 10). A yield that
    /// returned at once would log 0, 1, 2, 10, 11, 12.
    func testYieldLetsOtherContextsRun() throws {
        let s = try makeScheduler(1)
        let log = Box<[Int]>([])
        let arrived = Counter()
        let done = Counter()
        let allDone = Event()
        for i in 0..<2 {
            s.scheduleTask {
                // Both contexts must be runnable on the VP before either
                // appends. (Waking them with an Event set from this test's
                // thread is not enough: the first waiter can run all its
                // turns before the setter reaches the second one.)
                _ = arrived.add()
                while arrived.value < 2 { Context.yield() }
                for k in 0..<3 {
                    log.value.append(i * 10 + k)   // one VP: no data race
                    Context.yield()
                }
                if done.add() == 2 { allDone.set() }
            }
        }
        allDone.wait()
        try s.shutdown()
        // Either task may go first (the event wakes its waiters in any order).
        XCTAssertTrue(log.value == [0, 10, 1, 11, 2, 12] || log.value == [10, 0, 11, 1, 12, 2],
                      "contexts did not interleave at each yield: \(log.value)")
        XCTAssertGreaterThanOrEqual(s.statistics.yields, 6)
    }

    /// ConcRT's Context::Yield lets other work run, not only other runnable
    /// contexts: a context that loops on yield on the only VP must let a
    /// queued task start (here, the task that ends the loop).
    func testYieldLetsQueuedTasksStart() throws {
        let s = try makeScheduler(1)
        let flag = Atomic<Bool>(false)
        let yields = Counter()
        let finished = runAsTask(s) {
            s.scheduleTask { flag.store(true, ordering: .releasing) }   // queued on this VP's deque
            while !flag.load(ordering: .acquiring) && yields.value < 100_000 {
                Context.yield()
                yields.add()
            }
        }
        finished.wait()
        try s.shutdown()
        XCTAssertTrue(flag.load(ordering: .acquiring), "the queued task never ran while its VP's only context yielded")
        XCTAssertLessThanOrEqual(yields.value, 2)
    }

    /// Two contexts waking each other through events (directed switches on
    /// one VP) must not starve a context that yields: the ring gets a turn
    /// every few runnext takes. Without that rule the yielder never runs
    /// again and the pair never stops.
    func testPingPongPairDoesNotStarveOthers() throws {
        let s = try makeScheduler(1)
        let a = Event(), b = Event(), pairDone = Event(), yielderDone = Event()
        let stop = Atomic<Bool>(false)
        let rounds = Counter()
        s.scheduleTask {
            while !stop.load(ordering: .relaxed) { b.set(); a.wait(); a.reset(); rounds.add() }
            b.set()
            pairDone.set()
        }
        s.scheduleTask {
            while !stop.load(ordering: .relaxed) { b.wait(); b.reset(); a.set() }
            a.set()
        }
        s.scheduleTask {
            // Starts once the pair is running, then needs 200 turns.
            for _ in 0..<200 { Context.yield() }
            stop.store(true, ordering: .relaxed)
            yielderDone.set()
        }
        XCTAssertTrue(yielderDone.wait(timeout: .seconds(30)), "a yielding context starved behind a ping-pong pair")
        XCTAssertTrue(pairDone.wait(timeout: .seconds(30)))
        XCTAssertGreaterThan(rounds.value, 0)
        try s.shutdown(timeout: .seconds(10))
    }

    func testOversubscribeAddsAVirtualProcessor() throws {
        let s = try makeScheduler(1)
        let ran = Event()
        s.run {
            try! Context.oversubscribe(true)
            // This context now holds its VP with a non-UMS blocking wait;
            // the extra VP runs the task meanwhile.
            s.scheduleTask { ran.set() }
            var spins = 0
            while !ran.isSet && spins < 5_000 { usleep(1000); spins += 1 }
            try! Context.oversubscribe(false)
        }
        XCTAssertTrue(ran.isSet)
        XCTAssertThrowsError(try s.run { () throws(ConcRTError) in try Context.oversubscribe(false) }) {
            XCTAssertEqual($0 as? ConcRTError, .unbalancedOversubscription)
        }
        try s.shutdown()
    }

    /// 100,000 contexts blocked on events at once; pthreads stay bounded.
    /// Under ThreadSanitizer 5,000 and under AddressSanitizer 10,000: each
    /// context is a sanitizer fiber (a TSan thread state; an ASan fake
    /// stack while it is blocked), and 100,000 of them exhaust
    /// vm.max_map_count (both used to die here, out of memory).
    func testHundredThousandBlockedContexts() throws {
        let n = Sanitizer.scaled(longMode ? 200_000 : 100_000, underTSan: 5_000, underASan: 10_000)
        let s = try makeScheduler(2, stack: 64 * 1024)
        let gate = Event()
        let arrived = Counter()
        let finished = Counter()
        let allArrived = Event()
        let allFinished = Event()
        for _ in 0..<n {
            s.scheduleTask {
                if arrived.add() == n { allArrived.set() }
                gate.wait()
                if finished.add() == n { allFinished.set() }
            }
        }
        XCTAssertTrue(allArrived.wait(timeout: .seconds(120)))
        let threads = try ResourceCounts.now().threads   // throws when /proc is unreadable
        XCTAssertLessThan(threads, 64, "pthreads stay bounded with \(n) blocked contexts")
        XCTAssertGreaterThanOrEqual(s.statistics.liveContexts, n)
        gate.set()
        XCTAssertTrue(allFinished.wait(timeout: .seconds(120)))
        try s.shutdown()
        XCTAssertEqual(s.statistics.liveContexts, 0)
    }
}
