/* Completion list: a lock-free stack taken whole (protocol in csup_clist.h). */
#include "csup_config.h"
#include "include/csup_clist.h"
#include "include/csup_futex.h"
#include "include/csup_atomic.h"

#include <errno.h>
#include <pthread.h>
#include "include/csup_syscall.h"
#include <stdlib.h>
#include <unistd.h>

/* Storage: a Treiber stack of nodes. Enqueue pushes with a CAS (release:
 * publishes the node's fields and what the enqueuer wrote before, e.g. the
 * queued UMS thread's saved state); a dequeue takes the whole stack with
 * one exchange (acquire), so any number of primaries dequeue with no lock
 * and no ABA (nothing is ever popped one at a time), then reverses the
 * chain to oldest-first. Both are plain C11 atomics, visible to TSan. */
struct csup_clist_node {
    struct csup_clist_node *link;   /* stack link (newer -> older) */
    void *item;
    struct csup_clist_node *next;   /* chain returned by take_all */
};

struct csup_clist {
    csup_clist_node *top;    /* newest node, or NULL: the stack */
    char pad0[64];
    uint32_t seq;            /* futex word: bumped by enqueuers that saw waiters */
    uint32_t waiters;        /* dequeuers about to sleep or sleeping */
    int event_fd;            /* -1 until requested; set once under event_lock */
    uint32_t event_pending;  /* 1 after a signal, until a dequeue drains it */
    pthread_mutex_t event_lock;
};

csup_clist *csup_clist_create(void) {
    csup_clist *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->top = NULL;
    l->event_fd = -1;
    pthread_mutex_init(&l->event_lock, NULL);
    return l;
}

void csup_clist_destroy(csup_clist *l) {
    if (!l) return;
    int fd = __atomic_load_n(&l->event_fd, __ATOMIC_ACQUIRE);
    if (fd >= 0) close(fd);
    pthread_mutex_destroy(&l->event_lock);
    free(l);
}

csup_clist_node *csup_clist_node_create(void *item) {
    csup_clist_node *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->item = item;
    return n;
}
void csup_clist_node_destroy(csup_clist_node *n) { free(n); }
void *csup_clist_node_item(const csup_clist_node *n) { return n->item; }
void csup_clist_node_set_item(csup_clist_node *n, void *item) { n->item = item; }
csup_clist_node *csup_clist_node_next(const csup_clist_node *n) { return n->next; }

/* The hot "anything queued?" check of every scheduler pass: one relaxed
 * load. A snapshot. */
int csup_clist_is_empty(csup_clist *l) {
    return __atomic_load_n(&l->top, __ATOMIC_RELAXED) == NULL;
}

/* is_empty plus a relaxed look at event_pending: a stale signal (left by an
 * enqueue that raced with a splice) sends the poll through splice_out,
 * which drains it. Missing a just-set flag is harmless: the next poll sees
 * it. */
int csup_clist_idle(csup_clist *l) {
    return csup_clist_is_empty(l)
        && __atomic_load_n(&l->event_pending, __ATOMIC_RELAXED) == 0;
}

void csup_clist_enqueue(csup_clist *l, csup_clist_node *n) {
    n->next = NULL;
    /* Push (seq_cst CAS: a full barrier, which orders it before the loads
     * below as the xchg of a queue would). */
    csup_clist_node *old = __atomic_load_n(&l->top, __ATOMIC_RELAXED);
    do {
        n->link = old;
    } while (!__atomic_compare_exchange_n(&l->top, &old, n, 1, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
    if (old == NULL) {
        int fd = __atomic_load_n(&l->event_fd, __ATOMIC_ACQUIRE);
        if (fd >= 0) {
            __atomic_store_n(&l->event_pending, 1, __ATOMIC_SEQ_CST);
            csup_eventfd_signal(fd);
        }
    }
    csup_fence_seq_cst();
    if (__atomic_load_n(&l->waiters, __ATOMIC_SEQ_CST) > 0) {
        __atomic_fetch_add(&l->seq, 1, __ATOMIC_SEQ_CST);
        csup_futex_wake(&l->seq, 1);
    }
}

static csup_clist_node *splice_out(csup_clist *l) {
    int fd = __atomic_load_n(&l->event_fd, __ATOMIC_ACQUIRE);
    if (fd >= 0 && __atomic_exchange_n(&l->event_pending, 0, __ATOMIC_SEQ_CST))
        csup_eventfd_drain(fd);
    if (__atomic_load_n(&l->top, __ATOMIC_RELAXED) == NULL) return NULL;
    /* Take the whole stack (acquire: pairs with each push's CAS). Several
     * primaries may do this at once: each gets a disjoint chain. */
    csup_clist_node *n = __atomic_exchange_n(&l->top, NULL, __ATOMIC_ACQ_REL);
    /* Newest first: reverse into the oldest-first `next` chain. The nodes
     * are ours alone now. */
    csup_clist_node *first = NULL;
    while (n) {
        csup_clist_node *older = n->link;
        n->next = first;
        first = n;
        n = older;
    }
    return first;
}

csup_clist_node *csup_clist_take_all(csup_clist *l, int64_t timeout_ns) {
    int64_t deadline = timeout_ns > 0 ? csup_monotonic_ns() + timeout_ns : 0;
    int64_t spin_deadline = 0;
    for (int spins = 0;; spins++) {
        csup_clist_node *got = splice_out(l);
        if (got || timeout_ns == 0) return got;
        /* Brief spin (up to ~50 us) before sleeping: a kernel thread is
         * often about to queue something (a short blocking call), and on a
         * VM the futex wake of a sleeping vCPU costs tens of microseconds. */
        if (spins == 0) spin_deadline = csup_monotonic_ns() + 50000;
        if (csup_monotonic_ns() < spin_deadline) { for (int i = 0; i < 16; i++) csup_cpu_relax(); continue; }
        int64_t remaining = -1;
        if (timeout_ns > 0) {
            remaining = deadline - csup_monotonic_ns();
            if (remaining <= 0) return splice_out(l);
        }
        uint32_t seq = __atomic_load_n(&l->seq, __ATOMIC_SEQ_CST);
        __atomic_fetch_add(&l->waiters, 1, __ATOMIC_SEQ_CST);
        csup_fence_seq_cst();   /* see csup_clist_prepare_wait */
        if (__atomic_load_n(&l->top, __ATOMIC_RELAXED) == NULL)
            csup_futex_wait(&l->seq, seq, remaining);
        __atomic_fetch_sub(&l->waiters, 1, __ATOMIC_SEQ_CST);
    }
}

void csup_clist_wake_all(csup_clist *l) {
    __atomic_fetch_add(&l->seq, 1, __ATOMIC_SEQ_CST);
    csup_futex_wake(&l->seq, 1 << 30);
}

int csup_clist_event_fd(csup_clist *l) {
    int fd = __atomic_load_n(&l->event_fd, __ATOMIC_ACQUIRE);
    if (fd >= 0) return fd;
    pthread_mutex_lock(&l->event_lock);
    fd = l->event_fd;
    if (fd < 0) {
        fd = csup_eventfd_create(0, 1);
        if (fd < 0) { pthread_mutex_unlock(&l->event_lock); return fd; }
        /* Publish first, then look: an enqueue racing with us either sees
         * the descriptor (and signals it) or its item is seen here. */
        __atomic_store_n(&l->event_fd, fd, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&l->top, __ATOMIC_RELAXED) != NULL) {
            __atomic_store_n(&l->event_pending, 1, __ATOMIC_SEQ_CST);
            csup_eventfd_signal(fd);
        }
    }
    pthread_mutex_unlock(&l->event_lock);
    return fd;
}

void csup_clist_test_late_signal(csup_clist *l) {
    int fd = __atomic_load_n(&l->event_fd, __ATOMIC_ACQUIRE);
    if (fd < 0) return;
    __atomic_store_n(&l->event_pending, 1, __ATOMIC_SEQ_CST);
    csup_eventfd_signal(fd);
}

uint32_t csup_clist_prepare_wait(csup_clist *l) {
    uint32_t seq = __atomic_load_n(&l->seq, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&l->waiters, 1, __ATOMIC_SEQ_CST);
    /* The waiter's half of the Dekker pair with the enqueuer's fence
     * (waiters += 1, then look at the work sources). A seq_cst RMW does not
     * order the relaxed loads that follow it in C11 (csup_clist_is_empty, the caller's re-checks), and on aarch64
     * (ldaxr/stlxr) a later load may be satisfied before the stlxr is
     * visible: then the enqueuer reads waiters == 0 while we read the list
     * empty, and we sleep on an unbumped seq. The fence forbids that. On
     * x86 the RMW is already a full barrier; this path is about to sleep. */
    csup_fence_seq_cst();
    return seq;
}

void csup_clist_cancel_wait(csup_clist *l) {
    __atomic_fetch_sub(&l->waiters, 1, __ATOMIC_SEQ_CST);
}

void csup_clist_wait(csup_clist *l, uint32_t seq, int64_t timeout_ns) {
    if (__atomic_load_n(&l->top, __ATOMIC_RELAXED) == NULL)
        csup_futex_wait(&l->seq, seq, timeout_ns);
    __atomic_fetch_sub(&l->waiters, 1, __ATOMIC_SEQ_CST);
}

void csup_clist_notify(csup_clist *l, int n) {
    csup_fence_seq_cst();
    if (__atomic_load_n(&l->waiters, __ATOMIC_SEQ_CST) > 0) {
        __atomic_fetch_add(&l->seq, 1, __ATOMIC_SEQ_CST);
        csup_futex_wake(&l->seq, n);
    }
}

void csup_clist_wait_bitset(csup_clist *l, uint32_t seq, int64_t timeout_ns, uint32_t bitset) {
    if (__atomic_load_n(&l->top, __ATOMIC_RELAXED) == NULL)
        csup_futex_wait_bitset(&l->seq, seq, timeout_ns, bitset);
    __atomic_fetch_sub(&l->waiters, 1, __ATOMIC_SEQ_CST);
}

void csup_clist_notify_bitset(csup_clist *l, int n, uint32_t bitset) {
    csup_fence_seq_cst();
    if (__atomic_load_n(&l->waiters, __ATOMIC_SEQ_CST) > 0) {
        __atomic_fetch_add(&l->seq, 1, __ATOMIC_SEQ_CST);
        csup_futex_wake_bitset(&l->seq, n, bitset);
    }
}

uint32_t *csup_clist_wait_word(csup_clist *l) { return &l->seq; }

uint32_t csup_clist_waiters(csup_clist *l) { return __atomic_load_n(&l->waiters, __ATOMIC_SEQ_CST); }
