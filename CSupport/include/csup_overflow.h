/*
 * Stack-overflow reporting.
 *
 * A SIGSEGV/SIGBUS handler runs on a per-thread alternate signal stack.
 * When the faulting address lies in the guard region (or just below it) of
 * the context running on this thread, it writes one clear line (context
 * name, stack size, how to raise it) to stderr and aborts. Any other fault
 * is passed to the handler that was installed before, or to the default
 * action.
 */
#ifndef CSUP_OVERFLOW_H
#define CSUP_OVERFLOW_H

/* Installs the process-wide handler once. Returns 0 or errno. */
int csup_overflow_install(void);

/* Gives the calling thread an alternate signal stack if it has none.
 * Nests: only the first enter on a thread installs, and only the matching
 * last exit removes. Returns 0 or errno (then the enter did not count). */
int csup_overflow_thread_enter(void);

/* Ends one enter; the last one removes and frees the alternate stack that
 * the first installed (one someone else gave the thread is left alone). */
void csup_overflow_thread_exit(void);

#endif
