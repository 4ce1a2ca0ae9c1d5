/* pthread helpers Swift's Glibc module does not expose. */
#ifndef CSUP_THREAD_H
#define CSUP_THREAD_H

#include <pthread.h>

/* pthread_timedjoin_np with a relative timeout. Returns 0 (joined),
 * ETIMEDOUT, or another errno. */
int csup_pthread_join_timeout(pthread_t thread, int timeout_ms);

#endif
