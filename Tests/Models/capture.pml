/*
 * capture.pml -- capturing a running thread's backtrace with a signal
 * (CSupport/backtrace.c csup_thread_backtrace / capture_handler), used by
 * the watchdog for a long task. Two requests in a row, so a late handler of
 * the first one meets the second.
 *
 * Roles:
 *   requester  for each request k (record k, fresh): publish `active = k` (published),
 *              send the signal, wait on the record's `done` futex word
 *              until done or the timeout; on the timeout take `active`
 *              back with an exchange: got k -> no handler took it, free
 *              it; else a handler has it: read it if done by now, else
 *              leak it (never freed).
 *   handler    the signal's delivery on the target thread, once per
 *              signal sent, at any later time or never (a stopped thread):
 *              load `active`; if a record, CAS it to 0 (only one handler
 *              may take a record), then write the frames (two steps) and
 *              set done (release), wake.
 *
 * Variables -> source:
 *   published   `active` (the published request, 0: none)
 *   freed[k]    record k was freed (free(r))
 *   written[k]  the handler wrote record k's frames
 *   done[k]     record k's `done` word
 *   pending     signals sent and not yet delivered
 *   used[k]     the requester returned record k's frames as its result
 *
 * Properties:
 *   safety    a handler never writes a freed record; a result is used only
 *             after it was written completely (done set after the writes);
 *   liveness  the requester finishes both requests (the timeout always
 *             fires eventually: it is a bounded futex wait).
 * Mutant (capture.mutant.pml): on the timeout the requester frees its
 * record without taking `active` back, so a handler that took the record
 * writes freed memory: the safety search must find it.
 */
#define NREQ 2

byte published = 0;
bool freed[NREQ + 1];
bool written[NREQ + 1];
bool half[NREQ + 1];
bool done[NREQ + 1];
bool used[NREQ + 1];
byte pending = 0;
bool finished = false;

active proctype requester() {
    byte k = 1;
    byte got;
    do
    :: k > NREQ -> break
    :: else ->
        published = k;                               /* store release */
        pending++;                                /* tgkill */
        /* futex wait on done[k] with a timeout */
        if
        :: done[k] ->
            assert(written[k]);
            used[k] = true;
            freed[k] = true
        :: true ->                                /* timeout */
            atomic { got = published; published = 0 };  /* exchange */
            if
            :: got == k -> freed[k] = true        /* no handler took it */
            :: else ->
                if
                :: done[k] -> assert(written[k]); used[k] = true; freed[k] = true
                :: else -> skip                   /* a handler holds it: leak */
                fi
            fi
        fi;
        k++
    od;
    finished = true
}

active proctype handler() {
    byte r;
end_idle:
    do
    :: pending > 0 ->
        pending--;
        r = published;                               /* load acquire */
        if
        :: r != 0 ->
            if
            :: atomic { published == r -> published = 0 }   /* CAS r -> 0 */
                assert(!freed[r]);
                half[r] = true;                   /* frames, first half */
                assert(!freed[r]);
                written[r] = true;                /* frames, second half */
                assert(!freed[r]);
                done[r] = true                    /* store release; futex wake */
            :: else -> skip                       /* someone else took it */
            fi
        :: else -> skip                           /* not ours: chained handler */
        fi
    od
}

ltl finishes { <> finished }
