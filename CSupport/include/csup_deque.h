/*
 * Work-stealing deque of non-NULL pointers: one owner pushes and pops at
 * the bottom (LIFO), any thread steals at the top (FIFO). The buffer grows
 * when full.
 *
 * Protocol: Chase-Lev's array and indices (Chase and Lev, SPAA 2005; C11
 * orderings after Le, Pop, Cohen and Zappa Nardelli, PPoPP 2013), with the
 * owner/thief arbitration of Cilk-5's THE protocol (Frigo, Leiserson and
 * Randall, PLDI 1998), which is also what ConcRT's own work-stealing queue
 * does: thieves take turns through a small lock and claim the top item by
 * *speculatively* raising `top`; the owner never takes the lock, and never
 * does a compare-and-swap, unless a thief may be racing it for the last
 * item. So the owner's push is plain stores and its pop is a store, the
 * store-load fence, and loads: no locked instruction, even for the last
 * item (the common case of a fork popped back by its joiner, where a
 * Chase-Lev pop does a CAS on `top`).
 *
 *   push (owner):  slot[b] = item (relaxed); release fence;
 *                  bottom = b + 1 (relaxed)
 *   pop (owner):   b = bottom - 1; bottom = b (relaxed); seq_cst fence;
 *                  t = top (relaxed); t <= b: take slot[b], done.
 *                  t > b (empty, or a thief is claiming the last item):
 *                  bottom = b + 1; take the lock; decide with the real
 *                  top (no speculation while we hold it); unlock.
 *   steal (thief): bottom <= top: empty (no lock). trylock (failed: the
 *                  race is "lost", retry later); t = top;
 *                  top = t + 1 (relaxed); seq_cst fence; b = bottom
 *                  (acquire); t < b: take slot[t]; else top = t (undo);
 *                  unlock.
 *
 * Why the last item is never taken twice: the owner writes `bottom` then
 * reads `top`; the thief writes `top` then reads `bottom`; a seq_cst fence
 * sits between each write and read, so at least one of them sees the
 * other's write (store-load, Dekker). If the owner sees top = t + 1 > b it
 * backs off to the lock; if it does not, the thief sees bottom = b = t and
 * undoes its claim. Thieves never claim concurrently (the lock), so `top`
 * is at most one above its committed value: the owner's "full" test keeps
 * one slot spare for that, and the owner caches a lower bound of `top`
 * (`top_cache`) so that a push does not read the thieves' cache line.
 *
 * The buffer is replaced (grown) by the owner under the lock, and thieves
 * read `ring` only under the lock, so the old buffer is freed at once.
 *
 * Under ThreadSanitizer (which does not model standalone fences) the
 * push's fence + relaxed store is a release store instead: the same
 * happens-before edge to a thief's acquire load of `bottom`, made visible
 * to it.
 *
 * push and pop are inline (they run on every fork); the slow halves, steal
 * and the rest are in deque.c.
 */
#ifndef CSUP_DEQUE_H
#define CSUP_DEQUE_H

#include <stdint.h>

#if defined(__has_feature)
#  if __has_feature(thread_sanitizer)
#    define CSUP_DEQUE_TSAN 1
#  endif
#endif
#if defined(__SANITIZE_THREAD__) && !defined(CSUP_DEQUE_TSAN)
#  define CSUP_DEQUE_TSAN 1
#endif
/* Swift's clang importer compiles these inline functions into Swift code
 * without seeing -fsanitize=thread, so ums.sh's TSan stage also passes
 * -Xcc -DCSUP_SANITIZE_THREAD (fences are invisible to TSan). */
#if defined(CSUP_SANITIZE_THREAD) && !defined(CSUP_DEQUE_TSAN)
#  define CSUP_DEQUE_TSAN 1
#endif

/* Opaque to users (Swift sees an OpaquePointer). */
typedef struct csup_deque csup_deque;

csup_deque *csup_deque_create(int64_t initial_capacity);  /* NULL on OOM */
void csup_deque_destroy(csup_deque *d);

/* Owner only. Returns 0, or ENOMEM when the buffer could not grow. */
static inline int csup_deque_push(csup_deque *d, void *item);
/* Owner only. NULL when empty. */
static inline void *csup_deque_pop(csup_deque *d);
/* Any thread. NULL when empty or when another thief held the lock; *lost
 * is set to 1 in the latter case (retrying may succeed). */
void *csup_deque_steal(csup_deque *d, int *lost);
/* Racy size estimate (>= 0). */
int64_t csup_deque_size(csup_deque *d);

/* ---- implementation details (layout shared with deque.c) ---- */

typedef struct csup_deque_ring {
    int64_t mask;              /* capacity - 1 (a power of two minus 1) */
    void *slots[];             /* accessed with __atomic builtins only */
} csup_deque_ring;

typedef struct csup_deque_impl {
    /* Thieves' line: written by the lock holder. */
    _Alignas(64) int64_t top;  /* atomic */
    int32_t lock;              /* atomic: 0 free, 1 held (thieves; the owner's slow paths) */
    /* Owner's line. */
    _Alignas(64) int64_t bottom;   /* atomic: written by the owner, read by thieves */
    csup_deque_ring *ring;     /* written by the owner under the lock; thieves read it under the lock */
    int64_t top_cache;         /* owner only: a past value of top (<= committed top + 1) */
} csup_deque_impl;

/* Slow halves (deque.c). */
int csup_deque_push_slow(csup_deque *d, void *item);
void *csup_deque_pop_slow(csup_deque *d, int64_t b);

/* Owner: stores `item` at `b` and publishes it (bottom = b + 1). The release
 * orders the slot before the new bottom for thieves; under TSan a release
 * store instead of the fence (TSan does not see standalone fences). */
static inline void csup_deque_publish(csup_deque_impl *d, csup_deque_ring *r, int64_t b, void *item) {
    __atomic_store_n(&r->slots[b & r->mask], item, __ATOMIC_RELAXED);
#if defined(CSUP_DEQUE_TSAN)
    __atomic_store_n(&d->bottom, b + 1, __ATOMIC_RELEASE);
#else
    __atomic_thread_fence(__ATOMIC_RELEASE);
    __atomic_store_n(&d->bottom, b + 1, __ATOMIC_RELAXED);
#endif
}

static inline int csup_deque_push(csup_deque *dq, void *item) {
    csup_deque_impl *d = (csup_deque_impl *)dq;
    int64_t b = __atomic_load_n(&d->bottom, __ATOMIC_RELAXED);
    csup_deque_ring *r = d->ring;
    /* Full, or may be (top_cache may be stale): refresh it, grow if need be. */
    if (__builtin_expect(b - d->top_cache >= r->mask, 0)) return csup_deque_push_slow(dq, item);
    csup_deque_publish(d, r, b, item);
    return 0;
}

static inline void *csup_deque_pop(csup_deque *dq) {
    csup_deque_impl *d = (csup_deque_impl *)dq;
    int64_t b = __atomic_load_n(&d->bottom, __ATOMIC_RELAXED) - 1;
    __atomic_store_n(&d->bottom, b, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    int64_t t = __atomic_load_n(&d->top, __ATOMIC_RELAXED);
    if (__builtin_expect(t <= b, 1)) {
        /* Ours, even when t == b: a thief claiming it saw bottom == b and
         * will undo (see the header comment). */
        d->top_cache = t;
        csup_deque_ring *r = d->ring;
        return __atomic_load_n(&r->slots[b & r->mask], __ATOMIC_RELAXED);
    }
    return csup_deque_pop_slow(dq, b);
}

#endif
