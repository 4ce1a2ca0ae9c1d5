import ConcRT
import Foundation
import Synchronization
import TestSupport

/// Counts, per id, how many times a `Tracked` was destroyed.
final class Ledger: @unchecked Sendable {
    // @unchecked Sendable: `counts` is a fixed array of Atomics.
    let n: Int
    let counts: UnsafeMutablePointer<Atomic<Int>>
    init(_ n: Int) {
        self.n = n
        counts = .allocate(capacity: n)
        for i in 0..<n { (counts + i).initialize(to: Atomic(0)) }
    }
    deinit { counts.deallocate() }
    func destroyed(_ id: Int) { counts[id].wrappingAdd(1, ordering: .relaxed) }
    /// Ids destroyed other than exactly once (first few), and their number.
    func notExactlyOnce() -> (count: Int, sample: [(id: Int, times: Int)]) {
        var bad: [(Int, Int)] = []
        var k = 0
        for i in 0..<n {
            let c = counts[i].load(ordering: .acquiring)
            if c != 1 { k += 1; if bad.count < 5 { bad.append((i, c)) } }
        }
        return (k, bad)
    }
    var totalDestroyed: Int { (0..<n).reduce(0) { $0 + counts[$1].load(ordering: .acquiring) } }
}

/// An element with identity whose deinit is recorded in a Ledger.
final class Tracked: @unchecked Sendable {
    let id: Int
    let ledger: Ledger
    init(_ id: Int, _ ledger: Ledger) { self.id = id; self.ledger = ledger }
    deinit { ledger.destroyed(id) }
}

/// One flag per id: `mark` returns the previous count (0 the first time).
final class SeenSet: @unchecked Sendable {
    let n: Int
    let flags: UnsafeMutablePointer<Atomic<Int>>
    init(_ n: Int) {
        self.n = n
        flags = .allocate(capacity: n)
        for i in 0..<n { (flags + i).initialize(to: Atomic(0)) }
    }
    deinit { flags.deallocate() }
    @discardableResult func mark(_ i: Int) -> Int { flags[i].wrappingAdd(1, ordering: .relaxed).oldValue }
    func count(_ i: Int) -> Int { flags[i].load(ordering: .acquiring) }
}

/// Stress size: `base`, times 20 under LONG=1, `reduced` under a sanitizer
/// (which slows the 1,000-context hammers about tenfold).
func stressScale(_ base: Int, underTSan reduced: Int) -> Int {
    longMode ? base * 20 : Sanitizer.scaled(base, underTSan: reduced, underASan: reduced)
}

/// Runs `work(worker, inContext)` from `contexts` ConcRT tasks on a scheduler
/// of `vps` virtual processors and from `pthreads` plain pthreads, all at
/// once; returns when every one has finished (bounded: 120 s).
func hammer(contexts: Int = 1000, pthreads: Int = 4, vps: Int = 3,
            _ work: @escaping @Sendable (_ worker: Int, _ inContext: Bool) -> Void) throws -> Bool {
    let s = try Scheduler(policy: SchedulerPolicy(minConcurrency: vps, maxConcurrency: vps))
    let remaining = Countdown(contexts + pthreads)
    let done = Event()
    for w in 0..<contexts {
        s.scheduleTask {
            work(w, true)
            if remaining.arrive() { done.set() }
        }
    }
    for p in 0..<pthreads {
        let t = Thread {
            work(contexts + p, false)
            if remaining.arrive() { done.set() }
        }
        t.stackSize = 1 << 20
        t.start()
    }
    let finished = done.wait(timeout: .seconds(120))
    try s.shutdown(timeout: .seconds(30))
    return finished
}

/// What a worker does now and then: in a context, yield or block (the
/// context may resume on another pthread); on a pthread, yield the CPU.
func perturb(_ step: Int, inContext: Bool) {
    if inContext {
        if step % 7 == 0 { try? Blocking.sleep(for: .microseconds(20)) } else { Context.yield() }
    } else {
        sched_yield()
    }
}

/// A countdown whose last arrival has seen every other arrival's writes
/// (acq_rel decrements).
final class Countdown: Sendable {
    let v: Atomic<Int>
    init(_ n: Int) { v = Atomic(n) }
    /// True for the last arrival.
    func arrive() -> Bool { v.wrappingSubtract(1, ordering: .acquiringAndReleasing).newValue == 0 }
}
