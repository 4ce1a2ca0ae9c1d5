import CSupport
import UMS
#if canImport(Glibc)
import Glibc
#endif

/// A failed blocking call: which call, and its errno.
public struct BlockingError: Error, Equatable, Sendable, CustomStringConvertible {
    public let call: String
    public let errno: Int32
    public init(call: String, errno: Int32) { self.call = call; self.errno = errno }
    public var description: String { "\(call): \(UMS.describe(errno: errno))" }
}

/// Blocking system calls that never cost the scheduler a CPU.
/// [ConcRT on UMS: a blocking call hands the virtual processor back]
///
/// Each call first tries without blocking where the kernel can say "would
/// block" (MSG_DONTWAIT for sockets, RWF_NOWAIT for reads and writes).
/// When the call would block:
/// - **ring path** (the default where io_uring works, Linux 6.7+): the
///   call is queued on the virtual processor's io_uring and the context
///   parks; the VP runs other work, submits its queued calls in one
///   `io_uring_enter`, and requeues the context when the completion comes
///   back. No kernel thread is involved. (UMS's syscall request and
///   completion queues.)
/// ``sleep(for:tolerance:)`` parks the context on the scheduler's timers
/// instead (no system call; coalesced with other timers).
/// - **lazy kernel-entry path** (io_uring unavailable or turned off, a
///   temporary VP, or calls that cannot be queued: ``call(_:)``, `open`,
///   `close`, a multi-descriptor `poll`): the call is made on the VP's
///   pthread, and the VP is handed to another pthread if it stays in the
///   kernel (``UMS/blockingCall(_:)``).
/// ``Scheduler/ioPath`` says which path a scheduler uses, and
/// ``SchedulerStatistics/ringOperations`` / ``SchedulerStatistics/ringFallbacks``
/// count them. EINTR is retried. A failure throws ``BlockingError`` with
/// the call's own errno.
///
/// Timeouts: socket timeouts set with `SO_RCVTIMEO` / `SO_SNDTIMEO` are
/// not seen by the ring path; pass `timeout:` instead (both paths honor
/// it, and throw ETIMEDOUT).
///
/// Outside a scheduler context (a plain pthread, or inside another
/// blocking call) the calls are simply made.
public enum Blocking {
    // MARK: The generic form

    /// Runs any blocking C library call (libpq, sqlite, getaddrinfo, ...)
    /// on the context's kernel thread. Read errno inside `body`.
    ///
    /// Inlinable, so that a call that does not block costs a few stores
    /// and two CASes, not a generic dispatch (`syscall` in ums-bench).
    @inlinable
    public static func call<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        let me = _noteCallEnter()
        defer { _noteCallExit(me) }
        return try UMS.blockingCall(handOff: false, body)
    }

    /// ``call(_:)``'s entry: names the call in the calling context's
    /// activity (snapshots, the watchdog) and traces it. Returns the
    /// context, unretained, or nil outside one.
    @usableFromInline @inline(never)
    static func _noteCallEnter() -> UnsafeMutableRawPointer? {
        guard let raw = UMSThread.currentOnPrimaryUserContext else { return nil }
        // Why this is sound: the thread's user context holds a +1 on the
        // context for as long as the thread can run, and this code runs on
        // it; nothing is retained.
        Unmanaged<Context>.fromOpaque(raw)._withUnsafeGuaranteedRef { me in
            me.noteKernelCall("call", fd: -1)
            me.traceKernel(.kernelEnter)
        }
        return raw
    }

    /// ``call(_:)``'s exit, for the context `_noteCallEnter` returned.
    @usableFromInline @inline(never)
    static func _noteCallExit(_ raw: UnsafeMutableRawPointer?) {
        guard let raw else { return }
        // Why this is sound: as in _noteCallEnter (the call may have moved
        // the context to another pthread; its +1 is the same).
        Unmanaged<Context>.fromOpaque(raw)._withUnsafeGuaranteedRef { me in
            me.noteKernelExit()
            me.traceKernel(.kernelExit)
        }
    }

    // MARK: Files and pipes

    /// read(2) into `buffer`. Returns the byte count (0 at end of file).
    public static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(BlockingError) -> Int {
        let base = buffer.baseAddress, n = buffer.count
        return try perform("read", fd: fd, nowait: { csup_sys_read_nowait(fd, base, n) },
                           ring: { csup_uring_read($0, $1, fd, base, n, -1) },
                           blocking: { csup_sys_read(fd, base, n) })
    }

    /// write(2) from `buffer`. Returns the byte count written (may be short).
    public static func write(_ fd: Int32, from buffer: UnsafeRawBufferPointer) throws(BlockingError) -> Int {
        let base = buffer.baseAddress, n = buffer.count
        return try perform("write", fd: fd, nowait: { csup_sys_write_nowait(fd, base, n) },
                           ring: { csup_uring_write($0, $1, fd, base, n, -1) },
                           blocking: { csup_sys_write(fd, base, n) })
    }

    /// Writes all of `buffer`, looping over short writes.
    public static func writeAll(_ fd: Int32, from buffer: UnsafeRawBufferPointer) throws(BlockingError) {
        var done = 0
        while done < buffer.count {
            done += try write(fd, from: UnsafeRawBufferPointer(rebasing: buffer[done...]))
        }
    }

    /// pread(2) at `offset`.
    public static func pread(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, offset: Int64) throws(BlockingError) -> Int {
        let base = buffer.baseAddress, n = buffer.count
        return try perform("pread", fd: fd, nowait: { csup_sys_pread_nowait(fd, base, n, offset) },
                           ring: { csup_uring_read($0, $1, fd, base, n, offset) },
                           blocking: { csup_sys_pread(fd, base, n, offset) })
    }

    /// pwrite(2) at `offset`.
    public static func pwrite(_ fd: Int32, from buffer: UnsafeRawBufferPointer, offset: Int64) throws(BlockingError) -> Int {
        let base = buffer.baseAddress, n = buffer.count
        return try perform("pwrite", fd: fd, nowait: { csup_sys_pwrite_nowait(fd, base, n, offset) },
                           ring: { csup_uring_write($0, $1, fd, base, n, offset) },
                           blocking: { csup_sys_pwrite(fd, base, n, offset) })
    }

    /// readv(2), or preadv(2) when `offset` >= 0. Returns the byte count.
    public static func readv(_ fd: Int32, _ iovecs: UnsafeBufferPointer<iovec>, offset: Int64 = -1) throws(BlockingError) -> Int {
        let v = UnsafeRawPointer(iovecs.baseAddress), n = Int32(iovecs.count)
        return try perform(offset < 0 ? "readv" : "preadv", fd: fd, nowait: { csup_sys_readv_nowait(fd, v, n, offset) },
                           ring: { csup_uring_readv($0, $1, fd, v, n, offset) },
                           blocking: { csup_sys_readv(fd, v, n, offset) })
    }

    /// writev(2), or pwritev(2) when `offset` >= 0. Returns the byte count
    /// written (may be short).
    public static func writev(_ fd: Int32, _ iovecs: UnsafeBufferPointer<iovec>, offset: Int64 = -1) throws(BlockingError) -> Int {
        let v = UnsafeRawPointer(iovecs.baseAddress), n = Int32(iovecs.count)
        return try perform(offset < 0 ? "writev" : "pwritev", fd: fd, nowait: { csup_sys_writev_nowait(fd, v, n, offset) },
                           ring: { csup_uring_writev($0, $1, fd, v, n, offset) },
                           blocking: { csup_sys_writev(fd, v, n, offset) })
    }

    /// open(2) (O_CLOEXEC is added). Returns the descriptor. Lazy kernel
    /// entry: an open that finds its path cached costs one system call on
    /// the VP; one that waits on the disk is retaken.
    public static func open(_ path: String, flags: Int32, mode: mode_t = 0o644) throws(BlockingError) -> Int32 {
        var fd = -1
        var failure: BlockingError?
        path.withCString { p in
            do {
                fd = try perform("open", fd: -1, nowait: nil, ring: nil,
                                 blocking: { csup_sys_open(p, flags, UInt32(mode)) })
            } catch {
                failure = BlockingError(call: "open(\(path))", errno: (error as? BlockingError)?.errno ?? EIO)
            }
        }
        if let failure { throw failure }
        return Int32(fd)
    }

    /// close(2). EINTR is not retried (the descriptor is gone either way).
    /// Lazy kernel entry (a close almost never waits).
    public static func close(_ fd: Int32) throws(BlockingError) {
        let r = UMS.blockingCall { csup_sys_close(fd) }
        if r.value < 0 && r.err != EINTR { throw BlockingError(call: "close", errno: r.err) }
    }

    /// fsync(2), or fdatasync(2) when `dataOnly`.
    public static func fsync(_ fd: Int32, dataOnly: Bool = false) throws(BlockingError) {
        _ = try perform(dataOnly ? "fdatasync" : "fsync", fd: fd, nowait: nil,
                        ring: { csup_uring_fsync($0, $1, fd, dataOnly ? 1 : 0) },
                        blocking: { dataOnly ? csup_sys_fdatasync(fd) : csup_sys_fsync(fd) })
    }

    // MARK: Sockets

    /// recv(2). Returns the byte count (0: the peer closed). With a
    /// `timeout`, throws ETIMEDOUT when no data came in time.
    public static func recv(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, flags: Int32 = 0,
                            timeout: Duration? = nil) throws(BlockingError) -> Int {
        let base = buffer.baseAddress, n = buffer.count
        return try performTimed("recv", fd: fd, events: Int16(csup_const_POLLIN()), timeout: timeout,
                                nowait: { csup_sys_recv(fd, base, n, flags | csup_const_MSG_DONTWAIT()) },
                                ring: { csup_uring_recv($0, $1, fd, base, n, flags, $2, $3) },
                                blocking: { csup_sys_recv(fd, base, n, flags) })
    }

    /// send(2) (MSG_NOSIGNAL is added). Returns the byte count sent. With a
    /// `timeout`, throws ETIMEDOUT when nothing could be sent in time.
    public static func send(_ fd: Int32, from buffer: UnsafeRawBufferPointer, flags: Int32 = 0,
                            timeout: Duration? = nil) throws(BlockingError) -> Int {
        let base = buffer.baseAddress, n = buffer.count
        let f = flags | csup_const_MSG_NOSIGNAL()
        return try performTimed("send", fd: fd, events: Int16(csup_const_POLLOUT()), timeout: timeout,
                                nowait: { csup_sys_send(fd, base, n, flags | csup_const_MSG_DONTWAIT()) },
                                ring: { csup_uring_send($0, $1, fd, base, n, f, $2, $3) },
                                blocking: { csup_sys_send(fd, base, n, flags) })
    }

    /// Sends all of `buffer`, looping over short sends.
    public static func sendAll(_ fd: Int32, from buffer: UnsafeRawBufferPointer, timeout: Duration? = nil) throws(BlockingError) {
        var done = 0
        while done < buffer.count {
            done += try send(fd, from: UnsafeRawBufferPointer(rebasing: buffer[done...]), timeout: timeout)
        }
    }

    /// accept4(2) (SOCK_CLOEXEC is added). Returns the new descriptor. With
    /// a `timeout`, throws ETIMEDOUT when no connection came in time.
    public static func accept(_ fd: Int32, flags: Int32 = 0, timeout: Duration? = nil) throws(BlockingError) -> Int32 {
        let f = flags | csup_const_SOCK_CLOEXEC()
        return Int32(try performTimed("accept", fd: fd, events: Int16(csup_const_POLLIN()), timeout: timeout,
                                      nowait: nil,
                                      ring: { csup_uring_accept($0, $1, fd, f, $2, $3) },
                                      blocking: { csup_sys_accept(fd, f) }))
    }

    /// connect(2) to `address` (a sockaddr of `length` bytes).
    public static func connect(_ fd: Int32, address: UnsafeRawPointer, length: UInt32) throws(BlockingError) {
        _ = try perform("connect", fd: fd, nowait: nil,
                        ring: { csup_uring_connect($0, $1, fd, address, length) },
                        blocking: { csup_sys_connect(fd, address, length) })
    }

    /// poll(2). A zero timeout polls without leaving the virtual processor;
    /// one descriptor goes through the ring, several through lazy kernel
    /// entry. A negative timeout waits for ever.
    public static func poll(_ fds: UnsafeMutablePointer<pollfd>, count: Int, timeoutMilliseconds: Int32) throws(BlockingError) -> Int {
        let raw = UnsafeMutableRawPointer(fds), n = UInt64(count)
        if timeoutMilliseconds == 0 {
            return try perform("poll", fd: count == 1 ? fds.pointee.fd : -1, nowait: nil, ring: nil, blocking: { csup_sys_poll(raw, n, 0) }, direct: true)
        }
        if count == 1 {
            let fd = fds.pointee.fd, events = UInt32(UInt16(bitPattern: fds.pointee.events))
            let ns: Int64 = timeoutMilliseconds < 0 ? -1 : Int64(timeoutMilliseconds) * 1_000_000
            var ts = csup_timespec()
            let start = csup_monotonic_ns()
            let deadline: Int64? = ns >= 0 ? start + ns : nil
            // The time left is taken at each (re)submission (RingCall.swift).
            let r: Int32? = withUnsafeMutablePointer(to: &ts) { tsp in
                Context.ringCall(deadline: deadline) {
                    csup_uring_poll($0, $1, fd, events, tsp, deadline.map { max(1, $0 - csup_monotonic_ns()) } ?? -1)
                }
            }
            if let r {
                if r >= 0 { fds.pointee.revents = Int16(truncatingIfNeeded: r); return 1 }
                if -r == ECANCELED && ns >= 0 && csup_monotonic_ns() - start >= ns { fds.pointee.revents = 0; return 0 }
                if -r != EINTR { throw BlockingError(call: "poll", errno: -r) }
            }
        }
        return try perform("poll", fd: count == 1 ? fds.pointee.fd : -1, nowait: nil, ring: nil, blocking: { csup_sys_poll(raw, n, timeoutMilliseconds) })
    }

    /// Sleeps for `duration`, and at most `tolerance` longer: a context
    /// parks on its scheduler's timers (no system call, no kernel thread),
    /// and sleepers whose windows [deadline, deadline + tolerance] overlap
    /// are woken together in one wake-up of a virtual processor (timer
    /// coalescing). Never returns early. Elsewhere (a plain pthread) a
    /// real nanosleep(2) on a kernel thread.
    public static func sleep(for duration: Duration, tolerance: Duration = .zero) throws(BlockingError) {
        let ns = duration.saturatingNanoseconds
        if ns <= 0 { return }
        if let c = Context.currentInternal {
            let deadline = UMSDeadline(after: duration).nanoseconds
            // Why unretained is enough: the context is alive while it is
            // blocked (its thread's user context holds it), and the timer
            // fires once, before the context can run again and end.
            let me = Unmanaged.passUnretained(c)
            _ = c.scheduler.armTimeout(deadline, tolerance: tolerance.saturatingNanoseconds) { vp in
                me._withUnsafeGuaranteedRef { $0.unblockInternal(onto: vp) }
            }
            c.withVP { $0.stats.timerSleeps.ownerIncrement() }
            c.blockInternal(.timer)
            assert(csup_monotonic_ns() >= deadline, "Blocking.sleep: woken before its deadline")
            return
        }
        let deadline = UMSDeadline(after: duration).nanoseconds
        var left = ns
        while left > 0 {
            let r = UMS.blockingCall(handOff: true) { csup_sys_nanosleep(left) }
            if r.value == 0 { return }
            if r.err != EINTR { throw BlockingError(call: "nanosleep", errno: r.err) }
            left = deadline - csup_monotonic_ns()
        }
    }
}
