/*
 * Small atomic helpers on plain words, for Swift code that keeps a word
 * inside C-allocated memory (Swift's Atomic needs a stable Swift owner).
 * Each names its memory order.
 */
#ifndef CSUP_ATOMIC_H
#define CSUP_ATOMIC_H

#include <stdint.h>
#include <stdbool.h>

static inline intptr_t csup_atomic_load_acquire(intptr_t *p) {
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
static inline void csup_atomic_store_release(intptr_t *p, intptr_t v) {
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}
static inline intptr_t csup_atomic_exchange_acq_rel(intptr_t *p, intptr_t v) {
    return __atomic_exchange_n(p, v, __ATOMIC_ACQ_REL);
}
static inline bool csup_atomic_cas_acq_rel(intptr_t *p, intptr_t *expected, intptr_t desired) {
    return __atomic_compare_exchange_n(p, expected, desired, false,
                                       __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}
static inline intptr_t csup_atomic_fetch_add_acq_rel(intptr_t *p, intptr_t v) {
    return __atomic_fetch_add(p, v, __ATOMIC_ACQ_REL);
}
/* CPU hint for spin loops (pause / yield). */
static inline void csup_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

#endif
