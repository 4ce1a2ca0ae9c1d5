/*
 * clist_test.c - stress test of the completion list (csup_clist: lock-free
 * stack taken whole + futex wake-up + eventfd).
 *
 * Checks, and why:
 *   mpsc      4 producers enqueue M items each, pausing now and then so the
 *             consumer really sleeps in the futex; one consumer takes them
 *             with take_all and a timeout cycling through forever / poll /
 *             1 ms. Every item must arrive exactly once, with the payload
 *             its producer wrote (publication by the enqueue), and each
 *             producer's items in order (the queue is FIFO per producer). A
 *             lost wake-up hangs the consumer: the run has a watchdog.
 *   timeout   take_all on an empty list: 0 returns at once, 3 ms returns
 *             NULL after at least 3 ms (and well before a second).
 *   notify    the idle protocol (prepare_wait / wait / cancel_wait /
 *             notify): a notify after prepare makes wait return at once;
 *             a notify while the waiter sleeps wakes it; wake_all wakes a
 *             sleeping waiter; notify with no waiter is a no-op; the
 *             waiter count goes back to 0.
 *   eventfd   the descriptor is not readable when empty, readable after an
 *             enqueue, cleared by the dequeue. Then producers run while the
 *             consumer creates the descriptor mid-stream (the publish /
 *             re-check race in csup_clist_event_fd) and sleeps only in
 *             poll(2) on it: whenever poll times out (1 s) the list must be
 *             empty ("readable whenever not empty"), and every item must
 *             arrive.
 */
#include "stress.h"
#include "csup_clist.h"
#include "csup_atomic.h"

#include <poll.h>
#include <stdatomic.h>
#include <unistd.h>

#define PRODUCERS 4

typedef struct item {
    csup_clist_node *node;
    int producer;
    long seq;
    long payload;              /* plain: published by the enqueue */
} item;

static csup_clist *list;
static long per_producer;
static item *items;            /* PRODUCERS * per_producer */

static void *producer(void *arg) {
    int p = (int)(intptr_t)arg;
    uint64_t rng = 77 + (uint64_t)p;
    for (long i = 0; i < per_producer; i++) {
        item *it = &items[p * per_producer + i];
        it->payload = (long)p * 1000003L + i * 3;
        csup_clist_enqueue(list, it->node);
        if ((stress_rand(&rng) & 255) == 0) {
            struct timespec ts = { 0, (long)(stress_rand(&rng) % 200000) };   /* up to 200 us */
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

static void setup_items(void) {
    for (int p = 0; p < PRODUCERS; p++)
        for (long i = 0; i < per_producer; i++) {
            item *it = &items[p * per_producer + i];
            it->producer = p;
            it->seq = i;
            it->payload = -1;
            if (!it->node) it->node = csup_clist_node_create(it);
            if (!it->node) { perror("node"); exit(2); }
        }
}

/* Consumes one chain; checks payloads and per-producer order. */
static long consume(csup_clist_node *n, long *next_seq) {
    long got = 0;
    while (n) {
        csup_clist_node *nx = csup_clist_node_next(n);
        item *it = csup_clist_node_item(n);
        CHECK(it->payload == (long)it->producer * 1000003L + it->seq * 3,
              "item %d/%ld arrived with payload %ld", it->producer, it->seq, it->payload);
        CHECK(it->seq == next_seq[it->producer], "producer %d: got item %ld, expected %ld",
              it->producer, it->seq, next_seq[it->producer]);
        next_seq[it->producer] = it->seq + 1;
        got++;
        n = nx;
    }
    return got;
}

static void test_mpsc(void) {
    setup_items();
    pthread_t th[PRODUCERS];
    for (int p = 0; p < PRODUCERS; p++) th[p] = stress_start(producer, (void *)(intptr_t)p);
    long next_seq[PRODUCERS] = {0}, total = 0, want = PRODUCERS * per_producer, nulls = 0, calls = 0;
    static const int64_t timeouts[3] = { -1, 0, 1000000 };
    while (total < want) {
        csup_clist_node *n = csup_clist_take_all(list, timeouts[calls++ % 3]);
        if (!n) nulls++;
        total += consume(n, next_seq);
    }
    for (int p = 0; p < PRODUCERS; p++) pthread_join(th[p], NULL);
    CHECK(total == want, "mpsc: got %ld of %ld", total, want);
    CHECK(csup_clist_take_all(list, 0) == NULL, "mpsc: items left over");
    CHECK(csup_clist_is_empty(list), "mpsc: list not empty at the end");
    CHECK(csup_clist_waiters(list) == 0, "mpsc: %u waiters left registered", csup_clist_waiters(list));
    printf("clist mpsc: %ld items from %d producers in %ld take_all calls (%ld returned nothing)\n",
           want, PRODUCERS, calls, nulls);
}

static void test_timeout(void) {
    int64_t t = stress_now_ns();
    CHECK(csup_clist_take_all(list, 0) == NULL, "poll on an empty list returned items");
    CHECK(stress_now_ns() - t < 50000000, "poll took %lld ns", (long long)(stress_now_ns() - t));
    t = stress_now_ns();
    CHECK(csup_clist_take_all(list, 3000000) == NULL, "timed take_all on an empty list returned items");
    int64_t el = stress_now_ns() - t;
    CHECK(el >= 3000000 && el < 1000000000, "3 ms timeout took %lld ns", (long long)el);
}

static atomic_int phase;
static atomic_int wait_returned;

static void *idle_waiter(void *arg) {
    int mode = (int)(intptr_t)arg;
    uint32_t seq = csup_clist_prepare_wait(list);
    atomic_store(&phase, 1);                     /* registered */
    if (mode == 0) while (atomic_load(&phase) != 2) csup_cpu_relax();   /* notified before wait */
    csup_clist_wait(list, seq, -1);
    atomic_store(&wait_returned, 1);
    return NULL;
}

/* Runs one waiter; `kick` 0: notify before it waits, 1: notify while it
 * sleeps, 2: wake_all while it sleeps. */
static void run_waiter(int kick) {
    atomic_store(&phase, 0);
    atomic_store(&wait_returned, 0);
    pthread_t t = stress_start(idle_waiter, (void *)(intptr_t)(kick == 0 ? 0 : 1));
    while (atomic_load(&phase) != 1) csup_cpu_relax();
    CHECK(csup_clist_waiters(list) == 1, "kick %d: %u waiters registered", kick, csup_clist_waiters(list));
    if (kick == 0) {
        csup_clist_notify(list, 1);
        atomic_store(&phase, 2);
    } else {
        struct timespec ts = { 0, 5000000 };   /* let it reach the futex */
        nanosleep(&ts, NULL);
        CHECK(!atomic_load(&wait_returned), "kick %d: the wait returned with nothing to wake it", kick);
        if (kick == 1) csup_clist_notify(list, 1); else csup_clist_wake_all(list);
    }
    int64_t deadline = stress_now_ns() + 2000000000LL;
    while (!atomic_load(&wait_returned) && stress_now_ns() < deadline) usleep(100);
    CHECK(atomic_load(&wait_returned), "kick %d: the waiter was not woken within 2 s", kick);
    pthread_join(t, NULL);
    CHECK(csup_clist_waiters(list) == 0, "kick %d: %u waiters left", kick, csup_clist_waiters(list));
}

static void test_notify(void) {
    csup_clist_notify(list, 1);                  /* nobody waits: no-op */
    for (int k = 0; k < 3; k++) run_waiter(k);
    uint32_t s = csup_clist_prepare_wait(list);
    (void)s;
    CHECK(csup_clist_waiters(list) == 1, "prepare_wait did not register");
    csup_clist_cancel_wait(list);
    CHECK(csup_clist_waiters(list) == 0, "cancel_wait did not unregister");
}

/* Bitset waits (per-NUMA-node wakes in ConcRT): a waiter with bitset 1
 * sleeps through a notify_bitset for bitset 2, wakes for one naming its
 * bit, and wakes for a plain notify; a timed bitset wait times out. */
static void *bitset_waiter(void *arg) {
    (void)arg;
    uint32_t seq = csup_clist_prepare_wait(list);
    atomic_store(&phase, 1);
    csup_clist_wait_bitset(list, seq, -1, 1u);
    atomic_store(&wait_returned, 1);
    return NULL;
}

static void run_bitset_waiter(int plain) {
    atomic_store(&phase, 0);
    atomic_store(&wait_returned, 0);
    pthread_t t = stress_start(bitset_waiter, NULL);
    while (atomic_load(&phase) != 1) csup_cpu_relax();
    struct timespec ts = { 0, 5000000 };   /* let it reach the futex */
    nanosleep(&ts, NULL);
    csup_clist_notify_bitset(list, 1, 2u);    /* another node's wake */
    nanosleep(&ts, NULL);
    CHECK(!atomic_load(&wait_returned), "a bitset-1 waiter woke for a bitset-2 notify");
    if (plain) csup_clist_notify(list, 1); else csup_clist_notify_bitset(list, 1, 1u | 4u);
    int64_t deadline = stress_now_ns() + 2000000000LL;
    while (!atomic_load(&wait_returned) && stress_now_ns() < deadline) usleep(100);
    CHECK(atomic_load(&wait_returned), "the bitset waiter was not woken by a %s notify", plain ? "plain" : "matching");
    pthread_join(t, NULL);
    CHECK(csup_clist_waiters(list) == 0, "bitset: %u waiters left", csup_clist_waiters(list));
}

static void test_bitset(void) {
    run_bitset_waiter(0);
    run_bitset_waiter(1);
    uint32_t seq = csup_clist_prepare_wait(list);
    int64_t t = stress_now_ns();
    csup_clist_wait_bitset(list, seq, 3000000, 1u);
    int64_t el = stress_now_ns() - t;
    CHECK(el >= 3000000 && el < 1000000000, "3 ms bitset wait took %lld ns", (long long)el);
}

static int readable(int fd, int timeout_ms) {
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int r = poll(&p, 1, timeout_ms);
    return r > 0 && (p.revents & POLLIN);
}

static void test_eventfd(void) {
    /* Single-threaded contract first, on a fresh list. */
    csup_clist *l = csup_clist_create();
    int fd = csup_clist_event_fd(l);
    CHECK(fd >= 0, "event_fd failed: %d", fd);
    CHECK(csup_clist_event_fd(l) == fd, "event_fd changed on the second call");
    CHECK(!readable(fd, 0), "eventfd readable on an empty list");
    csup_clist_node *n = csup_clist_node_create(NULL);
    csup_clist_enqueue(l, n);
    CHECK(readable(fd, 0), "eventfd not readable after an enqueue");
    CHECK(csup_clist_take_all(l, 0) == n, "take_all did not return the node");
    CHECK(!readable(fd, 0), "eventfd still readable after the list was emptied");
    csup_clist_node_destroy(n);
    csup_clist_destroy(l);

    /* A list with items queued before the descriptor exists. */
    l = csup_clist_create();
    n = csup_clist_node_create(NULL);
    csup_clist_enqueue(l, n);
    fd = csup_clist_event_fd(l);
    CHECK(readable(fd, 0), "eventfd created on a non-empty list is not readable");
    CHECK(csup_clist_take_all(l, 0) == n, "take_all did not return the node");
    csup_clist_node_destroy(n);
    csup_clist_destroy(l);

    /* Concurrent: producers run while the consumer creates the descriptor
     * and then sleeps only in poll(2). */
    setup_items();
    pthread_t th[PRODUCERS];
    for (int p = 0; p < PRODUCERS; p++) th[p] = stress_start(producer, (void *)(intptr_t)p);
    long next_seq[PRODUCERS] = {0}, total = 0, want = PRODUCERS * per_producer, spurious = 0;
    total += consume(csup_clist_take_all(list, 0), next_seq);
    fd = csup_clist_event_fd(list);
    CHECK(fd >= 0, "event_fd failed: %d", fd);
    while (total < want && fd >= 0) {
        if (!readable(fd, 1000)) {
            CHECK(csup_clist_is_empty(list), "eventfd not readable for 1 s while the list holds items");
            if (!csup_clist_is_empty(list)) break;
            continue;
        }
        csup_clist_node *got = csup_clist_take_all(list, 0);
        if (!got) spurious++;
        total += consume(got, next_seq);
    }
    for (int p = 0; p < PRODUCERS; p++) pthread_join(th[p], NULL);
    total += consume(csup_clist_take_all(list, 0), next_seq);
    CHECK(total == want, "eventfd: got %ld of %ld", total, want);
    CHECK(!readable(fd, 0), "eventfd readable on the emptied list");
    printf("clist eventfd: %ld items, %ld spurious wake-ups\n", want, spurious);
}

static void *watchdog(void *arg) {
    (void)arg;
    sleep(20);
    fprintf(stderr, "clist: watchdog: no progress for 20 s (lost wake-up?)\n");
    printf("clist: FAIL (timed out)\n");
    fflush(stdout);
    _exit(1);
}

int main(void) {
    int64_t t0 = stress_now_ns();
    pthread_t w = stress_start(watchdog, NULL);
    pthread_detach(w);
    per_producer = stress_iters(100000);
    items = calloc((size_t)(PRODUCERS * per_producer), sizeof *items);
    list = csup_clist_create();
    if (!items || !list) { perror("alloc"); return 2; }
    test_mpsc();
    test_timeout();
    test_notify();
    test_bitset();
    test_eventfd();
    for (long i = 0; i < PRODUCERS * per_producer; i++) csup_clist_node_destroy(items[i].node);
    csup_clist_destroy(list);
    free(items);
    return stress_verdict("clist", t0);
}
