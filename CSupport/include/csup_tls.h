/*
 * One per-pthread slot that names the "carrier" running on this pthread
 * (a primary or a kernel thread record owned by the Swift layer).
 *
 * The accessors are out-of-line on purpose: a thread-local's address may
 * be computed once per function and reused, which is wrong when the same
 * function continues on another pthread after a context switch. A call
 * into a separate translation unit always recomputes it.
 */
#ifndef CSUP_TLS_H
#define CSUP_TLS_H

void *csup_tls_get_carrier(void);
void csup_tls_set_carrier(void *carrier);

/* The user context of the UMS thread a primary is running on this pthread
 * (NULL on other pthreads and between executions): the hot lookup of a
 * scheduler built on UMS ("which of my records is running here?"), one
 * call with no Swift object in the way. Written only by the primary's
 * pthread (execute, directed switches). */
void *csup_tls_get_user_context(void);
void csup_tls_set_user_context(void *user_context);
/* Sets the slot and returns what it held (an inline blocking call clears
 * it on entry and puts it back on exit: one call each way). */
void *csup_tls_swap_user_context(void *user_context);

#endif
