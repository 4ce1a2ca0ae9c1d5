/*
 * watchdog.pml -- the watchdog thread's sleep while no scheduler is
 * watched, and its wake-up by a registration
 * (Sources/ConcRT/Reflection/Watchdog.swift: main(), watch(), unwatch()).
 *
 * Roles:
 *   watchdog   loop: seen = registrations (acquire); list = watched (under
 *              its lock); empty -> futex_wait(registrations, seen) untimed;
 *              else sample and wait with a timeout (modelled as returning).
 *   registrar  NREG times: add a scheduler to `watched` (lock), then
 *              registrations += 1 (seq_cst), futex_wake.
 *   unwatch    removes schedulers (a scheduler shut down) at any time.
 *
 * Variables -> source:
 *   regs        the futex word `registrations`
 *   watched     schedulers in `watched`
 *   asleep      the watchdog is queued in futex_wait(regs, seen)
 *   sampled     the watchdog sampled while at least one was watched
 *   nreg        registrations made
 *
 * Kernel futex model: FUTEX_WAIT(expected) is one atomic step: regs ==
 * expected -> queued, else returns at once; FUTEX_WAKE dequeues it.
 *
 * Property (liveness): every registration is followed by a sample while
 * its scheduler is still watched, unless it was unwatched first: here
 * the last registration is never unwatched, so the watchdog must sample
 * after it: <> (sampled_after_last).
 * THIS IS THE MUTANT: the watchdog reads `registrations` after
 * it found the list empty, so a registration in between is slept through.
 */
#define NREG 2

byte regs = 0;
byte watched = 0;
bool asleep = false;
byte nreg = 0;
bool sampledAfterLast = false;

active proctype watchdog() {
    byte seen;
    byte list;
end_loop:
    do
    :: true ->
        list = watched;                           /* under the lock */
        /* MUTANT: the futex word read after the list */
        seen = regs;
        if
        :: list == 0 ->
            atomic {                              /* futex_wait(regs, seen) */
                if
                :: regs == seen -> asleep = true
                :: else -> skip
                fi
            };
end_sleep:
            !asleep                               /* until woken */
        :: else ->
            if
            :: nreg == NREG -> sampledAfterLast = true
            :: else -> skip
            fi
            /* sample; timed wait: returns */
        fi
    od
}

active proctype registrar() {
    do
    :: nreg < NREG ->
        atomic { watched++ };                     /* lock; insert */
        atomic { regs++; nreg++ };                /* fetch_add seq_cst */
        asleep = false                            /* futex_wake */
    :: else -> break
    od
}

active proctype unwatcher() {
    /* removes the first scheduler once (shut down) */
    nreg >= 1 && watched > 0;
    atomic { if :: nreg < NREG -> watched-- :: else -> skip fi }
}

ltl samples { <> sampledAfterLast }
