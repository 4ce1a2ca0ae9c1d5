/* One io_uring per virtual processor (see csup_uring.h for the protocol).
 * Everything liburing is kept in this file. */
#include "csup_config.h"
#include "include/csup_uring.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <liburing.h>

/* IORING_OP_FUTEX_WAIT (Linux 6.7) is newer than Debian 12's liburing 2.3
 * headers; its number is fixed by the kernel ABI. Its SQE: fd = futex2
 * flags, addr = the word, addr2 = expected value, addr3 = bitset. */
#define CSUP_IORING_OP_FUTEX_WAIT 51
#define CSUP_FUTEX2_SIZE_U32 0x02u
#define CSUP_FUTEX2_PRIVATE 128u   /* FUTEX_PRIVATE_FLAG: matches FUTEX_WAKE_PRIVATE */
#ifndef CSUP_FUTEX_BITSET_ANY
#define CSUP_FUTEX_BITSET_ANY 0xffffffffu
#endif

/* Futex waits are tagged 8..15 (a 3-bit generation), so the completion of
 * a cancelled wait is never taken for the one armed after it. */
_Static_assert(sizeof(csup_timespec) == sizeof(struct __kernel_timespec), "csup_timespec layout");
#define KTS(ts) ((struct __kernel_timespec *)(void *)(ts))

#define FUTEX_TAG_BASE 8u
#define FUTEX_TAG_MASK 7u

struct csup_uring {
    struct io_uring ring;
    int armed;               /* a futex wait is queued on the futex */
    uint32_t armed_value;    /* its expected value */
    uint32_t armed_bitset;   /* its futex bitset */
    uint64_t armed_tag;      /* its tag (FUTEX_TAG_BASE + generation) */
    unsigned generation;
};

static int is_internal(uint64_t tag) {
    /* liburing's own timeout SQEs (kernels without EXT_ARG) use
     * LIBURING_UDATA_TIMEOUT, all ones. */
    return tag < CSUP_URING_TAG_USER || tag == (uint64_t)-1;
}

/* n free SQEs, submitting what is queued once if needed; NULL when the
 * queue stays full. */
static struct io_uring_sqe *sqes(csup_uring *r, unsigned n) {
    if (io_uring_sq_space_left(&r->ring) < n) {
        io_uring_submit(&r->ring);
        if (io_uring_sq_space_left(&r->ring) < n) return NULL;
    }
    return io_uring_get_sqe(&r->ring);
}

static void set_ts(struct __kernel_timespec *ts, int64_t ns) {
    if (ns < 0) ns = 0;
    ts->tv_sec = ns / 1000000000LL;
    ts->tv_nsec = ns % 1000000000LL;
}

/* Links a timeout to `op` (already prepared, the SQE before the next one). */
static void link_timeout(csup_uring *r, struct io_uring_sqe *op,
                         struct __kernel_timespec *ts, int64_t ns) {
    op->flags |= IOSQE_IO_LINK;
    set_ts(ts, ns);
    struct io_uring_sqe *t = io_uring_get_sqe(&r->ring);   /* reserved by sqes(r, 2) */
    io_uring_prep_link_timeout(t, ts, 0);
    io_uring_sqe_set_data64(t, CSUP_URING_TAG_IGNORE);
}

/* Tags `s` and, with a timeout, links one to it (the SQE after `s` was
 * reserved by PREP(2)). */
static int finish_timed(csup_uring *r, struct io_uring_sqe *s, uint64_t tag,
                        csup_timespec *ts, int64_t timeout_ns) {
    io_uring_sqe_set_data64(s, tag);
    if (timeout_ns >= 0) link_timeout(r, s, KTS(ts), timeout_ns);
    return 0;
}

#define PREP(n) struct io_uring_sqe *s = sqes(r, (n)); if (!s) return -EBUSY
#define DONE(tag) io_uring_sqe_set_data64(s, (tag)); return 0

int csup_uring_read(csup_uring *r, uint64_t tag, int fd, void *buf, size_t n, int64_t off) {
    PREP(1); io_uring_prep_read(s, fd, buf, (unsigned)(n > 0x7ffff000u ? 0x7ffff000u : n), (uint64_t)off); DONE(tag);
}
int csup_uring_write(csup_uring *r, uint64_t tag, int fd, const void *buf, size_t n, int64_t off) {
    PREP(1); io_uring_prep_write(s, fd, buf, (unsigned)(n > 0x7ffff000u ? 0x7ffff000u : n), (uint64_t)off); DONE(tag);
}
int csup_uring_readv(csup_uring *r, uint64_t tag, int fd, const void *iov, int iovcnt, int64_t off) {
    PREP(1); io_uring_prep_readv(s, fd, (const struct iovec *)iov, (unsigned)iovcnt, (uint64_t)off); DONE(tag);
}
int csup_uring_writev(csup_uring *r, uint64_t tag, int fd, const void *iov, int iovcnt, int64_t off) {
    PREP(1); io_uring_prep_writev(s, fd, (const struct iovec *)iov, (unsigned)iovcnt, (uint64_t)off); DONE(tag);
}
int csup_uring_recv(csup_uring *r, uint64_t tag, int fd, void *buf, size_t n, int flags,
                    csup_timespec *ts, int64_t timeout_ns) {
    PREP(timeout_ns >= 0 ? 2 : 1);
    io_uring_prep_recv(s, fd, buf, n, flags);
    s->ioprio |= IORING_RECVSEND_POLL_FIRST;   /* the caller just saw EAGAIN */
    return finish_timed(r, s, tag, ts, timeout_ns);
}
int csup_uring_send(csup_uring *r, uint64_t tag, int fd, const void *buf, size_t n, int flags,
                    csup_timespec *ts, int64_t timeout_ns) {
    PREP(timeout_ns >= 0 ? 2 : 1);
    io_uring_prep_send(s, fd, buf, n, flags);
    s->ioprio |= IORING_RECVSEND_POLL_FIRST;   /* the caller just saw EAGAIN */
    return finish_timed(r, s, tag, ts, timeout_ns);
}
int csup_uring_accept(csup_uring *r, uint64_t tag, int fd, int flags,
                      csup_timespec *ts, int64_t timeout_ns) {
    PREP(timeout_ns >= 0 ? 2 : 1);
    io_uring_prep_accept(s, fd, NULL, NULL, flags);
    return finish_timed(r, s, tag, ts, timeout_ns);
}
int csup_uring_connect(csup_uring *r, uint64_t tag, int fd, const void *addr, uint32_t len) {
    PREP(1); io_uring_prep_connect(s, fd, (const struct sockaddr *)addr, len); DONE(tag);
}
int csup_uring_poll(csup_uring *r, uint64_t tag, int fd, unsigned events,
                    csup_timespec *ts, int64_t timeout_ns) {
    PREP(timeout_ns >= 0 ? 2 : 1);
    io_uring_prep_poll_add(s, fd, events);
    return finish_timed(r, s, tag, ts, timeout_ns);
}
int csup_uring_fsync(csup_uring *r, uint64_t tag, int fd, int datasync) {
    PREP(1); io_uring_prep_fsync(s, fd, datasync ? IORING_FSYNC_DATASYNC : 0); DONE(tag);
}
int csup_uring_openat(csup_uring *r, uint64_t tag, int dfd, const char *path, int flags, unsigned mode) {
    PREP(1); io_uring_prep_openat(s, dfd, path, flags, mode); DONE(tag);
}
int csup_uring_close(csup_uring *r, uint64_t tag, int fd) {
    PREP(1); io_uring_prep_close(s, fd); DONE(tag);
}
int csup_uring_statx(csup_uring *r, uint64_t tag, int dfd, const char *path, int flags,
                     unsigned mask, void *statxbuf) {
    PREP(1); io_uring_prep_statx(s, dfd, path, flags, mask, (struct statx *)statxbuf); DONE(tag);
}
int csup_uring_cancel(csup_uring *r, uint64_t tag) {
    PREP(1); io_uring_prep_cancel64(s, tag, 0); io_uring_sqe_set_data64(s, CSUP_URING_TAG_IGNORE); return 0;
}
int csup_uring_cancel_all(csup_uring *r) {
    /* IORING_ASYNC_CANCEL_ANY matches everything, the armed futex wait
     * included: it is marked disarmed (its completion is ignored). */
    PREP(1);
    io_uring_prep_cancel64(s, 0, IORING_ASYNC_CANCEL_ANY);
    io_uring_sqe_set_data64(s, CSUP_URING_TAG_IGNORE);
    r->armed = 0;
    return 0;
}

unsigned csup_uring_pending(csup_uring *r) { return io_uring_sq_ready(&r->ring); }

int csup_uring_submit(csup_uring *r) {
    for (;;) {
        int n = io_uring_submit(&r->ring);
        if (n != -EINTR) return n;
    }
}

const uint32_t *csup_uring_cq_head(csup_uring *r) { return r->ring.cq.khead; }
const uint32_t *csup_uring_cq_tail(csup_uring *r) { return r->ring.cq.ktail; }

unsigned csup_uring_reap(csup_uring *r, uint64_t *tags, int32_t *results, unsigned max) {
    if (io_uring_cq_has_overflow(&r->ring)) io_uring_get_events(&r->ring);
    unsigned head, seen = 0, out = 0;
    struct io_uring_cqe *cqe;
    io_uring_for_each_cqe(&r->ring, head, cqe) {
        if (out == max) break;
        uint64_t tag = io_uring_cqe_get_data64(cqe);
        seen++;
        if (is_internal(tag)) {
            if (r->armed && tag == r->armed_tag) r->armed = 0;
            continue;
        }
        tags[out] = tag;
        results[out] = cqe->res;
        out++;
    }
    io_uring_cq_advance(&r->ring, seen);
    return out;
}

void csup_uring_disarm(csup_uring *r) {
    if (!r->armed) return;
    struct io_uring_sqe *s = sqes(r, 1);
    if (!s) return;   /* cannot happen: sqes submitted the queue, which frees every slot */
    io_uring_prep_cancel64(s, r->armed_tag, 0);
    io_uring_sqe_set_data64(s, CSUP_URING_TAG_IGNORE);
    /* The cancel runs inline in this io_uring_enter and unqueues the wait
     * from the futex before it returns. */
    csup_uring_submit(r);
    r->armed = 0;
}

int csup_uring_armed(csup_uring *r) { return r->armed; }

static void prep_futex_wait(struct io_uring_sqe *s, uint32_t *word, uint32_t expected, uint64_t tag,
                            uint32_t bitset) {
    io_uring_prep_rw(CSUP_IORING_OP_FUTEX_WAIT, s, (int)(CSUP_FUTEX2_SIZE_U32 | CSUP_FUTEX2_PRIVATE),
                     word, 0, expected);
    s->addr3 = bitset;
    io_uring_sqe_set_data64(s, tag);
}

int csup_uring_sleep(csup_uring *r, uint32_t *word, uint32_t expected, int64_t timeout_ns) {
    return csup_uring_sleep_bitset(r, word, expected, timeout_ns, CSUP_FUTEX_BITSET_ANY);
}

int csup_uring_sleep_bitset(csup_uring *r, uint32_t *word, uint32_t expected, int64_t timeout_ns, uint32_t bitset) {
    if (r->armed && (r->armed_value != expected || r->armed_bitset != bitset)) csup_uring_disarm(r);
    if (!r->armed) {
        struct io_uring_sqe *s = sqes(r, 1);
        if (!s) return -EBUSY;
        r->generation++;
        r->armed_tag = FUTEX_TAG_BASE + (r->generation & FUTEX_TAG_MASK);
        prep_futex_wait(s, word, expected, r->armed_tag, bitset);
        r->armed = 1;
        r->armed_value = expected;
        r->armed_bitset = bitset;
    }
    struct __kernel_timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) { set_ts(&ts, timeout_ns); tsp = &ts; }
    struct io_uring_cqe *cqe = NULL;
    int rc = io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, tsp, NULL);
    if (rc >= 0 || rc == -ETIME || rc == -EINTR || rc == -EAGAIN || rc == -EBUSY) return 0;
    return rc;
}

csup_uring *csup_uring_create(unsigned sq_entries, unsigned cq_entries, int *err) {
    csup_uring *r = calloc(1, sizeof *r);
    if (!r) { *err = ENOMEM; return NULL; }
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    /* COOP_TASKRUN: a completion does not interrupt the submitting pthread
     * with an IPI while it runs user code; its task work runs at its next
     * kernel entry (every VP makes system calls all the time: nowait
     * attempts, submits) or interrupt return. A submitter that sleeps in
     * the kernel (a VP asleep in its ring, or a carrier retaken in a lazy
     * call) is woken exactly as without the flag. -10..15% server CPU on
     * the echo workload. */
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN;
    p.cq_entries = cq_entries;
    int rc = io_uring_queue_init_params(sq_entries, &r->ring, &p);
    if (rc == -EINVAL) {   /* kernels before 5.18 lack SUBMIT_ALL (5.19: COOP_TASKRUN) */
        memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
        p.cq_entries = cq_entries;
        rc = io_uring_queue_init_params(sq_entries, &r->ring, &p);
    }
    if (rc < 0) { free(r); *err = -rc; return NULL; }
    return r;
}

void csup_uring_destroy(csup_uring *r) {
    if (!r) return;
    csup_uring_disarm(r);
    io_uring_queue_exit(&r->ring);
    free(r);
}

/* ---- Probe ---------------------------------------------------------- */

static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static int probe_ok;
static char probe_why[160];

static void probe(void) {
    int err = 0;
    csup_uring *r = csup_uring_create(4, 8, &err);
    if (!r) {
        snprintf(probe_why, sizeof probe_why, "io_uring_setup failed: %s%s", strerror(err),
                 err == EPERM ? " (kernel.io_uring_disabled, or a seccomp filter)" :
                 err == ENOSYS ? " (kernel built without io_uring)" :
                 err == ENOMEM ? " (locked-memory limit)" : "");
        return;
    }
    static const struct { int op; const char *name; } needed[] = {
        { IORING_OP_READ, "READ" }, { IORING_OP_WRITE, "WRITE" }, { IORING_OP_READV, "READV" },
        { IORING_OP_WRITEV, "WRITEV" }, { IORING_OP_RECV, "RECV" }, { IORING_OP_SEND, "SEND" },
        { IORING_OP_ACCEPT, "ACCEPT" }, { IORING_OP_CONNECT, "CONNECT" },
        { IORING_OP_POLL_ADD, "POLL_ADD" }, { IORING_OP_FSYNC, "FSYNC" },
        { IORING_OP_OPENAT, "OPENAT" }, { IORING_OP_CLOSE, "CLOSE" }, { IORING_OP_STATX, "STATX" },
        { IORING_OP_TIMEOUT, "TIMEOUT" }, { IORING_OP_LINK_TIMEOUT, "LINK_TIMEOUT" },
        { IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL" }, { CSUP_IORING_OP_FUTEX_WAIT, "FUTEX_WAIT (Linux 6.7)" },
    };
    struct io_uring_probe *pr = io_uring_get_probe_ring(&r->ring);
    if (!pr) {
        snprintf(probe_why, sizeof probe_why, "io_uring probe failed (kernel before 5.6)");
        csup_uring_destroy(r);
        return;
    }
    for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++) {
        if (!io_uring_opcode_supported(pr, needed[i].op)) {
            snprintf(probe_why, sizeof probe_why, "io_uring lacks IORING_OP_%s", needed[i].name);
            io_uring_free_probe(pr);
            csup_uring_destroy(r);
            return;
        }
    }
    io_uring_free_probe(pr);
    if (!(r->ring.features & IORING_FEAT_NODROP)) {
        snprintf(probe_why, sizeof probe_why, "io_uring lacks IORING_FEAT_NODROP (kernel before 5.5)");
        csup_uring_destroy(r);
        return;
    }
    /* A live futex wait with a stale value must complete at once with
     * -EAGAIN (a seccomp filter or an LSM may refuse the operation). */
    uint32_t word = 1;
    struct io_uring_sqe *s = io_uring_get_sqe(&r->ring);
    prep_futex_wait(s, &word, 0, CSUP_URING_TAG_USER, CSUP_FUTEX_BITSET_ANY);
    struct io_uring_cqe *cqe = NULL;
    struct __kernel_timespec ts = { .tv_sec = 1, .tv_nsec = 0 };
    int rc = io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, &ts, NULL);
    if (rc < 0 || !cqe || cqe->res != -EAGAIN) {
        snprintf(probe_why, sizeof probe_why, "io_uring FUTEX_WAIT does not work here (%s)",
                 rc < 0 ? strerror(-rc) : cqe ? strerror(-cqe->res) : "no completion");
        csup_uring_destroy(r);
        return;
    }
    io_uring_cqe_seen(&r->ring, cqe);
    csup_uring_destroy(r);
    probe_ok = 1;
    snprintf(probe_why, sizeof probe_why, "io_uring available");
}

int csup_uring_usable(char *why, size_t why_len) {
    pthread_once(&probe_once, probe);
    if (why && why_len) snprintf(why, why_len, "%s", probe_why);
    return probe_ok;
}
