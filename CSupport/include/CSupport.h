/*
 * CSupport: the C and assembly floor under the UMS runtime.
 *
 * Every symbol carries the `csup_` prefix. Nothing here is variadic or
 * returns twice, so Swift can call all of it directly. Each header covers
 * one concern:
 *   csup_context.h   user-context make / switch / free (asm and ucontext)
 *   csup_stack.h     guarded, lazily committed, cached stacks
 *   csup_futex.h     futex wait / wake, eventfd
 *   csup_syscall.h   errno-safe system call wrappers (result + errno by value)
 *   csup_affinity.h  CPU affinity and CPU-quota queries
 *   csup_clist.h     completion list: lock-free stack taken whole + futex + eventfd
 *   csup_uring.h     one io_uring per virtual processor (liburing)
 *   csup_deque.h     work-stealing deque of pointers (Chase-Lev + THE; inline push/pop)
 *   csup_lifo.h      ABA-safe lock-free LIFO (idle kernel-thread pool)
 *   csup_tls.h       per-pthread carrier slot, read without TLS caching
 *   csup_lock.h      futex mutex with no thread identity (safe across migration)
 *   csup_overflow.h  guard-page overflow reporting on a sigaltstack
 *   csup_backtrace.h frame-pointer backtraces of contexts and threads, ELF symbols
 *   csup_signalpipe.h a signal turned into a byte on a pipe (snapshot on demand)
 *   csup_trace.h     per-VP timeline trace buffers
 *   csup_swift_tls.h Swift concurrency thread-locals that move with a context in a job
 *   csup_sanitizer.h which sanitizer (TSan, ASan) this build was compiled with
 *   csup_membarrier.h asymmetric barriers: a compiler barrier paired with membarrier(2)
 */
#ifndef CSUPPORT_H
#define CSUPPORT_H

#include "csup_context.h"
#include "csup_stack.h"
#include "csup_futex.h"
#include "csup_syscall.h"
#include "csup_affinity.h"
#include "csup_clist.h"
#include "csup_uring.h"
#include "csup_deque.h"
#include "csup_lifo.h"
#include "csup_tls.h"
#include "csup_swift_tls.h"
#include "csup_overflow.h"
#include "csup_backtrace.h"
#include "csup_membarrier.h"
#include "csup_signalpipe.h"
#include "csup_trace.h"
#include "csup_atomic.h"
#include "csup_thread.h"
#include "csup_closure.h"
#include "csup_lock.h"
#include "csup_threadstate.h"
#include "csup_sanitizer.h"

#endif
