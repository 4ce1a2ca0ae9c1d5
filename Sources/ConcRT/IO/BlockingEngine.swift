import CSupport
import UMS
#if canImport(Glibc)
import Glibc
#endif

/// How a ``Blocking`` call chooses its path (see ``Blocking``): try the
/// call without blocking; when it would block, queue it on the VP's ring
/// (the context parks); where there is no ring, make it through lazy
/// kernel entry. EINTR is retried on every path.
extension Blocking {
    /// Errors of the "would block" kind: the call has no non-blocking form
    /// for this descriptor, or it would wait.
    @inline(__always)
    static func wouldBlock(_ err: Int32) -> Bool {
        // Not ESPIPE: a pread of a pipe is an error on every path (the ring
        // would read the pipe, ignoring the offset).
        err == EAGAIN || err == EOPNOTSUPP || err == EINVAL || err == ENOSYS
    }

    /// `nowait` on the VP; then `ring` (a `csup_uring_*` preparation, given
    /// the ring and the tag); then `blocking` through lazy kernel entry
    /// (also when the ring answers EAGAIN: a descriptor in O_NONBLOCK mode
    /// keeps its non-blocking meaning). `direct` skips lazy kernel entry.
    @inline(__always)
    static func perform(_ name: StaticString, fd: Int32,
                        nowait: (() -> csup_result)?,
                        ring: ((OpaquePointer, UInt64) -> Int32)?,
                        blocking: () -> csup_result,
                        direct: Bool = false) throws(BlockingError) -> Int {
        if let nowait, let v = try attempt(name, nowait) { return v }
        // It will wait: say so to snapshots (Reflection/ContextActivity.swift).
        let me = Context.currentInternal
        me?.noteKernelCall(name, fd: fd)
        defer { me?.noteKernelExit() }
        if let ring, let v = try viaRing(name, ring) { return v }
        return try viaKernelEntry(name, blocking, direct: direct)
    }

    /// The non-blocking attempt: the result, or nil when it would block.
    @inline(__always)
    static func attempt(_ name: StaticString, _ nowait: () -> csup_result) throws(BlockingError) -> Int? {
        while true {
            let r = nowait()
            if r.value >= 0 { return Int(r.value) }
            if r.err == EINTR { continue }
            if wouldBlock(r.err) { return nil }
            throw BlockingError(call: "\(name)", errno: r.err)
        }
    }

    /// The ring: the result, or nil when there is no ring here (or it is
    /// full), or the ring answered EAGAIN.
    @inline(__always)
    static func viaRing(_ name: StaticString,
                        _ ring: (OpaquePointer, UInt64) -> Int32) throws(BlockingError) -> Int? {
        while let r = Context.ringCall(ring) {
            if r >= 0 { return Int(r) }
            if -r == EINTR { continue }
            if -r == EAGAIN { return nil }
            throw BlockingError(call: "\(name)", errno: -r)
        }
        return nil
    }

    /// Lazy kernel entry (or the call itself when `direct`).
    @inline(__always)
    static func viaKernelEntry(_ name: StaticString, _ blocking: () -> csup_result,
                               direct: Bool) throws(BlockingError) -> Int {
        let me = direct ? nil : Context.currentInternal
        me?.traceKernel(.kernelEnter)
        defer { me?.traceKernel(.kernelExit) }
        while true {
            let r = direct ? blocking() : UMS.blockingCall(blocking)
            if r.value >= 0 { return Int(r.value) }
            if r.err == EINTR { continue }
            throw BlockingError(call: "\(name)", errno: r.err)
        }
    }

    /// As ``perform(_:nowait:ring:blocking:direct:)`` with an optional
    /// timeout: on the ring, a linked timeout (`ring` gets the timespec to
    /// fill and the nanoseconds, -1 for none); else a poll(2) for `events`
    /// with the time left before each blocking attempt. Throws ETIMEDOUT.
    @inline(__always)
    static func performTimed(_ name: StaticString, fd: Int32, events: Int16, timeout: Duration?,
                             nowait: (() -> csup_result)?,
                             ring: (OpaquePointer, UInt64, UnsafeMutablePointer<csup_timespec>, Int64) -> Int32,
                             blocking: () -> csup_result) throws(BlockingError) -> Int {
        guard let timeout else {
            if let nowait, let v = try attempt(name, nowait) { return v }
            let me = Context.currentInternal
            me?.noteKernelCall(name, fd: fd)
            defer { me?.noteKernelExit() }
            var ts = csup_timespec()
            let v = try withUnsafeMutablePointer(to: &ts) { tsp throws(BlockingError) -> Int? in
                try viaRing(name, { ring($0, $1, tsp, -1) })
            }
            if let v { return v }
            return try viaKernelEntry(name, blocking, direct: false)
        }
        let deadline = UMSDeadline(after: timeout).nanoseconds
        let me = Context.currentInternal
        me?.noteKernelCall(name, fd: fd)
        defer { me?.noteKernelExit() }
        while true {
            if let nowait {
                let r = nowait()
                if r.value >= 0 { return Int(r.value) }
                if r.err == EINTR { continue }
                if !wouldBlock(r.err) { throw BlockingError(call: "\(name)", errno: r.err) }
            }
            let left = deadline - csup_monotonic_ns()
            if left <= 0 { throw BlockingError(call: "\(name)", errno: ETIMEDOUT) }
            var ts = csup_timespec()
            let viaRing: Int32? = withUnsafeMutablePointer(to: &ts) { tsp in
                // The time left is taken at each (re)submission (RingCall.swift).
                Context.ringCall(deadline: deadline) { ring($0, $1, tsp, max(1, deadline - csup_monotonic_ns())) }
            }
            if let r = viaRing {
                if r >= 0 { return Int(r) }
                // The linked timeout, or Context.interruptIO (before the deadline).
                if -r == ECANCELED {
                    throw BlockingError(call: "\(name)", errno: csup_monotonic_ns() >= deadline ? ETIMEDOUT : ECANCELED)
                }
                if -r == EINTR || -r == EAGAIN { continue }
                throw BlockingError(call: "\(name)", errno: -r)
            }
            // No ring: wait for readiness with the time left, then try again
            // (the blocking form only when there is no non-blocking one).
            var p = pollfd(fd: fd, events: events, revents: 0)
            let ms = Int32(clamping: (left + 999_999) / 1_000_000)
            // The descriptor just said "would block": this poll waits, so
            // it goes to a kernel thread at once (no retake delay).
            let polled = withUnsafeMutablePointer(to: &p) { pp in
                UMS.blockingCall(handOff: true) { csup_sys_poll(UnsafeMutableRawPointer(pp), 1, ms) }
            }
            if polled.value < 0 {
                if polled.err == EINTR { continue }
                throw BlockingError(call: "\(name) (poll)", errno: polled.err)
            }
            if polled.value == 0 { continue }   // the deadline check above throws
            if nowait == nil {
                let r = UMS.blockingCall(blocking)
                if r.value >= 0 { return Int(r.value) }
                if r.err == EINTR || r.err == EAGAIN { continue }
                throw BlockingError(call: "\(name)", errno: r.err)
            }
        }
    }
}
