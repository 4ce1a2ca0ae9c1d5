/*
 * Lazy kernel entry: the kernel-call word of a primary, its inline
 * blocking call, and the monitor's retake
 * (Sources/UMS/LazyKernelEntry/KernelCallWord.swift, Monitor.swift;
 *  Sources/UMS/BlockingCall.swift inlineCall; Sources/UMS/UMSPrimary.swift
 *  enterKernelCall / leaveKernelCall / execute's `.retaken` case;
 *  Sources/ConcRT/VirtualProcessor/PrimaryCarriers.swift and
 *  VirtualProcessor.run / execute's isRetaken check).
 *
 * Roles:
 *   carrierO  the pthread carrying the VP: its context makes one inline
 *             call, then the VP loop goes on (touches VP state) unless the
 *             primary was retaken.
 *   monitor   sees the call in the kernel, may retake (CAS), and then
 *             starts the replacement (assign).
 *   carrierS  a spare: once assigned, runs the VP loop (touches VP state)
 *             and runs the context when it comes back through the
 *             completion list.
 *
 * Variables -> source:
 *   word      UMSPrimary.kernelCall: seq*4 + state (running 0, inKernel 1,
 *             retaken 2); one call, so seq is 1 throughout
 *   owners    how many pthreads are touching the VP's owner-only state now
 *   queued    the context is on the completion list (KernelThread.complete)
 *   ctxDone   the context got its call's result and went on
 *   assigned  the spare was given the VP (PrimaryCarrier.assign)
 *
 * Properties:
 *   safety    at most one pthread touches the VP at a time (owners <= 1);
 *             the replacement starts at most once;
 *   liveness  <> ctxDone: the context always gets its result and runs on
 *             (weak fairness: every enabled step eventually runs).
 * Mutant (retake.mutant.pml): the caller leaves with a plain store of
 * "running" instead of the CAS, so it does not learn it was retaken and
 * its VP loop goes on beside the replacement: owners reaches 2.
 */

#define RUNNING 4   /* seq 1, state running */
#define INKERNEL 5  /* seq 1, state inKernel */
#define RETAKEN 6   /* seq 1, state retaken */

byte word = 0;
byte owners = 1;      /* carrierO runs the VP loop at the start */
bool queued = false;
bool ctxDone = false;
bool assigned = false;
byte starts = 0;

active proctype carrierO() {
    /* VP loop executes the context: while the context runs, the loop is
       suspended in execute (the context's code does not touch the VP's
       owner-only state during its call). */
    owners--;
    /* inlineCall: enterKernelCall: store (seq+1, inKernel), release */
    word = INKERNEL;
    /* ... the system call runs; it may block for any time ... */
    skip;
    /* leaveKernelCall: CAS (seq, inKernel) -> (seq, running) */
    if
    :: atomic { word == INKERNEL -> word = RUNNING };
        /* not retaken: the context goes on, then switches back to the
           VP loop, which goes on touching the VP */
        ctxDone = true;
        atomic { owners++; assert(owners <= 1) };
        owners--
    :: atomic { word == RETAKEN -> skip };
        /* retaken: exitReason = .retaken; switch to the primary; execute
           queues the context (KernelThread.complete) */
        queued = true
        /* execute returns; VirtualProcessor.execute sees isRetaken and
           returns false: the loop touches nothing and leaves */
    fi
}

active proctype monitor() {
    /* scan(): a word seen inKernel on two looks; shouldRetake and
       reserveReplacement may each say no (then nothing happens) */
    if
    :: word == INKERNEL ->
        if
        :: skip   /* shouldRetake false, or no spare: the call is waited for */
        :: atomic { word == INKERNEL -> word = RETAKEN };
            /* startReplacement */
            starts++;
            assert(starts == 1);
            assigned = true
        :: atomic { word != INKERNEL -> skip }   /* the CAS lost: releaseReplacement */
        fi
    :: word != INKERNEL -> skip   /* the call already returned */
    fi
}

active proctype carrierS() {
    /* PrimaryCarrier.park until assigned */
    assigned;
    /* enterSchedulingMode + VirtualProcessor.run on the replacement */
    atomic { owners++; assert(owners <= 1) };
    /* the loop drains the completion list and runs the context there */
    queued;
    ctxDone = true;
    owners--
}

ltl context_goes_on { <> ctxDone }
