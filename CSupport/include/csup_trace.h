/*
 * Timeline trace buffers: one per virtual processor while a trace runs.
 *
 * Protocol: a writer reserves a slot with one relaxed fetch-add on `next`
 * (several writers may share a buffer: the VP's carrier, and the monitor's
 * retake), fills it, and publishes it by storing `committed = 1` with
 * release. A reader (after the trace stopped) copies only slots it sees
 * committed (acquire), in slot order. A full buffer drops the event and
 * counts it (relaxed). Buffers are freed only when no writer can hold
 * them (the owner keeps them until its scheduler's primaries have left).
 */
#ifndef CSUP_TRACE_H
#define CSUP_TRACE_H

#include <stddef.h>
#include <stdint.h>

typedef struct csup_trace_event {
    int64_t ts;          /* CLOCK_MONOTONIC ns */
    uint64_t arg;
    uint32_t kind;
    uint32_t committed;  /* 0 -> 1 (release) once the slot is written */
} csup_trace_event;

typedef struct csup_trace_buf csup_trace_buf;

/* NULL when out of memory. */
csup_trace_buf *csup_trace_buf_create(size_t capacity);
void csup_trace_buf_destroy(csup_trace_buf *b);

/* Appends (kind, arg) stamped now; dropped when full. */
void csup_trace_emit(csup_trace_buf *b, uint32_t kind, uint64_t arg);

/* Copies the committed events, in slot order, into out (at most max).
 * Returns how many. */
size_t csup_trace_buf_read(csup_trace_buf *b, csup_trace_event *out, size_t max);
/* Events dropped because the buffer was full. */
uint64_t csup_trace_buf_dropped(csup_trace_buf *b);
size_t csup_trace_buf_capacity(csup_trace_buf *b);

#endif
