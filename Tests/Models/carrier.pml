/*
 * carrier.pml -- the pthreads that carry a virtual processor (VP): a
 * spare carrier parked on its futex word, the UMS monitor's retake that
 * reserves one and assigns it the VP, the retaken carrier that parks as a
 * spare, and shutdown, which stops every spare and joins every carrier.
 *
 * Source: Sources/ConcRT/VirtualProcessor/PrimaryCarriers.swift (":N"
 * below), Sources/ConcRT/Scheduler.swift ("S:N"),
 * Sources/UMS/LazyKernelEntry/Monitor.swift ("M:N"),
 * Sources/UMS/BlockingCall.swift ("B:N"), Sources/UMS/UMSPrimary.swift
 * ("P:N"), Sources/ConcRT/VirtualProcessor/VirtualProcessor.swift ("V:N").
 * S:, V: and P: lines are those of main at e0217da, the merge target (those
 * files moved after this branch forked); the others did not move.
 *
 * Processes:
 *   carrier(me, first)  Scheduler.startCarrier's pthread body (:147-172):
 *            the first carrier runs the VP at once (`vp` given); a spare
 *            made by the monitor parks first (`vp ?? carrier.park()`,
 *            :148). Running the VP (:153-158, VirtualProcessor.run): it
 *            enters scheduling mode (registers with the monitor, P:340),
 *            makes inline blocking calls (B:81-101: enter-CAS running ->
 *            inKernel, the call, leave-CAS inKernel -> running, B:116-124),
 *            and leaves the VP loop when the scheduler stops (V:262,
 *            readyToStop) or when its leave-CAS failed (retaken: V:321,
 *            `isRetaken`, touching nothing of the VP). Leaving scheduling
 *            mode unregisters from the monitor under the monitor's lock
 *            (P:343, M:109-111). Retaken, it offers itself as a spare
 *            (:169, offerSpareCarrier :184-190) and parks (:170); else its
 *            pthread ends (:169).
 *   monitor  UMSMonitor.scan (M:215-283) for this VP: under the registry
 *            lock (M:220; handlers run with it held, M:27), a carrier whose
 *            word is inKernel (M:224-233) and `shouldRetake` (nondeterministic,
 *            :87-92); reserveReplacement (:94-108): a parked spare
 *            (takeSpareCarrier :178-180) else startCarrier(for: nil)
 *            (:141-175), whose pthread_create may fail (the injected
 *            failure :142-145, EAGAIN): then declined (M:264-268); the
 *            retake CAS inKernel -> retaken (M:269-272); startReplacement
 *            (:110-118: assign) or releaseReplacement (:120-124: offer, or
 *            stop when the offer is refused).
 *   shutdown Scheduler.shutdown (S:433-456): `stopping` (S:449, the
 *            scheduler's readyToStop once no task is outstanding; set at
 *            any time here), then joinPrimaries (S:171-186): while a
 *            carrier pthread is unjoined, stopSpareCarriers (:193-196) and
 *            a join with a 2 s timeout (S:182), again.
 *
 * Variables -> source:
 *   word[c]      PrimaryCarrier.word (:37): PARKED 0, GO 1, EXIT 2 (:39)
 *   assigned[c]  PrimaryCarrier.assigned (:38): 1 = the VP, 0 = nil
 *   asleep[c]    carrier c blocked in futex_wait(word, parked) (:59)
 *   spare[c]     c is on Scheduler.spareCarriers (S:44), nspare its length
 *   kcall[c]     c's UMSPrimary.kernelCall word state (KernelCallWord):
 *                RUNNING 0, INKERNEL 1, RETAKEN 2
 *   running      carriers now executing the VP's loop (owner-only VP
 *                state); a carrier inside a context's call is not one
 *   mlock        the monitor's registry lock (M:69), held over a scan
 *   created      carrier pthreads started (primaryThreads, S:42: appended
 *                by startCarrier, :173); ended: pthreads that returned
 *   stopping     Scheduler.stopping (S:67), read under the spare list's
 *                lock by offerSpareCarrier (:186)
 *
 * futex: wait(w, v) = atomic { w == v -> asleep } then block until a wake
 * (the kernel's compare is the re-check: a store that changed the word
 * before the wait makes it return at once). No spurious wake-ups (park
 * re-loads after any return anyway). The join's 2 s timeout is a loop.
 *
 * Bounds: the first carrier and 2 spares the monitor may create (NC 3),
 * NCALLS inline calls in all, at most NRETAKE retakes. MAXSPARE is 1 (the
 * source keeps max(2, VPs), S: maxSpareCarriers :136) so that the model
 * also takes the refused-offer paths with 3 carriers.
 *
 * Properties:
 *   safety: the VP loop runs on at most one carrier at a time (no VP run by
 *           two carriers); a carrier that sees GO finds the VP assigned (no
 *           lost or stale assignment); the spare list never exceeds its
 *           bound; when shutdown's join finishes every carrier started has
 *           ended and no spare is listed (none left parked).
 *   liveness (LTL `done`, weak fairness; a carrier asleep in the futex is
 *           not enabled, so fairness never wakes it): shutdown always
 *           finishes, i.e. every carrier, parked, assigned or reserved,
 *           ends.
 *
 * Also seen with the model (not kept as files): without the monitor's lock
 * around unregister (P:343) the join can finish while the monitor, which
 * chose the carrier's call before it returned, starts a spare afterwards:
 * that pthread parks for ever, unjoined (the end assertion fails). An
 * offer that ignored `stopping` (:186) would still be safe: the join keeps
 * stopping spares while any carrier is unjoined (S:179-182).
 *
 * Mutant (carrier.mutant.pml): assign() stores GO without the futex_wake
 * after it (:67): a spare already asleep on its word never sees the VP;
 * it is not on the spare list, so shutdown never stops it, and the join
 * waits for ever.
 */

#define PARKED 0
#define GO 1
#define EXIT 2
#define RUNNING 0
#define INKERNEL 1
#define RETAKEN 2
#define NC 3
#define NCALLS 3
#define NRETAKE 2
#define MAXSPARE 1

byte word[NC];
bit assigned[NC];
bit asleep[NC];
bit spare[NC];
byte nspare = 0;
byte kcall[NC];
byte running = 0;
bit mlock = 0;
byte created = 1;          /* the first carrier (S:120 startPrimary) */
byte ended = 0;
bit stopping = 0;
byte calls = 0;
byte retakes = 0;
bit shutdownDone = 0;

inline futex_wake(c) { asleep[c] = 0 }

/* PrimaryCarrier.park (:49-61): v = 1 (the VP) or 0 (exit). */
inline park(me, v) {
    do
    :: word[me] == GO ->                                 /* :51 load acquire */
        word[me] = PARKED;                               /* :53 store release */
        assert(assigned[me] == 1);                       /* :54 the VP, not nil */
        v = assigned[me];
        assigned[me] = 0;                                /* :55 */
        break
    :: word[me] == EXIT -> v = 0; break                  /* :58 */
    :: word[me] == PARKED ->                             /* :59 futex_wait(word, parked) */
        atomic { if :: word[me] == PARKED -> asleep[me] = 1 :: else -> skip fi };
        !asleep[me]
    od
}

/* PrimaryCarrier.assign (:64-68) */
inline assign(c) {
    assigned[c] = 1;                                     /* :65 */
    word[c] = GO;                                        /* :66 store release */
#ifndef MUTANT
    futex_wake(c)                                        /* :67 */
#endif
}

/* PrimaryCarrier.stop (:71-74) */
inline stop(c) {
    word[c] = EXIT;                                      /* :72 store release */
    futex_wake(c)                                        /* :73 */
}

/* offerSpareCarrier (:184-190), under the spare list's lock */
inline offer(c, ok) {
    atomic {
        if
        :: stopping || nspare >= MAXSPARE -> ok = 0
        :: else -> spare[c] = 1; nspare++; ok = 1
        fi;
        assert(nspare <= MAXSPARE)
    }
}

proctype carrier(byte me; bit first) {
    byte v; bit retaken; bit ok;
    if
    :: first -> v = 1
    :: else -> park(me, v)                               /* :148 */
    fi;
    do
    :: v == 0 -> break                                   /* told to exit */
    :: v == 1 ->
        /* enterSchedulingMode (:153), VirtualProcessor.run */
        atomic { running++; assert(running == 1) };
        retaken = 0;
        do
        :: atomic { calls < NCALLS -> calls++ };         /* a context's inline call */
            atomic { kcall[me] = INKERNEL; running-- };  /* B:82 enter-CAS; the call runs */
            atomic {                                     /* B:116-124 leave-CAS */
                if
                :: kcall[me] == INKERNEL -> kcall[me] = RUNNING; running++; assert(running == 1)
                :: else -> retaken = 1                   /* the monitor won: touch nothing */
                fi
            };
            if :: retaken -> break :: else -> skip fi
        :: stopping -> running--; break                  /* V:262 readyToStop: the loop ends */
        od;
        atomic { mlock == 0 -> kcall[me] = RUNNING };    /* P:343 unregister, under the monitor's lock */
        if
        :: retaken ->
            offer(me, ok);                               /* :169 */
            if
            :: ok -> park(me, v)                         /* :170 */
            :: else -> v = 0
            fi
        :: else -> v = 0                                 /* :169 not retaken: the pthread ends */
        fi
    od;
    ended++
}

active proctype monitor() {
    byte c, res, i; bit ok;
    do
    :: atomic {       /* M:220 the lock; M:224-233 a carrier in its call (asleep while none is: monitor.pml) */
        (retakes < NRETAKE && mlock == 0 && (kcall[0] == INKERNEL || kcall[1] == INKERNEL || kcall[2] == INKERNEL)) ->
        mlock = 1;
        if
        :: kcall[0] == INKERNEL -> c = 0
        :: kcall[1] == INKERNEL -> c = 1
        :: kcall[2] == INKERNEL -> c = 2
        fi
       };
        /* reserveReplacement (:94-108) */
        res = NC;
        atomic {                                         /* takeSpareCarrier (:178-180) */
            i = 0;
            do
            :: i < NC && spare[i] -> res = i; spare[i] = 0; nspare--; break
            :: i < NC && !spare[i] -> i++
            :: i == NC -> break
            od
        };
        if
        :: res == NC ->
            if
            :: created < NC ->                           /* startCarrier(for: nil) (:141-175) */
                atomic { res = created; created++; run carrier(res, 0) }
            :: true -> mlock = 0; goto next              /* pthread_create failed: declined (M:264-268) */
            fi
        :: else -> skip
        fi;
        atomic {                                         /* M:269-272 retake CAS */
            if
            :: kcall[c] == INKERNEL -> kcall[c] = RETAKEN; ok = 1
            :: else -> ok = 0
            fi
        };
        if
        :: ok -> retakes++; assign(res)                  /* startReplacement (:110-118) */
        :: else ->                                       /* releaseReplacement (:120-124) */
            offer(res, ok);
            if :: !ok -> stop(res) :: else -> skip fi
        fi;
        mlock = 0;
next:   skip
    :: break
    od
}

active proctype shutdown() {
    byte i; bit take;
    stopping = 1;                                        /* S:449 */
    do                                                   /* joinPrimaries, S:171-186 */
    :: ended == created -> break                         /* every pthread joined */
    :: else ->
        i = 0;                                           /* stopSpareCarriers (:193-196): */
        do                                               /* empty the list under its lock, */
        :: i < NC ->                                     /* then stop each one taken */
            atomic { take = spare[i]; if :: take -> spare[i] = 0; nspare-- :: else -> skip fi };
            if :: take -> stop(i) :: else -> skip fi;
            i++
        :: i == NC -> break
        od
        /* csup_pthread_join_timeout(tid, 2) (S:182): returns or times out */
    od;
    assert(nspare == 0);
    i = 0;
    do
    :: i < NC -> assert(!asleep[i]); i++
    :: i == NC -> break
    od;
    shutdownDone = 1
}

init { run carrier(0, 1) }

ltl done { <> shutdownDone }
