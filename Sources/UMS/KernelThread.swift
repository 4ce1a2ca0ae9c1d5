import CSupport
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A kernel thread (KT): a real pthread that runs UMS threads' blocking
/// calls, parked on a futex in between.
///
/// Hand-off protocol (futex word `command`, in C memory so it has a stable
/// address; values idle, sleeping, run, exit):
///   - primary: `assigned = thread` (plain store), then
///     `old = exchange(command, run)` (acq_rel); futex_wake only when
///     `old == sleeping`, so a spinning KT costs the primary no syscall.
///   - KT, when idle: spins for up to `spinNanoseconds` watching `command`;
///     then CAS idle -> sleeping and futex_wait while it reads sleeping.
///     Waking a halted vCPU is what makes a futex wake slow on a VM (tens of
///     microseconds here); the spin keeps back-to-back calls off that path.
///   - KT, on `run`: the acquire load makes `assigned` and the thread's
///     `pendingCall` visible; run the call; store `command = idle`
///     (release); push itself on the pool's idle LIFO (release); queue the
///     thread on its completion list.
///   - pool shutdown: `exchange(command, exit)` + wake; the KT returns and
///     is joined.
/// The thread's registers were saved before the primary handed it over
/// (the switch returned first), and the KT never touches the context: the
/// call runs on the KT's own stack (8 MiB, so deep C libraries fit), with
/// the thread's Swift access set pushed on the KT while it runs.
final class KernelThread: @unchecked Sendable {
    // @unchecked Sendable: handed between pthreads only through the futex
    // protocol above.
    enum Command: UInt32 { case idle = 0, run = 1, exit = 2, sleeping = 3 }

    /// How long an idle KT watches its word before sleeping on the futex.
    static let spinNanoseconds: Int64 = 10_000

    /// C record: futex word and LIFO node (stable addresses).
    let shared: UnsafeMutablePointer<KTShared>
    var assigned: UMSThread?
    let carrier = Carrier(primary: nil)
    var pthread: pthread_t = pthread_t()
    unowned let pool: KernelThreadPool

    struct KTShared {
        var node = csup_lifo_node()
        var command: UInt32 = 0
    }

    init(pool: KernelThreadPool) {
        self.pool = pool
        shared = .allocate(capacity: 1)
        shared.initialize(to: KTShared())
        // Why this is sound: the node's item is this KT, which the pool keeps
        // alive (strong array) until shutdown joined its pthread.
        shared.pointee.node.item = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit {
        shared.deinitialize(count: 1)
        shared.deallocate()
    }

    var commandWord: UnsafeMutablePointer<UInt32> {
        // Why this is sound: `shared` is allocated for the KT's lifetime.
        UnsafeMutableRawPointer(shared).advanced(by: MemoryLayout<KTShared>.offset(of: \.command)!)
            .assumingMemoryBound(to: UInt32.self)
    }

    /// Primary side: hand `thread` (already switched out, state inKernel)
    /// to this idle KT.
    func start(_ thread: UMSThread) {
        thread.assertState(.inKernel, "KernelThread.start")
        assigned = thread
        if csup_u32_exchange_acq_rel(commandWord, Command.run.rawValue) == Command.sleeping.rawValue {
            csup_futex_wake(commandWord, 1)
        }
    }

    func stop() {
        _ = csup_u32_exchange_acq_rel(commandWord, Command.exit.rawValue)
        csup_futex_wake(commandWord, 1)
    }

    /// Waits for a command other than idle: spin, then sleep. Returns run
    /// or exit.
    private func awaitCommand() -> Command {
        var cmd = csup_u32_load_acquire(commandWord)
        if cmd == Command.idle.rawValue {
            let deadline = csup_monotonic_ns() + KernelThread.spinNanoseconds
            var spins = 0
            while cmd == Command.idle.rawValue {
                csup_cpu_relax()
                spins += 1
                if spins & 63 == 0 && csup_monotonic_ns() > deadline { break }
                cmd = csup_u32_load_acquire(commandWord)
            }
        }
        while cmd == Command.idle.rawValue || cmd == Command.sleeping.rawValue {
            var expected = Command.idle.rawValue
            if cmd == Command.idle.rawValue, !csup_u32_cas_acq_rel(commandWord, &expected, Command.sleeping.rawValue) {
                cmd = expected
                continue
            }
            _ = csup_futex_wait(commandWord, Command.sleeping.rawValue, -1)
            cmd = csup_u32_load_acquire(commandWord)
        }
        guard let command = Command(rawValue: cmd) else {
            preconditionFailure("KernelThread.awaitCommand: bad command word \(cmd)")
        }
        return command
    }

    /// The KT's pthread body.
    func main() {
        csup_tls_set_carrier(Unmanaged.passUnretained(carrier).toOpaque())
        loop: while true {
            switch awaitCommand() {
            case .run: runAssigned()
            case .exit: break loop
            case .idle, .sleeping:
                preconditionFailure("KernelThread.main: awaitCommand returned a waiting command")
            }
        }
        csup_tls_set_carrier(nil)
    }

    private func runAssigned() {
        guard let t = assigned else { preconditionFailure("KernelThread.runAssigned: woken to run with no thread assigned") }
        assigned = nil
        KernelThread.runCall(of: t, carrier: carrier)
        // Back to the pool before queuing the thread: if it blocks again at
        // once, this KT can take the call.
        csup_u32_store_release(commandWord, Command.idle.rawValue)
        pool.pushIdle(self)
        KernelThread.complete(t)
    }

    /// Runs a thread's pending call on the calling pthread, as its carrier.
    static func runCall(of t: UMSThread, carrier: Carrier) {
        let saved = carrier.thread
        carrier.thread = t
        csup_ctx_enter_access_set(t.ctx)
        // A context inside a Swift job lends its task's runtime slots (see
        // csup_swift_tls.h) for the call: task-locals read in the closure.
        csup_ctx_swift_tls_enter(t.ctx)
        if let call = t.pendingCall {
            t.pendingCall = nil
            call()
        }
        csup_ctx_swift_tls_exit(t.ctx)
        csup_ctx_exit_access_set(t.ctx)
        carrier.thread = saved
    }

    /// Queues a thread whose call returned on its completion list.
    static func complete(_ t: UMSThread) {
        // Holds the list across the enqueue: once queued, the thread may run,
        // terminate and drop the last reference to the list.
        let list = t.completionList!
        list.inKernelCount.wrappingSubtract(1, ordering: .relaxed)
        // inKernel -> queued. Release: the call's effects and the cleared
        // pendingCall are visible to whoever dequeues the thread.
        t.move(from: .inKernel, to: .queued, "KernelThread.complete")
        list.enqueue(t)
        let delay = Counters.injectedCompletionDelayNanoseconds.load(ordering: .relaxed)
        if delay > 0 { _ = csup_sys_nanosleep(Int64(delay)) }
        // This may be the list's last reference (the thread can terminate
        // and everyone else drop the list before we get here): then the
        // list's deinit, and its pool's trim, run on this KT (see trim).
        withExtendedLifetime(list) {}
    }
}

/// The pool of idle kernel threads of one completion list.
///
/// Idle KTs sit on a lock-free LIFO (csup_lifo: tagged Treiber stack), so
/// taking one on a blocking call and returning it take no lock. The `all`
/// array (under a mutex) only serves creation and shutdown.
final class KernelThreadPool: @unchecked Sendable {
    // @unchecked Sendable: `idle` is a lock-free C structure; `all` is
    // guarded by `lock`; counters are atomics.
    private let idle: UnsafeMutablePointer<csup_lifo>
    // Not Synchronization.Mutex: contended, it hands over inside the kernel
    // (PI futex), which ThreadSanitizer cannot see; csup_lock's atomics it can.
    private let lock = MigrationSafeMutex<[KernelThread]>([])
    private let idleCounter = Atomic<Int>(0)

    init() {
        idle = .allocate(capacity: 1)
        csup_lifo_init(idle)
    }

    deinit {
        idle.deallocate()
    }

    var idleCount: Int { idleCounter.load(ordering: .relaxed) }

    func reserve(_ n: Int) throws(UMSError) {
        for _ in 0..<max(0, n) {
            let kt = try spawn()
            pushIdle(kt)
        }
    }

    /// An idle KT, or a new one. Throws when pthread_create fails.
    func acquire() throws(UMSError) -> KernelThread {
        if let node = csup_lifo_pop(idle) {
            idleCounter.wrappingSubtract(1, ordering: .relaxed)
            // Why this is sound: items on the LIFO are KTs kept alive by `all`.
            return Unmanaged<KernelThread>.fromOpaque(node.pointee.item).takeUnretainedValue()
        }
        return try spawn()
    }

    func pushIdle(_ kt: KernelThread) {
        idleCounter.wrappingAdd(1, ordering: .relaxed)
        // Why this is sound: the node lives in kt.shared, allocated until kt
        // deinitialises, which is after shutdown removed it from the LIFO.
        csup_lifo_push(idle, UnsafeMutableRawPointer(kt.shared).assumingMemoryBound(to: csup_lifo_node.self))
    }

    private func spawn() throws(UMSError) -> KernelThread {
        let kt = KernelThread(pool: self)
        if Counters.injectedKernelThreadFailures.load(ordering: .relaxed) > 0,
           Counters.injectedKernelThreadFailures.wrappingSubtract(1, ordering: .relaxed).oldValue > 0 {
            throw .kernelThreadCreationFailed(errno: EAGAIN)
        }
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        defer { pthread_attr_destroy(&attr) }
        // Why this is sound: the retained KT is released by ktEntry when the
        // pthread ends (or right here if creation fails).
        let arg = Unmanaged.passRetained(kt).toOpaque()
        var tid = pthread_t()
        let err = pthread_create(&tid, &attr, ktEntry, arg)
        if err != 0 {
            Unmanaged<KernelThread>.fromOpaque(arg).release()
            throw .kernelThreadCreationFailed(errno: err)
        }
        kt.pthread = tid
        lock.withLock { $0.append(kt) }
        Counters.bump(Counters.kernelThreadsCreated)
        Counters.kernelThreadsLive.wrappingAdd(1, ordering: .relaxed)
        return kt
    }

    /// Stops and joins the KTs that are idle now.
    func trim() {
        var stopped: [KernelThread] = []
        while let node = csup_lifo_pop(idle) {
            idleCounter.wrappingSubtract(1, ordering: .relaxed)
            stopped.append(Unmanaged<KernelThread>.fromOpaque(node.pointee.item).takeUnretainedValue())
        }
        for kt in stopped {
            kt.stop()
            if pthread_equal(kt.pthread, pthread_self()) != 0 {
                // The list's last reference was released on this KT, inside
                // KernelThread.complete (it had pushed itself idle first).
                // It cannot join itself (EDEADLK: it used to stay unjoined,
                // its 8 MiB stack leaked; TSan reported a thread leak).
                // Detached, it ends on its own: back in its loop it reads
                // `exit`. Why this is sound: it no longer touches the pool
                // (unowned, gone after this deinit) on that way out.
                let rc = pthread_detach(kt.pthread)
                precondition(rc == 0, "KernelThreadPool.trim: pthread_detach failed (errno \(rc))")
                Counters.bump(Counters.kernelThreadsSelfDetached)
            } else {
                let rc = pthread_join(kt.pthread, nil)
                precondition(rc == 0, "KernelThreadPool.trim: pthread_join failed (errno \(rc))")
            }
            Counters.kernelThreadsLive.wrappingSubtract(1, ordering: .relaxed)
        }
        let ids = Set(stopped.map { ObjectIdentifier($0) })
        lock.withLock { all in all.removeAll { ids.contains(ObjectIdentifier($0)) } }
    }
}

private let ktEntry: @convention(c) (UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? = { raw in
    let kt = Unmanaged<KernelThread>.fromOpaque(raw!).takeRetainedValue()
    kt.main()
    return nil
}
