/*
 * Backtraces of suspended and running user contexts, and symbols for them.
 *
 * Frames are found by walking saved frame pointers (Swift and this package's
 * C keep them). Every read of stack memory goes through process_vm_readv on
 * our own pid, so a chain that leads nowhere (a frame of code built without
 * frame pointers, a stack freed while we walk it, a context that resumed
 * and rewrote its frames) ends the walk with EFAULT instead of a crash, and
 * no sanitizer sees a racy read of another context's stack. The walk also
 * stops when a frame pointer leaves [lo, hi), is misaligned, or does not
 * grow (stacks grow down, so callers' frames are at higher addresses).
 *
 *   csup_ctx_backtrace()      a suspended context (the frame its switch
 *                             saved). The caller must keep the csup_ctx
 *                             record alive; the stack may go away.
 *   csup_thread_backtrace()   a running pthread, interrupted by a signal
 *                             (csup_backtrace_signal()): its handler reads
 *                             the interrupted registers and walks within the
 *                             bounds the requester gave. One capture at a
 *                             time (a process-wide lock); the requester waits
 *                             at most `timeout_ns`.
 *   csup_backtrace_here()     the calling code's own frames.
 *   csup_symbolize()          nearest function symbol: the object's ELF
 *                             .symtab (read once per object and cached),
 *                             which names the non-exported functions dladdr
 *                             cannot; dladdr's answer otherwise.
 */
#ifndef CSUP_BACKTRACE_H
#define CSUP_BACKTRACE_H

#include <stddef.h>
#include <stdint.h>
#include "csup_context.h"

/* The signal csup_thread_backtrace sends (SIGURG: ignored by default and
 * rarely used by libraries; installed with SA_RESTART | SA_ONSTACK, and a
 * SIGURG that is not a capture request goes to the handler installed
 * before). */
int csup_backtrace_signal(void);

/* Return addresses of a suspended context, innermost first (the first is
 * in the code that called the switch). Returns the count (0 when the
 * context has no saved frame yet). */
int csup_ctx_backtrace(const csup_ctx *ctx, uintptr_t *out, int max);

/* The usable stack of a made context: [lo, hi) (0, 0 for a native one). */
void csup_ctx_stack_bounds(const csup_ctx *ctx, uintptr_t *lo, uintptr_t *hi);

/* Frames of the running pthread `tid` (a Linux thread id of this process):
 * out[0] is the interrupted instruction, then return addresses. Frame
 * pointers are followed only within [lo, hi) (pass 0, 0 to follow them
 * anywhere readable). Returns the count, or -errno: -EAGAIN when the thread
 * did not answer within timeout_ns (signals blocked, or stopped), -ESRCH
 * when it is gone. */
int csup_thread_backtrace(int64_t tid, uintptr_t lo, uintptr_t hi, uintptr_t *out, int max,
                          int64_t timeout_ns);

/* The caller's own return addresses, innermost first, skipping `skip`. */
int csup_backtrace_here(uintptr_t *out, int max, int skip);

/* Writes the nearest function symbol at or below `addr` (mangled, NUL
 * terminated, truncated to len) and the offset of addr from it, and the
 * object's path into image (may be NULL). Returns 1 when a symbol was found,
 * 0 when only the object is known, -1 when nothing is. */
int csup_symbolize(uintptr_t addr, char *name, size_t len, uintptr_t *offset, char *image, size_t image_len);

/* Internal (context.c uses them): a walk from pc and fp, and the fp and
 * return address a switch saved at sp. */
int csup_backtrace_walk_from(uintptr_t pc, uintptr_t fp, uintptr_t lo, uintptr_t hi, uintptr_t *out, int max);
int csup_backtrace_saved_frame(uintptr_t sp, uintptr_t *pc, uintptr_t *fp);

#endif
