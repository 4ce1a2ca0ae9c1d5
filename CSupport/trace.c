/* See csup_trace.h for the protocol. */
#include "csup_trace.h"
#include "csup_syscall.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

struct csup_trace_buf {
    size_t capacity;
    size_t next;        /* slots reserved (relaxed fetch-add; may pass capacity) */
    uint64_t dropped;   /* relaxed */
    csup_trace_event events[];
};

csup_trace_buf *csup_trace_buf_create(size_t capacity) {
    if (capacity == 0 || capacity > ((size_t)1 << 28)) return NULL;
    csup_trace_buf *b = calloc(1, sizeof *b + capacity * sizeof(csup_trace_event));
    if (b) b->capacity = capacity;
    return b;
}

void csup_trace_buf_destroy(csup_trace_buf *b) { free(b); }

void csup_trace_emit(csup_trace_buf *b, uint32_t kind, uint64_t arg) {
    size_t i = __atomic_fetch_add(&b->next, 1, __ATOMIC_RELAXED);
    if (i >= b->capacity) {
        __atomic_fetch_add(&b->dropped, 1, __ATOMIC_RELAXED);
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    csup_trace_event *e = &b->events[i];
    e->ts = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    e->arg = arg;
    e->kind = kind;
    __atomic_store_n(&e->committed, 1, __ATOMIC_RELEASE);
}

size_t csup_trace_buf_read(csup_trace_buf *b, csup_trace_event *out, size_t max) {
    size_t n = __atomic_load_n(&b->next, __ATOMIC_RELAXED);
    if (n > b->capacity) n = b->capacity;
    size_t k = 0;
    for (size_t i = 0; i < n && k < max; i++) {
        if (__atomic_load_n(&b->events[i].committed, __ATOMIC_ACQUIRE) != 1) continue;
        out[k++] = b->events[i];
    }
    return k;
}

uint64_t csup_trace_buf_dropped(csup_trace_buf *b) { return __atomic_load_n(&b->dropped, __ATOMIC_RELAXED); }
size_t csup_trace_buf_capacity(csup_trace_buf *b) { return b->capacity; }
