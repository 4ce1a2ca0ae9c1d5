/*
 * nodewake.pml -- per-node wake-ups for a schedule group homed on a NUMA
 * node: a task queued to a group homed on node 1 versus a node-1 VP going
 * to sleep and a node-0 VP that must decline the task while node 1 has
 * capacity (Sources/ConcRT/Idle/README.md, "Node-preferring groups").
 *
 * Source: Sources/ConcRT/Idle/NodeIdle.swift (markFree :96, beginSearch
 *         :112, endSearch :117, announceSleep :123-129, endSleep :131,
 *         notifyHome :142-153, wakeNode :156, forwardDeclined :165),
 *         Sources/ConcRT/Idle/IdleProtocol.swift (sleep: step 0 forward
 *         :138, step 1 prepareToWait :140, step 2 announce :144, step 3
 *         re-check hasWork(for:) :149, wait with the node's bitset :211,
 *         undo :217, step 5 :222),
 *         Sources/ConcRT/ScheduleGroups/ScheduleGroupRegistry.swift
 *         (hasWork(for:) :111, mayTake :127, forwardDeclined :140),
 *         Sources/ConcRT/Scheduler.swift (scheduleTask's group branch
 *         :236-238), Sources/ConcRT/VirtualProcessor/Stealing.swift
 *         (search :30-52; the free mark is cleared in TaskLoop.runCounted),
 *         CSupport/clist.c (csup_clist_wait_bitset :209,
 *         csup_clist_notify_bitset :215; prepare_wait, notify).
 *
 * Processes:
 *   P   a producer outside the scheduler: group.scheduleTask for a group
 *       homed on node 1 (enqueue, then notifyHome(1)).
 *   A   a VP of node 1 that runs out of work: search (free mark set,
 *       searching1 counted, one look at the queue), then sleep; or, chosen
 *       at the start, busy for ever in a long task (no free mark: node 1
 *       has no capacity, so B must take the task: work conservation).
 *   B   a VP of node 0 going to sleep: takes the task only while node 1
 *       has no capacity (free1 == 0); before registering, forwards a wake
 *       to node 1 for a task it declines.
 *
 * Variables -> source:
 *   queued      the group's queued count (ScheduleGroup.queued; enqueue is
 *               a release add, followed by notifyHome's seq_cst fence)
 *   free1       NodeIdle.counters[1].free (A's free mark)
 *   searching1  NodeIdle.counters[1].searching
 *   sleeping1   NodeIdle.counters[1].sleeping
 *   seq         csup_clist.seq, the futex word
 *   waiters     csup_clist.waiters
 *   kA, kB      the VP is blocked in the kernel on the futex (A with
 *               bitset 1 << 1, B with bitset 1 << 0)
 *   taken       the task ran (once)
 * The futex: a wait is one step that either sees seq != ticket (EAGAIN) or
 * blocks (kX = true); FUTEX_WAKE_BITSET(1 << 1) wakes a blocked waiter whose
 * bitset matches (A only), a plain FUTEX_WAKE (notifyWork, any waiter)
 * either. The word's bump and the wake system call are separate steps.
 * Watch timeouts are modelled as never firing (the worst case).
 *
 * Properties:
 *   safety   the task is taken once (assert);
 *   liveness <> taken (weak fairness): the task is run, whether A sleeps
 *            or stays busy, with no timeout to help.
 * The mutant (nodewake.mutant.pml) drops A's re-check after announcing
 * itself in sleeping1 (IdleProtocol step 3): P publishes while A is
 * between its search and its announcement, sees no searcher and no
 * sleeper on node 1 and does the plain wake, which finds no waiter; A
 * sleeps; B, asleep already (it declined: free1 > 0), is never woken.
 */

byte queued = 0;
byte free1 = 0;
byte searching1 = 0;
byte sleeping1 = 0;
byte seq = 0;
byte waiters = 0;
bool kA = false;
bool kB = false;
bool taken = false;

/* A successful dequeue (ScheduleGroup.dequeue): the look and the take are
   one step; a VP that finds the queue empty (another took it) goes on. */
#define TAKE(c) atomic { (c) -> queued = 0; assert(!taken); taken = true }

/* csup_clist_notify_bitset(list, 1, 1 << 1): fence; waiters load; bump;
   wake one blocked waiter of node 1 */
inline wakeNode1() {
    if
    :: waiters > 0 ->
        seq++;
        atomic { if :: kA -> kA = false :: else -> skip fi }
    :: else -> skip
    fi
}

/* csup_clist_notify(list, 1): any one blocked waiter */
inline wakeAny() {
    if
    :: waiters > 0 ->
        seq++;
        atomic {
            if
            :: kA -> kA = false
            :: kB -> kB = false
            :: else -> skip
            fi
        }
    :: else -> skip
    fi
}

active proctype P() {
    queued = 1;                               /* enqueue (then the fence) */
    if                                        /* notifyHome(1) */
    :: searching1 > 0 -> skip                 /* a node-1 searcher finds it */
    :: else ->
        if
        :: sleeping1 > 0 -> wakeNode1()
        :: else ->
            /* IdleProtocol.notifyWork: no VP searching (B never searches
               here; A's search is counted in searching1) */
            if
            :: searching1 == 0 -> wakeAny()
            :: else -> skip
            fi
        fi
    fi
}

active proctype A() {
    byte ticket;
    if
    :: true -> goto busy                      /* a long task: never free */
    :: true -> skip
    fi;
search:
    free1 = 1;                                /* markFree (beginSearch) */
    searching1++;
    if
    :: TAKE(queued == 1); searching1--; goto done
    :: else -> skip
    fi;
    searching1--;                             /* endSearch: mark kept */
sleep:
    atomic { ticket = seq; waiters++ };       /* step 1: prepareToWait */
    sleeping1++;                              /* step 2: announceSleep */
#ifndef MUTANT
    if                                        /* step 3: re-check, own node */
    :: TAKE(queued == 1); sleeping1--; waiters--; goto done
    :: else -> skip
    fi;
#else
    skip;                                     /* MUTANT: no re-check */
#endif
    atomic {                                  /* step 4: FUTEX_WAIT_BITSET */
        if
        :: seq != ticket -> skip
        :: else -> kA = true
        fi
    };
endA: !kA;
    waiters--;                                /* csup_clist_wait_bitset */
    sleeping1--;                              /* endSleep */
    if                                        /* step 5 */
    :: TAKE(queued == 1); goto done
    :: else -> goto sleep
    fi;
busy:
endBusy: false;
done:
    skip
}

active proctype B() {
    byte ticket;
sleep:
    /* step 0: forwardDeclined: a task it declines (node 1 free), no
       node-1 searcher, a node-1 sleeper: wake node 1 */
    if
    :: queued == 1 && free1 > 0 && searching1 == 0 && sleeping1 > 0 -> wakeNode1()
    :: else -> skip
    fi;
    atomic { ticket = seq; waiters++ };       /* step 1 */
    /* step 2: the global announcement only (B is on node 0) */
    if                                        /* step 3: hasWork(for:) */
    :: TAKE(queued == 1 && free1 == 0); waiters--; goto done
    :: else -> skip
    fi;
    atomic {                                  /* step 4: bitset 1 << 0 */
        if
        :: seq != ticket -> skip
        :: else -> kB = true
        fi
    };
endB: !kB;
    waiters--;
    if                                        /* step 5 */
    :: TAKE(queued == 1 && free1 == 0); goto done
    :: else -> goto sleep
    fi;
done:
    skip
}

ltl task_is_run { <> taken }
