/*
 * Completion list: the queue kernel threads put unblocked UMS threads on,
 * drained by primaries.
 *
 * Storage is a lock-free (Treiber) stack of nodes: an enqueue pushes with
 * one CAS (retried only when another enqueue won the race); a dequeue
 * takes the whole stack with one exchange and reverses it to oldest-first.
 * Several primaries may dequeue one list at once, with no lock: each gets
 * a disjoint chain (nothing is popped singly, so there is no ABA).
 *
 * Wake-up protocol (no lost wake-up, no syscall when nobody sleeps):
 *   dequeuer: read seq; waiters += 1 (seq_cst) + seq_cst fence; re-check
 *             emptiness; futex_wait(seq, old seq); waiters -= 1.
 *             (The fence: a seq_cst RMW alone does not order the relaxed
 *             loads of the re-check in C11, nor on aarch64.)
 *   enqueuer: enqueue (seq_cst CAS: a full barrier); if waiters > 0 (seq_cst):
 *             seq += 1, futex_wake(seq, 1).
 * Either the dequeuer's re-check sees the item, or the enqueuer sees the
 * waiter and bumps seq, which makes the futex_wait return at once.
 *
 * Event descriptor: created on first request. When an enqueue finds the list
 * empty, it sets `event_pending` and writes 1 to the eventfd. A dequeue
 * first clears `event_pending` (and drains the eventfd when it was set),
 * then splices. So the descriptor is readable whenever the list is not
 * empty; it may be readable with nothing queued (a dequeue raced with the
 * enqueue between its splice and its signal: a spurious wake-up, and the
 * dequeue that follows returns no items and resets the descriptor). The
 * owner never reads the descriptor itself: a read after its dequeue could
 * consume the signal of an item queued since, and it would then sleep in
 * poll with that item queued. A poll-only dequeue that finds the list
 * empty still resets a pending signal (csup_clist_idle is false then).
 */
#ifndef CSUP_CLIST_H
#define CSUP_CLIST_H

#include <stddef.h>
#include <stdint.h>

typedef struct csup_clist csup_clist;

/* A queue entry. `item` is the owner's pointer; `next` links the chain a
 * dequeue returns (oldest first). Allocate once per queued object and
 * reuse it; it may be queued on one list at a time. */
typedef struct csup_clist_node csup_clist_node;

csup_clist *csup_clist_create(void);          /* NULL when out of memory */
void csup_clist_destroy(csup_clist *list);    /* list must be empty */

csup_clist_node *csup_clist_node_create(void *item);  /* NULL when OOM */
void csup_clist_node_destroy(csup_clist_node *node);
void *csup_clist_node_item(const csup_clist_node *node);
void csup_clist_node_set_item(csup_clist_node *node, void *item);
csup_clist_node *csup_clist_node_next(const csup_clist_node *node);

void csup_clist_enqueue(csup_clist *list, csup_clist_node *node);

/* Waits up to timeout_ns (< 0: forever, 0: poll) until at least one node is
 * queued, then takes every queued node. Returns the oldest (follow
 * csup_clist_node_next), or NULL on timeout. */
csup_clist_node *csup_clist_take_all(csup_clist *list, int64_t timeout_ns);

/* True when nothing is queued (a racy snapshot). */
int csup_clist_is_empty(csup_clist *list);

/* True when nothing is queued and no event signal is pending (a racy
 * snapshot): a poll (timeout 0) may then return NULL without calling
 * csup_clist_take_all, which also resets a pending event descriptor. */
int csup_clist_idle(csup_clist *list);

/* Wakes every dequeuer sleeping in take_all (they return NULL if still
 * empty once their timeout allows; used to interrupt waits at shutdown). */
void csup_clist_wake_all(csup_clist *list);

/* Sleeping on the list together with other wake-up sources (a scheduler's
 * idle protocol). The caller:
 *   seq = csup_clist_prepare_wait(list);   registers as a waiter
 *   ... re-checks its own work sources ...
 *   then either csup_clist_cancel_wait(list), or
 *   csup_clist_wait(list, seq, timeout_ns): sleeps unless the list is
 *   non-empty or someone notified since prepare; unregisters.
 * A producer of other work calls csup_clist_notify(list, n) after making it
 * visible: it wakes up to n waiters when there are any (seq_cst fence +
 * waiter check: no syscall when nobody sleeps). */
uint32_t csup_clist_prepare_wait(csup_clist *list);
void csup_clist_cancel_wait(csup_clist *list);
void csup_clist_wait(csup_clist *list, uint32_t seq, int64_t timeout_ns);
void csup_clist_notify(csup_clist *list, int n);
/* The same with a futex bitset (csup_futex.h): csup_clist_wait_bitset
 * sleeps with `bitset`; csup_clist_notify_bitset bumps the word (so every
 * waiter registered before it and not yet asleep returns at once, whatever
 * its bitset) and wakes up to n sleepers whose bitset shares a bit with
 * `bitset`. Completions and csup_clist_notify wake waiters of any bitset.
 * Used for per-NUMA-node wake-ups (ConcRT Idle/README.md). */
void csup_clist_wait_bitset(csup_clist *list, uint32_t seq, int64_t timeout_ns, uint32_t bitset);
void csup_clist_notify_bitset(csup_clist *list, int n, uint32_t bitset);
/* The futex word csup_clist_wait sleeps on, for a waiter that sleeps in
 * another primitive (an io_uring FUTEX_WAIT armed with the value
 * csup_clist_prepare_wait returned; see csup_uring.h). */
uint32_t *csup_clist_wait_word(csup_clist *list);
/* Waiters registered now (a snapshot). */
uint32_t csup_clist_waiters(csup_clist *list);

/* The event descriptor, created on first call. Returns fd or -errno. */
int csup_clist_event_fd(csup_clist *list);

/* Test hook: does what an enqueue onto an empty list does after its splice
 * lost the race to a dequeuer (event_pending = 1, eventfd signalled), so
 * that a test can check that the next dequeue resets the descriptor. No-op
 * before the descriptor exists. */
void csup_clist_test_late_signal(csup_clist *list);

#endif
