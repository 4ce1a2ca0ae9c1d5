/* Asymmetric memory barriers (see csup_membarrier.h). */
#include "csup_config.h"
#include "include/csup_membarrier.h"

#include <errno.h>
#include <linux/membarrier.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

/* 0 not tried, 1 registered, 2 refused. Relaxed is enough for the flag:
 * registration is idempotent, and a racing caller that sees 0 registers
 * again and gets the same answer. */
static _Atomic int state;

static long membarrier(int cmd, unsigned flags) {
#ifdef SYS_membarrier
    return syscall(SYS_membarrier, cmd, flags, 0);
#else
    (void)cmd; (void)flags;
    errno = ENOSYS;
    return -1;
#endif
}

bool csup_membarrier_register(void) {
    int s = atomic_load_explicit(&state, memory_order_relaxed);
    if (s != 0) return s == 1;
    long q = membarrier(MEMBARRIER_CMD_QUERY, 0);
    bool ok = q >= 0 && (q & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
              membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0) == 0;
    atomic_store_explicit(&state, ok ? 1 : 2, memory_order_relaxed);
    return ok;
}

int csup_membarrier_heavy(void) {
    return membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0) == 0 ? 0 : errno;
}
