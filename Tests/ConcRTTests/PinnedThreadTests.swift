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

/// `Context.withPinnedThread` (Go's LockOSThread): a context keeps its
/// pthread across cooperative waits, yields and blocking calls, and a
/// pinned blocking call does not hold the only VP while other work waits.
final class PinnedThreadTests: XCTestCase {
    /// An error-checking pthread mutex is held across waits, yields, a
    /// timer sleep and an inline blocking call, on 2 VPs kept busy by
    /// tasks that wake the pinned contexts: every unlock is by the owner
    /// (no EPERM), and no pinned context ever changes pthread.
    func testPinnedContextsKeepTheirPThread() throws {
        let s = try Scheduler(policy: SchedulerPolicy(minConcurrency: 2, maxConcurrency: 2, useIORing: false))
        let contexts = 8, rounds = Sanitizer.scaled(longMode ? 400 : 60, underTSan: 20)
        let failures = MigrationSafeMutex<[String]>([])
        let done = Counter(), allDone = Event()
        let migratedUnpinned = Counter()
        for k in 0..<contexts {
            s.scheduleTask {
                let m = ErrorCheckingMutex()
                Context.withPinnedThread {
                    XCTAssertTrue(Context.isPinnedToThread)
                    let me = pthread_self()
                    for r in 0..<rounds {
                        if pthread_mutex_lock(m.pointer) != 0 { failures.withLock { $0.append("ctx \(k): lock") } }
                        let e = Event()
                        s.scheduleTask { e.set() }             // wakes us from another task
                        e.wait()                                // cooperative wait
                        Context.yield()
                        switch r % 3 {
                        case 0: try? Blocking.sleep(for: .microseconds(50))
                        case 1: Blocking.call { _ = usleep(30) }   // inline, not retaken while pinned
                        default: break
                        }
                        let rc = pthread_mutex_unlock(m.pointer)
                        if rc != 0 { failures.withLock { $0.append("ctx \(k) round \(r): unlock \(rc) (EPERM = another pthread)") } }
                        if pthread_equal(me, pthread_self()) == 0 {
                            failures.withLock { $0.append("ctx \(k) round \(r): changed pthread while pinned") }
                        }
                    }
                }
                XCTAssertFalse(Context.isPinnedToThread)
                // The same waits unpinned: a context may move (counted, not
                // required; it shows the pin is what kept them in place).
                let me = pthread_self()
                for _ in 0..<rounds {
                    let e = Event()
                    s.scheduleTask { e.set() }
                    e.wait()
                    Context.yield()
                }
                if pthread_equal(me, pthread_self()) == 0 { migratedUnpinned.add() }
                if done.add() == contexts { allDone.set() }
            }
        }
        XCTAssertTrue(allDone.wait(timeout: .seconds(60)), "\(done.value) of \(contexts) done; \(s.statistics)")
        XCTAssertEqual(failures.withLock { $0 }, [])
        print("PinnedThreadTests: \(migratedUnpinned.value) of \(contexts) contexts changed pthread once unpinned")
        try s.shutdown(timeout: .seconds(30))
    }

    /// With one VP and no io_uring, a pinned context's inline read on an
    /// empty pipe is not retaken (it must keep its pthread), yet the task
    /// that writes the pipe still runs: the scheduler compensates with a
    /// temporary VP.
    func testPinnedBlockingCallDoesNotHoldTheOnlyVirtualProcessor() throws {
        let s = try Scheduler(policy: SchedulerPolicy(minConcurrency: 1, maxConcurrency: 1, useIORing: false))
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        defer { close(fds[0]); close(fds[1]) }
        let r = fds[0], w = fds[1]
        let before = UMS.statistics.wrappedCallCompensations
        let got = Box<Int>(-1), samePThread = Box(false)
        let reader = runAsTask(s) {
            Context.withPinnedThread {
                s.scheduleTask {   // queued behind the reader on this VP's deque
                    var b: UInt8 = 7
                    _ = Glibc.write(w, &b, 1)
                }
                let me = pthread_self()
                var b: UInt8 = 0
                let n = (try? withUnsafeMutableBytes(of: &b) { try Blocking.read(r, into: $0) }) ?? -1
                samePThread.value = pthread_equal(me, pthread_self()) != 0
                got.value = n == 1 ? Int(b) : -2
            }
        }
        XCTAssertTrue(reader.wait(timeout: .seconds(20)), "the pinned read held the only VP: \(s.statistics)")
        XCTAssertEqual(got.value, 7)
        XCTAssertTrue(samePThread.value)
        XCTAssertEqual(s.statistics.retakes, 0, "a pinned call was retaken: \(s.statistics)")
        XCTAssertGreaterThan(UMS.statistics.wrappedCallCompensations, before, "\(s.statistics)")
        let deadline = monotonicNow() + 10_000_000_000
        while s.temporarySlotsInUse > 0 && monotonicNow() < deadline { usleep(1_000) }
        XCTAssertEqual(s.temporarySlotsInUse, 0)
        try s.shutdown()
    }

    /// Outside a context the body just runs.
    func testOutsideAContextItJustRuns() {
        XCTAssertEqual(Context.withPinnedThread { 42 }, 42)
        XCTAssertFalse(Context.isPinnedToThread)
    }
}

/// A PTHREAD_MUTEX_ERRORCHECK mutex: unlocking from a pthread that does
/// not own it returns EPERM instead of corrupting it.
final class ErrorCheckingMutex: @unchecked Sendable {
    let pointer = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    init() {
        var attr = pthread_mutexattr_t()
        pthread_mutexattr_init(&attr)
        pthread_mutexattr_settype(&attr, Int32(PTHREAD_MUTEX_ERRORCHECK))
        pthread_mutex_init(pointer, &attr)
        pthread_mutexattr_destroy(&attr)
    }
    deinit { pthread_mutex_destroy(pointer); pointer.deallocate() }
}
