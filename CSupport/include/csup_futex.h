/*
 * futex and eventfd, as plain functions that return errno values.
 * Futexes are process-private (FUTEX_PRIVATE_FLAG).
 */
#ifndef CSUP_FUTEX_H
#define CSUP_FUTEX_H

#include <stdint.h>

/* Sleeps while *addr == expected, up to timeout_ns (< 0: forever).
 * Returns 0 (woken, maybe spuriously), EAGAIN (value differed), ETIMEDOUT,
 * or EINTR. */
int csup_futex_wait(uint32_t *addr, uint32_t expected, int64_t timeout_ns);

/* Wakes up to n sleepers. Returns how many were woken. */
int csup_futex_wake(uint32_t *addr, int n);

/* FUTEX_WAIT_BITSET / FUTEX_WAKE_BITSET: a waiter sleeps with a bitset; a
 * wake with bitset b wakes only waiters whose bitset shares a bit with b
 * (a plain csup_futex_wake, and CSUP_FUTEX_BITSET_ANY, match every waiter).
 * bitset must not be 0. timeout_ns is relative, as for csup_futex_wait
 * (turned into the CLOCK_MONOTONIC deadline the kernel takes here).
 * Returns as csup_futex_wait / csup_futex_wake. */
#define CSUP_FUTEX_BITSET_ANY 0xffffffffu
int csup_futex_wait_bitset(uint32_t *addr, uint32_t expected, int64_t timeout_ns, uint32_t bitset);
int csup_futex_wake_bitset(uint32_t *addr, int n, uint32_t bitset);

/* Atomic helpers on futex words (memory order in the name). */
static inline uint32_t csup_u32_load_acquire(uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline uint32_t csup_u32_load_relaxed(uint32_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void csup_u32_store_release(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline uint32_t csup_u32_exchange_acq_rel(uint32_t *p, uint32_t v) { return __atomic_exchange_n(p, v, __ATOMIC_ACQ_REL); }
static inline uint32_t csup_u32_fetch_add_seq_cst(uint32_t *p, uint32_t v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
static inline uint32_t csup_u32_fetch_sub_seq_cst(uint32_t *p, uint32_t v) { return __atomic_fetch_sub(p, v, __ATOMIC_SEQ_CST); }
static inline uint32_t csup_u32_load_seq_cst(uint32_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static inline _Bool csup_u32_cas_acq_rel(uint32_t *p, uint32_t *expected, uint32_t desired) {
    return __atomic_compare_exchange_n(p, expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}
static inline void csup_fence_seq_cst(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

/* eventfd(initval, EFD_CLOEXEC | flags). Returns fd >= 0 or -errno. */
int csup_eventfd_create(unsigned int initval, int nonblocking);
/* Adds 1. Returns 0 or errno. */
int csup_eventfd_signal(int fd);
/* Reads and clears the counter (non-blocking fd). Returns the value read,
 * 0 when it was already clear, or -errno. */
int64_t csup_eventfd_drain(int fd);

#endif
