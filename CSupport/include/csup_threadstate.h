/*
 * A look at another thread of this process, for the UMS monitor's
 * unwrapped-block detection: its scheduler state and its CPU time.
 */
#ifndef CSUP_THREADSTATE_H
#define CSUP_THREADSTATE_H

#include <stdint.h>
#include <time.h>

/* The state letter of thread `tid` of this process from
 * /proc/self/task/TID/stat ('R' running, 'S' sleeping, 'D' disk sleep, ...),
 * or 0 when it cannot be read. About 16 us: call it only to confirm. */
char csup_thread_state(int32_t tid);

/* CPU time of the thread whose CPU clock is `clock` (pthread_getcpuclockid),
 * in ns, or -1 on error. About 300 ns. */
int64_t csup_thread_cpu_ns(clockid_t clock);

/* Names the calling thread (at most 15 characters; longer names are cut),
 * for top -H, gdb and /proc. Returns 0 or an errno value. */
int csup_thread_set_name(const char *name);

/* Sets the calling thread's timer slack (prctl PR_SET_TIMERSLACK): how
 * late the kernel may fire its timed waits to batch wake-ups. The default
 * is 50 us, which on its own doubles a 50 us tick; the UMS monitor asks
 * for 1 us. Returns 0 or an errno value. */
int csup_thread_set_timer_slack(uint64_t ns);

#endif
