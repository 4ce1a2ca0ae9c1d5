/*
 * deque_test.c - stress test of the work-stealing deque (csup_deque).
 *
 * The owner (main thread) pushes N items in random bursts of 1..300 (so the
 * buffer, created with capacity 16, grows several times while thieves read
 * it) and pops a random share of what it pushed, or pushes 1-2 items and
 * pops them right back (the owner/thief race for the last item: the
 * owner's pop backs off to the lock when a thief is claiming it); 3 thieves
 * steal all the time. Each item is a record whose payload the owner writes (plainly)
 * before the push; whoever takes the item checks the payload (the push must
 * publish it: under TSan this is checked by happens-before, natively by
 * value) and bumps the item's take count. At the end every count must be
 * exactly 1: no item lost, none taken twice. Also checks that thieves
 * actually stole, the owner actually popped, the deque grew past its
 * initial capacity, and that a lost steal race is reported through *lost.
 */
#include "stress.h"
#include "csup_deque.h"
#include "csup_atomic.h"

#include <stdatomic.h>

#define THIEVES 3

typedef struct item {
    long id;
    long payload;              /* plain: published by the push */
    atomic_int taken;
} item;

static csup_deque *dq;
static item *items;
static long n_items;
static atomic_long total_taken;
static atomic_long stolen, lost_races;

static void take(item *it, const char *who) {
    CHECK(it->payload == it->id * 7 + 1, "%s took item %ld with payload %ld", who, it->id, it->payload);
    int prev = atomic_fetch_add_explicit(&it->taken, 1, memory_order_relaxed);
    CHECK(prev == 0, "%s took item %ld a second time", who, it->id);
    atomic_fetch_add_explicit(&total_taken, 1, memory_order_relaxed);
}

static void *thief(void *arg) {
    (void)arg;
    long mine = 0, lost_here = 0;
    while (atomic_load_explicit(&total_taken, memory_order_relaxed) < n_items) {
        int lost = 0;
        item *it = csup_deque_steal(dq, &lost);
        if (it) { take(it, "thief"); mine++; }
        else if (lost) lost_here++;
    }
    atomic_fetch_add(&stolen, mine);
    atomic_fetch_add(&lost_races, lost_here);
    return NULL;
}

int main(void) {
    int64_t t0 = stress_now_ns();
    n_items = stress_iters(2000000);
    items = calloc((size_t)n_items, sizeof *items);
    dq = csup_deque_create(16);
    if (!items || !dq) { perror("alloc"); return 2; }

    pthread_t th[THIEVES];
    for (int i = 0; i < THIEVES; i++) th[i] = stress_start(thief, NULL);

    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    long next = 0, popped = 0;
    int64_t max_size = 0;
    while (next < n_items) {
        /* A quarter of the rounds: a big burst (growth, long steal runs);
         * the rest: one or two items popped back after a short random pause
         * (so a thief is often mid-steal), so owner and thieves race for
         * the last item (the store-load pair of pop and steal; a pop
         * without its fence fails this test within a run). */
        int small = (stress_rand(&rng) & 3) != 0;
        long burst = small ? 1 + (long)(stress_rand(&rng) % 2) : 1 + (long)(stress_rand(&rng) % 300);
        for (long k = 0; k < burst && next < n_items; k++, next++) {
            item *it = &items[next];
            it->id = next;
            it->payload = next * 7 + 1;
            CHECK(csup_deque_push(dq, it) == 0, "push failed (ENOMEM) at item %ld", next);
        }
        int64_t sz = csup_deque_size(dq);
        if (sz > max_size) max_size = sz;
        if (small) for (int k = (int)(stress_rand(&rng) % 32); k > 0; k--) csup_cpu_relax();
        long pops = small ? burst : (long)(stress_rand(&rng) % (uint64_t)(burst + 1));
        for (long k = 0; k < pops; k++) {
            item *it = csup_deque_pop(dq);
            if (!it) break;
            take(it, "owner");
            popped++;
        }
    }
    /* Drain: the owner pops what is left while thieves keep stealing. */
    item *it;
    while ((it = csup_deque_pop(dq)) != NULL) { take(it, "owner"); popped++; }
    for (int i = 0; i < THIEVES; i++) pthread_join(th[i], NULL);

    for (long i = 0; i < n_items; i++) {
        int c = atomic_load(&items[i].taken);
        CHECK(c == 1, "item %ld taken %d times", i, c);
    }
    CHECK(atomic_load(&total_taken) == n_items, "taken %ld of %ld", atomic_load(&total_taken), n_items);
    CHECK(csup_deque_pop(dq) == NULL, "deque not empty at the end");
    CHECK(atomic_load(&stolen) > 0, "no item was stolen");
    CHECK(popped > 0, "the owner popped nothing");
    CHECK(max_size > 16, "the deque never grew past its initial capacity (max size %lld)", (long long)max_size);
    printf("deque: %ld items, owner popped %ld, thieves stole %ld, lost races %ld, max size %lld\n",
           n_items, popped, atomic_load(&stolen), atomic_load(&lost_races), (long long)max_size);
    csup_deque_destroy(dq);
    free(items);
    return stress_verdict("deque", t0);
}
