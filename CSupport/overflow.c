/*
 * Guard-page overflow reporting (see csup_overflow.h).
 *
 * The handler only reads its own thread's current-context slot (an
 * initial-exec thread-local: async-signal-safe) and calls write(2) and
 * abort(): both async-signal-safe.
 */
#include "csup_config.h"
#include "include/csup_overflow.h"
#include "include/csup_context.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern CSUP_TLS csup_ctx *csup_tls_current_ctx;
int csup_ctx_guard_contains(const csup_ctx *ctx, uintptr_t addr, size_t *stack_size, const char **name);

static struct sigaction previous_segv, previous_bus;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;
static int install_error;
static CSUP_TLS void *own_altstack;

#define ALTSTACK_BYTES (64 * 1024)

static size_t append(char *buf, size_t at, size_t cap, const char *s) {
    while (*s && at + 1 < cap) buf[at++] = *s++;
    buf[at] = 0;
    return at;
}

static size_t append_num(char *buf, size_t at, size_t cap, unsigned long v) {
    char tmp[32];
    int n = 0;
    do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v && n < 31);
    while (n > 0 && at + 1 < cap) buf[at++] = tmp[--n];
    buf[at] = 0;
    return at;
}

static void chain(int sig, siginfo_t *info, void *uctx) {
    struct sigaction *prev = sig == SIGBUS ? &previous_bus : &previous_segv;
    if (prev->sa_flags & SA_SIGINFO) {
        if (prev->sa_sigaction) { prev->sa_sigaction(sig, info, uctx); return; }
    } else if (prev->sa_handler != SIG_DFL && prev->sa_handler != SIG_IGN && prev->sa_handler) {
        prev->sa_handler(sig);
        return;
    }
    /* Default action: restore it and return; the faulting instruction runs
     * again and the process dies with the original signal. */
    signal(sig, SIG_DFL);
}

static void handler(int sig, siginfo_t *info, void *uctx) {
    size_t stack_size = 0;
    const char *name = NULL;
    csup_ctx *ctx = csup_tls_current_ctx;
    if (ctx && csup_ctx_guard_contains(ctx, (uintptr_t)info->si_addr, &stack_size, &name)) {
        char msg[512];
        size_t at = 0;
        at = append(msg, at, sizeof msg, "ums: stack overflow in context '");
        at = append(msg, at, sizeof msg, name);
        at = append(msg, at, sizeof msg, "' (stack size ");
        at = append_num(msg, at, sizeof msg, (unsigned long)stack_size);
        at = append(msg, at, sizeof msg,
                    " bytes): it ran into its guard page. Raise the stack size "
                    "(UMSThread stackSize:, SchedulerPolicy.contextStackSize) "
                    "or reduce recursion depth.\n");
        ssize_t ignored = write(2, msg, at);
        (void)ignored;
        signal(SIGABRT, SIG_DFL);
        abort();
    }
    chain(sig, info, uctx);
}

static void do_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, &previous_segv) != 0) { install_error = errno; return; }
    if (sigaction(SIGBUS, &sa, &previous_bus) != 0) { install_error = errno; return; }
}

int csup_overflow_install(void) {
    pthread_once(&install_once, do_install);
    return install_error;
}

/* Nesting depth of thread_enter on this thread: a pthread that runs one
 * primary after another (a spare carrier) enters once for its life, and
 * each primary's enter and exit are then only a count. */
static CSUP_TLS int enter_depth;

int csup_overflow_thread_enter(void) {
    if (enter_depth > 0) { enter_depth++; return 0; }
    stack_t current;
    if (sigaltstack(NULL, &current) != 0) return errno;
    if (current.ss_flags & SS_DISABLE) {
        void *mem = malloc(ALTSTACK_BYTES);
        if (!mem) return ENOMEM;
        stack_t ss = { .ss_sp = mem, .ss_size = ALTSTACK_BYTES, .ss_flags = 0 };
        if (sigaltstack(&ss, NULL) != 0) { int e = errno; free(mem); return e; }
        own_altstack = mem;
    }
    /* else someone already gave it one: keep it, free nothing at exit */
    enter_depth = 1;
    return 0;
}

void csup_overflow_thread_exit(void) {
    if (enter_depth == 0) return;
    if (--enter_depth > 0) return;
    if (!own_altstack) return;
    stack_t ss = { .ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE };
    sigaltstack(&ss, NULL);
    free(own_altstack);
    own_altstack = NULL;
}
