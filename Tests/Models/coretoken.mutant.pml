/*
 * coretoken.pml -- the Resource Manager's core tokens: a VP of scheduler A
 * gives its core back (idle, or asked between tasks) while a VP of
 * scheduler B waits for one.
 *
 * Source:
 *   Sources/ConcRT/ResourceManager/ResourceManager.swift  tryTake, release,
 *       beginWait / endWait, shouldGiveBack, requestReclaim, wakeWaiter
 *   Sources/ConcRT/VirtualProcessor/CoreTokens.swift      giveCoreBackIfAsked
 *   Sources/ConcRT/Idle/IdleProtocol.swift sleep()        steps 1, 3b, 4, 5
 *   Sources/ConcRT/VirtualProcessor/TaskLoop.swift        coreRequested check
 *
 * One core. A's VP holds it and runs tasks; B's VP has work and no core.
 * The fair-share rule (FairShare.swift, tested on its own) is abstracted to
 * its outcome here: while B wants a core (holds or waits) B's share is the
 * core and A's is nothing; otherwise A's share is the core.
 *
 * Variables -> source:
 *   freeU            ResourceManager.freeUnits (in cores)
 *   heldA, heldB     CoreAllotment.held of A and B
 *   waitingA/B       CoreAllotment.waiting; waitingT the manager's waitingVPs
 *   giveBack         A's CoreAllotment.giveBack
 *   wordA, wordB     each scheduler's completion-list futex word: a VP's
 *                    ticket (prepareToWait) and the notify that bumps it
 *                    (CoreAllotment.wakeOne -> IdleProtocol.notifyWork)
 *   asleepA/B        the VP is queued in futex_wait(word, ticket)
 *   tookB            B's VP took the core
 *
 * Every step below is one atomic action of the source (the seq_cst RMWs and
 * loads of freeUnits / waitingVPs / waiting; a CAS is one step; the
 * registry-locked decisions are one step each, as the lock makes them).
 * Timeouts (the waiter's 2 ms retry) are "may never fire": the protocol
 * must not need them.
 *
 * Properties: safety -- the core is held by at most one VP and
 * freeU + heldA + heldB == 1 always; liveness -- <> tookB.
 * THIS IS THE MUTANT: beginWait counts the waiter but does not
 * try again after (the try comes only before it), so a release between the
 * try and the count sees no waiter and wakes nobody: B sleeps for ever
 * beside a free core.
 */
#define MUTANT
byte freeU = 0;
byte heldA = 1;
byte heldB = 0;
byte waitingA = 0;
byte waitingB = 0;
byte waitingT = 0;
bool giveBack = false;
byte wordA = 0;
byte wordB = 0;
bool asleepA = false;
bool asleepB = false;
bool tookB = false;

#define invariant assert(freeU + heldA + heldB == 1)

/* release(): held -= 1; free += 1 (seq_cst); load waitingVPs; wakeWaiter:
 * the waiting scheduler furthest below its share (B if it waits). */
inline releaseA() {
    atomic { heldA = 0; freeU = freeU + 1; invariant };
    if
    :: waitingT > 0 ->
        if
        :: waitingB > 0 -> atomic { wordB++; asleepB = false }
        :: else -> atomic { wordA++; asleepA = false }
        fi
    :: else -> skip
    fi
}

/* tryTake for B: B is within its share whenever it wants a core. */
inline tryTakeB(ok) {
    atomic {
        if
        :: freeU >= 1 -> freeU--; heldB = 1; ok = true; invariant
        :: else -> ok = false
        fi
    }
}

/* tryTake for A: A is above its share while B wants a core, so it may
 * take one only while no scheduler below its share waits (B waiting). */
inline tryTakeA(ok) {
    atomic {
        if
        :: freeU >= 1 && waitingB == 0 ->
            freeU--; heldA = 1; ok = true; invariant
        :: else -> ok = false
        fi
    }
}

active proctype vpB() {
    byte ticket;
    bool ok = false;
    bool waiter = false;
    do
    :: true ->
        ticket = wordB;                               /* 1. prepareToWait */
        /* 3. re-check: B has work. 3b: take a core or wait for one. */
        if
        :: waiter -> tryTakeB(ok)
        :: else ->
#ifndef MUTANT
            atomic { waitingB++; waitingT++ };        /* beginWait: count ... */
            tryTakeB(ok);                             /* ... then try again */
#else
            tryTakeB(ok);                             /* MUTANT: try first ... */
            atomic { waitingB++; waitingT++ };        /* ... then count, no re-try */
#endif
            if
            :: !ok ->
                waiter = true;
                /* requestReclaim: B below its share, A above it */
                if
                :: heldA > 0 -> giveBack = true
                :: else -> skip
                fi
            :: else -> atomic { waitingB--; waitingT-- }
            fi
        fi;
        if
        :: ok -> break
        :: else -> skip
        fi;
        /* 4. futex_wait(wordB, ticket) */
        atomic { if :: wordB == ticket -> asleepB = true :: else -> skip fi };
end_waitB:
        !asleepB
        /* 5. awake: loop to 1 (still a waiter) */
    od;
    if
    :: waiter -> atomic { waitingB--; waitingT-- }    /* endWait (defer) */
    :: else -> skip
    fi;
    tookB = true;
end_runB:
    false                                             /* B runs for ever */
}

active proctype vpA() {
    byte ticket;
    bool ok = false;
    bool waiter = false;
running:
    /* A holds the core and runs tasks; between two it either runs out of
     * work (an idle sleep: release; it has no more work) or sees giveBack. */
    do
    :: true ->                                        /* out of work */
        releaseA();
        goto idle
    :: giveBack ->                                    /* TaskLoop: coreRequested */
        /* shouldGiveBack, under the registry lock */
        atomic {
            if
            :: waitingB > 0 && heldB == 0 -> giveBack = false; ok = true
            :: else -> giveBack = false; ok = false
            fi
        };
        if
        :: ok -> releaseA(); break
        :: else -> skip
        fi
    od;
    /* Gave its core back with work left: A's VP is now a core waiter. */
    ok = false;
    waiter = false;
    do
    :: true ->
        ticket = wordA;
        if
        :: waiter -> tryTakeA(ok)
        :: else ->
            atomic { waitingA++; waitingT++ };
            tryTakeA(ok);
            if
            :: !ok -> waiter = true
            :: else -> atomic { waitingA--; waitingT-- }
            fi
        fi;
        if
        :: ok -> break
        :: else -> skip
        fi;
        atomic { if :: wordA == ticket -> asleepA = true :: else -> skip fi };
end_waitA:
        !asleepA
    od;
    if
    :: waiter -> atomic { waitingA--; waitingT-- }
    :: else -> skip
    fi;
    ok = false;
    goto running;
idle:
end_idleA:
    false
}

ltl bGetsTheCore { <> tookB }
