/*
 * Asymmetric memory barriers (membarrier(2)): a hot path that needs only a
 * compiler barrier, paired with a rare slow path that makes every thread
 * of the process execute a full barrier.
 *
 * The pattern (a Dekker pair with one cheap side):
 *   hot side:   store A (relaxed); csup_compiler_barrier(); load B (relaxed)
 *   slow side:  store B (seq_cst); csup_membarrier_heavy(); load A (seq_cst)
 * Either the slow side's load sees the hot side's store, or the hot side's
 * load sees the slow side's store: the heavy barrier puts a full barrier
 * into every running thread's program order at one point, and a thread that
 * is not running passes through a context switch, which is one.
 *
 * The UMS monitor uses it to sleep with no timeout while no thread runs,
 * with nothing but relaxed accesses on execute and on a blocking call's
 * entry.
 */
#ifndef CSUP_MEMBARRIER_H
#define CSUP_MEMBARRIER_H

#include <stdbool.h>

/* Registers the process for MEMBARRIER_CMD_PRIVATE_EXPEDITED (once; later
 * calls return the first answer). False when the kernel or a seccomp
 * filter refuses it: then csup_membarrier_heavy must not be relied on, and
 * the caller keeps a symmetric protocol (or a timeout). */
bool csup_membarrier_register(void);

/* The heavy side: every running thread of this process executes a full
 * memory barrier before this returns. Only after a successful
 * csup_membarrier_register. Returns 0 or an errno value. */
int csup_membarrier_heavy(void);

/* The light side: keeps the compiler from moving memory accesses across
 * it (no CPU fence). */
static inline void csup_compiler_barrier(void) {
    __asm__ __volatile__("" ::: "memory");
}

#endif
