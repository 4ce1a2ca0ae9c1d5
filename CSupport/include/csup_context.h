/*
 * User contexts: the whole C contract is make, switch and free.
 *
 *   csup_ctx_create_native()  a context record for the calling pthread's own
 *                             stack (a primary's or kernel thread's scheduler
 *                             context); it is filled in by the first switch
 *                             away from it.
 *   csup_ctx_create()         a fresh context on a stack that will run
 *                             entry(arg) the first time it is switched to.
 *   csup_ctx_switch(from, to) saves the running context into `from` and runs
 *                             `to`. It returns when something switches back
 *                             to `from`, possibly on another pthread.
 *   csup_ctx_destroy()        frees the record (not the stack).
 *
 * Two backends, chosen per made context:
 *   CSUP_BACKEND_ASM       hand-written register switch (csup_switch_*.S):
 *                          callee-saved registers, stack pointer, MXCSR and
 *                          x87 control word (FPCR on aarch64); no system call.
 *   CSUP_BACKEND_UCONTEXT  makecontext / swapcontext, the portable reference
 *                          (it also saves the signal mask: one rt_sigprocmask
 *                          system call per switch).
 * A native context can be switched with either: the backend of the made
 * context on the other side decides. Two made contexts of different
 * backends cannot switch to each other directly (it aborts with a message).
 *
 * Around every switch, and invisible to callers:
 *   - Swift's exclusivity access set is thread-local. Each context keeps two
 *     words; the switch calls swift_task_exitThreadLocalContext(from) before
 *     and swift_task_enterThreadLocalContext(from) after, so a context that
 *     suspends inside a dynamic access and resumes on another pthread takes
 *     its access set with it (the same protocol Swift tasks use).
 *   - the per-thread "current context" slot is updated (the stack-overflow
 *     handler reads it).
 *   - under ASan / TSan the fiber-switch annotations are made; they are
 *     compiled only under those sanitizers.
 */
#ifndef CSUP_CONTEXT_H
#define CSUP_CONTEXT_H

#include <stddef.h>
#include <stdint.h>
#include "csup_stack.h"

typedef enum csup_backend {
    CSUP_BACKEND_ASM = 0,
    CSUP_BACKEND_UCONTEXT = 1,
} csup_backend;

typedef void (*csup_entry_fn)(void *arg);

typedef struct csup_ctx csup_ctx;

/* A record for the calling thread's own context. NULL when out of memory. */
csup_ctx *csup_ctx_create_native(void);

/* A fresh context on `stack` (not owned: the caller frees it after
 * csup_ctx_destroy). Returns 0 or an errno value (ENOMEM, EINVAL). The entry
 * function must never return: it ends by switching away for good with
 * csup_ctx_switch_final. */
int csup_ctx_create(csup_ctx **out, csup_backend backend, const csup_stack *stack,
                    csup_entry_fn entry, void *arg);

/* Re-arms a context that has finished (switched away with
 * csup_ctx_switch_final) to run entry(arg) again on the same stack. */
void csup_ctx_rearm(csup_ctx *ctx, csup_entry_fn entry, void *arg);

void csup_ctx_switch(csup_ctx *from, csup_ctx *to);

/* Like csup_ctx_switch, but `from` is finished and will not be resumed
 * (it may be re-armed). Lets ASan release the fake stack. */
void csup_ctx_switch_final(csup_ctx *from, csup_ctx *to);

void csup_ctx_destroy(csup_ctx *ctx);

/* A name for diagnostics (copied, truncated to 47 bytes). */
void csup_ctx_set_name(csup_ctx *ctx, const char *name);

csup_backend csup_ctx_backend(const csup_ctx *ctx);

/* The context running on this thread, as last set by a switch; NULL on a
 * thread that never switched. */
csup_ctx *csup_ctx_current(void);

/* Raw register switch (no exclusivity, TLS or sanitizer work): saves the
 * current registers on the current stack, stores the stack pointer in
 * *save_sp, loads load_sp and returns into the context saved there. */
void csup_asm_switch(void **save_sp, void *load_sp);

/* The same switch, for a caller that makes every switch from one call site
 * (csup_ctx_switch): it returns into the other context with `ret` rather
 * than an indirect jump. Every context it resumes was saved by that same
 * call, so the return-stack predictor is right, and the return stack stays
 * balanced for the frames above (an indirect jump leaves the switch's own
 * entry on it, and each later return is predicted one frame off). Callers
 * that switch from several sites (a raw ping-pong) are better served by
 * csup_asm_switch, whose jump the branch-target predictor learns. Frames
 * saved by either are resumed by either. On aarch64 both are `ret`. */
void csup_asm_switch_ret(void **save_sp, void *load_sp);

/* Prepares a stack for csup_asm_switch: the first switch to the returned
 * stack pointer calls fn(arg) on it. fn must never return. */
void *csup_asm_make(void *stack_top, void (*fn)(void *), void *arg);



/* Pushes / pops a suspended context's Swift access set onto the calling
 * pthread's (used when another pthread runs code on a context's behalf,
 * e.g. a kernel thread running a UT's blocking call). */
void csup_ctx_enter_access_set(csup_ctx *ctx);
void csup_ctx_exit_access_set(csup_ctx *ctx);

#endif
