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

#endif
