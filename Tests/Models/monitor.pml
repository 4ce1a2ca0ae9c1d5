/*
 * The UMS monitor's sleep and a blocking call's wake-up
 * (Sources/UMS/LazyKernelEntry/Monitor.swift: main, anyInKernel,
 *  noteKernelEntry, wake; Sources/UMS/UMSPrimary.swift: enterKernelCall).
 *
 * Roles:
 *   caller   a UMS thread entering an inline blocking call: the entry CAS
 *            on the kernel-call word (running -> inKernel), then a seq_cst
 *            load of `sleeping`; if set: exchange it to false, bump the
 *            futex word, futex_wake.
 *   monitor  quiet for a while: reads the futex word (`seen`), stores
 *            sleeping = true (seq_cst), re-scans the words (seq_cst); a call
 *            in the kernel clears `sleeping` again; else futex_wait(word,
 *            seen). The real wait has a 1 s timeout; the model has none, so
 *            it proves the wake never depends on that timeout.
 *
 * Variables -> source:
 *   inKernel  the caller's kernel-call word says inKernel
 *   sleeping  UMSMonitor.sleeping
 *   word      UMSMonitor.wakeWord (futex)
 *   noticed   the monitor is awake and looking while the call is in the
 *             kernel (it would retake it after the threshold)
 *
 * Property: <> noticed (weak fairness; a futex waiter is not enabled until
 * the word moves, so fairness cannot wake it).
 * Mutant (monitor.mutant.pml): the monitor does not re-scan after setting
 * `sleeping`: the caller's load can come before that store, so nobody
 * wakes the monitor and it sleeps through the call.
 */

bool inKernel = false;
bool sleeping = false;
byte word = 0;
bool noticed = false;

active proctype caller() {
    inKernel = true;                 /* enterKernelCall: CAS (full barrier) */
    if                               /* noteKernelEntry: seq_cst load */
    :: sleeping ->
        if                           /* wake(): exchange(false) */
        :: atomic { sleeping -> sleeping = false; word++ }   /* bump + futex_wake */
        :: atomic { !sleeping -> skip }
        fi
    :: else -> skip
    fi
}

active proctype monitor() {
    byte seen;
    seen = word;                     /* read before `sleeping` is set */
    sleeping = true;                 /* seq_cst store */
#ifndef MUTANT
    if                               /* anyInKernel(): seq_cst loads */
    :: inKernel -> sleeping = false
    :: else -> skip
    fi;
#endif
    if
    :: !sleeping -> skip             /* not asleep: next tick */
    :: sleeping ->
        (word != seen);              /* futex_wait(word, seen): returns once it moved */
        sleeping = false
    fi;
    /* awake: the next scan sees the call */
    inKernel;
    noticed = true
}

ltl call_is_noticed { <> noticed }
