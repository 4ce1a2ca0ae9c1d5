/*
 * Swift concurrency's thread-locals move with a context while it runs a
 * Swift job.
 *
 * The Swift concurrency runtime keeps three logical-thread values in C++
 * thread-locals of libswift_Concurrency: the running task (ActiveTask), the
 * executor tracking info of the job being run (a pointer to a record on the
 * running stack), and the fallback task-local storage (task-locals bound
 * outside any task). swift_job_run sets them on entry and restores them on
 * exit, assuming the job stays on one pthread. A context that runs a job and
 * blocks (an event, a lock, a kernel call) resumes on whichever pthread
 * executes it next, and another context may run other jobs on the old
 * pthread meanwhile. So while a context is inside a job (depth > 0, see
 * csup_ctx_swift_job_begin/end), every switch away from it saves the three
 * slots into the context and clears them on the pthread, and the switch
 * back writes them on the pthread it resumes on (see context.c). The fourth
 * slot of that TLS block, the cached kernel tid of the runtime's locks, is
 * per pthread and is never touched.
 *
 * The slots are located once (csup_swift_tls_locate): the module that
 * defines swift_task_getCurrent is found with dladdr/dl_iterate_phdr (its
 * TLS module id), the slot offsets are read from its ELF .symtab by name,
 * and the ActiveTask offset is verified against swift_task_getCurrent().
 * Until it succeeds the switch moves nothing.
 */
#ifndef CSUP_SWIFT_TLS_H
#define CSUP_SWIFT_TLS_H

#include <stddef.h>
#include "csup_context.h"

/* Finds the slots. Returns 0, or -1 with a reason in why[0..n). Idempotent
 * and thread-safe (the first successful call publishes the layout). */
int csup_swift_tls_locate(char *why, size_t n);

/* The current task as the runtime sees it on this pthread (for tests). */
void *csup_swift_current_task(void);

/* Marks `ctx` (the running context) as inside / no longer inside a Swift
 * job; nests. Only the running context calls these, for itself. Each
 * returns the nesting depth after the call. */
unsigned csup_ctx_swift_job_begin(csup_ctx *ctx);
unsigned csup_ctx_swift_job_end(csup_ctx *ctx);

/* For a pthread that runs code on behalf of a suspended context (a kernel
 * thread running a blocking call): puts the context's saved slots on the
 * calling pthread / takes them back. No-ops outside a job. */
void csup_ctx_swift_tls_enter(csup_ctx *ctx);
void csup_ctx_swift_tls_exit(csup_ctx *ctx);

#endif
