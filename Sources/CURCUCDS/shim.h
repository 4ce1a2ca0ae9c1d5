/* liburcu's concurrent data structures (liburcu-cds: the RCU lock-free
 * resizable hash table, rculfhash) on the "bulletproof" RCU flavor
 * (liburcu-bp), for the ConcurrentContainers module.
 *
 * Why urcu-bp: a ConcRT context may run on one pthread, block, and resume
 * on another. urcu-bp needs no explicit rcu_register_thread(): a pthread is
 * registered on its first read-side critical section and unregistered when
 * it exits, so pthreads the runtime creates on its own (replacement
 * primaries, pooled kernel threads) need no hook. The containers never keep
 * a read-side critical section open across anything that could switch the
 * context (see ConcurrentDictionary.swift).
 *
 * _LGPL_SOURCE is deliberately NOT defined: the read-lock functions stay out
 * of line, so no thread-local address of liburcu's is ever inlined into Swift
 * code (where the optimizer could reuse it after a migration). */
#ifndef CURCUCDS_SHIM_H
#define CURCUCDS_SHIM_H
#include <urcu-bp.h>
#include <urcu/rculfhash.h>

/* cds_lfht_new is a macro binding the table to the flavor of the included
 * urcu header (here urcu-bp). */
static inline struct cds_lfht *ccds_lfht_new(unsigned long init_size, unsigned long min_nr_alloc_buckets,
                                             unsigned long max_nr_buckets, int flags) {
    return cds_lfht_new(init_size, min_nr_alloc_buckets, max_nr_buckets, flags, NULL);
}
static inline void ccds_read_lock(void) { urcu_bp_read_lock(); }
static inline void ccds_read_unlock(void) { urcu_bp_read_unlock(); }
static inline void ccds_call_rcu(struct rcu_head *head, void (*func)(struct rcu_head *head)) {
    urcu_bp_call_rcu(head, func);
}
static inline void ccds_rcu_barrier(void) { urcu_bp_barrier(); }
/* A spin-wait hint (x86 PAUSE) for the containers' short waits. */
static inline void ccds_cpu_relax(void) { caa_cpu_relax(); }
#endif
