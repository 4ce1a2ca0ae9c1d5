/*
 * kthread.pml -- hand-off of a UMS thread's blocking call to a pooled kernel
 * thread through its futex word `command`, and the KT's park/return.
 *
 * Source: Sources/UMS/KernelThread.swift (line numbers below).
 *
 * Processes:
 *   primary  makes NCALLS blocking calls: KernelThreadPool.acquire pops the
 *            KT from the idle LIFO (:187-194; the model has one KT, so the
 *            primary waits for it to be back in the pool where the real one
 *            would spawn another), then start(thread) (:71-76); finally the
 *            pool's trim() (:229-242): pop the idle KT, stop() (:78-81).
 *   kt       KernelThread.main (:109-116): awaitCommand (:84-106: spin
 *            watching the word, CAS idle -> sleeping, futex_wait while
 *            sleeping), runAssigned (:118-127: run the call, store idle
 *            (release), pushIdle, complete -> enqueue on the list).
 *
 * Variables -> source:
 *   cmd       KTShared.command: IDLE 0, RUN 1, EXIT 2, SLEEPING 3 (Command)
 *   assigned  KernelThread.assigned (plain; published by the xchg's release
 *             and the KT's acquire load)
 *   inpool    the KT's node is on the pool's idle LIFO (csup_lifo; its own
 *             model: CSupport/tests/lifo_test.c)
 *   ktAsleep  the KT is blocked in futex_wait(command, sleeping)
 *   calls     blocking calls run; queued: threads queued on the list
 *
 * futex: wait(w, v) = atomic { w == v -> asleep } then block until a wake;
 * no spurious wake-ups (the code re-loads after any return anyway). The
 * spin phase is a nondeterministic number of re-loads.
 *
 * Properties:
 *   safety: the KT runs a call only with a thread assigned; start() and
 *           stop() find the word idle or sleeping (never overwrite a
 *           pending run or exit); the KT runs exactly NCALLS calls.
 *   liveness (LTL `done`, weak fairness: a runnable thread eventually runs;
 *           the sleeping KT is not enabled, so fairness cannot wake it):
 *           every call is run and queued, and the KT exits.
 *
 * Mutant (kthread.mutant.pml): the KT announces sleep with a plain store of
 * `sleeping` after its load saw idle, instead of the CAS idle -> sleeping
 * (:98): a `run` stored in between is overwritten and the KT sleeps on a
 * lost command.
 */

#define IDLE 0
#define RUN 1
#define EXIT 2
#define SLEEPING 3
#define NCALLS 2

byte cmd = IDLE;
bit assigned = 0;
bit inpool = 1;            /* reserve(1): the KT starts idle in the pool */
bit ktAsleep = 0;
byte calls = 0;
byte queued = 0;
bit exited = 0;

inline futex_wake() { atomic { ktAsleep = 0 } }

active proctype primary() {
    byte old; byte n = 0;
    do
    :: n < NCALLS ->
        atomic { inpool -> inpool = 0 };                    /* acquire(): csup_lifo_pop, :188 */
        assigned = 1;                                       /* start(): :72 plain store */
        atomic { old = cmd; cmd = RUN };                    /* :73 exchange acq_rel */
        assert(old == IDLE || old == SLEEPING);
        if :: old == SLEEPING -> futex_wake()               /* :74 */
           :: else -> skip fi;
        n++
    :: else -> break
    od;
    atomic { inpool -> inpool = 0 };                        /* trim(): pop, :231 */
    atomic { old = cmd; cmd = EXIT };                       /* stop(): :79 exchange */
    assert(old == IDLE || old == SLEEPING);
    futex_wake()                                            /* :80 */
}

active proctype kt() {
    byte c;
    do
    :: /* awaitCommand, :84-106 */
        c = cmd;                                            /* :85 load acquire */
        do                                                  /* :89-94 spin */
        :: c == IDLE -> c = cmd
        :: true -> break
        od;
        do                                                  /* :96 */
        :: c == IDLE || c == SLEEPING ->
            if
            :: c == IDLE ->
#ifndef MUTANT
                atomic {                                    /* :98 CAS idle -> sleeping */
                    if :: cmd == IDLE -> cmd = SLEEPING
                       :: else -> c = cmd
                    fi
                };
                if :: c != IDLE -> goto recheck :: else -> skip fi
#else
                cmd = SLEEPING                              /* MUTANT: plain store */
#endif
            :: else -> skip
            fi;
            atomic { if :: cmd == SLEEPING -> ktAsleep = 1 :: else -> skip fi }; /* :102 futex_wait */
            !ktAsleep;
            c = cmd;                                        /* :103 load acquire */
recheck:    skip
        :: else -> break
        od;
        if
        :: c == EXIT -> break                               /* :112 */
        :: else -> skip
        fi;
        /* runAssigned, :118-127 */
        assert(c == RUN && assigned);                       /* :119 guard */
        assigned = 0;                                       /* :120 */
        calls++;                                            /* :121 runCall */
        cmd = IDLE;                                         /* :124 store release */
        inpool = 1;                                         /* :125 pushIdle */
        queued++                                            /* :126 complete -> enqueue */
    od;
    assert(calls == NCALLS);
    exited = 1
}

ltl done { <> (exited && queued == NCALLS) }
