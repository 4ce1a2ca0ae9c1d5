import CSupport

/// The record of a pthread that runs UMS threads: a primary, or a kernel
/// thread running a blocking call.
///
/// Protocol: a carrier is published in the pthread's carrier slot
/// (`csup_tls_set_carrier`) for as long as that pthread acts as one. Its
/// `thread` field is read and written only by the pthread that owns the
/// carrier, so it needs no synchronisation. `UMSThread.current` reads the
/// slot through an out-of-line C call, never a cached thread-local address
/// (a UMS thread migrates between pthreads).
final class Carrier {
    /// The UMS thread this pthread is running, or nil.
    /// Unretained: whoever set it (a primary's execute, a kernel thread's
    /// call) holds the thread strongly until it clears the field. Stored
    /// as `Unmanaged` so the blocking-call fast path reads it with no
    /// reference count (`threadRef`).
    @exclusivity(unchecked) var threadRef: Unmanaged<UMSThread>?
    var thread: UMSThread? {
        get { threadRef?.takeUnretainedValue() }
        set { threadRef = newValue.map { Unmanaged.passUnretained($0) } }
    }
    /// On a primary, while it executes a thread: that thread's identity and
    /// its user context as of the execute (so schedulers can find their
    /// own record without touching reference counts).
    @exclusivity(unchecked) var runningThreadID: ObjectIdentifier?
    /// Its user context is mirrored in a C thread-local of the primary's
    /// pthread (csup_tls_get_user_context), the one hot lookup.
    /// The primary this carrier belongs to (nil on a kernel thread).
    /// Unretained: the primary owns its carrier.
    let primaryRef: Unmanaged<UMSPrimary>?
    var primary: UMSPrimary? { primaryRef?.takeUnretainedValue() }

    init(primary: UMSPrimary?) { self.primaryRef = primary.map { Unmanaged.passUnretained($0) } }

    /// The carrier of the calling pthread.
    static var current: Carrier? {
        guard let raw = csup_tls_get_carrier() else { return nil }
        // Why this is sound: the slot holds an unretained pointer to a
        // carrier that the owning pthread keeps alive for as long as the
        // slot names it (see UMSPrimary / KernelThread).
        return Unmanaged<Carrier>.fromOpaque(raw).takeUnretainedValue()
    }
}
