/*
 * Guarded stacks with a bounded per-size cache (see csup_stack.h).
 *
 * Two levels, so that no process-wide lock is on a scheduler's context
 * creation and exit:
 *   - a per-thread magazine (MAG_MAX stacks, thread-local) on threads that
 *     opted in: UMS primaries, for as long as they are in scheduling mode
 *     (csup_stack_thread_cache_begin / _end). A VP's primary makes and ends
 *     its contexts, so a VP reuses its own stacks (and, on a NUMA machine,
 *     memory first touched on its own node). Its lock is the magazine's
 *     own spinlock: taken by its owner on every alloc and free (never
 *     contended, one CAS) and by csup_stack_cache_trim, which must reach
 *     every cached stack;
 *   - the shared cache under `cache_lock` (the overflow): a full magazine
 *     moves half its stacks there in one lock hold, an empty one takes a
 *     stack from it; other threads use it directly.
 * Lock order: cache_lock, then a magazine's lock (trim). An owner never
 *   takes cache_lock while it holds its magazine's lock (spill copies the
 *   stacks out first).
 * Magazines are linked in a registry under cache_lock while enabled.
 * `magazined` counts the stacks in all magazines (atomic, for the cached
 * count). A magazine is emptied into the shared cache when its thread
 * leaves scheduling mode.
 * NUMA (see the header): each stack carries the node of the thread that
 * mapped it; a thread with a known node takes from the shared cache only
 * its own node's stacks (or unknown ones), else maps a fresh one.
 */
#include "csup_config.h"
#include "include/csup_stack.h"
#include "include/csup_atomic.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(CSUP_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/lsan_interface.h>
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define GUARD_BYTES (16 * 1024)
#define CACHE_MAX 256

#define MAG_MAX 16

typedef struct magazine {
    int enabled;                       /* owner-only */
    int lock;                          /* spinlock: 0 free, 1 held */
    int len;                           /* under lock */
    csup_stack s[MAG_MAX];             /* under lock */
    struct magazine *prev, *next;      /* registry links, under cache_lock */
} magazine;

static __thread magazine mag;          /* this thread's */
/* This thread's node, set by csup_stack_thread_cache_begin (a pinned
 * primary's) or csup_stack_set_thread_node; -2: none set. */
static __thread int thread_node = -2;

static int cpu_node(void) {
    unsigned cpu = 0, node = 0;
    return getcpu(&cpu, &node) == 0 ? (int)node : -1;
}

/* The node a fresh mapping is first touched on: the thread's set node, or
 * the node it runs on now (an unpinned thread may move: approximate). */
static int mapping_node(void) { return thread_node != -2 ? thread_node : cpu_node(); }

/* The node whose cached stacks this thread may take: its set node; -1
 * (any) for a thread with none (it has no fixed node to keep local). */
static int taking_node(void) { return thread_node != -2 ? thread_node : -1; }

void csup_stack_set_thread_node(int node) { thread_node = node < 0 ? -1 : node; }
static long magazined;                 /* atomic: stacks in all magazines */

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static magazine *magazines;            /* registry, under cache_lock */

/* Acquire on lock, release on unlock: the stacks moved in and out of a
 * magazine are ordered between its owner and a trimming thread. */
static void mag_lock(magazine *m) {
    for (int spins = 0; __atomic_exchange_n(&m->lock, 1, __ATOMIC_ACQUIRE); spins++) {
        if (spins > 64) sched_yield(); else csup_cpu_relax();
    }
}
static void mag_unlock(magazine *m) { __atomic_store_n(&m->lock, 0, __ATOMIC_RELEASE); }
static csup_stack cache[CACHE_MAX];
static int cache_len;
static long mapped;            /* atomic: stacks mapped (in use + cached) */
static int inject_failures;    /* atomic: test hook */
static int guard_mode;         /* atomic: 0 unknown, 1 madvise guard, 2 mprotect */

size_t csup_page_size(void) {
    static size_t page;
    size_t p = __atomic_load_n(&page, __ATOMIC_RELAXED);
    if (p == 0) {
        long v = sysconf(_SC_PAGESIZE);
        p = v > 0 ? (size_t)v : 4096;
        __atomic_store_n(&page, p, __ATOMIC_RELAXED);
    }
    return p;
}

static int install_guard(void *base, size_t len) {
    int mode = __atomic_load_n(&guard_mode, __ATOMIC_RELAXED);
    if (mode != 2) {
        if (madvise(base, len, MADV_GUARD_INSTALL) == 0) {
            if (mode == 0) __atomic_store_n(&guard_mode, 1, __ATOMIC_RELAXED);
            return 0;
        }
        if (errno != EINVAL) return errno;
        __atomic_store_n(&guard_mode, 2, __ATOMIC_RELAXED);
    }
    return mprotect(base, len, PROT_NONE) == 0 ? 0 : errno;
}

static int map_fresh(size_t usable, csup_stack *out) {
    size_t guard = GUARD_BYTES;
    size_t total = usable + guard;
    void *base = mmap(NULL, total, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (base == MAP_FAILED) return errno;
    int err = install_guard(base, guard);
    if (err) { munmap(base, total); return err; }
    out->map_base = base;
    out->map_size = total;
    out->guard_size = guard;
    out->lo = (char *)base + guard;
    out->size = usable;
    out->node = mapping_node();
    __atomic_fetch_add(&mapped, 1, __ATOMIC_RELAXED);
    return 0;
}

static void lsan_root(const csup_stack *stack, int in_use);

int csup_stack_alloc(size_t size, csup_stack *out) {
    if (!out || size < CSUP_STACK_MIN) return EINVAL;
    size_t page = csup_page_size();
    size_t usable = (size + page - 1) & ~(page - 1);
    if (usable < size) return EINVAL; /* overflow */
    /* Test hook: fail the whole allocation, cached stacks included, so a
     * test does not depend on which thread's cache still holds one. */
    if (__atomic_load_n(&inject_failures, __ATOMIC_RELAXED) > 0 &&
        __atomic_fetch_sub(&inject_failures, 1, __ATOMIC_RELAXED) > 0)
        return ENOMEM;
    if (mag.enabled) {
        mag_lock(&mag);
        for (int i = mag.len - 1; i >= 0; i--) {
            if (mag.s[i].size == usable) {
                *out = mag.s[i];
                mag.s[i] = mag.s[--mag.len];
                mag_unlock(&mag);
                __atomic_fetch_sub(&magazined, 1, __ATOMIC_RELAXED);
                lsan_root(out, 1);
                return 0;
            }
        }
        mag_unlock(&mag);
    }
    int node = taking_node();
    pthread_mutex_lock(&cache_lock);
    for (int i = cache_len - 1; i >= 0; i--) {
        /* Another node's stack would be remote memory here: map afresh. */
        if (cache[i].size == usable && (node < 0 || cache[i].node < 0 || cache[i].node == node)) {
            *out = cache[i];
            cache[i] = cache[--cache_len];
            pthread_mutex_unlock(&cache_lock);
            lsan_root(out, 1);
            return 0;
        }
    }
    pthread_mutex_unlock(&cache_lock);
    int err = map_fresh(usable, out);
    if (err == 0) lsan_root(out, 1);
    return err;
}

/* AddressSanitizer: a context that terminates abandons its last frames
 * (the final switch never returns), so their redzones stay poisoned in the
 * shadow. The next context on this stack (from the cache), or the next
 * mapping at this address, would inherit that stale poison: uninstrumented
 * code (the Swift runtime, libc) that puts a buffer there and hands it to
 * an intercepted call (read, poll, memcpy) would be reported as a
 * stack-buffer-overflow. ASan clears a pthread's stack when it exits; this
 * does the same for ours, when it goes back to the cache or is unmapped. */
static void unpoison(const csup_stack *stack) {
#if defined(CSUP_ASAN)
    __asan_unpoison_memory_region(stack->lo, stack->size);
#else
    (void)stack;
#endif
}

/* LeakSanitizer scans pthread stacks, globals and TLS for pointers, not our
 * mappings. A suspended context's only reference to an object is often on
 * its own stack (a ConcRT context's body closure, parked while its
 * scheduler lives), so at exit LSan would report it as leaked. Under ASan,
 * a stack in use is a root region: registered when handed out, unregistered
 * when given back (cached stacks hold only dead frames). */
static void lsan_root(const csup_stack *stack, int in_use) {
#if defined(CSUP_ASAN)
    if (in_use) __lsan_register_root_region(stack->lo, stack->size);
    else __lsan_unregister_root_region(stack->lo, stack->size);
#else
    (void)stack; (void)in_use;
#endif
}

/* Puts `n` stacks into the shared cache, unmapping what does not fit. */
static void to_shared(const csup_stack *st, int n) {
    csup_stack excess[MAG_MAX];
    int unmap = 0;
    pthread_mutex_lock(&cache_lock);
    for (int i = 0; i < n; i++) {
        if (cache_len < CACHE_MAX) cache[cache_len++] = st[i];
        else excess[unmap++] = st[i];
    }
    pthread_mutex_unlock(&cache_lock);
    for (int i = 0; i < unmap; i++) {
        munmap(excess[i].map_base, excess[i].map_size);
        __atomic_fetch_sub(&mapped, 1, __ATOMIC_RELAXED);
    }
}

/* Moves this thread's magazine's oldest `n` stacks (at most what it holds)
 * to the shared cache: copied out under the magazine's lock, then put
 * there under cache_lock (never both: see the lock order above). */
static void spill(int n) {
    csup_stack out[MAG_MAX];
    mag_lock(&mag);
    if (n > mag.len) n = mag.len;
    for (int i = 0; i < n; i++) out[i] = mag.s[i];
    for (int i = n; i < mag.len; i++) mag.s[i - n] = mag.s[i];
    mag.len -= n;
    mag_unlock(&mag);
    __atomic_fetch_sub(&magazined, n, __ATOMIC_RELAXED);
    to_shared(out, n);
}

void csup_stack_free(const csup_stack *stack) {
    if (!stack || !stack->map_base) return;
    lsan_root(stack, 0);
    unpoison(stack);
    if (mag.enabled) {
        /* A full magazine spills half first (outside its lock: see the
         * lock order); a trim may empty it meanwhile, never fill it. */
        mag_lock(&mag);
        if (mag.len == MAG_MAX) {
            mag_unlock(&mag);
            spill(MAG_MAX / 2);
            mag_lock(&mag);
        }
        mag.s[mag.len++] = *stack;
        mag_unlock(&mag);
        __atomic_fetch_add(&magazined, 1, __ATOMIC_RELAXED);
        return;
    }
    pthread_mutex_lock(&cache_lock);
    if (cache_len < CACHE_MAX) {
        cache[cache_len++] = *stack;
        pthread_mutex_unlock(&cache_lock);
        return;
    }
    pthread_mutex_unlock(&cache_lock);
    munmap(stack->map_base, stack->map_size);
    __atomic_fetch_sub(&mapped, 1, __ATOMIC_RELAXED);
}

void csup_stack_thread_cache_begin(void) {
    if (mag.enabled) return;
    /* A primary is pinned by now: its node is the pinned CPU's. */
    thread_node = cpu_node();
    pthread_mutex_lock(&cache_lock);
    mag.prev = NULL;
    mag.next = magazines;
    if (magazines) magazines->prev = &mag;
    magazines = &mag;
    pthread_mutex_unlock(&cache_lock);
    mag.enabled = 1;
}

void csup_stack_thread_cache_end(void) {
    if (!mag.enabled) return;
    mag.enabled = 0;
    thread_node = -2;
    pthread_mutex_lock(&cache_lock);
    if (mag.prev) mag.prev->next = mag.next; else magazines = mag.next;
    if (mag.next) mag.next->prev = mag.prev;
    pthread_mutex_unlock(&cache_lock);
    spill(MAG_MAX);   /* no trim reaches it now: only its owner */
}

void csup_stack_cache_trim(void) {
    for (;;) {
        /* Every magazine's stacks, then the shared cache's, in batches of
         * at most CACHE_MAX (the local array), unmapped outside the locks. */
        csup_stack local[CACHE_MAX];
        int n = 0;
        pthread_mutex_lock(&cache_lock);
        for (magazine *m = magazines; m && n + MAG_MAX <= CACHE_MAX; m = m->next) {
            mag_lock(m);
            for (int i = 0; i < m->len; i++) local[n++] = m->s[i];
            __atomic_fetch_sub(&magazined, m->len, __ATOMIC_RELAXED);
            m->len = 0;
            mag_unlock(m);
        }
        while (cache_len > 0 && n < CACHE_MAX) local[n++] = cache[--cache_len];
        int more = cache_len > 0;
        for (magazine *m = magazines; m && !more; m = m->next) {
            mag_lock(m);
            more = m->len > 0;
            mag_unlock(m);
        }
        pthread_mutex_unlock(&cache_lock);
        for (int i = 0; i < n; i++) {
            munmap(local[i].map_base, local[i].map_size);
            __atomic_fetch_sub(&mapped, 1, __ATOMIC_RELAXED);
        }
        if (!more) return;
    }
}

long csup_stack_cached_poisoned_count(void) {
    long n = 0;
#if defined(CSUP_ASAN)
    pthread_mutex_lock(&cache_lock);
    for (int i = 0; i < cache_len; i++)
        if (__asan_region_is_poisoned(cache[i].lo, cache[i].size) != NULL) n++;
    pthread_mutex_unlock(&cache_lock);
#endif
    return n;
}

long csup_stack_mapped_count(void) { return __atomic_load_n(&mapped, __ATOMIC_RELAXED); }

long csup_stack_cached_count(void) {
    pthread_mutex_lock(&cache_lock);
    long n = cache_len;
    pthread_mutex_unlock(&cache_lock);
    return n + __atomic_load_n(&magazined, __ATOMIC_RELAXED);
}

void csup_stack_inject_failures(int n) { __atomic_store_n(&inject_failures, n, __ATOMIC_RELAXED); }
