#define _GNU_SOURCE 1
#include "include/CMallocCounter.h"
#include <errno.h>
#include <stddef.h>
#include <string.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static uint64_t count;

static inline void bump(void) { __atomic_fetch_add(&count, 1, __ATOMIC_RELAXED); }

uint64_t ums_malloc_count(void) { return __atomic_load_n(&count, __ATOMIC_RELAXED); }

void *malloc(size_t n) { bump(); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { bump(); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { if (!p) bump(); return __libc_realloc(p, n); }
void free(void *p) { __libc_free(p); }
void *aligned_alloc(size_t al, size_t n) { bump(); return __libc_memalign(al, n); }
void *memalign(size_t al, size_t n) { bump(); return __libc_memalign(al, n); }
int posix_memalign(void **out, size_t al, size_t n) {
    bump();
    void *p = __libc_memalign(al, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}
