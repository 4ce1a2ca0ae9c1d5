/*
 * One io_uring: a submission queue and a completion queue shared with the
 * kernel (the "syscall request queue" and "syscall completion queue" of
 * UMS's master/slave design). Owned by one virtual processor: every
 * function here is called by the pthread that currently carries that VP
 * (one at a time), except csup_uring_cq_pending on the words from
 * csup_uring_cq_head/_tail, which any thread may call (two acquire loads).
 *
 * User data: an operation's 64-bit tag. Tags below CSUP_URING_TAG_USER are
 * internal (the futex wait, cancels, linked timeouts) and are consumed by
 * csup_uring_reap, never returned; any other value (a context's address) is
 * returned with the operation's result.
 *
 * Sleeping in the ring (csup_uring_sleep): the VP arms an IORING_OP_FUTEX_WAIT
 * (Linux 6.7+) on the completion list's futex word with the ticket it read
 * when it registered as a waiter, submits everything, and waits for one
 * CQE. A FUTEX_WAKE on that word completes the armed operation (a CQE), so
 * the waker side of the idle protocol is unchanged. A futex op still armed
 * when the VP wakes for another reason is cancelled (csup_uring_disarm)
 * before the VP leaves its sleep: the cancel unqueues it from the futex in
 * the submitting call, so no later wake can be absorbed by a VP that is
 * awake. The SPIN model Tests/Models/ringsleep.pml checks this protocol.
 *
 * Errors: functions that prepare an operation return 0, or -EBUSY when the
 * submission queue stays full after a submit (the caller falls back to
 * another path), or -errno from io_uring_enter.
 */
#ifndef CSUP_URING_H
#define CSUP_URING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct csup_uring csup_uring;

enum {
    CSUP_URING_TAG_FUTEX = 1,    /* the armed futex wait */
    CSUP_URING_TAG_IGNORE = 2,   /* cancels, linked timeouts, disarms */
    CSUP_URING_TAG_USER = 16,    /* first tag returned to the caller */
};

/* Whether this kernel and process can use io_uring the way csup_uring does
 * (ring setup, and the opcodes used, FUTEX_WAIT included). Returns 1, or 0
 * with a one-line reason in `why` (for statistics and logs). Cached after
 * the first call; thread-safe. */
int csup_uring_usable(char *why, size_t why_len);

/* Creates a ring with `sq_entries` submission and `cq_entries` completion
 * slots (clamped by the kernel). NULL with *err = errno on failure
 * (EMFILE, ENOMEM, EPERM, ENOSYS). */
csup_uring *csup_uring_create(unsigned sq_entries, unsigned cq_entries, int *err);
/* Closes the ring. No operation may be in flight except the armed futex
 * wait (cancelled here). */
void csup_uring_destroy(csup_uring *r);

/* Operations. `off` -1: the file position (pipes, sockets). Memory that an
 * operation names (buffers, paths, iovecs, timespecs, sockaddrs) must stay
 * valid until its completion is reaped. With `timeout_ns` >= 0 the
 * operation is linked to a timeout: it completes with -ECANCELED (or its
 * own result if it finished first) when the timeout passes first; the
 * timespec lives in `ts`, which the caller keeps valid like a buffer.
 * recv and send arm the poll first (IORING_RECVSEND_POLL_FIRST): their
 * callers queue them only after a non-blocking attempt said EAGAIN. */
/* Layout of the kernel's struct __kernel_timespec (64-bit fields on
 * every architecture), declared here so Swift can allocate one. */
typedef struct csup_timespec { int64_t tv_sec; long long tv_nsec; } csup_timespec;
int csup_uring_read(csup_uring *r, uint64_t tag, int fd, void *buf, size_t n, int64_t off);
int csup_uring_write(csup_uring *r, uint64_t tag, int fd, const void *buf, size_t n, int64_t off);
int csup_uring_readv(csup_uring *r, uint64_t tag, int fd, const void *iov, int iovcnt, int64_t off);
int csup_uring_writev(csup_uring *r, uint64_t tag, int fd, const void *iov, int iovcnt, int64_t off);
int csup_uring_recv(csup_uring *r, uint64_t tag, int fd, void *buf, size_t n, int flags,
                    csup_timespec *ts, int64_t timeout_ns);
int csup_uring_send(csup_uring *r, uint64_t tag, int fd, const void *buf, size_t n, int flags,
                    csup_timespec *ts, int64_t timeout_ns);
int csup_uring_accept(csup_uring *r, uint64_t tag, int fd, int flags,
                      csup_timespec *ts, int64_t timeout_ns);
int csup_uring_connect(csup_uring *r, uint64_t tag, int fd, const void *addr, uint32_t len);
int csup_uring_poll(csup_uring *r, uint64_t tag, int fd, unsigned events,
                    csup_timespec *ts, int64_t timeout_ns);
int csup_uring_fsync(csup_uring *r, uint64_t tag, int fd, int datasync);
int csup_uring_openat(csup_uring *r, uint64_t tag, int dfd, const char *path, int flags, unsigned mode);
int csup_uring_close(csup_uring *r, uint64_t tag, int fd);
int csup_uring_statx(csup_uring *r, uint64_t tag, int dfd, const char *path, int flags,
                     unsigned mask, void *statxbuf);
/* Asks the kernel to cancel the operation tagged `tag` (it then completes
 * with -ECANCELED, or with its result if it finished first). */
int csup_uring_cancel(csup_uring *r, uint64_t tag);
/* Cancels every user operation in flight. */
int csup_uring_cancel_all(csup_uring *r);

/* Prepared operations not yet submitted. */
unsigned csup_uring_pending(csup_uring *r);
/* Submits the prepared operations. Returns how many, or -errno. */
int csup_uring_submit(csup_uring *r);
/* The completion queue's head and tail words (shared with the kernel),
 * for csup_uring_cq_pending: the hot-path check, inlined into callers. */
const uint32_t *csup_uring_cq_head(csup_uring *r);
const uint32_t *csup_uring_cq_tail(csup_uring *r);
static inline uint32_t csup_uring_cq_pending(const uint32_t *head, const uint32_t *tail) {
    /* acquire on the tail: the kernel writes the entries, then the tail
     * (release); acquire on the head: the owner advances it after reading */
    return __atomic_load_n(tail, __ATOMIC_ACQUIRE) - __atomic_load_n(head, __ATOMIC_ACQUIRE);
}
/* Takes up to `max` user completions (tags and results, oldest first);
 * internal ones are consumed on the way. Flushes completions the kernel
 * held back on a full CQ. Returns how many were stored. */
unsigned csup_uring_reap(csup_uring *r, uint64_t *tags, int32_t *results, unsigned max);

/* Submits the prepared operations and sleeps until a completion is ready,
 * `timeout_ns` passes (< 0: no timeout), or `word` is futex-woken
 * (FUTEX_WAIT armed with `expected`; re-armed only when not armed with that
 * value already). Returns 0, or -errno when the ring cannot wait (then the
 * caller sleeps another way). */
int csup_uring_sleep(csup_uring *r, uint32_t *word, uint32_t expected, int64_t timeout_ns);
/* The same, the futex wait armed with `bitset` (csup_futex.h; re-armed when
 * armed with another value or bitset). csup_uring_sleep uses
 * CSUP_FUTEX_BITSET_ANY. */
int csup_uring_sleep_bitset(csup_uring *r, uint32_t *word, uint32_t expected, int64_t timeout_ns, uint32_t bitset);
/* Cancels an armed futex wait (unqueued from the futex before this
 * returns). No-op when none is armed. */
void csup_uring_disarm(csup_uring *r);
/* True while a futex wait is armed. */
int csup_uring_armed(csup_uring *r);

#endif
