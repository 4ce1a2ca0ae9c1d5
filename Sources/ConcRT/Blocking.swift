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
/// block" (MSG_DONTWAIT for sockets, RWF_NOWAIT for reads and writes);
/// only when the call would block does the context move to its kernel
/// thread (``UMS/blockingCall(_:)``), and the virtual processor runs other
/// work meanwhile. EINTR is retried. A failure throws ``BlockingError``
/// with the call's own errno (read on the thread that made the call).
///
/// Outside a scheduler context (a plain pthread, or inside another
/// blocking call) the calls are simply made.
public enum Blocking {
    // MARK: The generic form

    /// Runs any blocking C library call (libpq, sqlite, getaddrinfo, ...)
    /// on the context's kernel thread. Read errno inside `body`.
    public static func call<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        try UMS.blockingCall(body)
    }

    // MARK: Files and pipes

    /// read(2) into `buffer`. Returns the byte count (0 at end of file).
    public static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(BlockingError) -> Int {
        let base = buffer.baseAddress, n = buffer.count
        return try retrying("read", nowait: { csup_sys_read_nowait(fd, base, n) },
                            blocking: { csup_sys_read(fd, base, n) })
    }

    /// write(2) from `buffer`. Returns the byte count written (may be short).
    public static func write(_ fd: Int32, from buffer: UnsafeRawBufferPointer) throws(BlockingError) -> Int {
        let base = buffer.baseAddress, n = buffer.count
        return try retrying("write", nowait: { csup_sys_write_nowait(fd, base, n) },
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
        return try retrying("pread", nowait: { csup_sys_pread_nowait(fd, base, n, offset) },
                            blocking: { csup_sys_pread(fd, base, n, offset) })
    }

    /// pwrite(2) at `offset`.
    public static func pwrite(_ fd: Int32, from buffer: UnsafeRawBufferPointer, offset: Int64) throws(BlockingError) -> Int {
        let base = buffer.baseAddress, n = buffer.count
        return try retrying("pwrite", nowait: { csup_sys_pwrite_nowait(fd, base, n, offset) },
                            blocking: { csup_sys_pwrite(fd, base, n, offset) })
    }

    /// open(2) (O_CLOEXEC is added). Returns the descriptor.
    public static func open(_ path: String, flags: Int32, mode: mode_t = 0o644) throws(BlockingError) -> Int32 {
        var fd = -1
        var failure: BlockingError?
        path.withCString { p in
            do {
                fd = try retrying("open(\(path))", nowait: nil, blocking: { csup_sys_open(p, flags, UInt32(mode)) })
            } catch {
                failure = error as? BlockingError
            }
        }
        if let failure { throw failure }
        return Int32(fd)
    }

    /// close(2). EINTR is not retried (the descriptor is gone either way).
    public static func close(_ fd: Int32) throws(BlockingError) {
        let r = UMS.blockingCall { csup_sys_close(fd) }
        if r.value < 0 && r.err != EINTR { throw BlockingError(call: "close", errno: r.err) }
    }

    /// fsync(2).
    public static func fsync(_ fd: Int32) throws(BlockingError) {
        _ = try retrying("fsync", nowait: nil, blocking: { csup_sys_fsync(fd) })
    }

    // MARK: Sockets

    /// recv(2). Returns the byte count (0: the peer closed).
    public static func recv(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, flags: Int32 = 0) throws(BlockingError) -> Int {
        let base = buffer.baseAddress, n = buffer.count
        return try retrying("recv", nowait: { csup_sys_recv(fd, base, n, flags | csup_const_MSG_DONTWAIT()) },
                            blocking: { csup_sys_recv(fd, base, n, flags) })
    }

    /// send(2) (MSG_NOSIGNAL is added). Returns the byte count sent.
    public static func send(_ fd: Int32, from buffer: UnsafeRawBufferPointer, flags: Int32 = 0) throws(BlockingError) -> Int {
        let base = buffer.baseAddress, n = buffer.count
        return try retrying("send", nowait: { csup_sys_send(fd, base, n, flags | csup_const_MSG_DONTWAIT()) },
                            blocking: { csup_sys_send(fd, base, n, flags) })
    }

    /// Sends all of `buffer`, looping over short sends.
    public static func sendAll(_ fd: Int32, from buffer: UnsafeRawBufferPointer) throws(BlockingError) {
        var done = 0
        while done < buffer.count {
            done += try send(fd, from: UnsafeRawBufferPointer(rebasing: buffer[done...]))
        }
    }

    /// accept4(2) (SOCK_CLOEXEC is added). Returns the new descriptor.
    public static func accept(_ fd: Int32, flags: Int32 = 0) throws(BlockingError) -> Int32 {
        let f = flags | csup_const_SOCK_CLOEXEC()
        return Int32(try retrying("accept", nowait: nil, blocking: { csup_sys_accept(fd, f) }))
    }

    /// connect(2) to `address` (a sockaddr of `length` bytes).
    public static func connect(_ fd: Int32, address: UnsafeRawPointer, length: UInt32) throws(BlockingError) {
        _ = try retrying("connect", nowait: nil, blocking: { csup_sys_connect(fd, address, length) })
    }

    /// poll(2). A zero timeout polls without leaving the virtual processor.
    public static func poll(_ fds: UnsafeMutablePointer<pollfd>, count: Int, timeoutMilliseconds: Int32) throws(BlockingError) -> Int {
        let raw = UnsafeMutableRawPointer(fds), n = UInt64(count)
        if timeoutMilliseconds == 0 {
            return try retrying("poll", nowait: nil, blocking: { csup_sys_poll(raw, n, 0) }, direct: true)
        }
        return try retrying("poll", nowait: nil, blocking: { csup_sys_poll(raw, n, timeoutMilliseconds) })
    }

    /// A real nanosleep(2) in the kernel, on the kernel thread.
    public static func sleep(for duration: Duration) throws(BlockingError) {
        let ns = duration.saturatingNanoseconds
        let deadline = UMSDeadline(after: duration).nanoseconds
        var left = ns
        while left > 0 {
            let r = UMS.blockingCall(handOff: true) { csup_sys_nanosleep(left) }
            if r.value == 0 { return }
            if r.err != EINTR { throw BlockingError(call: "nanosleep", errno: r.err) }
            left = deadline - csup_monotonic_ns()
        }
    }

    // MARK: Engine

    /// Tries `nowait` on the virtual processor; when it would block (or is
    /// not supported for this descriptor), makes `blocking` through the
    /// kernel-thread path. Retries EINTR. `direct` skips the hand-off.
    @inline(__always)
    static func retrying(_ name: @autoclosure () -> String,
                         nowait: (() -> csup_result)?,
                         blocking: () -> csup_result,
                         direct: Bool = false) throws(BlockingError) -> Int {
        if let nowait {
            while true {
                let r = nowait()
                if r.value >= 0 { return Int(r.value) }
                if r.err == EINTR { continue }
                if r.err == EAGAIN || r.err == EOPNOTSUPP || r.err == EINVAL || r.err == ENOSYS || r.err == ESPIPE {
                    break   // would block, or no non-blocking form here
                }
                throw BlockingError(call: name(), errno: r.err)
            }
        }
        while true {
            let r = direct ? blocking() : UMS.blockingCall(blocking)
            if r.value >= 0 { return Int(r.value) }
            if r.err == EINTR { continue }
            throw BlockingError(call: name(), errno: r.err)
        }
    }
}
