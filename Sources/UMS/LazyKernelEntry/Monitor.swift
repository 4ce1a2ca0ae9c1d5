import CSupport
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The UMS monitor: one pthread per process that watches primaries with a
/// ``UMSRetakeHandler`` and retakes those stuck in a blocking call (see
/// `KernelCallWord.swift` for the word it CASes). [Go's sysmon]
///
/// Ticks: while some primary is in a call, every `tick` (half the
/// smallest registered threshold, at least 10 µs), backing off by doubling
/// up to 1 ms while nothing is retaken (a call the handler declines to
/// retake costs the monitor a few loads per tick), and back to the short
/// tick after a retake. While no primary is in a call it backs off to
/// 10 ms, then sleeps on its futex (at most 100 ms at a time); the next
/// call entry that sees it asleep wakes it (``noteKernelEntry()``: a relaxed
/// load on the call path, a futex wake only on the first call after a quiet
/// spell). A call that enters while the monitor falls asleep is seen at the
/// latest when the 100 ms sleep ends: a late retake, never a lost call.
///
/// The registry is under a lock; handler methods are called with it held,
/// so a handler must not register or unregister primaries synchronously
/// (starting a pthread that does so later is fine).
final class UMSMonitor: @unchecked Sendable {
    // @unchecked Sendable: `entries` and `started` under `lock`; `sleeping`
    // atomic; the futex word is only touched through futex calls and
    // atomic C helpers; per-entry observation fields are monitor-owned.

    static let shared = UMSMonitor()

    /// Monitor-side record of one primary.
    final class Entry: @unchecked Sendable {
        // @unchecked Sendable: `primary` and `handler` are immutable; the
        // observation fields are touched only by the monitor thread.
        unowned(unsafe) let primary: UMSPrimary
        let handler: any UMSRetakeHandler
        let thresholdNanoseconds: Int64
        var lastWord: UInt64 = .max
        var lastChange: Int64 = 0

        init(primary: UMSPrimary, handler: any UMSRetakeHandler, thresholdNanoseconds: Int64) {
            self.primary = primary
            self.handler = handler
            self.thresholdNanoseconds = thresholdNanoseconds
        }
    }

    private let lock = MigrationSafeMutex<Void>(())
    private var entries: [Entry] = []
    private var started = false
    /// True while the monitor sleeps untimed (up to 100 ms). Relaxed: a
    /// missed wake only delays a retake (see the type's doc).
    private let sleeping = Atomic<Bool>(false)
    private let wakeWord: UnsafeMutablePointer<UInt32>

    /// Statistics (relaxed, independent counters).
    let retakes = Atomic<Int>(0)
    let declinedNoReplacement = Atomic<Int>(0)
    let ticks = Atomic<Int>(0)

    private init() {
        wakeWord = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
        wakeWord.initialize(to: 0)
    }

    /// Adds a primary; starts the monitor pthread on first use.
    func register(_ p: UMSPrimary, handler: any UMSRetakeHandler, threshold: Duration) throws(UMSError) -> Entry {
        let ns = max(1_000, threshold.saturatingNanoseconds)
        let e = Entry(primary: p, handler: handler, thresholdNanoseconds: ns)
        var startError: Int32 = 0
        lock.withLock { _ in
            if !started {
                startError = startThread()
                if startError != 0 { return }
                started = true
            }
            entries.append(e)
        }
        if startError != 0 { throw .systemCallFailed(call: "pthread_create (UMS monitor)", errno: startError) }
        wake()
        return e
    }

    func unregister(_ e: Entry) {
        lock.withLock { _ in entries.removeAll { $0 === e } }
    }

    /// Called by every inline blocking call as it enters: wakes the monitor
    /// if it sleeps untimed.
    @inline(__always)
    func noteKernelEntry() {
        if sleeping.load(ordering: .relaxed) { wake() }
    }

    private func wake() {
        if sleeping.exchange(false, ordering: .relaxed) {
            csup_u32_store_release(wakeWord, csup_u32_load_acquire(wakeWord) &+ 1)
            _ = csup_futex_wake(wakeWord, 1)
        }
    }

    private func startThread() -> Int32 {
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        defer { pthread_attr_destroy(&attr) }
        pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
        var tid = pthread_t()
        // Why this is sound: the monitor is a process-wide singleton that
        // is never deallocated.
        let arg = Unmanaged.passUnretained(self).toOpaque()
        return pthread_create(&tid, &attr, monitorEntry, arg)
    }

    fileprivate func main() {
        var interval: Int64 = 10_000
        var quiet = 0
        // Read before `sleeping` is set: a wake after that bumps the word
        // past `seen`, so the wait below returns at once.
        var seen = csup_u32_load_acquire(wakeWord)
        while true {
            if sleeping.load(ordering: .relaxed) {
                _ = csup_futex_wait(wakeWord, seen, 100_000_000)
                sleeping.store(false, ordering: .relaxed)
                interval = 10_000
                quiet = 0
            } else {
                _ = csup_futex_wait(wakeWord, seen, interval)
            }
            seen = csup_u32_load_acquire(wakeWord)
            ticks.wrappingAdd(1, ordering: .relaxed)
            let (inKernel, retook, shortest) = scan()
            let base = max(10_000, shortest / 2)
            if retook {
                interval = base
                quiet = 0
            } else if inKernel {
                interval = min(max(interval, base) * 2, 1_000_000)
                quiet = 0
            } else {
                interval = min(max(interval, base) * 2, 10_000_000)
                quiet += 1
                // Quiet for a while: sleep until the next call entry, after
                // one more look for a call that entered meanwhile.
                if quiet >= 4 && interval >= 10_000_000 {
                    sleeping.store(true, ordering: .relaxed)
                    if anyInKernel() { sleeping.store(false, ordering: .relaxed) }
                }
            }
        }
    }

    private func anyInKernel() -> Bool {
        lock.withLock { _ in
            entries.contains { KernelCallWord.state($0.primary.kernelCall.load(ordering: .acquiring)) == KernelCallWord.inKernel }
        }
    }

    /// One look at every registered primary. Returns whether some primary
    /// is in a call, whether one was retaken, and the smallest threshold.
    private func scan() -> (inKernel: Bool, retook: Bool, shortest: Int64) {
        let now = csup_monotonic_ns()
        var inKernel = false, retook = false
        var shortest = Int64.max
        lock.withLock { _ in
            for e in entries {
                shortest = min(shortest, e.thresholdNanoseconds)
                // Acquire: pairs with the caller's release store at entry.
                let w = e.primary.kernelCall.load(ordering: .acquiring)
                guard KernelCallWord.state(w) == KernelCallWord.inKernel else {
                    e.lastWord = w
                    continue
                }
                inKernel = true
                if w != e.lastWord {
                    e.lastWord = w
                    e.lastChange = now
                    continue
                }
                if now - e.lastChange < e.thresholdNanoseconds { continue }
                guard e.handler.shouldRetake() else { continue }
                guard e.handler.reserveReplacement() else {
                    declinedNoReplacement.wrappingAdd(1, ordering: .relaxed)
                    e.lastChange = now   // try again after another threshold
                    continue
                }
                let retaken = KernelCallWord.make(sequence: KernelCallWord.sequence(w), state: KernelCallWord.retaken)
                // Acquire-release: the caller's leave-CAS on the same value
                // either wins (then this fails) or sees `retaken`.
                if e.primary.kernelCall.compareExchange(expected: w, desired: retaken,
                                                       ordering: .acquiringAndReleasing).exchanged {
                    retakes.wrappingAdd(1, ordering: .relaxed)
                    e.handler.startReplacement()
                    retook = true
                } else {
                    e.handler.releaseReplacement()
                }
            }
        }
        return (inKernel, retook, shortest == .max ? 20_000 : shortest)
    }
}

private let monitorEntry: @convention(c) (UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? = { raw in
    // Why this is sound: `raw` is the never-deallocated singleton.
    Unmanaged<UMSMonitor>.fromOpaque(raw!).takeUnretainedValue().main()
    return nil
}
