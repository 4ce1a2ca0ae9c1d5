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
    @inlinable
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
    ///
    /// Inlinable, so the caller's specialization runs `body` with no generic
    /// metadata: the entry and the exit are two non-generic calls
    /// (`_enterBlockingCall`, `_leaveBlockingCall`) that touch no
    /// reference count.
    @inlinable
    public static func blockingCall<T, E: Error>(handOff: Bool, _ body: () throws(E) -> T) throws(E) -> T {
        let entry = _enterBlockingCall(handOff: handOff)
        switch entry.path {
        case .direct:
            return try body()
        case .handOff:
            return try _handOffBlockingCall(body)
        case .inline:
            do {
                let v = try body()
                _leaveBlockingCall(entry)
                return v
            } catch {
                _leaveBlockingCall(entry)
                throw error
            }
        }
    }

    /// Which path a blocking call takes, and what an inline one needs to
    /// leave (see ``blockingCall(handOff:_:)``).
    @usableFromInline
    struct _BlockingCallEntry {
        @usableFromInline
        enum Path: UInt8 {
            /// Not on a UMS thread running on a primary, or nested inside
            /// an inline call: `body` just runs.
            case direct
            /// Lazy kernel entry: `body` runs here between the enter and
            /// the leave of `primary`'s kernel-call word.
            case inline
            /// To a kernel thread.
            case handOff
        }
        @usableFromInline let path: Path
        /// The primary (unretained: it outlives every call its threads make).
        @usableFromInline let primary: UnsafeMutableRawPointer?
        /// The kernel-call word the leave-CAS expects.
        @usableFromInline let word: UInt64
        /// The caller's user context, cleared for the call and put back after.
        @usableFromInline let userContext: UnsafeMutableRawPointer?

        @inline(__always)
        init(_ path: Path, primary: UnsafeMutableRawPointer? = nil, word: UInt64 = 0,
             userContext: UnsafeMutableRawPointer? = nil) {
            self.path = path
            self.primary = primary
            self.word = word
            self.userContext = userContext
        }
    }

    /// Chooses the path and, for an inline call, enters it: stores the
    /// primary's kernel-call word (see `LazyKernelEntry/KernelCallWord.swift`)
    /// and clears the user-context slot. Non-generic and out of line: one
    /// copy for every call site.
    ///
    /// Inside an inline call the code runs as on a plain pthread, as it did
    /// on a kernel thread: the user-context slot is cleared, so a scheduler
    /// on top sees no current context (its waits park the pthread, which
    /// the monitor may retake like any call), and `UMSThread.yield` refuses.
    @usableFromInline @inline(never)
    static func _enterBlockingCall(handOff: Bool) -> _BlockingCallEntry {
        guard let raw = csup_tls_get_carrier() else { return _BlockingCallEntry(.direct) }
        // Why this is sound: the slot holds an unretained pointer to a
        // carrier that its pthread keeps alive while the slot names it; the
        // carrier's primary owns the carrier, and the thread it runs is held
        // by that primary's execute for as long as it runs here. Nothing is
        // retained: the references do not escape this frame except as the
        // raw primary pointer, whose lifetime is the same.
        return Unmanaged<Carrier>.fromOpaque(raw)._withUnsafeGuaranteedRef { c in
            guard let pRef = c.primaryRef, let tRef = c.threadRef else { return _BlockingCallEntry(.direct) }
            return pRef._withUnsafeGuaranteedRef { p in
                guard p.monitorEntry != nil else { return _BlockingCallEntry(.handOff) }
                let old = p.kernelCall.load(ordering: .relaxed)
                // Nested inside an inline call: already "in the kernel".
                if KernelCallWord.state(old) == KernelCallWord.inKernel { return _BlockingCallEntry(.direct) }
                if handOff || tRef._withUnsafeGuaranteedRef({ $0.prefersHandOff }) { return _BlockingCallEntry(.handOff) }
                let w = p.enterKernelCall(old)
                return _BlockingCallEntry(.inline, primary: pRef.toOpaque(), word: w,
                                          userContext: csup_tls_swap_user_context(nil))
            }
        }
    }

    /// The exit of an inline call: the leave-CAS, then either the user
    /// context back, or (retaken) the move through the completion list,
    /// after which the caller returns the call's result on whatever primary
    /// runs it.
    @usableFromInline @inline(never)
    static func _leaveBlockingCall(_ entry: _BlockingCallEntry) {
        // Why this is sound: see _enterBlockingCall; the call ran on this
        // pthread, whose primary is the same one.
        let p = Unmanaged<UMSPrimary>.fromOpaque(entry.primary!)
        if p._withUnsafeGuaranteedRef({ $0.leaveKernelCall(entry.word) }) {
            _ = csup_tls_swap_user_context(entry.userContext)
            return
        }
        Counters.bump(Counters.retakenCalls)
        UMSRetakeObserver.notify(.wrappedCall, entry.userContext)
        guard let c = Carrier.current, let t = c.thread else {
            preconditionFailure("UMS: an inline blocking call left on a pthread that runs no UMS thread")
        }
        t.bounceToCompletionList(p.takeUnretainedValue())
    }

    /// The kernel-thread hand-off path, from the inlinable entry.
    @usableFromInline @inline(never)
    static func _handOffBlockingCall<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        guard let c = Carrier.current, let p = c.primary, let t = c.thread else {
            preconditionFailure("UMS: a hand-off blocking call on a pthread that runs no UMS thread")
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
}
