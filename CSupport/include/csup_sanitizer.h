/* Which sanitizer CSupport was compiled with (`swift build --sanitize=...`
 * builds every C target with the same -fsanitize flag, so this is the
 * sanitizer of the whole build). Lets tests scale a workload down where a
 * sanitizer cannot hold it (ThreadSanitizer keeps a thread state per fiber,
 * and so per UMS thread context). */
#ifndef CSUP_SANITIZER_H
#define CSUP_SANITIZER_H

/* 1 under ThreadSanitizer, else 0 (a compile-time constant of CSupport). */
int csup_built_with_tsan(void);
/* 1 under AddressSanitizer, else 0 (a compile-time constant of CSupport). */
int csup_built_with_asan(void);

#endif
