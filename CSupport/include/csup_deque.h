/*
 * Chase-Lev work-stealing deque of non-NULL pointers (Le, Pop, Cohen and
 * Zappa Nardelli, "Correct and Efficient Work-Stealing for Weak Memory
 * Models", PPoPP 2013), with C11 orderings as in that paper.
 *
 * One owner pushes and pops at the bottom (LIFO); any thread steals at the
 * top (FIFO). The buffer grows when full; retired buffers are kept until
 * the deque is destroyed, since a thief may still read one.
 */
#ifndef CSUP_DEQUE_H
#define CSUP_DEQUE_H

#include <stdint.h>

typedef struct csup_deque csup_deque;

csup_deque *csup_deque_create(int64_t initial_capacity);  /* NULL on OOM */
void csup_deque_destroy(csup_deque *d);

/* Owner only. Returns 0, or ENOMEM when the buffer could not grow. */
int csup_deque_push(csup_deque *d, void *item);
/* Owner only. NULL when empty. */
void *csup_deque_pop(csup_deque *d);
/* Any thread. NULL when empty or when the race for the top was lost;
 * *lost is set to 1 in the latter case (retrying may succeed). */
void *csup_deque_steal(csup_deque *d, int *lost);
/* Racy size estimate (>= 0). */
int64_t csup_deque_size(csup_deque *d);

#endif
