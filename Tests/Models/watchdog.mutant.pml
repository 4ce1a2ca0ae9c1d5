/*
 * watchdog.pml -- the watchdog thread's sleeps (Sources/ConcRT/Reflection/
 * Watchdog.swift: main(), watch(), virtualProcessorWoke(); the VP side in
 * Sources/ConcRT/Idle/IdleProtocol.swift sleep()).
 *
 * Two ways the watchdog sleeps untimed (timeouts are "may never fire"):
 *   - nothing watched: futex_wait(regs, seen) until a registration;
 *   - every watched VP asleep: parked = true (seq_cst), re-read the sleeper
 *     count (seq_cst), and if still all asleep futex_wait(regs, seen) until
 *     a VP wakes; parked = false after.
 *
 * Roles:
 *   watchdog   loop: seen = regs; empty -> wait; else sample (records
 *              whether the VP was awake), then the parked sleep above.
 *   registrar  registers the one scheduler: watched = 1; regs += 1; wake.
 *   vp         the scheduler's one VP: asleep at start; wakes once
 *              (sleeping = 0, seq_cst), then virtualProcessorWoke(): if
 *              parked: exchange(parked, false) -> regs += 1; futex_wake.
 *              Then it runs a long task for ever (awake).
 *
 * Variables -> source:
 *   regs        the futex word `registrations`
 *   watched     schedulers in `watched` (0 or 1)
 *   sleeping    the scheduler's idle.sleeping (1 VP)
 *   parked      Watchdog.parked
 *   asleep      the watchdog is queued in futex_wait(regs, seen)
 *   sawAwake    a sample ran while the VP was awake (the long task is seen)
 *
 * Kernel futex model: FUTEX_WAIT(expected) is one atomic step: regs ==
 * expected -> queued, else returns at once; FUTEX_WAKE dequeues it.
 *
 * Property (liveness): the watchdog samples the VP while it runs its long
 * task: <> sawAwake.
 * THIS IS THE MUTANT: the watchdog parks without re-reading the
 * sleeper count after setting `parked` (it trusts the sample's reading),
 * so a VP that woke in between finds `parked` still false and wakes nobody.
 */
#define MUTANT
byte regs = 0;
byte watched = 0;
byte sleeping = 1;
bool parked = false;
bool asleep = false;
bool sawAwake = false;

active proctype watchdog() {
    byte seen;
    bool allAsleep;
end_loop:
    do
    :: true ->
        seen = regs;                              /* load acquire */
        if
        :: watched == 0 ->
            atomic { if :: regs == seen -> asleep = true :: else -> skip fi };
end_idle:
            !asleep
        :: else ->
            allAsleep = (sleeping == 1);          /* sample */
            if
            :: !allAsleep -> sawAwake = true
            :: else -> skip
            fi;
            if
            :: allAsleep ->
                seen = regs;
                parked = true;                    /* seq_cst */
#ifndef MUTANT
                if
                :: sleeping == 1 ->               /* re-read, seq_cst */
#else
                if
                :: true ->                        /* MUTANT: no re-read */
#endif
                    atomic { if :: regs == seen -> asleep = true :: else -> skip fi };
end_parked:
                    !asleep
                :: else -> skip
                fi;
                parked = false
            :: else -> skip                       /* timed wait: returns */
            fi
        fi
    od
}

active proctype registrar() {
    atomic { watched = 1 };
    atomic { regs++ };
    asleep = false                                /* futex_wake */
}

active proctype vp() {
    watched == 1;                                 /* the scheduler started */
    sleeping = 0;                                 /* wakes: seq_cst RMW */
    if
    :: atomic { parked -> parked = false } ->     /* exchange(parked, false) */
        atomic { regs++ };
        asleep = false                            /* futex_wake */
    :: else -> skip
    fi
end_task:
    false                                         /* the long task: never ends */
}

ltl seen { <> sawAwake }
