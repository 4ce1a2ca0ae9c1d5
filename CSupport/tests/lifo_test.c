/*
 * lifo_test.c - ABA stress test of the tagged Treiber stack (csup_lifo).
 *
 * 4 threads share 3 nodes and, in a tight loop, pop two nodes, own them
 * for a moment, and push them back in a random order: the same few addresses come back to the head
 * all the time, the worst case for ABA (a pop that read head A -> next B
 * is delayed while A is popped, B is popped, and A is pushed back; without
 * the tag its CAS would succeed and install B, a node another thread
 * owns). Every node carries an owner flag taken with an atomic exchange:
 * a node popped by two threads at once (a duplicate) makes the second
 * exchange see it already owned. The owner also writes a plain stamp into
 * the node and checks it before the push (under TSan this checks that the
 * pop's acquire / push's release order the owners). At the end the stack
 * must hold exactly the 3 nodes, each once (none lost).
 *
 * The window an ABA needs (between a pop's read of head->next and its CAS)
 * is a few instructions; to hit it often, a "preempter" thread interrupts
 * random workers with SIGUSR1 every ~50 us, and the handler busy-waits
 * ~20 us: a simulated preemption at an arbitrary instruction, during which
 * the other workers pop and push the same nodes. With the tag removed from
 * lifo.c, this test failed (duplicate pops) in 3 of 5 runs on a 2-core VM.
 */
#include "stress.h"
#include "csup_lifo.h"
#include "csup_atomic.h"

#include <signal.h>
#include <stdatomic.h>

#define NODES 3
#define THREADS 4

typedef struct tnode {
    csup_lifo_node node;       /* first: the node pointer is the record */
    atomic_int owned;
    long stamp;                /* plain: only the owner touches it */
} tnode;

static csup_lifo lifo;
static tnode nodes[NODES];
static long iters;
static atomic_long pops, empties;
static atomic_int done;
static atomic_long signals;

static void on_signal(int sig) {
    (void)sig;
    int64_t end = stress_now_ns() + 20000;  /* clock_gettime: async-signal-safe */
    while (stress_now_ns() < end) csup_cpu_relax();
}

static pthread_t workers[THREADS];

static void *preempter(void *arg) {
    (void)arg;
    uint64_t rng = 0xabcdef12345ULL;
    struct timespec pause = { 0, 20000 };
    long sent = 0;
    while (!atomic_load_explicit(&done, memory_order_relaxed)) {
        pthread_kill(workers[stress_rand(&rng) % THREADS], SIGUSR1);
        sent++;
        nanosleep(&pause, NULL);
    }
    atomic_store(&signals, sent);
    return NULL;
}

/* Takes a popped node: it must be one of ours and owned by nobody. */
static tnode *own(csup_lifo_node *n, long stamp) {
    tnode *t = (tnode *)n;
    CHECK(t >= nodes && t < nodes + NODES, "popped a pointer that is no node: %p", (void *)n);
    int was = atomic_exchange_explicit(&t->owned, 1, memory_order_relaxed);
    CHECK(was == 0, "node %ld popped while another thread owned it (duplicate)", (long)(t - nodes));
    t->stamp = stamp;
    return t;
}

static void disown(tnode *t, long stamp) {
    CHECK(t->stamp == stamp, "node %ld written by another thread while owned", (long)(t - nodes));
    atomic_store_explicit(&t->owned, 0, memory_order_relaxed);
    csup_lifo_push(&lifo, &t->node);
}

/* Each round pops up to two nodes (A, then B) and pushes them back in a
 * random order: pop A, pop B, push A is the ABA pattern itself. */
static void *worker(void *arg) {
    long me = (long)(intptr_t)arg;
    uint64_t rng = 0x12345678u + (uint64_t)me * 0x9e3779b97f4a7c15ULL;
    long got = 0, empty = 0;
    for (long i = 0; i < iters; i++) {
        long stamp = me * 1000000007L + i;
        csup_lifo_node *a = csup_lifo_pop(&lifo);
        if (!a) { empty++; continue; }
        tnode *ta = own(a, stamp);
        csup_lifo_node *b = csup_lifo_pop(&lifo);
        tnode *tb = b ? own(b, ~stamp) : NULL;
        got += b ? 2 : 1;
        if ((stress_rand(&rng) & 7) == 0) for (int k = 0; k < 8; k++) csup_cpu_relax();
        if (tb && (stress_rand(&rng) & 1)) { disown(tb, ~stamp); tb = NULL; }
        disown(ta, stamp);
        if (tb) disown(tb, ~stamp);
    }
    atomic_fetch_add(&pops, got);
    atomic_fetch_add(&empties, empty);
    return NULL;
}

int main(void) {
    int64_t t0 = stress_now_ns();
    iters = stress_iters(4000000);
    csup_lifo_init(&lifo);
    for (int i = 0; i < NODES; i++) {
        nodes[i].node.item = &nodes[i];
        csup_lifo_push(&lifo, &nodes[i].node);
    }
    struct sigaction sa = { 0 };
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    for (long i = 0; i < THREADS; i++) workers[i] = stress_start(worker, (void *)(intptr_t)i);
    pthread_t pre = stress_start(preempter, NULL);
    for (int i = 0; i < THREADS; i++) pthread_join(workers[i], NULL);
    atomic_store(&done, 1);
    pthread_join(pre, NULL);

    int seen[NODES] = {0};
    int count = 0;
    csup_lifo_node *n;
    while ((n = csup_lifo_pop(&lifo)) != NULL && count <= NODES) {
        tnode *t = (tnode *)n;
        CHECK(t >= nodes && t < nodes + NODES, "stack holds a foreign pointer %p", (void *)n);
        if (t >= nodes && t < nodes + NODES) seen[t - nodes]++;
        count++;
    }
    CHECK(count == NODES, "stack holds %d nodes at the end, expected %d", count, NODES);
    for (int i = 0; i < NODES; i++) CHECK(seen[i] == 1, "node %d found %d times at the end", i, seen[i]);
    CHECK(atomic_load(&pops) > 0, "no pop succeeded");
    printf("lifo: %d threads x %ld rounds on %d nodes: %ld pops, %ld empty, %ld simulated preemptions\n",
           THREADS, iters, NODES, atomic_load(&pops), atomic_load(&empties), atomic_load(&signals));
    return stress_verdict("lifo", t0);
}
