/* MUTANT of ringsleep.pml (same text with MUTANT defined below): see the "Mutant" paragraph of its header. */
/*
 * ringsleep.pml -- a VP with I/O in flight sleeps in its io_uring (a
 * FUTEX_WAIT op on the completion list's futex word, queued in the ring)
 * instead of on the futex itself; a VP with no I/O in flight sleeps on the
 * futex as before. No lost wake-up, and no wake-up swallowed by a VP that
 * then runs something else.
 *
 * Source: CSupport/clist.c (csup_clist_prepare_wait :200, cancel_wait
 *         :215, wait :219, notify :225), CSupport/include/csup_clist.h,
 *         Sources/ConcRT/Idle/IdleProtocol.swift sleep() (the plain
 *         sleeper), and the ring sleep being added to ConcRT's
 *         VirtualProcessor (per-VP io_uring; protocol in the lead's brief,
 *         restated below).
 *
 * Processes (one per thread role):
 *   producer  an outside thread publishing NWORK tasks, each followed by
 *             csup_clist_notify(list, 1): fence; waiters > 0 ?
 *             seq += 1; FUTEX_WAKE(seq, 1).
 *   kernel    the kernel completing VP0's NIO I/Os, in order; it may stop
 *             at any point (the rest never completes: a read on a silent
 *             socket), so VP0 may ring-sleep for ever.
 *   timer     the ring wait's timeout: fires at most once, or never (so
 *             weak fairness never forces it: "may never fire" for liveness).
 *   vp(0)     the VP owning the ring: NIO I/Os in flight at start; while any
 *             is in flight (submitted, CQE not reaped) it sleeps in the ring,
 *             afterwards on the futex.
 *   vp(1)     a VP with no I/O: always sleeps on the futex, untimed (the
 *             worst case of IdleProtocol.sleep: it counted every other VP
 *             asleep when it announced itself; see idle.pml).
 *   Either VP's task may run for ever (at most one VP does: `stuck`): the
 *   other VP must then take every remaining task (a long task must not
 *   strand published work while a VP sleeps, as in idle.pml).
 *
 * Variables -> source:
 *   seq, waiters  csup_clist.seq (futex word), csup_clist.waiters
 *   W, wtaken     published tasks not yet taken (injection queue), taken
 *   asleep[i]     vp i's pthread is queued in futex_wait(&seq, ticket)
 *   armed         VP0's ring FUTEX_WAIT op is submitted and its CQE not
 *                 yet reaped; fexp its expected value (the ticket)
 *   fq            ... and the op is queued on seq's kernel futex queue
 *   fcqe          the op's CQE in VP0's CQ: 0 none, WOKEN (res 0: a
 *                 FUTEX_WAKE dequeued it), EAGAIN (seq != expected at arm)
 *   iocq          I/O CQEs in VP0's CQ, not reaped
 *   ioctx         reaped I/O completions: contexts runnable on VP0 only
 *   ioreaped      I/O CQEs VP0 reaped (NIO - ioreaped: in flight, as VP0
 *                 sees it); iodone: I/O contexts run
 *   ioinflight    I/Os the kernel has not completed
 *   tmo           the ring wait's timeout fired (consumed by one wait)
 *   stuck         0, or 1 + i: vp i runs a task for ever
 *
 * Kernel futex model: FUTEX_WAIT(expected) = one atomic step: seq ==
 * expected -> queued, else completes at once (EAGAIN). FUTEX_WAKE(1) =
 * one atomic step dequeuing one queued waiter, chosen nondeterministically
 * among the queued pthreads and the queued ring op (a ring op completing
 * posts its CQE in the same step). No spurious wake-ups. A cancel
 * (IORING_OP_ASYNC_CANCEL) is synchronous: it unqueues the op at once (its
 * -ECANCELED CQE is not modelled); if the op already completed, its CQE is
 * already in the CQ and is reaped instead.
 *
 * Memory model: SPIN explores sequentially consistent interleavings; the C
 * code behaves so for the Dekker pair (producer: W, then waiters; sleeper:
 * waiters, then W and its CQ) because of clist.c's seq_cst fences (notify's
 * and prepare_wait's). The ring's CQ tail is read with acquire after
 * io_uring_enter returns (liburing's io_uring_peek_cqe), written by the
 * kernel with release: the re-check of the CQ after prepare_wait is a load
 * of that tail after the fence.
 *
 * The ring sleep (VP0 with I/O in flight), each step one Promela statement:
 *   1 ticket = seq; waiters += 1 (+ fence)           prepare_wait
 *   2 re-check W and own CQ; found -> waiters -= 1, run it  cancel_wait
 *   3 armed with another expected value -> cancel it; not armed -> arm
 *     FUTEX_WAIT(seq, ticket) (completes at once if seq != ticket)
 *   4 io_uring_enter: wait for a CQE (or the timeout)
 *   5 waiters -= 1
 *   6 reap every CQE (the futex op's clears armed)
 *   7 still armed -> cancel it (unqueue), or reap its CQE if it completed
 *   8 (the VP loop's first pick after the sleep) FORWARD: the op was
 *     completed by a FUTEX_WAKE (res 0, reaped in 6 or 7), VP0 picks one
 *     of its own I/O contexts, and a task is published (W > 0) ->
 *     csup_clist_notify(list, 1): hand the swallowed wake on. (The producer
 *     publishes before it wakes, so the task behind a swallowed wake is
 *     visible here.)
 *   9 the VP loop: take work, or sleep again
 * Step 8 is not in the protocol as first described: without it (spin
 * -DNOFORWARD) the liveness check fails. Interleaving: VP1 sleeps on the
 * futex (untimed); VP0 ring-sleeps (op queued); an I/O completes and wakes
 * VP0 (step 4); before VP0's cancel (step 7) the producer publishes a task,
 * sees waiters > 0, bumps seq, and FUTEX_WAKE(1) dequeues VP0's
 * still-queued op, not VP1; VP0's cancel finds the op completed and reaps
 * it; VP0 runs its I/O context first and that runs for ever; the task stays
 * queued and VP1 sleeps for ever. (Also without any I/O CQE at the wake:
 * VP0 woken by the op alone, an I/O completing before VP0's pick.) A
 * pthread leaves the futex queue when it wakes; a ring sleeper's op stays
 * queued from its wake-up by another CQE (or the timeout) until its cancel,
 * so it can swallow a wake it will not serve. Forwarding at step 7 instead
 * (woken && W > 0, whatever VP0 runs next) also passes, at the cost of a
 * second wake-up for every task whose wake reached a ring sleeper.
 *
 * Properties:
 *   safety  (spin -DSAFETY, pan -E): VP0 never leaves the ring sleep with
 *           its op armed or queued; queued => armed; a CQE => armed;
 *           waiters <= 2; tasks taken <= published. -E: VPs sleep for ever
 *           in a correct final state (and a task may run for ever).
 *   liveness (pan -a -f, LTL `progress`, weak fairness): every published
 *           task is taken, and every completed I/O is run by VP0 unless
 *           VP0 runs a task for ever.
 *
 * Mutant (ringsleep.mutant.pml): step 1 reads the ticket AFTER the
 * re-check (step 2), just before arming: a task published between the
 * re-check and that read bumps seq before the ticket is taken, so the op
 * is queued with the new value and nobody wakes it (VP1 runs the first task
 * for ever; the remaining I/O never completes) -> lost wake-up (liveness).
 */

#define MUTANT 1
#define NWORK 2
#define NIO 2
#define WOKEN 1
#define EAGAIN 2

byte seq = 0;
byte waiters = 0;
byte W = 0;
byte wtaken = 0;
bit  asleep[2];
bit  armed = 0;
byte fexp = 0;
bit  fq = 0;
byte fcqe = 0;
byte iocq = 0;
byte ioctx = 0;
byte ioreaped = 0;
byte iodone = 0;
byte ioinflight = NIO;
bit  tmo = 0;
byte stuck = 0;
bit  prodDone = 0;
bit  ioDone = 0;

/* csup_futex_wake(&seq, 1): dequeues one queued waiter, any of them */
inline futex_wake_one() {
    atomic {
        if
        :: asleep[0] -> asleep[0] = 0
        :: asleep[1] -> asleep[1] = 0
        :: fq -> fq = 0; fcqe = WOKEN                       /* the ring op completes: CQE */
        :: else -> skip
        fi
    }
}

/* csup_clist_notify(list, 1), clist.c:225-231 */
inline notify() {
    if
    :: waiters > 0 ->                                       /* :226 fence; :227 load */
        seq++;                                              /* :228 */
        futex_wake_one()                                    /* :229 */
    :: else -> skip
    fi
}

/* Arm: submit FUTEX_WAIT(&seq, ticket) in the ring; the kernel's check and
 * enqueue is one atomic step (futex_wait_setup under the hash bucket lock) */
inline arm() {
    atomic {
        armed = 1; fexp = ticket;
        if
        :: seq == ticket -> fq = 1
        :: else -> fcqe = EAGAIN
        fi;
        ticket = 0                                          /* dead from here */
    }
}

/* Cancel the armed op (IORING_OP_ASYNC_CANCEL, waited for): unqueued at
 * once if still queued; else it has completed and its CQE is reaped. */
inline cancel() {
    atomic {
        if
        :: fq -> fq = 0
        :: else -> assert(fcqe != 0); woken = woken || (fcqe == WOKEN)
        fi;
        fcqe = 0; armed = 0; fexp = 0
    }
}

active proctype producer() {
    byte i = 0;
    do
    :: i < NWORK ->
        atomic { W++; i++ };                                /* publish (injection queue) */
        notify()
    :: else -> break
    od;
    prodDone = 1
}

active proctype kernel() {
    do
    :: ioinflight > 0 -> atomic { ioinflight--; iocq++ }    /* post the I/O's CQE */
    :: ioinflight > 0 -> break                              /* the rest never completes */
    :: ioinflight == 0 -> break
    od;
    ioDone = 1
}

active proctype timer() {
    if
    :: tmo = 1
    :: skip
    fi
}

proctype vp(byte me) {
    byte ticket;
    bit woken;
loop:
    /* VP0 polls its ring in its loop: reap I/O CQEs -> runnable contexts */
    atomic {
        if
        :: me == 0 -> ioctx = ioctx + iocq; ioreaped = ioreaped + iocq; iocq = 0
        :: else -> skip
        fi
    };
    /* take one unit of work: an own I/O context, or a task */
    if
    :: atomic { me == 0 && ioctx > 0 -> ioctx--; iodone++ };
#ifndef NOFORWARD
        if                                                  /* 8 forward */
        :: W > 0 -> notify()
        :: else -> skip
        fi
#else
        skip
#endif
    :: atomic { W > 0 -> W--; wtaken++ }
    :: else -> woken = 0; goto sleep
    fi;
    woken = 0;
    /* run it: it returns, or (one VP at most) runs for ever */
    if
    :: atomic { stuck == 0 -> stuck = me + 1 }; false
    :: skip
    fi;
    goto loop;

sleep:
    if
    :: me == 0 && ioreaped < NIO -> goto ringsleep
    :: else -> skip
    fi;
    /* Plain futex sleep (IdleProtocol.sleep steps 1-5, untimed) */
    ticket = seq;                                           /* prepare_wait :201 */
    waiters++;                                              /* :202 fetch_add, :211 fence */
    if
    :: W > 0 -> atomic { waiters--; ticket = 0 }; goto loop /* hasWork -> cancel_wait :216 */
    :: else ->
        atomic { if :: seq == ticket -> asleep[me] = 1 :: else -> skip fi; ticket = 0 };
        !asleep[me];                                        /* wait :221 futex_wait */
        waiters--;                                          /* :222 */
        goto loop
    fi;

ringsleep:
#ifndef MUTANT
    ticket = seq;                                           /* 1 prepare_wait :201 */
#endif
    waiters++;                                              /* 1 :202, :211 fence */
    if
    :: W > 0 || iocq > 0 -> atomic { waiters--; ticket = 0 }; goto loop  /* 2 re-check; cancel_wait */
    :: else -> skip
    fi;
#ifdef MUTANT
    ticket = seq;                                           /* MUTANT: ticket read late */
#endif
    /* 3 (dead while step 7 always cancels: never armed here) */
    if
    :: armed && fexp != ticket -> cancel(); arm()
    :: armed && fexp == ticket -> ticket = 0
    :: !armed -> arm()
    fi;
    /* 4 io_uring_enter(min_complete 1, timeout) */
    if
    :: iocq > 0 || fcqe != 0 -> skip
    :: atomic { tmo -> tmo = 0 }
    fi;
    waiters--;                                              /* 5 */
    atomic {                                                /* 6 reap */
        ioctx = ioctx + iocq; ioreaped = ioreaped + iocq; iocq = 0;
        if
        :: fcqe != 0 -> woken = (fcqe == WOKEN); fcqe = 0; armed = 0; fexp = 0
        :: else -> skip
        fi
    };
    if                                                      /* 7 */
    :: armed -> cancel()
    :: else -> skip
    fi;
    assert(!armed && !fq);
    goto loop                                               /* 9 */
}

init { atomic { run vp(0); run vp(1) } }

#ifdef SAFETY
active proctype monitor() {
    atomic { !((!fq || armed) && (fcqe == 0 || armed) && waiters <= 2 && wtaken <= NWORK) -> assert(false) }
}
#endif

ltl progress { <> (prodDone && ioDone && wtaken == NWORK && (stuck == 1 || iodone + ioinflight == NIO)) }
