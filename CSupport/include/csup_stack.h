/*
 * Stacks for user contexts.
 *
 * A stack is one anonymous mapping: a guard region at the low end, then the
 * usable part. Memory is committed lazily by the kernel (MAP_NORESERVE), so
 * a 256 KiB stack that only touches two pages costs two pages of RSS.
 *
 * The guard is installed with madvise(MADV_GUARD_INSTALL) where the kernel
 * has it (Linux 6.13+): that does not split the mapping, so adjacent stacks
 * merge into one VMA and 100,000 stacks stay far below vm.max_map_count.
 * Older kernels fall back to mprotect(PROT_NONE), which costs two VMAs per
 * stack.
 *
 * Freed stacks go to a bounded cache keyed by size: a per-thread magazine
 * (its own uncontended lock) on threads in UMS scheduling mode, over a shared,
 * mutex-protected list (the overflow, and the cache of every other thread).
 * Contexts are also cached above this.
 *
 * NUMA: a stack's pages are first touched by the thread that maps it (its
 * first frame is written there), so they live on that thread's node. A
 * thread with a magazine knows its node (the CPU it runs on when it begins
 * the magazine: a pinned primary's) and takes from the shared cache only
 * stacks of its own node (or of no known node); otherwise it maps a fresh
 * one, first touched locally. Its magazine holds only stacks it freed,
 * which were in use on its own node.
 */
#ifndef CSUP_STACK_H
#define CSUP_STACK_H

#include <stddef.h>
#include <stdint.h>

typedef struct csup_stack {
    void *map_base;      /* start of the mapping (guard region starts here) */
    size_t map_size;     /* whole mapping, guard included */
    size_t guard_size;   /* bytes of guard at the low end */
    void *lo;            /* lowest usable address (just above the guard) */
    size_t size;         /* usable bytes */
    int node;            /* NUMA node of the thread that mapped it (first
                            touch), or -1 when unknown */
} csup_stack;

/* Smallest usable stack accepted (bytes). */
#define CSUP_STACK_MIN (16 * 1024)

/* Allocates (or takes from the cache) a stack with at least `size` usable
 * bytes. Returns 0, or an errno value (ENOMEM from mmap, EINVAL for a size
 * below CSUP_STACK_MIN). On failure *out is untouched and nothing leaks. */
int csup_stack_alloc(size_t size, csup_stack *out);

/* Returns a stack to the cache, or unmaps it when the cache is full. */
void csup_stack_free(const csup_stack *stack);

/* Unmaps every cached stack: the shared cache's and every magazine's. */
void csup_stack_cache_trim(void);

/* The calling thread keeps a magazine of freed stacks, no lock, until
 * _end, which moves them to the shared cache (UMS primaries: while in
 * scheduling mode). */
void csup_stack_thread_cache_begin(void);
void csup_stack_thread_cache_end(void);

/* The calling thread's node for stacks it maps and takes (default: the
 * node of the CPU it ran on at csup_stack_thread_cache_begin, or of the
 * current CPU on threads without a magazine). -1: unknown (takes any).
 * For tests and for layers that know a thread's node better. */
void csup_stack_set_thread_node(int node);

/* Stacks currently mapped (in use + cached), and cached only (shared
 * cache and magazines). */
long csup_stack_mapped_count(void);
long csup_stack_cached_count(void);

/* Test hook: makes the next `n` allocations fail with ENOMEM (cached
 * stacks are not handed out meanwhile either). */
void csup_stack_inject_failures(int n);

/* AddressSanitizer test hooks (no-ops returning 0 in other builds):
 * cached stacks with any poisoned shadow byte (csup_stack_free unpoisons,
 * so this stays 0), and: poison the lowest `bytes` of the calling
 * context's own usable stack (far below its frames), as a frame that was
 * abandoned there would have; returns 1 when it poisoned. */
long csup_stack_cached_poisoned_count(void);
int csup_stack_poison_own_bottom_for_test(size_t bytes);

/* Page size, cached. */
size_t csup_page_size(void);

#endif
