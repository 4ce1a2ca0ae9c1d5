import CSQLite3
import CSupport
import Foundation
import Synchronization
import TestSupport
import UMS
import XCTest
@testable import ConcRT

/// Unwrapped blocking in a real C library (issue #10): libsqlite3, called
/// directly, not through `Blocking`. SQLite's busy handler
/// (`sqlite3_busy_timeout`) waits for another connection's write lock with
/// plain sleeps the runtime is not told about; with
/// `detectUnwrappedBlocking` the monitor sees the thread asleep in the
/// kernel and starts a temporary virtual processor beside it.
final class UnwrappedSQLiteTests: XCTestCase {
    /// On one VP: task A holds the write lock (BEGIN IMMEDIATE plus an
    /// INSERT) and waits on an event; task B's INSERT on a second
    /// connection waits in SQLite's busy handler; task C, queued behind B on
    /// the same VP, sets A's event, and A commits, which lets B's INSERT
    /// through.
    ///
    /// Why it can fail: C can only run while B's step sleeps if something
    /// starts a second VP (the only one is B's, held by its sleeps). Without
    /// compensation C runs only after B's step gave up (SQLITE_BUSY after
    /// B's busy timeout, 10 s), so B's result is the failure, reached in
    /// bounded time; every wait below is bounded too.
    func testBusyHandlerSleepDoesNotHoldTheOnlyVirtualProcessor() throws {
        let dir = NSTemporaryDirectory() + "concrt-sqlite-\(getpid())-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/busy.db"
        do {
            let setup = try SQLiteConnection(path: path, busyTimeoutMs: 10_000)
            try setup.exec("PRAGMA journal_mode=WAL; CREATE TABLE t(who TEXT NOT NULL)")
        }
        let holder = try SQLiteConnection(path: path, busyTimeoutMs: 10_000)   // A's
        let waiter = try SQLiteConnection(path: path, busyTimeoutMs: 10_000)   // B's

        let s = try Scheduler(policy: SchedulerPolicy(minConcurrency: 1, maxConcurrency: 1, detectUnwrappedBlocking: true))
        let compensationsBefore = UMS.statistics.unwrappedCompensations
        let failures = Locked<[String]>([])
        let aRuns = Counter(), bRuns = Counter(), cRuns = Counter()
        let commitNow = Event(), aDone = Event(), bDone = Event(), cDone = Event()
        let bInStep = Flag(), bLeftStep = Flag()
        // Written by B before bDone.set() / by C before cDone.set(); read
        // after the test's wait on that event (its happens-before edge).
        let bResult = Box<Int32>(-1), bMessage = Box(""), bSamePThread = Box(false), bMs = Box<Int64>(0)
        let cSawBInStep = Box(false)

        s.scheduleTask {   // A
            aRuns.add()
            defer { aDone.set() }
            do {
                try holder.exec("BEGIN IMMEDIATE; INSERT INTO t VALUES('a')")
            } catch {
                failures.value.append("A could not take the write lock: \(error)")
                return
            }
            s.scheduleTask {   // B, queued behind A on the only VP
                bRuns.add()
                bInStep.set()
                s.scheduleTask {   // C, queued behind B: needs a VP while B's step sleeps
                    cRuns.add()
                    cSawBInStep.value = bInStep.isSet && !bLeftStep.isSet
                    commitNow.set()
                    cDone.set()
                }
                let me = pthread_self()
                let t0 = monotonicNow()
                do {
                    bResult.value = try waiter.stepOnce("INSERT INTO t VALUES('b')")   // unwrapped busy-handler sleeps
                    bMessage.value = waiter.lastMessage
                } catch {
                    bMessage.value = "\(error)"
                }
                bMs.value = (monotonicNow() - t0) / 1_000_000
                bLeftStep.set()
                bSamePThread.value = pthread_equal(me, pthread_self()) != 0
                bDone.set()
            }
            // A runtime wait: the VP goes to B. Bounded, so that a broken
            // scheduler cannot leave A (and shutdown) waiting for ever.
            guard commitNow.wait(timeout: .seconds(20)) else {
                failures.value.append("A: C never signalled the commit")
                try? holder.exec("ROLLBACK")
                return
            }
            do {
                try holder.exec("COMMIT")
            } catch {
                failures.value.append("A could not commit: \(error)")
            }
        }

        let finished = bDone.wait(timeout: .seconds(20)) && cDone.wait(timeout: .seconds(5)) && aDone.wait(timeout: .seconds(5))
        guard finished else {
            XCTFail("the tasks did not finish within 30 s (A \(aDone.isSet), B \(bDone.isSet), C \(cDone.isSet)): \(s.statistics)")
            // A timed-out shutdown stops nothing: the scheduler (and the
            // connections its tasks hold) is left to the process rather
            // than hang here.
            _ = try? s.shutdown(timeout: .seconds(1))
            return
        }
        XCTAssertEqual(failures.value, [])
        XCTAssertEqual(bResult.value, SQLITE_DONE,
                       "B's INSERT returned \(sqliteCodeName(bResult.value)) after \(bMs.value) ms (\(bMessage.value)): "
                       + "its busy handler's sleeps held the only VP, so C could not run and A never committed "
                       + "while B waited; compensations \(UMS.statistics.unwrappedCompensations - compensationsBefore): \(s.statistics)")
        XCTAssertTrue(cSawBInStep.value, "C ran while B was not in its step (B must have been waiting in the busy handler)")
        XCTAssertTrue(bSamePThread.value, "B changed pthread across its unwrapped step")
        XCTAssertEqual([aRuns.value, bRuns.value, cRuns.value], [1, 1, 1], "each task runs once")
        XCTAssertEqual(try holder.scalarInt("SELECT count(*) FROM t WHERE who = 'a'"), 1)
        XCTAssertEqual(try holder.scalarInt("SELECT count(*) FROM t WHERE who = 'b'"), 1)
        XCTAssertEqual(try holder.scalarInt("SELECT count(*) FROM t"), 2)
        XCTAssertGreaterThan(UMS.statistics.unwrappedCompensations, compensationsBefore, "\(UMS.statistics)")
        XCTAssertGreaterThan(s.statistics.compensations, 0, "\(s.statistics)")
        print("UnwrappedSQLiteTests: B's INSERT waited \(bMs.value) ms in SQLite's busy handler; "
              + "\(s.statistics.compensations) compensation(s)")
        // The temporary VP retires once B runs the runtime again (bounded wait).
        XCTAssertTrue(eventually { s.temporarySlotsInUse == 0 }, "the compensation's temporary VP never retired: \(s.statistics)")
        try s.shutdown(timeout: .seconds(30))
    }
}
