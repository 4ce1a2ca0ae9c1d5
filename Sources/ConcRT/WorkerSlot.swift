import UMS

extension Context {
    /// A small number naming the virtual processor that runs the calling
    /// context: 0, 1, 2, … unique in the process among the virtual
    /// processors running right now (of every scheduler), reused after a
    /// virtual processor leaves. nil off a context. For per-processor data
    /// indexed by a plain array, such as PPL's `Combinable`.
    /// [no ConcRT name; cf. Context::GetVirtualProcessorId, which is per
    /// scheduler]
    ///
    /// It is stable only while the caller does not block: after an event
    /// wait, a lock, a join or a ``Blocking`` call the context may run on
    /// another virtual processor. Code that must not share its slot's data
    /// with another context must not block while it holds it.
    ///
    /// No reference count is touched (a hot-path read: one C thread-local
    /// read and two loads).
    public static var currentWorkerSlot: Int? {
        guard let p = UMSThread.currentOnPrimaryUserContext else { return nil }
        // Why this is sound: see Context.currentInternal; the virtual
        // processor lives as long as its scheduler, which outlives its
        // running contexts.
        return Unmanaged<Context>.fromOpaque(p)._withUnsafeGuaranteedRef { c in
            c.vpRef.map { $0._withUnsafeGuaranteedRef { $0.processSlot } }
        }
    }

    /// ``currentWorkerSlot`` of this context's current virtual processor
    /// (-1 before its first run). Meaningful only for the running context.
    public var workerSlot: Int { vpRef.map { $0._withUnsafeGuaranteedRef { $0.processSlot } } ?? -1 }
}
