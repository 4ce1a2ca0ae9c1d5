import CSupport

extension UMS {
    /// Runs `body` as a blocking system call of the current UMS thread.
    /// [a UMS thread entering the kernel]
    ///
    /// On a UMS thread running on a primary: the thread switches out, its
    /// primary's `execute` returns ``UMSExecuteResult/blocked(_:)`` and the
    /// primary goes on with other work. A kernel thread from the completion
    /// list's pool runs `body` (on its own 8 MiB pthread stack, with the
    /// thread's Swift access set). When `body` returns, the thread is queued
    /// on its completion list; once a primary executes it again, this
    /// function returns `body`'s result, or rethrows its error.
    ///
    /// Anywhere else (a plain pthread, a primary's scheduler code, inside
    /// another blocking call) `body` just runs.
    ///
    /// Read errno inside `body`, in the same non-inlined function that made
    /// the call, and return it with the result: the thread resumes on
    /// another pthread, whose errno is unrelated (and glibc lets compiled
    /// code keep errno's address across calls).
    public static func blockingCall<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        guard let c = Carrier.current, let p = c.primary, let t = c.thread else {
            return try body()
        }
        Counters.bump(Counters.blockingCalls)
        var outcome: Result<T, E>?
        withoutActuallyEscaping({ outcome = Result { () throws(E) -> T in try body() } }) { call in
            t.pendingCall = call
            t.exitReason = .blocked
            t.switchToPrimary(p)
            // Resumed on some primary; the kernel thread already ran and
            // dropped `call` (KernelThread.runCall clears pendingCall before
            // the thread is queued), so nothing outlives this scope.
        }
        return try outcome!.get()
    }
}
