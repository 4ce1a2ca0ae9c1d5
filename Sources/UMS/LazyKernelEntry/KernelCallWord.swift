import Synchronization

/// Lazy kernel entry: a blocking call made through ``UMS/blockingCall(_:)``
/// runs inline on the primary's pthread, and the CPU moves only if the call
/// really blocks. [Windows UMS: "KT switch is lazy: at kernel entry"; Go's
/// entersyscall / exitsyscall and sysmon's retake]
///
/// Protocol (one 64-bit word per primary, `UMSPrimary.kernelCall`):
///
///     bits 63..2  sequence: bumped by every call entry
///     bits  1..0  state: running (0) · inKernel (1) · retaken (2)
///
/// - **Enter** (the UMS thread, on its primary's pthread): store
///   `(seq + 1, inKernel)`, release. Then make the call.
/// - **Leave**: CAS `(seq + 1, inKernel)` → `(seq + 1, running)`,
///   acquire-release. Success: nobody retook the primary; the thread goes
///   on, with no switch, no futex and no completion-list round trip.
/// - **Retake** (the monitor thread, `UMSMonitor`): a word seen
///   `(s, inKernel)` on two looks at least the threshold apart is a call
///   that has blocked. If the primary's ``UMSRetakeHandler`` wants the CPU
///   handed on and has reserved a pthread to carry on as the CPU's primary,
///   the monitor CASes `(s, inKernel)` → `(s, retaken)`, acquire-release,
///   and then starts that replacement. Only one of the two CASes on the
///   same `(s, inKernel)` value can win.
/// - **After a lost leave**: the calling pthread is no longer the CPU's
///   primary. The thread switches out with the `retaken` reason; the
///   primary's `execute` (still on this pthread) queues it on its
///   completion list as a kernel thread would, and returns
///   ``UMSExecuteResult/blocked(_:)``; ``UMSPrimary/isRetaken`` is true
///   from then on, and the scheduler leaves scheduling mode on this
///   pthread. The thread runs again on whatever primary dequeues it.
///
/// `retaken` is final for a primary: it is never executed again.
///
/// Why this is sound: the word has one writer per state: the primary's own
/// thread moves running→inKernel and inKernel→running; the monitor moves
/// inKernel→retaken. Both moves out of `inKernel` are CASes on the same
/// value, so exactly one happens; the sequence number makes a word from an
/// earlier call different from the current one, so the monitor never
/// retakes a later call on the strength of an earlier observation.
enum KernelCallWord {
    static let running: UInt64 = 0
    static let inKernel: UInt64 = 1
    static let retaken: UInt64 = 2
    static let stateMask: UInt64 = 3

    @inline(__always)
    static func state(_ w: UInt64) -> UInt64 { w & stateMask }

    @inline(__always)
    static func sequence(_ w: UInt64) -> UInt64 { w >> 2 }

    @inline(__always)
    static func make(sequence: UInt64, state: UInt64) -> UInt64 { sequence << 2 | state }
}
