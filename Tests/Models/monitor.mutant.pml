/* MUTANT of monitor.pml (same text with MUTANT defined below): see the "Mutant" paragraph of its header. */
#define MUTANT 1
/*
 * The UMS monitor's untimed sleep and the wake-ups that end it
 * (Sources/UMS/LazyKernelEntry/Monitor.swift: main, anyInKernelOrRunning,
 *  noteKernelEntry, noteRunning, wake; Sources/UMS/UMSPrimary.swift:
 *  enterKernelCall, execute).
 *
 * Roles:
 *   caller   a UMS thread entering an inline blocking call: stores its
 *            kernel-call word (running -> inKernel), then a compiler
 *            barrier and a load of `sleeping`; if set: exchange it to
 *            false, bump the futex word, futex_wake.
 *   runner   a primary starting a thread (execute): stores `running`, then
 *            the same barrier, load and wake.
 *   monitor  quiet for a while: reads the futex word (`seen`), stores
 *            sleeping = true (seq_cst), runs membarrier(2), re-reads every
 *            word and `running` flag; one that is set clears `sleeping`
 *            again; else futex_wait(word, seen) with no timeout.
 *
 * Memory model: SPIN interleaves, so every access is sequentially
 * consistent. That is what the code provides for this pair: the monitor's
 * membarrier puts a full barrier into the caller's and the runner's program
 * order at one point (a thread that is not running passes through a context
 * switch, which is one), and their compiler barrier keeps the store before
 * the load in program order; without membarrier both sides use seq_cst
 * fences.
 *
 * Variables -> source:
 *   inKernel  the caller's kernel-call word says inKernel
 *   running   the runner's primary's `running` flag
 *   sleeping  UMSMonitor.sleeping
 *   word      UMSMonitor.wakeWord (futex)
 *   noticed   the monitor is awake and looking while the call is in the
 *             kernel and the thread runs (it would retake the call, or
 *             look for an unwrapped block, after the threshold)
 *
 * Property: <> noticed (weak fairness; a futex waiter is not enabled until
 * the word moves, so fairness cannot wake it, and the wait has no timeout).
 * Mutant (monitor.mutant.pml): the monitor does not re-read after setting
 * `sleeping`: a caller's or runner's load can come before that store, so
 * nobody wakes the monitor and it sleeps through the call forever.
 */

bool inKernel = false;
bool running = false;
bool sleeping = false;
byte word = 0;
bool noticed = false;

inline wake() {
    if                               /* wake(): exchange(false) */
    :: atomic { sleeping -> sleeping = false; word++ }   /* bump + futex_wake */
    :: atomic { !sleeping -> skip }
    fi
}

active proctype caller() {
    inKernel = true;                 /* enterKernelCall: release store */
    if                               /* noteKernelEntry: barrier, load */
    :: sleeping -> wake()
    :: else -> skip
    fi
}

active proctype runner() {
    running = true;                  /* execute: relaxed store */
    if                               /* noteRunning: barrier, load */
    :: sleeping -> wake()
    :: else -> skip
    fi
}

active proctype monitor() {
    byte seen;
    seen = word;                     /* read before `sleeping` is set */
    sleeping = true;                 /* seq_cst store, then membarrier */
#ifndef MUTANT
    if                               /* anyInKernelOrRunning(): seq_cst loads */
    :: inKernel || running -> sleeping = false
    :: else -> skip
    fi;
#endif
    if
    :: !sleeping -> skip             /* not asleep: next tick */
    :: sleeping ->
        (word != seen);              /* futex_wait(word, seen), untimed */
        sleeping = false
    fi;
    /* awake: its next looks see the call and the running thread */
    inKernel && running;
    noticed = true
}

ltl call_is_noticed { <> noticed }
