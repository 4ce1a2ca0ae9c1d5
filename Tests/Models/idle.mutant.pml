/*
 * The idle protocol's pair A: a context pushed to a busy VP's `runnext`
 * versus a VP going to sleep (Sources/ConcRT/Idle/README.md).
 *
 * Roles:
 *   VP0  a virtual processor whose running task wakes a context into its
 *        own `runnext` and then keeps running for ever (never switches, so
 *        it never runs that context itself: the stranded case).
 *   VP1  a virtual processor that goes to sleep (IdleProtocol.sleep) and
 *        must eventually take the stranded context.
 *
 * Variables -> source:
 *   runnext   RunQueue.runnext of VP0 (Queues/RunQueue.swift, push/steal)
 *   untimed   IdleProtocol.untimed (Idle/IdleProtocol.swift)
 *   seq       csup_clist.seq, the futex word (CSupport/clist.c)
 *   waiters   csup_clist.waiters (CSupport/clist.c)
 *   taken     the stranded context ran on VP1 (stealFromBusyVirtualProcessor)
 *
 * Every statement below is one atomic step of the source, all seq_cst
 * (as in the source), so SPIN's interleavings are the executions the C11
 * seq_cst total order allows.
 *
 * Whether VP1 watches or sleeps untimed depends on whether VP0 was awake
 * when VP1 counted the sleepers (IdleProtocol.sleep step 2); VP0 may have
 * been asleep then and woken by a completion since, so the model lets VP1
 * choose either.
 *
 * Properties:
 *   safety   the context is taken once (assert);
 *   liveness <> taken: the stranded context is eventually run (checked
 *            with weak fairness: a watch timeout is modelled as an
 *            enabled step that fairness eventually takes).
 * THIS IS THE MUTANT: it drops the untimed sleeper's re-check of
 * `runnext` after announcing itself (step 3); SPIN must find the lost
 * wake-up: the push lands before `untimed += 1`, the pusher sees 0 and
 * wakes nobody, and VP1 sleeps untimed for ever.
 */

byte runnext = 0;
byte untimed = 0;
byte seq = 0;
byte waiters = 0;
bool taken = false;

active proctype VP0() {
    /* RunQueue.push(front: true): runnext.exchange (seq_cst) */
    runnext = 1;
    /* IdleProtocol.runnextPushed: untimed.load (seq_cst) */
    if
    :: untimed > 0 ->
        /* csup_clist_notify: fence; waiters load; seq++ ; futex_wake */
        if
        :: waiters > 0 -> seq++
        :: else -> skip
        fi
    :: else -> skip
    fi
    /* ...and the task runs on for ever: VP0 never takes runnext back. */
}

active proctype VP1() {
    byte ticket;
    bool watching;
sleep:
    /* step 1: csup_clist_prepare_wait: ticket = seq; waiters++ */
    atomic { ticket = seq; waiters++ };
    /* step 2: others awake -> watch; else untimed += 1 (seq_cst RMW) */
    if
    :: watching = true
    :: watching = false; untimed++
    fi;
    /* step 3: re-check; an untimed sleeper that sees a runnext watches
       (Scheduler.otherVirtualProcessorHasRunnable) */
    /* MUTANT: the re-check of runnext after announcing is gone. */
    skip;
    /* step 5: csup_clist_wait: futex_wait(seq, ticket, timeout) returns
       when the word moved, or on the watch timeout; untimed: only the
       former */
    if
    :: seq != ticket -> skip
    :: watching -> skip
    fi;
    waiters--;
    if
    :: !watching -> untimed--
    :: else -> skip
    fi;
    /* step 6: stealFromBusyVirtualProcessor: VP0 never switches, so a
       queued context there is stranded and taken */
    if
    :: runnext == 1 ->
        atomic { runnext = 0; assert(!taken); taken = true }
    :: else -> goto sleep
    fi
}

ltl stranded_context_is_taken { <> taken }
