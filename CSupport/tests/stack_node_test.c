/*
 * stack_node_test.c -- the stack cache keeps NUMA locality (csup_stack.h):
 * a thread with a node takes from the shared cache only stacks mapped on
 * its own node (or of no known node) and maps fresh ones otherwise; a
 * thread without a node takes any. Nodes are set by hand
 * (csup_stack_set_thread_node), so this runs on a one-node machine.
 *
 * Checks: stacks mapped by a node-0 thread, spilled to the shared cache,
 * are never handed to a node-1 thread (its allocations all map fresh and
 * carry node 1); a later node-0 thread reuses them (no new mapping); a
 * thread with no node reuses whatever is cached.
 */
#include "include/csup_stack.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define N 40
#define SIZE (64 * 1024)

static int failures;
#define CHECK(cond, ...) do { if (!(cond)) { printf("FAIL: " __VA_ARGS__); printf("\n"); failures++; } } while (0)

struct job { int node; int count; int magazine; long mapped_delta; int wrong_node; };

static void *run(void *arg) {
    struct job *j = arg;
    if (j->magazine) csup_stack_thread_cache_begin();
    if (j->node >= -1) csup_stack_set_thread_node(j->node);
    csup_stack s[N];
    long before = csup_stack_mapped_count();
    for (int i = 0; i < j->count; i++) {
        if (csup_stack_alloc(SIZE, &s[i]) != 0) { printf("FAIL: alloc\n"); exit(1); }
        if (j->node >= 0 && s[i].node != j->node) j->wrong_node++;
    }
    j->mapped_delta = csup_stack_mapped_count() - before;
    for (int i = 0; i < j->count; i++) csup_stack_free(&s[i]);
    if (j->magazine) csup_stack_thread_cache_end();   /* spills to the shared cache */
    return NULL;
}

static void on_thread(struct job *j) {
    pthread_t t;
    if (pthread_create(&t, NULL, run, j) != 0) { printf("FAIL: pthread_create\n"); exit(1); }
    pthread_join(t, NULL);
}

int main(void) {
    csup_stack_cache_trim();
    /* Node 0 maps N stacks and frees them: all end up in the shared cache. */
    struct job a = { .node = 0, .count = N, .magazine = 1 };
    on_thread(&a);
    CHECK(a.mapped_delta == N, "node 0 mapped %ld, expected %d", a.mapped_delta, N);
    CHECK(a.wrong_node == 0, "node 0 got %d stacks of another node", a.wrong_node);
    long cached = csup_stack_cached_count();
    CHECK(cached == N, "cached %ld after node 0 freed, expected %d", cached, N);

    /* Node 1 must not take node 0's stacks: every one is mapped fresh. */
    struct job b = { .node = 1, .count = 10, .magazine = 1 };
    on_thread(&b);
    CHECK(b.mapped_delta == 10, "node 1 mapped %ld of 10 (it took node 0's stacks)", b.mapped_delta);
    CHECK(b.wrong_node == 0, "node 1 got %d stacks of node 0", b.wrong_node);

    /* Node 0 again: reuses the cache (node 0's stacks), maps nothing. */
    struct job c = { .node = 0, .count = 10, .magazine = 1 };
    on_thread(&c);
    CHECK(c.mapped_delta == 0, "node 0 mapped %ld, expected to reuse its cached stacks", c.mapped_delta);
    CHECK(c.wrong_node == 0, "node 0 got %d stacks of node 1", c.wrong_node);

    /* A thread with no node (no magazine, none set) takes any. */
    struct job d = { .node = -2, .count = 10, .magazine = 0 };
    on_thread(&d);
    CHECK(d.mapped_delta == 0, "a thread with no node mapped %ld instead of reusing", d.mapped_delta);

    csup_stack_cache_trim();
    CHECK(csup_stack_mapped_count() == 0, "%ld stacks still mapped after trim", csup_stack_mapped_count());
    if (failures) return 1;
    printf("stack_node_test: every check passed\n");
    return 0;
}
