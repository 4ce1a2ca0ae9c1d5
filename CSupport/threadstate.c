#include "csup_config.h"
#include "include/csup_threadstate.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

char csup_thread_state(int32_t tid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[512];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    /* "tid (comm) S ...": comm may hold spaces and parentheses, so the
     * state follows the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ' || !p[2]) return 0;
    return p[2];
}

int64_t csup_thread_cpu_ns(clockid_t clock) {
    struct timespec ts;
    if (clock_gettime(clock, &ts) != 0) return -1;
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int csup_thread_set_name(const char *name) {
    char cut[16];
    snprintf(cut, sizeof cut, "%s", name);
    return pthread_setname_np(pthread_self(), cut);
}

int csup_thread_set_timer_slack(uint64_t ns) {
    /* PR_SET_TIMERSLACK treats 0 as "back to the default": 1 ns is the
     * tightest value it accepts. */
    if (prctl(PR_SET_TIMERSLACK, (unsigned long)(ns ? ns : 1), 0, 0, 0) != 0) return errno;
    return 0;
}
