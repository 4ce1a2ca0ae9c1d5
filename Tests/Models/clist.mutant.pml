/* MUTANT of clist.pml (same text with MUTANT defined below): see the "Mutant" paragraph of its header. */
/*
 * clist.pml -- the completion list's wake-up protocol (no lost wake-up) and
 * its eventfd ("readable whenever the list is non-empty").
 *
 * Source: CSupport/clist.c, CSupport/include/csup_clist.h,
 *         Sources/UMS/UMSCompletionList.swift (prepareToWait / wait /
 *         cancelWait / notifyWaiters / drain / eventDescriptor),
 *         Sources/ConcRT/VirtualProcessor.swift run() + sleep(),
 *         Sources/ConcRT/Scheduler.swift notifyWork / hasWork.
 *
 * Processes (one per thread role):
 *   producer  a kernel thread completing 2 UMS threads: csup_clist_enqueue x2
 *             (KernelThread.complete -> UMSCompletionList.enqueue)
 *   notifier  an outside thread: first GetUmsCompletionListEvent
 *             (csup_clist_event_fd, racing with the enqueues), then one
 *             "other work" item (injection queue) + Scheduler.notifyWork
 *             -> csup_clist_notify(1)
 *   vp(0), vp(1)  two virtual processors (primaries sharing the list) in the
 *             ConcRT loop: drain the list, take other work, else sleep with
 *             prepare_wait / re-check / wait.
 *
 * Variables -> source:
 *   q         items in the wfcqueue (tail != head); an enqueue's xchg on the
 *             tail (cds_wfcq_enqueue, clist.c:75) is one atomic step; the
 *             splice (cds_wfcq_splice_blocking, clist.c:99) takes all.
 *   seq       csup_clist.seq, the futex word (byte; wrap is harmless)
 *   waiters   csup_clist.waiters
 *   fd        csup_clist.event_fd (0: -1, 1: created)
 *   pending   csup_clist.event_pending
 *   evcount   the eventfd's counter (signal: +1 -> here set to 1 (counter
 *             >0 is all that matters); drain: read -> 0)
 *   work      Scheduler.injectedCount (other work published, not taken)
 *   asleep[i] vp i is blocked inside futex_wait(&seq, ticket)
 *   taken     items dequeued (by either vp); wtaken other work taken
 *   inflight  a step sequence during which "list non-empty => eventfd
 *             readable" may be briefly false (between an empty->non-empty
 *             xchg and its signal; between a dequeuer's drain and splice;
 *             between event_fd publication and its check)
 *
 * futex model: futex_wait(w, v) = atomic { w == v -> asleep } then block
 * until a futex_wake clears asleep; futex_wake(w, 1) clears one sleeper
 * (nondeterministic choice), never a spurious wake-up. Timeouts are not
 * modelled (every sleep is untimed: the worst case for liveness).
 *
 * Memory model: SPIN explores sequentially consistent interleavings. The C
 * code is sequentially consistent for this Dekker pair only because of the
 * seq_cst fence on each side (clist.c:83 / csup_clist_notify, and the fence
 * after waiters += 1 in prepare_wait / take_all).
 *
 * Properties:
 *   safety  (pan -a... no: plain pan): assert in monitor: when nothing is in
 *           flight, a non-empty list has a readable eventfd; vp never takes
 *           more than was queued. Invalid end states are off (-E): vps loop
 *           for ever by design.
 *   liveness (pan -a -f, LTL `progress`): under weak fairness, every item
 *           and the other work are eventually taken. Weak fairness is
 *           honest here: it only says a thread that can run (not asleep in
 *           the futex) eventually runs; a sleeper is not enabled, so it is
 *           not helped by fairness.
 *
 * Mutant (clist.mutant.pml): the vp skips the hasWork re-check after
 * prepareToWait (VirtualProcessor.sleep, the `if s.hasWork(for: self)` at
 * VirtualProcessor.swift:542): other work published between the vp's last
 * look and its registration is never seen -> lost wake-up.
 */

#define NITEMS 2
#define MUTANT 1

byte q = 0;
byte seq = 0;
byte waiters = 0;
bit  fd = 0;
bit  pending = 0;
bit  evcount = 0;
bit  work = 0;
bit  asleep[2];
byte taken = 0;
bit  wtaken = 0;
byte inflight = 0;
bit  prodDone = 0;
bit  notDone = 0;

/* csup_futex_wake(&seq, 1): wakes one sleeper, if any (clist.c:86, 180ish) */
inline futex_wake_one() {
    atomic {
        if
        :: asleep[0] -> asleep[0] = 0
        :: asleep[1] -> asleep[1] = 0
        :: else -> skip
        fi
    }
}

/* csup_clist_enqueue, clist.c:70-88 */
inline enqueue() {
    bit was_nonempty;
    atomic { was_nonempty = (q > 0); q++;                   /* clist.c:75 xchg tail */
             if :: !was_nonempty -> inflight++ :: else -> skip fi }
    if
    :: !was_nonempty ->
        if
        :: fd ->                                            /* clist.c:77-78 */
            pending = 1;                                    /* clist.c:79 */
            evcount = 1                                     /* clist.c:80 signal */
        :: else -> skip
        fi;
        inflight--
    :: else -> skip
    fi;
    /* clist.c:83 fence; :84 load waiters */
    if
    :: waiters > 0 ->
        seq++;                                              /* clist.c:85 */
        futex_wake_one()                                    /* clist.c:86 */
    :: else -> skip
    fi
}

active proctype producer() {
    byte i = 0;
    do
    :: i < NITEMS -> enqueue(); i++
    :: else -> break
    od;
    prodDone = 1
}

active proctype notifier() {
    /* csup_clist_event_fd, clist.c:144-162 (first call: creates) */
    atomic { fd = 1; inflight++ }                           /* clist.c:154 publish */
    if
    :: q > 0 ->                                             /* clist.c:155 */
        pending = 1;                                        /* clist.c:156 */
        evcount = 1                                         /* clist.c:157 */
    :: else -> skip
    fi;
    inflight--;
    /* Scheduler.inject: work visible (injectedCount += 1, Scheduler.swift:176) */
    work = 1;
    /* notifyWork (Scheduler.swift:209-213): searchers == 0 assumed (worst
     * case); csup_clist_notify(1), clist.c: fence; load waiters */
    if
    :: waiters > 0 ->
        seq++;
        futex_wake_one()
    :: else -> skip
    fi;
    notDone = 1
}

proctype vp(byte me) {
    byte ticket;
    bit e;
    do
    :: /* VirtualProcessor.run: `if !list.isEmpty { list.drain(timeout: .zero) }`
        * (VirtualProcessor.swift:205-210) -> csup_clist_take_all(0) ->
        * splice_out, clist.c:90-113 */
        if
        :: q > 0 ->
            atomic { inflight++;
                     if :: fd -> e = pending; pending = 0 :: else -> e = 0 fi }  /* clist.c:91-92 */
            if :: e -> evcount = 0; e = 0 :: else -> skip fi;  /* clist.c:93 drain */
            atomic { taken = taken + q; q = 0; inflight-- } /* clist.c:94-99 */
        :: else -> skip
        fi;
        /* pop the injection queue (Scheduler.swift:195-198) */
        atomic { if :: work -> work = 0; wtaken = 1 :: else -> skip fi };
        /* VirtualProcessor.sleep, VirtualProcessor.swift:538-567 */
        atomic { ticket = seq; waiters++ }                  /* prepare_wait clist.c:164-167 (load seq; fetch_add) */
#ifndef MUTANT
        if
        :: q > 0 || work -> atomic { waiters--; ticket = 0 } /* :542 hasWork (Scheduler.swift:249) -> cancel_wait */
        :: else ->
#else
        if
        :: false -> skip
        :: true ->
#endif
            /* csup_clist_wait, clist.c:174-178 */
            if
            :: q == 0 -> atomic { if :: seq == ticket -> asleep[me] = 1 :: else -> skip fi };
                        !asleep[me]                         /* futex_wait(&seq, ticket) */
            :: else -> skip
            fi;
            atomic { waiters--; ticket = 0 }                /* fetch_sub (ticket reset: dead) */
        fi
    od
}

init { atomic { run vp(0); run vp(1) } }

/* Safety monitor (compiled with spin -DSAFETY): its asserts run at a
 * nondeterministic point of every interleaving, so they hold in every
 * reachable state. Left out of the liveness run (smaller state space). */
#ifdef SAFETY
active proctype monitor() {
    assert(inflight > 0 || q == 0 || fd == 0 || evcount == 1);
    assert(taken <= NITEMS)
}
#endif

ltl progress { <> (taken == NITEMS && wtaken) }
