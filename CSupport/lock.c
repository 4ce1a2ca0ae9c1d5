/* Futex mutex without thread identity (protocol in csup_lock.h). */
#include "csup_config.h"
#include "include/csup_lock.h"
#include "include/csup_futex.h"
#include "include/csup_atomic.h"

enum { FREE = 0, HELD = 1, CONTENDED = 2 };

CSUP_NOINLINE void csup_lock_acquire(uint32_t *w) {
    uint32_t c = FREE;
    if (__atomic_compare_exchange_n(w, &c, HELD, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) return;
    /* Short critical sections: spin a little before sleeping. */
    for (int i = 0; i < 64; i++) {
        csup_cpu_relax();
        c = __atomic_load_n(w, __ATOMIC_RELAXED);
        if (c == FREE) {
            if (__atomic_compare_exchange_n(w, &c, HELD, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) return;
        }
    }
    /* Mark contended; whoever finds it free with this exchange owns it. */
    if (c != CONTENDED) c = __atomic_exchange_n(w, CONTENDED, __ATOMIC_ACQUIRE);
    while (c != FREE) {
        csup_futex_wait(w, CONTENDED, -1);
        c = __atomic_exchange_n(w, CONTENDED, __ATOMIC_ACQUIRE);
    }
}

CSUP_NOINLINE void csup_lock_release(uint32_t *w) {
    if (__atomic_exchange_n(w, FREE, __ATOMIC_RELEASE) == CONTENDED) csup_futex_wake(w, 1);
}
