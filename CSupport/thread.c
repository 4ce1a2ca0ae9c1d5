#include "csup_config.h"
#include "include/csup_thread.h"

#include <errno.h>
#include <time.h>

int csup_pthread_join_timeout(pthread_t thread, int timeout_ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) { ts.tv_sec += 1; ts.tv_nsec -= 1000000000L; }
    return pthread_timedjoin_np(thread, NULL, &ts);
}
