/*
 * compensation.pml -- unwrapped-block compensation: the UMS monitor starts
 * a temporary VP beside a primary whose thread sleeps in unwrapped code,
 * and the compensation is ended once, by whichever of the thread (at a
 * runtime entry), the monitor (seeing the thread run again) or the
 * primary's exit from scheduling mode gets there first.
 *
 * Source: Sources/UMS/LazyKernelEntry/Compensation.swift
 *   beginCompensation      :57-64  load idle (acquire); handler.begin;
 *                                  store active (release)
 *   endCompensationIfActive :70-83 CAS active -> ending (acq_rel);
 *                                  handler.end; store idle (release)
 * Sources/UMS/LazyKernelEntry/Monitor.swift
 *   scan (under the monitor lock) -> lookForUnwrappedBlock :328-400:
 *   active and the thread runs again -> end; idle and the thread asleep
 *   in the kernel -> begin
 * Sources/UMS/UMSThread.swift noteRuntimeEntry / endCompensation :395-408
 *   (relaxed load == active -> endCompensationIfActive)
 * Sources/UMS/UMSPrimary.swift enterSchedulingMode's defer :347-354:
 *   unregister (under the monitor lock), then endCompensationIfActive
 * Sources/ConcRT/VirtualProcessor/PrimaryCarriers.swift
 *   VirtualProcessorRetake.beginCompensation / endCompensation: start a
 *   temporary VP (the token); retire it
 *
 * Processes:
 *   thread   the UMS thread on the primary: blocks in unwrapped code and
 *            wakes (twice), with runtime entries in between; then its
 *            primary leaves scheduling mode (unregister + end)
 *   monitor  scans while the primary is registered
 *
 * Variables -> source:
 *   comp         UMSPrimary.compensation (IDLE 0, ACTIVE 1, ENDING 2)
 *   temp         UMSPrimary.compensationToken (the temporary VP the
 *                handler started; it runs until retired)
 *   inHandler    begin/end steps on that token in progress (they must
 *                never overlap)
 *   asleep       the thread sleeps in the kernel in unwrapped code
 *   registered   the primary's monitor entry is registered
 *   lk           the monitor lock (scan; unregister); waiting: a thread
 *                waits for it (the monitor's tick sleep lets it in, which
 *                weak fairness alone would not model)
 *   started, retired  temporary VPs started and retired
 *
 * Properties:
 *   safety: handler calls never overlap; an end finds the temporary VP a
 *           begin started; after the primary left, no compensation is
 *           active and every temporary VP started was retired once.
 *   liveness (LTL `settles`, weak fairness): the thread finishes, and
 *           then every temporary VP is retired.
 *
 * Mutant (compensation.mutant.pml): the thread's end takes `active` with
 * a load and a store instead of the CAS (Compensation.swift:71), so the
 * thread and the monitor can both end one compensation: the second end
 * finds no temporary VP (the handler's precondition), and safety fails.
 */

#define IDLE 0
#define ACTIVE 1
#define ENDING 2

byte comp = IDLE;
bit temp = 0;
byte inHandler = 0;
bit asleep = 0;
bit registered = 1;
bit lk = 0;
byte started = 0, retired = 0;
bit left = 0;
bit waiting = 0;

inline handlerBegin() {
    assert(inHandler == 0); inHandler++;
    assert(temp == 0); temp = 1; started++;                 /* start a temporary VP */
    inHandler--
}
inline handlerEnd() {
    assert(inHandler == 0); inHandler++;
    assert(temp == 1); temp = 0; retired++;                 /* retire it (precondition) */
    inHandler--
}

/* endCompensationIfActive, Compensation.swift:70-83 */
inline endIfActive() {
    bit won = 0;
    atomic { if :: comp == ACTIVE -> comp = ENDING; won = 1 :: else -> won = 0 fi };  /* :71 CAS */
    if
    :: won -> handlerEnd(); comp = IDLE                     /* :75-81 */
    :: else -> skip
    fi
}

#ifdef MUTANT
inline threadEnd() {
    if
    :: comp == ACTIVE -> comp = ENDING; handlerEnd(); comp = IDLE   /* load, then store: no CAS */
    :: else -> skip
    fi
}
#else
inline threadEnd() { if :: comp == ACTIVE -> endIfActive() :: else -> skip fi }  /* UMSThread :402-403 */
#endif

active proctype thread() {
    byte round = 0;
    do
    :: round < 2 ->
        asleep = 1;                                         /* an unwrapped read(2) blocks */
        asleep = 0;                                         /* it returns; user code runs on */
        threadEnd();                                        /* a runtime entry (task boundary, switch) */
        round++
    :: else -> break
    od;
    /* enterSchedulingMode's defer: UMSPrimary.swift:347-354 */
    waiting = 1;                                            /* unregister: wait for the lock */
    atomic { lk == 0 -> lk = 1 }; registered = 0; lk = 0; waiting = 0;
    endIfActive();
    assert(comp == IDLE && temp == 0 && started == retired);
    left = 1
}

active proctype monitor() {
    do
    :: atomic { lk == 0 -> lk = 1 };
       if
       :: !registered -> lk = 0; break
       :: else -> skip
       fi;
       /* lookForUnwrappedBlock, Monitor.swift:328-400 */
       if
       :: comp == ACTIVE && !asleep -> endIfActive()        /* it runs again */
       :: comp == IDLE && asleep ->                         /* beginCompensation :57-64 */
            handlerBegin(); comp = ACTIVE
       :: else -> skip
       fi;
       lk = 0;
       !waiting                                             /* the tick's sleep lets a waiter take the lock */
    od
}

ltl settles { <> (left && temp == 0) }
