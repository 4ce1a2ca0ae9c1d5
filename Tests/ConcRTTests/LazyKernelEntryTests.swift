import TestSupport
import Foundation
import Synchronization
import XCTest
@testable import ConcRT
import CSupport
import UMS

/// Lazy kernel entry on a scheduler: wrapped calls run inline; the UMS
/// monitor retakes a VP whose call blocks while other work waits.
final class LazyKernelEntryTests: XCTestCase {
    /// A wrapped call that does not block stays on its VP's pthread and
    /// costs no retake and no kernel-thread hand-off.
    func testNonBlockingWrappedCallsStayInline() throws {
        let s = try makeScheduler(1, ring: false)
        let tids = Box<Set<Int64>>([])
        runAsTask(s) {
            for _ in 0..<1_000 {
                let tid = Blocking.call { csup_gettid() }
                tids.value.insert(tid)
            }
        }.wait()
        let st = s.statistics
        try s.shutdown()
        XCTAssertEqual(tids.value.count, 1, "inline calls ran on \(tids.value.count) pthreads")
        XCTAssertEqual(st.kernelBlocks, 0, "\(st)")
        XCTAssertEqual(st.retakes, 0, "\(st)")
    }

    /// With retakeAfter nil every call goes to a kernel thread (the
    /// Windows UMS shape).
    func testHandOffPolicyUsesKernelThreads() throws {
        let s = try Scheduler(policy: SchedulerPolicy(minConcurrency: 1, maxConcurrency: 1, retakeAfter: nil, useIORing: false))
        let main = Box<Int64>(0), inCall = Box<Int64>(0)
        runAsTask(s) {
            main.value = csup_gettid()
            inCall.value = Blocking.call { csup_gettid() }
        }.wait()
        let st = s.statistics
        try s.shutdown()
        XCTAssertNotEqual(main.value, inCall.value)
        XCTAssertEqual(st.kernelBlocks, 1, "\(st)")
    }

    /// A blocked read on the only VP with another task queued: the monitor
    /// retakes the VP, the other task runs (and releases the reader), the
    /// reader gets its byte and errno-free result, and the retake shows.
    func testBlockedReadIsRetakenWhenOtherWorkWaits() throws {
        let s = try makeScheduler(1, ring: false, retake: true)
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        defer { close(fds[0]); close(fds[1]) }
        let r = fds[0], w = fds[1]
        let got = Box<Int>(-1)
        let reader = runAsTask(s) {
            var b: UInt8 = 0
            let n = try? withUnsafeMutableBytes(of: &b) { try Blocking.read(r, into: $0) }
            got.value = n == 1 ? Int(b) : -2
        }
        usleep(20_000)   // the reader is in its read, inline
        let writer = runAsTask(s) {
            var b: UInt8 = 77
            _ = Glibc.write(w, &b, 1)
        }
        XCTAssertTrue(writer.wait(timeout: .seconds(10)), "the only VP stayed with the blocked read: \(s.statistics)")
        XCTAssertTrue(reader.wait(timeout: .seconds(10)))
        XCTAssertEqual(got.value, 77)
        XCTAssertGreaterThanOrEqual(s.statistics.retakes, 1, "\(s.statistics)")
        try s.shutdown()
    }

    /// Wrapped calls that compute (5 x 30 ms of CPU inside Blocking.call)
    /// are not retaken although other work waits: they are not blocked, and
    /// a replacement pthread would only run beside them. The monitor counts
    /// them as computing, and one preempted on a loaded machine (little
    /// CPU over the window, but runnable in /proc) as well. (At most one
    /// retake is tolerated: a preempted thread's state can be read in the
    /// instant it sleeps on a page fault or a lock; without the checks all
    /// five are retaken.)
    /// A call that sleeps in the kernel is still retaken.
    func testComputingWrappedCallIsNotRetaken() throws {
        let s = try makeScheduler(1, ring: false, retake: true)
        let computingBefore = UMS.statistics.computingCallsLeftAlone
        for _ in 0..<5 {
            let started = Event()
            let spinner = runAsTask(s) {
                started.set()
                Blocking.call {
                    let end = csup_monotonic_ns() + 30_000_000
                    var x: UInt64 = 1
                    while csup_monotonic_ns() < end { x = x &* 6364136223846793005 &+ 1 }
                    blackHole(x)
                }
            }
            XCTAssertTrue(started.wait(timeout: .seconds(10)))
            let other = runAsTask(s) {}
            XCTAssertTrue(spinner.wait(timeout: .seconds(10)))
            XCTAssertTrue(other.wait(timeout: .seconds(10)))
        }
        XCTAssertLessThanOrEqual(s.statistics.retakes, 1, "computing calls were retaken: \(s.statistics)")
        XCTAssertGreaterThan(UMS.statistics.computingCallsLeftAlone, computingBefore, "\(UMS.statistics)")
        // A sleeping call on the same scheduler is still retaken.
        let sleeper = runAsTask(s) { _ = Blocking.call { usleep(200_000) } }
        usleep(20_000)
        let next = runAsTask(s) {}
        XCTAssertTrue(next.wait(timeout: .seconds(10)), "the only VP stayed with a sleeping call: \(s.statistics)")
        XCTAssertTrue(sleeper.wait(timeout: .seconds(10)))
        XCTAssertGreaterThanOrEqual(s.statistics.retakes, 1, "\(s.statistics)")
        try s.shutdown()
    }

    /// When no spare pthread can be had, the VP waits for the call (today's
    /// cost), the failure is counted, and nothing is lost.
    func testSpareCarrierFailureWaitsForTheCall() throws {
        let s = try makeScheduler(1, ring: false, retake: true)
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        defer { close(fds[0]); close(fds[1]) }
        let r = fds[0], w = fds[1]
        Scheduler._injectSpareCarrierFailures(1_000_000)
        defer { Scheduler._injectSpareCarrierFailures(0) }
        let got = Box<Int>(-1)
        let reader = runAsTask(s) {
            var b: UInt8 = 0
            let n = try? withUnsafeMutableBytes(of: &b) { try Blocking.read(r, into: $0) }
            got.value = n == 1 ? Int(b) : -2
        }
        usleep(20_000)
        let other = runAsTask(s) {}
        XCTAssertTrue(eventually { s.statistics.retakeCarrierFailures > 0 }, "\(s.statistics)")
        XCTAssertFalse(other.isSet, "the other task ran although no VP was free")
        var b: UInt8 = 5
        XCTAssertEqual(Glibc.write(w, &b, 1), 1)
        XCTAssertTrue(reader.wait(timeout: .seconds(10)))
        XCTAssertTrue(other.wait(timeout: .seconds(10)))
        XCTAssertEqual(got.value, 5)
        XCTAssertEqual(s.statistics.retakes, 0)
        Scheduler._injectSpareCarrierFailures(0)
        try s.shutdown()
    }

    /// Random mixes of inline calls that block (pipe reads released by
    /// other tasks), calls that do not, hand-offs (sleep) and failing
    /// calls, on 2 and 4 VPs: every task runs exactly once, every errno
    /// is right, and pthreads, descriptors and stacks return to baseline.
    func testRandomMixOn2VPs() throws { try randomMix(vps: 2) }
    func testRandomMixOn4VPs() throws { try randomMix(vps: 4) }

    private func randomMix(vps: Int) throws {
        let baseline = try ResourceCounts.now()
        do {
            let s = try makeScheduler(vps, ring: false)
            let pairs = longMode ? 2_000 : 300
            let t = PipePairs(pairs)
            var rng = TestRNG(seed: UInt64(vps))
            for i in 0..<pairs {
                let (r, w) = t.pipes[i]
                let kind = rng.below(4)
                let delayUs = UInt32(rng.below(2_000))
                // Reader: blocks inline until its writer writes.
                s.scheduleTask {
                    t.started(2 * i)
                    var b: UInt8 = 0
                    do {
                        let n = try withUnsafeMutableBytes(of: &b) { try Blocking.read(r, into: $0) }
                        if n != 1 || b != UInt8(truncatingIfNeeded: i) { t.fail("reader \(i): \(n) bytes, \(b)") }
                    } catch {
                        t.fail("reader \(i): \(error)")
                    }
                    t.finished()
                }
                // Writer: some work of a random kind first.
                s.scheduleTask {
                    t.started(2 * i + 1)
                    switch kind {
                    case 0: _ = Blocking.call { csup_gettid() }
                    case 1: try? Blocking.sleep(for: .microseconds(Int(delayUs)))
                    case 2:
                        do {
                            _ = try Blocking.read(-1, into: UnsafeMutableRawBufferPointer(start: nil, count: 0))
                            t.fail("writer \(i): read(-1) did not fail")
                        } catch let e as BlockingError {
                            if e.errno != EBADF { t.fail("writer \(i): errno \(e.errno), not EBADF") }
                        } catch {
                            t.fail("writer \(i): \(error)")
                        }
                    default: usleep(delayUs)   // unwrapped: holds its VP
                    }
                    var b = UInt8(truncatingIfNeeded: i)
                    do {
                        _ = try withUnsafeBytes(of: &b) { try Blocking.write(w, from: $0) }
                    } catch {
                        t.fail("writer \(i): \(error)")
                    }
                    t.finished()
                }
            }
            t.check(s)
            try s.shutdown(timeout: .seconds(30))
            t.close()
        }
        let (ok, last) = try ResourceCounts.settle(within: baseline)
        XCTAssertTrue(ok, "resources did not return to baseline \(baseline): \(last)")
    }
}

/// Unwrapped blocking: calls the runtime is not told about.
final class UnwrappedBlockingTests: XCTestCase {
    /// A plain read(2) on an empty pipe, with one VP, does not stop another
    /// task from running: the monitor sees the thread asleep in the kernel
    /// and starts a temporary VP beside it, which runs the other task (it
    /// releases the read). The reader keeps its pthread throughout, and the
    /// temporary VP retires once the reader runs again.
    func testUnwrappedReadDoesNotHoldTheOnlyVirtualProcessor() throws {
        let s = try Scheduler(policy: SchedulerPolicy(minConcurrency: 1, maxConcurrency: 1, detectUnwrappedBlocking: true))
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        defer { close(fds[0]); close(fds[1]) }
        let r = fds[0], w = fds[1]
        let before = UMS.statistics.unwrappedCompensations
        let got = Box<Int>(-1)
        let samePThread = Box(false)
        let reader = runAsTask(s) {
            s.scheduleTask {   // queued behind the reader on this VP's deque
                var b: UInt8 = 9
                _ = Glibc.write(w, &b, 1)
            }
            let me = pthread_self()
            var b: UInt8 = 0
            let n = Glibc.read(r, &b, 1)   // unwrapped
            samePThread.value = pthread_equal(me, pthread_self()) != 0
            got.value = n == 1 ? Int(b) : -2
        }
        XCTAssertTrue(reader.wait(timeout: .seconds(20)), "the unwrapped read held the only VP: \(s.statistics)")
        XCTAssertEqual(got.value, 9)
        XCTAssertTrue(samePThread.value, "the reader changed pthread across its unwrapped read")
        XCTAssertGreaterThan(UMS.statistics.unwrappedCompensations, before)
        XCTAssertGreaterThan(s.statistics.compensations, 0, "\(s.statistics)")
        // The temporary VP retires: its slot is free again (bounded wait).
        XCTAssertTrue(temporaryVPsRetire(s), "the compensation's temporary VP never retired: \(s.statistics)")
        try s.shutdown()
    }

    /// A pthread mutex held by a plain pthread: a task that blocks on it
    /// (unwrapped, in the kernel's futex) lets the only VP run the task
    /// that makes the holder let go.
    func testUnwrappedPthreadMutexWait() throws {
        let s = try Scheduler(policy: SchedulerPolicy(minConcurrency: 1, maxConcurrency: 1, detectUnwrappedBlocking: true))
        let mutex = PThreadMutexBox()
        let m = mutex
        let release = Event(), holding = Event(), holderDone = Event()
        runOnNewThread {
            pthread_mutex_lock(m.pointer)
            holding.set()
            release.wait()
            pthread_mutex_unlock(m.pointer)
            holderDone.set()
        }
        holding.wait()
        let locked = Box(false)
        let waiter = runAsTask(s) {
            s.scheduleTask { release.set() }   // needs the VP while we wait
            pthread_mutex_lock(m.pointer)
            locked.value = true
            pthread_mutex_unlock(m.pointer)    // same pthread: no runtime entry in between
        }
        XCTAssertTrue(waiter.wait(timeout: .seconds(20)), "the mutex wait held the only VP: \(s.statistics)")
        XCTAssertTrue(locked.value)
        holderDone.wait()
        try s.shutdown()
    }

    /// getaddrinfo("localhost") unwrapped on a context works (it may or may
    /// not block long enough to be retaken).
    func testUnwrappedGetaddrinfo() throws {
        let s = try Scheduler(policy: SchedulerPolicy(minConcurrency: 2, maxConcurrency: 2, detectUnwrappedBlocking: true))
        let rc = Box<Int32>(-1)
        runAsTask(s) {
            var res: UnsafeMutablePointer<addrinfo>?
            rc.value = getaddrinfo("localhost", "80", nil, &res)
            if let res { freeaddrinfo(res) }
        }.wait()
        XCTAssertEqual(rc.value, 0)
        try s.shutdown()
    }

    /// A spinning task (state R, CPU clock moving) is never retaken.
    func testBusyTaskIsNotRetaken() throws {
        let s = try Scheduler(policy: SchedulerPolicy(minConcurrency: 1, maxConcurrency: 1, detectUnwrappedBlocking: true))
        let before = UMS.statistics.unwrappedCompensations
        let spin = runAsTask(s) {
            s.scheduleTask {}   // other work waits the whole time
            let end = monotonicNow() + 200_000_000
            while monotonicNow() < end {}
        }
        spin.wait()
        XCTAssertEqual(s.statistics.retakes, 0, "\(s.statistics)")
        XCTAssertEqual(UMS.statistics.unwrappedCompensations, before)
        try s.shutdown()
    }
}

/// A pthread mutex on the heap, shareable with closures that run on other
/// threads (the mutex is the synchronization).
final class PThreadMutexBox: @unchecked Sendable {
    let pointer = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    init() { pthread_mutex_init(pointer, nil) }
    deinit { pthread_mutex_destroy(pointer); pointer.deallocate() }
}

/// Keeps a computed value alive so the optimizer cannot drop the loop.
@inline(never)
func blackHole(_ x: UInt64) {
    if x == 0x5EED { print("") }
}
