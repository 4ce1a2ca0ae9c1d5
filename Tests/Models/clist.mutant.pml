/* MUTANT of clist.pml (same text with MUTANT defined below): see the "Mutant" paragraph of its header. */
/*
 * clist.pml -- the completion list's wake-up protocol (no lost wake-up) and
 * its eventfd ("readable whenever the list is non-empty").
 *
 * Source: CSupport/clist.c, CSupport/include/csup_clist.h,
 *         Sources/UMS/UMSCompletionList.swift (prepareToWait / wait /
 *         cancelWait / notifyWaiters / drain / eventDescriptor),
 *         Sources/ConcRT/VirtualProcessor/VirtualProcessor.swift run(), Sources/ConcRT/Idle/IdleProtocol.swift sleep(),
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
 *   q         items in the list (top != NULL); an enqueue's CAS push on
 *             `top` (csup_clist_enqueue) is one atomic step; the take-all
 *             exchange of `top` (splice_out) takes all.
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
 * code behaves so for this Dekker pair (enqueuer: item, then waiters;
 * waiter: waiters, then item) only because of a seq_cst fence on each side:
 * clist.c's fence before the enqueuer's / notifier's load of `waiters`, and
 * the fence after `waiters += 1` in prepare_wait / take_all.
 *
 * Properties:
 *   safety  (spin -DSAFETY, pan -E): the monitor's asserts: when nothing
 *           is in flight, a non-empty list has a readable eventfd; the vps
 *           never take more than was queued. Invalid end states are not
 *           checked (-E): the vps loop (and sleep) for ever by design; lost
 *           wake-ups are the liveness property's job.
 *   liveness (pan -a -f, LTL `progress`): under weak fairness, every item
 *           and the other work are eventually taken. Weak fairness is
 *           honest here: it only says a thread that can run (not asleep in
 *           the futex) eventually runs; a sleeper is not enabled, so it is
 *           not helped by fairness.
 *
 * Mutant (clist.mutant.pml): the vp skips the hasWork re-check after
 * prepareToWait (VirtualProcessor.sleep, the `if s.hasWork(for: self)` at
 * Idle/IdleProtocol.swift step 3): other work published between the vp's last
 * look and its registration is never seen -> lost wake-up.
 */

#define MUTANT 1
#define NITEMS 2

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

/* csup_futex_wake(&seq, 1): wakes one sleeper, if any (clist.c:104, :213) */
inline futex_wake_one() {
    atomic {
        if
        :: asleep[0] -> asleep[0] = 0
        :: asleep[1] -> asleep[1] = 0
        :: else -> skip
        fi
    }
}

/* csup_clist_enqueue, clist.c:87-106 */
inline enqueue() {
    bit was_nonempty;
    atomic { was_nonempty = (q > 0); q++;                   /* clist.c:93 xchg tail */
             if :: !was_nonempty -> inflight++ :: else -> skip fi }
    if
    :: !was_nonempty ->
        if
        :: fd ->                                            /* clist.c:95-96 */
            pending = 1;                                    /* clist.c:97 */
            evcount = 1                                     /* clist.c:98 signal */
        :: else -> skip
        fi;
        inflight--
    :: else -> skip
    fi;
    /* clist.c:101 fence; :102 load waiters */
    if
    :: waiters > 0 ->
        seq++;                                              /* clist.c:103 */
        futex_wake_one()                                    /* clist.c:104 */
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
    /* csup_clist_event_fd, clist.c:164-182 (first call: creates) */
    atomic { fd = 1; inflight++ }                           /* clist.c:174 publish */
    if
    :: q > 0 ->                                             /* clist.c:175 */
        pending = 1;                                        /* clist.c:176 */
        evcount = 1                                         /* clist.c:177 */
    :: else -> skip
    fi;
    inflight--;
    /* Scheduler.inject: work visible (injectedCount += 1, Scheduler.swift:176) */
    work = 1;
    /* notifyWork (Scheduler.swift:209-213): searchers == 0 assumed (worst
     * case); csup_clist_notify(1), clist.c:209-215: fence; load waiters */
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
        * (VirtualProcessor/VirtualProcessor.swift run, the drain) -> csup_clist_take_all(0) ->
        * splice_out, clist.c:108-132 */
        if
        :: q > 0 ->
            atomic { inflight++;
                     if :: fd -> e = pending; pending = 0 :: else -> e = 0 fi }  /* clist.c:109-110 */
            if :: e -> evcount = 0; e = 0 :: else -> skip fi;  /* clist.c:111 drain */
            atomic { taken = taken + q; q = 0; inflight-- } /* clist.c:112-117 */
        :: else -> skip
        fi;
        /* pop the injection queue (Scheduler.swift:195-198) */
        atomic { if :: work -> work = 0; wtaken = 1 :: else -> skip fi };
        /* IdleProtocol.sleep, Idle/IdleProtocol.swift steps 1-5 */
        ticket = seq;                                       /* prepare_wait clist.c:185 load seq */
        waiters++;                                          /* :186 fetch_add, :195 fence */
#ifndef MUTANT
        if
        :: q > 0 -> atomic { waiters--; ticket = 0 }        /* :542 hasWork: !completionList.isEmpty (Scheduler.swift:249) -> cancel_wait */
        :: else ->
          if
          :: work -> atomic { waiters--; ticket = 0 }       /* hasWork: injectedCount > 0 (Scheduler.swift:249) -> cancel_wait */
          :: else ->
#else
        if
        :: false -> skip
        :: true ->
#endif
            /* csup_clist_wait, clist.c:203-207 */
            if
            :: q == 0 -> atomic { if :: seq == ticket -> asleep[me] = 1 :: else -> skip fi };
                        !asleep[me]                         /* futex_wait(&seq, ticket) */
            :: else -> skip
            fi;
            atomic { waiters--; ticket = 0 }                /* fetch_sub (ticket reset: dead) */
#ifndef MUTANT
          fi
#endif
        fi
    od
}

init { atomic { run vp(0); run vp(1) } }

/* Safety monitor (compiled with spin -DSAFETY): enabled only in a state
 * that breaks the invariant, where it fails at once; otherwise blocked, so
 * it adds no interleavings. Left out of the liveness run. */
#ifdef SAFETY
active proctype monitor() {
    atomic { !((inflight > 0 || q == 0 || fd == 0 || evcount == 1) && taken <= NITEMS) -> assert(false) }
}
#endif

ltl progress { <> (taken == NITEMS && wtaken) }
