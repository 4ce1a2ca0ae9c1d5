/* MUTANT of event.pml (same text with MUTANT defined below): see the "Mutant" paragraph of its header. */
/*
 * event.pml -- ConcRT's Event word: set / reset / plain wait committed after
 * the switch (commitPark) / timed (wait-for-multiple) wait under the mutex
 * with bit 1.
 *
 * Source: Sources/ConcRT/Event.swift (line numbers below), the Waiter claim
 * and park/wake in Sources/ConcRT/Waiter.swift, VirtualProcessor
 * .finishSuspension (VirtualProcessor/VirtualProcessor.swift), Context.park
 * (Context.swift:334-343).
 *
 * Processes:
 *   setter   set() (Event.swift:58-74, or setWithMultiWaiters 95-111 when
 *            bit 1 is seen), then (nondeterministically) reset() (114-118).
 *   plain    a context in wait() (123-128): load; switch out with .park;
 *            its primary runs commitPark (156-163) -> pushPlainWaiter
 *            (140-151); parked until the setter's wakePlainWaiters (77-89)
 *            makes it runnable (Waiter.wakeParked -> Scheduler.makeRunnable).
 *            The context's switch-out and its primary's commit are one
 *            process: the primary runs them back to back.
 *   timed    a context in wait(timeout:) -> waitForMultiple([e]) -> waitAny
 *            (192-220): registerMulti (252-266) under the mutex, claim
 *            (Waiter.swift:60), arm the timer, park (Waiter.park ->
 *            Context.blockInternal), cancel the timer, deregister (240-248).
 *   timer    the VP that fires the timeout (TimerQueue.fireExpired ->
 *            `if waiter.claim() { waiter.wake(result: timeoutResult) }`,
 *            Event.swift:208-210); it may also never fire (a long timeout):
 *            both are explored.
 *
 * Variables -> source:
 *   word     Event.word: bit 0 SIG (signaledBit), bit 1 MULTI (multiBit),
 *            bit 2 PLAIN = the plain-waiter stack's head is the plain
 *            context's waiter (pointer bits; the model has one plain waiter,
 *            so the stack is empty or that one waiter and nextBits is 0).
 *   mtx      the `multi` MigrationSafeMutex; mlist: the timed waiter is in
 *            its list.
 *   claimed  the timed Waiter's `claimed` (claim = exchange true).
 *   permit   the timed context's block state collapsed to a permit:
 *            Context.unblockInternal before or after blockInternal's
 *            commit makes it run (BlockState unblockedEarly /
 *            unblockedWhileBlocking / blocked -> running; modelled
 *            separately in stackjob.pml). park = wait for the permit.
 *   armed    the timer's entry is in the TimerQueue.
 *   pushed   the plain waiter is on the stack and parked; prun: made
 *            runnable by a setter.
 *   owedP / owedT  ghost: the waiter was registered (plain: pushed on the
 *            stack; timed: its fetch_or on the word done, regT) when set's
 *            CAS signaled the event, so it must be woken. doneP / doneT: its wait returned.
 *   setOnly  ghost: this run's setter never resets, so the event stays
 *            signaled and every waiter must return.
 *   A wait that overlaps a whole set+reset pulse without having registered
 *   may miss it (linearized after the reset): allowed, as for any
 *   manual-reset event; the properties do not demand that wake.
 *
 * Properties:
 *   safety: (monitor) SIG set => no plain waiter on the stack; a plain
 *           waiter is woken only while pushed (assert in the wake); the
 *           timed waiter is woken at most once (assert on permit); a
 *           timed wait returns 0 (signaled) only after a set.
 *   liveness (LTL `live`, weak fairness): every waiter registered when the
 *           event was set is eventually woken; if the setter never resets,
 *           every waiter returns. Weak fairness only makes
 *           runnable threads run; a parked waiter is not enabled.
 *
 * Mutant (event.mutant.pml): registerMulti ignores what its fetch_or
 * returns (Event.swift:258-263: the `old & signaledBit` re-check): a set
 * whose CAS lands between the registration's load and its RMW leaves the
 * timed waiter registered and unwoken -> the liveness property fails.
 */

#define MUTANT 1
#define SIG   1
#define MULTI 2
#define PLAIN 4

byte word = 0;
bit mtx = 0;
bit mlist = 0;
bit claimed = 0;
bit permit = 0;
bit armed = 0;
bit pushed = 0;
bit prun = 0;
bit owedP = 0, owedT = 0, doneP = 0, doneT = 0;
bit setDone = 0;
bit setOnly = 0;
bit regT = 0;

inline lock()   { atomic { mtx == 0 -> mtx = 1 } }
inline unlock() { mtx = 0 }

/* Waiter.wake for a context waiter: unblockInternal (Waiter.swift:63-70) */
inline wakeTimed() { atomic { assert(permit == 0); permit = 1 } }

/* wakePlainWaiters(old), Event.swift:77-89: read the link, then wake */
inline wakePlain(old) {
    if
    :: (old & PLAIN) ->
        atomic { assert(pushed); pushed = 0; prun = 1 }     /* Waiter.wakeParked -> makeRunnable */
    :: else -> skip
    fi
}

/* One CAS that signals: word = SIG; ghost: who was waiting is owed a wake */
inline casSignal(old, ok) {
    atomic {
        if
        :: word == old -> word = SIG; ok = 1; setDone = 1;
           owedP = pushed; owedT = regT && !doneT
        :: else -> old = word; ok = 0
        fi
    }
}

active proctype setter() {
    byte old; bit ok = 0; bit taken = 0;
    if :: setOnly = 1 :: skip fi;                           /* ghost: will this run reset()? */
    old = word;                                             /* Event.swift:59 load acquire */
    do
    :: (old & SIG) -> goto reset                            /* :63 already signaled */
    :: !(old & SIG) && (old & MULTI) -> goto withMulti      /* :64-67 */
    :: !(old & SIG) && !(old & MULTI) ->
        casSignal(old, ok);                                 /* :68-71 CAS acq_rel */
        if :: ok -> break :: else -> skip fi
    od;
    wakePlain(old);                                         /* :73 */
    goto reset;
withMulti:                                                  /* setWithMultiWaiters :95-111 */
    lock();
    old = word;                                             /* :97 */
    do
    :: (old & SIG) -> unlock(); goto reset                  /* :99 */
    :: else ->
        casSignal(old, ok);                                 /* :100-103 */
        if :: ok -> break :: else -> skip fi
    od;
    atomic { taken = mlist; mlist = 0 };                    /* :105-106 swap the list */
    unlock();
    wakePlain(old);                                         /* :109 */
    if                                                      /* :110 claim, wake(result: 0) */
    :: taken ->
        atomic { if :: !claimed -> claimed = 1; ok = 1 :: else -> ok = 0 fi };
        if :: ok -> wakeTimed() :: else -> skip fi
    :: else -> skip
    fi;
reset:                                                      /* reset(), :114-118 */
    if
    :: setOnly -> goto out
    :: else -> skip
    fi;
    if
    :: (word & SIG) -> word = word & ~SIG                   /* :116 fetch_and acq_rel */
    :: else -> skip
    fi;
out:
    skip
}

active proctype plain() {
    byte old;
    atomic {                                                /* Event.swift:125 load acquire */
        if :: (word & SIG) -> doneP = 1 :: else -> skip fi
    };
    if :: doneP -> goto out :: else -> skip fi;
    /* Context.park -> suspend(.park): switch to the primary (no shared
     * state); the primary: finishSuspension -> commitPark (:156-163) */
    old = word;                                             /* pushPlainWaiter :142 */
    do
    :: (old & SIG) -> doneP = 1; goto out                   /* :144 signaled: resume at once */
    :: else ->
        atomic {                                            /* :145-147 link, CAS acq_rel */
            if
            :: word == old -> word = PLAIN | (old & MULTI); pushed = 1; break
            :: else -> old = word
            fi
        }
    od;
    prun;                                                   /* parked until made runnable */
    doneP = 1;
out:
    skip
}

active proctype timed() {
    byte old; bit sig = 0; bit won;
    /* registerMulti, Event.swift:252-266 */
    lock();
    atomic {                                                /* :254 load acquire */
        if :: (word & SIG) -> sig = 1 :: else -> skip fi
    };
    if
    :: !sig ->
        mlist = 1;                                          /* :255 append */
        atomic { old = word; word = word | MULTI; regT = 1 }  /* :258 fetch_or acq_rel */
#ifndef MUTANT
        if
        :: (old & SIG) ->                                   /* :259-263 */
            mlist = 0;
            word = word & ~MULTI;                           /* list empty: fetch_and */
            sig = 1
        :: else -> skip
        fi
#endif
    :: else -> skip
    fi;
    unlock();
    /* waitAny, Event.swift:195-220 */
    if
    :: sig ->
        atomic { won = !claimed; claimed = 1 };             /* :198 claim */
        if
        :: won -> goto dereg                                /* :199-200 return i */
        :: else -> skip                                     /* :202 park to consume the wake */
        fi
    :: else ->
        armed = 1                                           /* :206-211 armTimeout */
    fi;
    atomic { permit -> permit = 0 };                        /* :216 waiter.park() (blockInternal) */
    armed = 0;                                              /* :217 timers.cancel */
dereg:                                                      /* deregister :240-248 */
    lock();
    atomic { mlist = 0; regT = 0 };
    if :: !mlist -> word = word & ~MULTI :: else -> skip fi; /* :245 fetch_and */
    unlock();
    doneT = 1
}

active proctype timer() {
    bit won;
    if
    :: atomic { armed -> armed = 0 };                       /* fireExpired takes the entry */
       atomic { won = !claimed; claimed = 1 };              /* Event.swift:209 claim */
       if :: won -> wakeTimed() :: else -> skip fi
    :: true -> skip                                         /* the timeout never expires */
    fi
}

/* Safety monitor (spin -DSAFETY): enabled only in a state that breaks the
 * invariant (signaled => no plain waiter on the stack; a stack entry is a
 * parked waiter), where it fails at once; otherwise blocked. */
#ifdef SAFETY
active proctype monitor() {
    atomic { !((!(word & SIG) || !(word & PLAIN)) && (!(word & PLAIN) || pushed)) -> assert(false) }
}
#endif

ltl live { [] ((owedP -> <> doneP) && (owedT -> <> doneT) && (setOnly -> <> (doneP && doneT))) }
