/*
 * taskgroup.pml -- a TaskGroup's pending count and its waiters: a task that
 * brings the count to zero wakes the waiters registered under the lock,
 * while `run` may still be adding tasks (the count can reach zero and rise
 * again), and a finisher can be delayed between its decrement and its lock
 * (a preempted pthread).
 *
 * Source: Sources/PPL/TaskGroup.swift
 *   run        :58-59   pending += 1 (then the task is queued)
 *   wait       :82-88   if pending > 0 -> park
 *   finishOne  :143-151 pending -= 1 (acq_rel); if it reached zero: under
 *                       the lock, re-check pending == 0 (:147), take the
 *                       waiters; outside the lock, set each waiter's event
 *   park       :165-172 under the lock: pending == 0 -> return; else append
 *                       the waiter; outside the lock: wait on its event
 *   Event.wait / set (Sources/ConcRT/Event.swift; its own model event.pml):
 *                       here a bit that wait blocks on until set.
 *
 * Processes:
 *   driver   a plain pthread: run(A), run(B), run(C), then wait() (the
 *            soak's batch: tasks start as soon as they are queued, so A can
 *            finish before B is added)
 *   task(i)  the body (done[i] = 1), then finishOne
 *
 * Variables -> source:
 *   pending      TaskGroup.pending
 *   lk           TaskGroup.lock (0 free, else holder's _pid + 1)
 *   registered   State.waiters holds the driver's GroupWaiter
 *   ev           that GroupWaiter's Event is set
 *   done[i]      task i's body has finished (before its decrement)
 *
 * Properties:
 *   safety: when wait() returns, every task run before it has finished
 *           (the soak's "wait() returned .completed with tasks not run");
 *           the event is set only for a registered waiter.
 *   liveness (LTL `returns`, weak fairness): wait() returns.
 *
 * Mutant (taskgroup.mutant.pml): finishOne takes the waiters without the
 * re-check under the lock (the code before this fix): a finisher delayed
 * from a transient zero wakes a waiter that registered for newer tasks,
 * and the safety assertion fails.
 */

#define N 3

byte pending = 0;
byte lk = 0;
bit registered = 0;
bit ev = 0;
bit done[N];
bit returned = 0;

inline lock() { atomic { lk == 0 -> lk = _pid + 1 } }
inline unlock() { assert(lk == _pid + 1); lk = 0 }

proctype task(byte i) {
    bit zero = 0, take = 0;
    done[i] = 1;                                            /* the body */
    atomic { pending--; zero = (pending == 0) };            /* :144 acq_rel */
    if
    :: zero ->
        lock();                                             /* :146 */
#ifndef MUTANT
        if
        :: pending != 0 -> take = 0                         /* :147 re-check: a newer run */
        :: else -> take = registered; registered = 0        /* :148-149 take the waiters */
        fi;
#else
        take = registered; registered = 0;                  /* MUTANT: no re-check */
#endif
        unlock();
        if :: take -> ev = 1 :: else -> skip fi             /* :151 event.set */
    :: else -> skip
    fi
}

active proctype driver() {
    byte i = 0;
    bit mustWait = 0;
    do                                                      /* run(A), run(B), run(C) */
    :: i < N -> pending++; run task(i); i++                 /* :59 relaxed add, then queued */
    :: else -> break
    od;
    if                                                      /* wait(), :83-88 */
    :: pending > 0 ->
        lock();                                             /* park, :167-171 */
        if
        :: pending == 0 -> mustWait = 0
        :: else -> registered = 1; mustWait = 1
        fi;
        unlock();
        if :: mustWait -> ev == 1 :: else -> skip fi        /* :172 event.wait */
    :: else -> skip
    fi;
    i = 0;
    do                                                      /* every task run before wait() finished */
    :: i < N -> assert(done[i]); i++
    :: else -> break
    od;
    returned = 1
}

ltl returns { <> returned }
