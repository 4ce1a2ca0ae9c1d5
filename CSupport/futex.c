/* futex and eventfd wrappers (see csup_futex.h). */
#include "csup_config.h"
#include "include/csup_futex.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int csup_futex_wait(uint32_t *addr, uint32_t expected, int64_t timeout_ns) {
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000LL;
        ts.tv_nsec = timeout_ns % 1000000000LL;
        tsp = &ts;
    }
    long r = syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, expected, tsp, NULL, 0);
    return r == 0 ? 0 : errno;
}

int csup_futex_wake(uint32_t *addr, int n) {
    long r = syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
    return r < 0 ? 0 : (int)r;
}

int csup_futex_wait_bitset(uint32_t *addr, uint32_t expected, int64_t timeout_ns, uint32_t bitset) {
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline. */
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = (int64_t)ts.tv_nsec + timeout_ns % 1000000000LL;
        ts.tv_sec += timeout_ns / 1000000000LL + ns / 1000000000LL;
        ts.tv_nsec = ns % 1000000000LL;
        tsp = &ts;
    }
    long r = syscall(SYS_futex, addr, FUTEX_WAIT_BITSET_PRIVATE, expected, tsp, NULL, bitset);
    return r == 0 ? 0 : errno;
}

int csup_futex_wake_bitset(uint32_t *addr, int n, uint32_t bitset) {
    long r = syscall(SYS_futex, addr, FUTEX_WAKE_BITSET_PRIVATE, n, NULL, NULL, bitset);
    return r < 0 ? 0 : (int)r;
}

int csup_eventfd_create(unsigned int initval, int nonblocking) {
    int fd = eventfd(initval, EFD_CLOEXEC | (nonblocking ? EFD_NONBLOCK : 0));
    return fd >= 0 ? fd : -errno;
}

int csup_eventfd_signal(int fd) {
    uint64_t one = 1;
    for (;;) {
        ssize_t r = write(fd, &one, sizeof one);
        if (r == (ssize_t)sizeof one) return 0;
        if (r < 0 && errno == EINTR) continue;
        return r < 0 ? errno : EIO;
    }
}

int64_t csup_eventfd_drain(int fd) {
    uint64_t v = 0;
    for (;;) {
        ssize_t r = read(fd, &v, sizeof v);
        if (r == (ssize_t)sizeof v) return (int64_t)v;
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EAGAIN) return 0;
        return r < 0 ? -errno : -EIO;
    }
}
