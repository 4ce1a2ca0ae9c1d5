/*
 * Work-stealing deque: the slow halves of push and pop, steal, and the
 * rest. The protocol and the fast paths are in csup_deque.h.
 */
#include "csup_config.h"
#include "include/csup_deque.h"
#include "include/csup_atomic.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>

#define IMPL(dq) ((csup_deque_impl *)(dq))

static csup_deque_ring *ring_new(int64_t cap) {
    csup_deque_ring *r = malloc(sizeof(csup_deque_ring) + (size_t)cap * sizeof(void *));
    if (!r) return NULL;
    r->mask = cap - 1;
    for (int64_t i = 0; i < cap; i++) r->slots[i] = NULL;
    return r;
}

csup_deque *csup_deque_create(int64_t cap) {
    int64_t c = 16;
    while (c < cap) c <<= 1;
    csup_deque_impl *d = aligned_alloc(64, sizeof *d);
    if (!d) return NULL;
    csup_deque_ring *r = ring_new(c);
    if (!r) { free(d); return NULL; }
    d->top = 0;
    d->lock = 0;
    d->bottom = 0;
    d->ring = r;
    d->top_cache = 0;
    return (csup_deque *)d;
}

void csup_deque_destroy(csup_deque *dq) {
    if (!dq) return;
    free(IMPL(dq)->ring);
    free(dq);
}

/* The thieves' lock. Acquire on taking it, release on leaving: the lock
 * holder's writes to `top` and `ring` are seen by the next holder. */
static inline int try_lock(csup_deque_impl *d) {
    return __atomic_load_n(&d->lock, __ATOMIC_RELAXED) == 0
        && __atomic_exchange_n(&d->lock, 1, __ATOMIC_ACQUIRE) == 0;
}
static void lock(csup_deque_impl *d) {
    /* Held for a few instructions by a thief; yield if it was preempted. */
    for (unsigned spins = 0; !try_lock(d); spins++) {
        if (spins < 64) csup_cpu_relax(); else sched_yield();
    }
}
static inline void unlock(csup_deque_impl *d) {
    __atomic_store_n(&d->lock, 0, __ATOMIC_RELEASE);
}

int csup_deque_push_slow(csup_deque *dq, void *item) {
    csup_deque_impl *d = IMPL(dq);
    int64_t b = __atomic_load_n(&d->bottom, __ATOMIC_RELAXED);
    csup_deque_ring *r = d->ring;
    /* Under the lock `top` is its committed value (no claim in flight),
     * and no thief reads `ring`: it can be replaced and the old one freed. */
    lock(d);
    int64_t t = __atomic_load_n(&d->top, __ATOMIC_RELAXED);
    d->top_cache = t;
    if (b - t >= r->mask) {
        csup_deque_ring *bigger = ring_new((r->mask + 1) * 2);
        if (!bigger) { unlock(d); return ENOMEM; }
        for (int64_t i = t; i < b; i++)
            bigger->slots[i & bigger->mask] = __atomic_load_n(&r->slots[i & r->mask], __ATOMIC_RELAXED);
        d->ring = bigger;
        free(r);
        r = bigger;
    }
    unlock(d);
    csup_deque_publish(d, r, b, item);
    return 0;
}

/* The pop saw top > b (b: bottom after its decrement): the deque was
 * empty, or a thief is claiming the last item. Decide under the lock. */
void *csup_deque_pop_slow(csup_deque *dq, int64_t b) {
    csup_deque_impl *d = IMPL(dq);
    __atomic_store_n(&d->bottom, b + 1, __ATOMIC_RELAXED);
    lock(d);
    int64_t t = __atomic_load_n(&d->top, __ATOMIC_RELAXED);
    void *item = NULL;
    if (t <= b) {
        /* The thief undid its claim: the item is ours. No thief runs
         * while we hold the lock, so the plain decrement is safe. */
        item = __atomic_load_n(&d->ring->slots[b & d->ring->mask], __ATOMIC_RELAXED);
        __atomic_store_n(&d->bottom, b, __ATOMIC_RELAXED);
    }
    d->top_cache = t;
    unlock(d);
    return item;
}

void *csup_deque_steal(csup_deque *dq, int *lost) {
    csup_deque_impl *d = IMPL(dq);
    if (lost) *lost = 0;
    /* Looks empty: no lock. (A racy snapshot: an item pushed meanwhile is
     * found by the next attempt; the idle protocol re-checks deques.) */
    if (__atomic_load_n(&d->bottom, __ATOMIC_ACQUIRE) <= __atomic_load_n(&d->top, __ATOMIC_RELAXED))
        return NULL;
    if (!try_lock(d)) {
        if (lost) *lost = 1;
        return NULL;
    }
    int64_t t = __atomic_load_n(&d->top, __ATOMIC_RELAXED);
    /* Claim (speculatively), then look at bottom: the store-load pair with
     * the owner's pop (see the header). */
    __atomic_store_n(&d->top, t + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    /* Acquire: pairs with the push's release (fence or store), so the
     * item, and what its pusher wrote before pushing it, is visible. */
    int64_t b = __atomic_load_n(&d->bottom, __ATOMIC_ACQUIRE);
    void *item = NULL;
    if (t < b) {
        item = __atomic_load_n(&d->ring->slots[t & d->ring->mask], __ATOMIC_RELAXED);
    } else {
        __atomic_store_n(&d->top, t, __ATOMIC_RELAXED);   /* undo: the owner took it */
    }
    unlock(d);
    return item;
}

int64_t csup_deque_size(csup_deque *dq) {
    csup_deque_impl *d = IMPL(dq);
    int64_t b = __atomic_load_n(&d->bottom, __ATOMIC_RELAXED);
    int64_t t = __atomic_load_n(&d->top, __ATOMIC_RELAXED);
    return b > t ? b - t : 0;
}
