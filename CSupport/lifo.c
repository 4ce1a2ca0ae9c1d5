/* Tagged Treiber stack (see csup_lifo.h). Pointers use the low 48 bits
 * (x86_64 and aarch64 user space); the top 16 bits are the ABA tag. */
#include "csup_config.h"
#include "include/csup_lifo.h"

#include <stddef.h>

#define PTR_MASK ((UINT64_C(1) << 48) - 1)

static inline csup_lifo_node *ptr_of(uint64_t v) { return (csup_lifo_node *)(uintptr_t)(v & PTR_MASK); }
static inline uint64_t pack(csup_lifo_node *n, uint64_t old) {
    uint64_t tag = ((old >> 48) + 1) & 0xffff;
    return (tag << 48) | ((uint64_t)(uintptr_t)n & PTR_MASK);
}

void csup_lifo_init(csup_lifo *l) { __atomic_store_n(&l->head, 0, __ATOMIC_RELAXED); }

void csup_lifo_push(csup_lifo *l, csup_lifo_node *n) {
    uint64_t old = __atomic_load_n(&l->head, __ATOMIC_RELAXED);
    do {
        /* Atomic (relaxed), not a plain store: a pop that read a stale head
         * may be reading n->next right now (csup_lifo_pop, "n stays
         * allocated"); its CAS will fail, but a plain store racing with that
         * load is a data race in C11 (ThreadSanitizer reports it). The CAS
         * below (release) publishes the link. */
        __atomic_store_n(&n->next, ptr_of(old), __ATOMIC_RELAXED);
    } while (!__atomic_compare_exchange_n(&l->head, &old, pack(n, old), 1,
                                          __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

csup_lifo_node *csup_lifo_pop(csup_lifo *l) {
    uint64_t old = __atomic_load_n(&l->head, __ATOMIC_ACQUIRE);
    for (;;) {
        csup_lifo_node *n = ptr_of(old);
        if (!n) return NULL;
        /* n stays allocated while in the LIFO (contract), so reading
         * n->next is safe even if n was popped meanwhile: the tag then
         * makes the CAS fail. */
        csup_lifo_node *next = __atomic_load_n(&n->next, __ATOMIC_RELAXED);
        if (__atomic_compare_exchange_n(&l->head, &old, pack(next, old), 1,
                                        __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE))
            return n;
    }
}
