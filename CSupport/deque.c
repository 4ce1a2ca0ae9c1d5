/*
 * Chase-Lev deque (see csup_deque.h). Orderings follow Le et al. 2013:
 *   push:  store item (relaxed); release fence; bottom = b + 1 (relaxed)
 *   pop:   bottom = b - 1; seq_cst fence; read top; CAS top for the last item
 *   steal: read top (acquire); seq_cst fence; read bottom (acquire);
 *          read item; CAS top (seq_cst)
 */
#include "csup_config.h"
#include "include/csup_deque.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

typedef struct ring {
    int64_t mask;
    struct ring *retired_next;     /* older buffers, freed at destroy */
    _Atomic(void *) slots[];
} ring;

struct csup_deque {
    _Alignas(64) _Atomic int64_t top;
    _Alignas(64) _Atomic int64_t bottom;
    _Alignas(64) _Atomic(ring *) buf;
};

static ring *ring_new(int64_t cap) {
    ring *r = malloc(sizeof(ring) + (size_t)cap * sizeof(void *));
    if (!r) return NULL;
    r->mask = cap - 1;
    r->retired_next = NULL;
    for (int64_t i = 0; i < cap; i++) atomic_init(&r->slots[i], NULL);
    return r;
}

csup_deque *csup_deque_create(int64_t cap) {
    int64_t c = 16;
    while (c < cap) c <<= 1;
    csup_deque *d = aligned_alloc(64, sizeof *d);
    if (!d) return NULL;
    ring *r = ring_new(c);
    if (!r) { free(d); return NULL; }
    atomic_init(&d->top, 0);
    atomic_init(&d->bottom, 0);
    atomic_init(&d->buf, r);
    return d;
}

void csup_deque_destroy(csup_deque *d) {
    if (!d) return;
    ring *r = atomic_load_explicit(&d->buf, memory_order_relaxed);
    while (r) { ring *next = r->retired_next; free(r); r = next; }
    free(d);
}

int csup_deque_push(csup_deque *d, void *item) {
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    int64_t t = atomic_load_explicit(&d->top, memory_order_acquire);
    ring *r = atomic_load_explicit(&d->buf, memory_order_relaxed);
    if (b - t > r->mask) {
        ring *bigger = ring_new((r->mask + 1) * 2);
        if (!bigger) return ENOMEM;
        for (int64_t i = t; i < b; i++)
            atomic_store_explicit(&bigger->slots[i & bigger->mask],
                                  atomic_load_explicit(&r->slots[i & r->mask], memory_order_relaxed),
                                  memory_order_relaxed);
        bigger->retired_next = r;   /* thieves may still read r */
        atomic_store_explicit(&d->buf, bigger, memory_order_release);
        r = bigger;
    }
    atomic_store_explicit(&r->slots[b & r->mask], item, memory_order_relaxed);
#if defined(CSUP_TSAN)
    /* ThreadSanitizer does not model standalone fences, so it would not see
     * the release fence below publish the item (and what the pusher wrote
     * into it) to a thief's acquire load of `bottom`, and would report the
     * thief's reads of the item as races. Under TSan only, the store itself
     * is the release: the same happens-before edge, made visible to it. */
    atomic_store_explicit(&d->bottom, b + 1, memory_order_release);
#else
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
#endif
    return 0;
}

void *csup_deque_pop(csup_deque *d) {
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed) - 1;
    ring *r = atomic_load_explicit(&d->buf, memory_order_relaxed);
    atomic_store_explicit(&d->bottom, b, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    int64_t t = atomic_load_explicit(&d->top, memory_order_relaxed);
    if (t > b) {   /* empty */
        atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
        return NULL;
    }
    void *item = atomic_load_explicit(&r->slots[b & r->mask], memory_order_relaxed);
    if (t == b) {  /* last item: race the thieves for it */
        if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1,
                                                     memory_order_seq_cst, memory_order_relaxed))
            item = NULL;
        atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
    }
    return item;
}

void *csup_deque_steal(csup_deque *d, int *lost) {
    if (lost) *lost = 0;
    int64_t t = atomic_load_explicit(&d->top, memory_order_acquire);
    atomic_thread_fence(memory_order_seq_cst);
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_acquire);
    if (t >= b) return NULL;
    ring *r = atomic_load_explicit(&d->buf, memory_order_consume);
    void *item = atomic_load_explicit(&r->slots[t & r->mask], memory_order_relaxed);
    if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1,
                                                 memory_order_seq_cst, memory_order_relaxed)) {
        if (lost) *lost = 1;
        return NULL;
    }
    return item;
}

int64_t csup_deque_size(csup_deque *d) {
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    int64_t t = atomic_load_explicit(&d->top, memory_order_relaxed);
    return b > t ? b - t : 0;
}
