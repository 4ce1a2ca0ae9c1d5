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
        try blockingCall(handOff: false, body)
    }

    /// ``blockingCall(_:)`` with a choice of path on a primary with lazy
    /// kernel entry (``UMSPrimary/hasLazyKernelEntry``):
    ///
    /// - `handOff: false` (the default): the call runs inline on the
    ///   primary's pthread, on the thread's own stack. If it returns before
    ///   the monitor's threshold, or while the scheduler has nothing else
    ///   to run, nothing else happens: no switch, no futex. If it blocks
    ///   longer while other work waits, the monitor retakes the CPU (a
    ///   replacement pthread carries on as its primary), and when the call
    ///   returns the thread goes through its completion list. [Go's
    ///   entersyscall / exitsyscall]
    /// - `handOff: true`: the call goes to a kernel thread at once, as on a
    ///   primary without lazy entry. For calls known to block long (sleeps,
    ///   waits on other processes, accepts on idle listeners) and for
    ///   C code that needs a deep stack (the thread's stack is fixed). [Go's
    ///   entersyscallblock]
    public static func blockingCall<T, E: Error>(handOff: Bool, _ body: () throws(E) -> T) throws(E) -> T {
        guard let c = Carrier.current, let p = c.primary, let t = c.thread else {
            return try body()
        }
        if p.monitorEntry != nil {
            // Nested inside an inline call: already "in the kernel".
            if KernelCallWord.state(p.kernelCall.load(ordering: .relaxed)) == KernelCallWord.inKernel {
                return try body()
            }
            if !handOff && !t.prefersHandOff { return try inlineCall(p, t, body) }
        }
        return try handOffCall(p, t, body)
    }

    /// The kernel-thread hand-off path, in its own frame: its generic
    /// `Result` local would otherwise make every call (the inline ones too)
    /// look up `Result<T, E>`'s metadata to size the frame.
    @inline(never)
    private static func handOffCall<T, E: Error>(_ p: UMSPrimary, _ t: UMSThread, _ body: () throws(E) -> T) throws(E) -> T {
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

    /// Lazy kernel entry's call path (see `LazyKernelEntry/KernelCallWord.swift`).
    ///
    /// Inside `body` the code runs as on a plain pthread, as it did on a
    /// kernel thread: the user-context slot is cleared, so a scheduler on
    /// top sees no current context (its waits park the pthread, which the
    /// monitor may retake like any call), and `UMSThread.yield` refuses.
    @inline(__always)
    private static func inlineCall<T, E: Error>(_ p: UMSPrimary, _ t: UMSThread, _ body: () throws(E) -> T) throws(E) -> T {
        guard let w = p.enterKernelCall() else {
            // Retaken while this thread ran unwrapped code: move first, then
            // make the call on the primary that runs it next.
            UMSRetakeObserver.notify(.unwrappedBlocking, t.userContext)
            t.bounceToCompletionList(p)
            return try callAfterMove(body)
        }
        let userContext = csup_tls_get_user_context()
        csup_tls_set_user_context(nil)
        // No Result here: building one for an unspecialized T instantiates
        // generic metadata on every call (a locked cache lookup, most of
        // the cost this path had).
        do {
            let v = try body()
            leaveInlineCall(p, t, w, userContext)
            return v
        } catch {
            leaveInlineCall(p, t, w, userContext)
            throw error
        }
    }

    /// The call again, on the primary that runs the thread after a move
    /// (out of line: it re-enters ``blockingCall(handOff:_:)``).
    @inline(never)
    private static func callAfterMove<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        try blockingCall(handOff: false, body)
    }

    /// The non-generic tail of an inline call: the leave-CAS, then either
    /// the user context back, or (retaken) the move through the completion
    /// list, after which the caller returns the call's result on whatever
    /// primary runs it.
    @inline(never)
    private static func leaveInlineCall(_ p: UMSPrimary, _ t: UMSThread, _ w: UInt64,
                                        _ userContext: UnsafeMutableRawPointer?) {
        if p.leaveKernelCall(w) {
            csup_tls_set_user_context(userContext)
        } else {
            Counters.bump(Counters.retakenCalls)
            UMSRetakeObserver.notify(.wrappedCall, userContext)
            t.bounceToCompletionList(p)
        }
    }
}
