/*
 * CPU affinity and the CPUs this process may use.
 */
#ifndef CSUP_AFFINITY_H
#define CSUP_AFFINITY_H

#include <stdint.h>

/* This thread's sched_getaffinity mask as CPU ids, ascending: writes the
 * first min(count, capacity) to out (out may be NULL when capacity is 0)
 * and returns count, the number of CPUs in the mask, or -errno. The mask is
 * sized at run time (CPU_ALLOC), so CPUs past 1,023 are seen: call again
 * with capacity >= count when count > capacity. */
int csup_affinity_cpus(int *out, int capacity);

/* Number of CPUs in this thread's sched_getaffinity mask (>= 1). */
int csup_affinity_count(void);

/* The i-th CPU (0-based) in the mask, or -1 when i is out of range. */
int csup_affinity_cpu_at(int index);

/* Pins the calling thread to one CPU (any id, masks are sized at run
 * time). Returns 0 or errno. The previous mask
 * is written to *saved (opaque, free it with csup_affinity_restore). */
int csup_affinity_pin_self(int cpu, void **saved);

/* Restores a mask saved by csup_affinity_pin_self and frees it. */
void csup_affinity_restore(void *saved);

/* Gives the calling thread the mask the process started with (captured
 * when CSupport was loaded). A thread inherits its creator's mask, so a
 * thread created by a pinned primary (the UMS monitor, a carrier for a
 * temporary virtual processor) would otherwise share that one CPU.
 * Returns 0 or errno. */
int csup_affinity_unpin_self(void);

/* The CPU the calling thread runs on now (sched_getcpu), or -1. */
int csup_current_cpu(void);


/* cgroup v2 cpu.max quota as a CPU count rounded up, or 0 when there is no
 * quota (or no cgroup v2). Reads /proc/self/cgroup and cpu.max. */
int csup_cgroup_cpu_limit(void);

#endif
