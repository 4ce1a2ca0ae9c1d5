/*
 * A small futex mutex whose lock word names no thread (0 free, 1 held,
 * 2 held with sleepers; Drepper's "Futexes Are Tricky", mutex 3).
 *
 * Why not Swift's Mutex or a PI futex: those store the owner's thread id,
 * which Swift's Mutex reads through a C thread-local inlined into the
 * caller. A UMS thread migrates between pthreads, and the optimizer may
 * keep a thread-local's address across a call that switches contexts, so
 * after a migration the lock records the wrong pthread (seen in release
 * builds: "Recursive call to lock Mutex"). This lock needs no thread
 * identity, and its functions are out of line.
 *
 * Never hold it across a context switch or a blocking call. A contended
 * acquire spins briefly, then sleeps the calling pthread on the futex.
 */
#ifndef CSUP_LOCK_H
#define CSUP_LOCK_H

#include <stdint.h>

/* Acquire: the critical section's reads see the previous holder's writes. */
void csup_lock_acquire(uint32_t *word);
/* Release: publishes the critical section's writes to the next holder. */
void csup_lock_release(uint32_t *word);

#endif
