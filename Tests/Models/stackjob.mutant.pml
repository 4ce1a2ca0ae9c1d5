/* MUTANT of stackjob.pml (same text with MUTANT defined below): see the "Mutant" paragraph of its header. */
/*
 * stackjob.pml -- the StackJob latch: pending / done / contextWaiting /
 * threadWaiting, the futex wait of an outside thread, and the context block
 * state a stolen fork's joiner parks with.
 *
 * Source: Sources/ConcRT/WorkItem.swift (StackJob, :37-119),
 *         Sources/ConcRT/ForkJoin.swift (forkJoin :161-175, waitForStolen
 *         :199-212), Sources/ConcRT/Scheduler.swift (runOutside :346-362),
 *         Sources/ConcRT/Context.swift (blockInternal :263-277,
 *         unblockChecked :367-387, commitBlock :391-396),
 *         Sources/ConcRT/VirtualProcessor.swift (finishSuspension :306-314).
 *
 * Processes:
 *   outside  a pthread in Scheduler.run -> runOutside(job A): inject, CAS
 *            pending -> threadWaiting, futex_wait while threadWaiting.
 *   joiner   a context in forkJoin(a, b) with job B = b on its VP's deque;
 *            after `a`, popUntil either gets B back (run inline) or B was
 *            stolen: waitForStolen (spin on isDone, store waiter, CAS
 *            pending -> contextWaiting, blockInternal). The switch-out and
 *            the primary's commitBlock (finishSuspension) are steps of the
 *            same process (the primary runs them right after the switch).
 *   thief    another VP: takes A from the injection queue and steals B (if
 *            still there), in either order, and runs StackJob.execute on
 *            each: the body, then complete() (exchange done, then unblock
 *            the context or futex_wake the thread word).
 *
 * Variables -> source:
 *   latchA, latchB   StackJob.latch (PENDING 0, DONE 1, CW 2, TW 3)
 *   waiterB          StackJob.waiter of B (plain store before the CAS)
 *   bs               the joiner's Context.blockState: RUNNING 0, BLOCKING 1,
 *                    BLOCKED 2, UNBLOCKED_EARLY 3, UNBLOCKED_WHILE_BLOCKING 4
 *   runnable         Scheduler.makeRunnable queued the joiner (or its own
 *                    primary's pushRunnable after a failed commit)
 *   inDeque          B is on the joiner's deque (popUntil vs steal: the
 *                    deque's own model is CSupport/tests/deque_test.c)
 *   ranA, ranB       the job bodies ran; framePopped*: the waiter returned
 *                    and its stack frame (the record) is gone
 *   asleepA          the outside thread is in futex_wait(latchA, TW)
 *
 * Properties:
 *   safety: a waiter returns only after its job's body ran; the executor
 *           never writes the record (exchange) or reads `waiter` after the
 *           owner returned; `waiter` is set when read; an unblock never
 *           finds an impossible block state (the precondition of
 *           unblockInternal); the context is made runnable at most once.
 *   liveness (LTL `done`, weak fairness: runnable threads run; a thread in
 *           futex_wait or a blocked context is not enabled): both waiters
 *           eventually return.
 *
 * Mutant (stackjob.mutant.pml): commitBlock stores `blocked` without the
 * CAS from `blocking` (Context.swift:392): an unblock that came while the
 * context was blocking (unblockedWhileBlocking) is overwritten, and the
 * context stays blocked for ever.
 */

#define MUTANT 1
#define PENDING 0
#define DONE 1
#define CW 2
#define TW 3
#define RUNNING 0
#define BLOCKING 1
#define BLOCKED 2
#define UEARLY 3
#define UWHILE 4

byte latchA = PENDING, latchB = PENDING;
bit waiterB = 0;
byte bs = RUNNING;
byte runnable = 0;
bit inDeque = 0;
bit injected = 0;
bit ranA = 0, ranB = 0;
bit framePoppedA = 0, framePoppedB = 0;
bit asleepA = 0;
bit doneOutside = 0, doneJoiner = 0;

/* Context.unblockInternal(wakeIdle: true) -> unblockChecked, Context.swift:367-387 */
inline unblock() {
    byte s;
    do
    :: s = bs;                                              /* :369 load acquire */
       atomic {
         if
         :: s == RUNNING -> if :: bs == s -> bs = UEARLY; break :: else -> skip fi   /* :371-373 */
         :: s == BLOCKING -> if :: bs == s -> bs = UWHILE; break :: else -> skip fi  /* :374-376 */
         :: s == BLOCKED -> if :: bs == s -> bs = RUNNING; runnable++; break :: else -> skip fi /* :377-381 */
         :: else -> assert(false)                          /* :383-384 unbalanced */
         fi
       }
    od;
    s = 0
}

/* StackJob.complete, WorkItem.swift:101-113 */
inline completeA() {
    byte old;
    atomic { assert(!framePoppedA); old = latchA; latchA = DONE };   /* :103 exchange acq_rel */
    if
    :: old == TW -> asleepA = 0                             /* :110-111 futex_wake (frame may be gone: harmless) */
    :: else -> assert(old == PENDING)                       /* :104 CW impossible for A */
    fi
}
inline completeB() {
    byte old;
    atomic { assert(!framePoppedB); old = latchB; latchB = DONE };   /* :103 */
    if
    :: old == CW ->                                         /* :104-109 */
        assert(!framePoppedB && waiterB);                   /* the record is alive, waiter stored */
        unblock()
    :: else -> assert(old == PENDING)
    fi
}

active proctype outside() {
    bit ok;
    injected = 1;                                           /* Scheduler.swift:353 inject */
    atomic { if :: latchA == PENDING -> latchA = TW; ok = 1 :: else -> ok = 0 fi };  /* :356 CAS */
    if
    :: ok ->
        do                                                  /* :357-359 */
        :: latchA == TW ->
            atomic { if :: latchA == TW -> asleepA = 1 :: else -> skip fi };  /* futex_wait(word, TW) */
            !asleepA
        :: else -> break
        od
    :: else -> skip
    fi;
    assert(ranA);
    framePoppedA = 1;
    doneOutside = 1
}

active proctype joiner() {
    bit ok; byte s; byte i;
    inDeque = 1;                                            /* ForkJoin.swift:166 push */
    /* a() runs: ForkJoin.swift:167 */
    atomic { if :: inDeque -> inDeque = 0; ok = 1 :: else -> ok = 0 fi };  /* :169 popUntil */
    if
    :: ok -> ranB = 1; goto out                             /* :170 run inline */
    :: else -> skip
    fi;
    /* waitForStolen, ForkJoin.swift:199-212 */
    i = 0;
    do                                                      /* :200-204 spin on isDone */
    :: i < 2 -> if :: latchB == DONE -> goto out :: else -> i++ fi
    :: else -> break
    od;
    waiterB = 1;                                            /* :206 store waiter */
    atomic { if :: latchB == PENDING -> latchB = CW; ok = 1 :: else -> ok = 0 fi };  /* :208 CAS */
    if :: !ok -> goto out :: else -> skip fi;               /* :209 done meanwhile */
    /* blockInternal, Context.swift:263-277 */
    do
    :: s = bs;
       if
       :: s == UEARLY -> atomic { if :: bs == s -> bs = RUNNING; goto out :: else -> skip fi }
       :: else ->
          assert(s == RUNNING);                             /* :271 precondition */
          atomic { if :: bs == s -> bs = BLOCKING; break :: else -> skip fi }
       fi
    od;
    /* suspend(.block): switch to the primary; finishSuspension ->
     * commitBlock, Context.swift:391-396 */
#ifndef MUTANT
    atomic {
        if
        :: bs == BLOCKING -> bs = BLOCKED                   /* :392 CAS: parked */
        :: else -> assert(bs == UWHILE); bs = RUNNING; runnable++  /* :394-395 pushRunnable */
        fi
    };
#else
    bs = BLOCKED;                                           /* MUTANT: plain store */
#endif
    runnable > 0;                                           /* runs again when made runnable */
    assert(runnable == 1);
out:
    assert(ranB);
    framePoppedB = 1;
    doneJoiner = 1
}

active proctype thief() {
    bit tookB = 0, tookA = 0;
    do
    :: !tookA && injected -> tookA = 1; ranA = 1; completeA()       /* runWorkItem -> execute */
    :: atomic { !tookB && inDeque -> inDeque = 0; tookB = 1 }; ranB = 1; completeB()  /* csup_deque_steal */
    :: tookA && (tookB || framePoppedB) -> break
    od
}

ltl done { <> (doneOutside && doneJoiner) }
