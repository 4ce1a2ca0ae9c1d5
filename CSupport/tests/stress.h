/*
 * stress.h - shared helpers of the queue stress tests (deque_test.c,
 * lifo_test.c, clist_test.c): a failure counter, bounded iteration counts
 * (LONG=1 in the environment scales them up; TSAN builds scale them down:
 * ThreadSanitizer runs 5-15x slower), a thread starter, a PRNG, a clock.
 */
#ifndef CSUP_TESTS_STRESS_H
#define CSUP_TESTS_STRESS_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if defined(__has_feature)
#  if __has_feature(thread_sanitizer)
#    define STRESS_TSAN 1
#  endif
#endif
#if defined(__SANITIZE_THREAD__) && !defined(STRESS_TSAN)
#  define STRESS_TSAN 1
#endif

static int stress_failures = 0;

#define CHECK(cond, ...) do { \
    if (!(cond)) { \
        stress_failures++; \
        fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
        fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); \
    } } while (0)

/* `base` iterations, x20 with LONG=1, /8 under TSan (at least 1). */
static inline long stress_iters(long base) {
    const char *l = getenv("LONG");
    long n = base;
    if (l && *l && *l != '0') n *= 20;
#ifdef STRESS_TSAN
    n /= 8;
#endif
    return n < 1 ? 1 : n;
}

static inline int64_t stress_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* xorshift64: per-thread, seeded by the caller. */
static inline uint64_t stress_rand(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    return *s = x;
}

static inline pthread_t stress_start(void *(*fn)(void *), void *arg) {
    pthread_t t;
    if (pthread_create(&t, NULL, fn, arg) != 0) { perror("pthread_create"); exit(2); }
    return t;
}

/* Prints the test's verdict line and returns the exit status. */
static inline int stress_verdict(const char *name, int64_t t0) {
    double s = (double)(stress_now_ns() - t0) / 1e9;
    if (stress_failures) {
        printf("%s: FAIL (%d checks failed, %.2f s)\n", name, stress_failures, s);
        return 1;
    }
    printf("%s: PASS (%.2f s)\n", name, s);
    return 0;
}

#endif
