/*
 * A signal turned into a byte on a pipe: the handler only write(2)s one
 * byte (async-signal-safe, non-blocking: a full pipe drops the byte, which
 * only merges two requests), and a thread that reads the pipe does the
 * real work outside signal context (the snapshot-on-signal opt-in).
 */
#ifndef CSUP_SIGNALPIPE_H
#define CSUP_SIGNALPIPE_H

/* Installs the handler for `signo` (SA_RESTART) and returns the pipe's
 * read end (blocking, close-on-exec), or -errno. Once per signal; a second
 * call for the same signal returns the same descriptor. */
int csup_signal_pipe_install(int signo);

/* Resolves a signal name ("USR1", "SIGUSR1", "QUIT") or number ("10");
 * -1 when unknown. */
int csup_signal_number(const char *name);

#endif
