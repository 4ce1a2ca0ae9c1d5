/*
 * User-context records and the switch (see csup_context.h for the contract).
 *
 * Switch protocol, for csup_ctx_switch(from, to) running on pthread P:
 *   1. exclusivity: swift_task_exitThreadLocalContext(from->excl) moves the
 *      access set `from` built up out of P's thread-local set (skipped when
 *      there is nothing to move: `from` saved none and P's set is empty,
 *      read through the head located by csup_swift_access_locate);
 *   2. sanitizer "start switch" annotations;
 *   3. the register switch (asm or swapcontext);
 *   ... later, something switches back to `from`, on pthread Q (maybe != P):
 *   4. sanitizer "finish switch";
 *   5. current-context slot of Q := from (out-of-line: see csup_tls.h);
 *   6. swift_task_enterThreadLocalContext(from->excl) puts the access set
 *      back, now on Q.
 * While `from` is inside a Swift job (from->swift_jobs > 0), step 0 saves
 * the Swift concurrency slots (csup_swift_tls.h) into `from` and clears
 * them on P, and step 7 writes them back on Q. Both are done by `from`'s
 * own code on its own stack, before and after the switch, so they pair up
 * even when the resumer is another pthread.
 * A freshly made context starts in csup_ctx_first_entry, which does 4-6 for
 * itself and calls the entry function.
 *
 * Sanitizers (compiled in only under them; csup_config.h):
 *   ThreadSanitizer: every made context is a TSan fiber (created with it,
 *     destroyed with it); a native context names its pthread's own fiber.
 *     Step 2 is __tsan_switch_to_fiber(to, 0): flag 0 synchronizes, so the
 *     switch is a happens-before edge from the code before it to the code
 *     after it, whichever pthread that runs on (the register switch itself
 *     is invisible to TSan). do_switch is not instrumented: after step 2
 *     TSan already attributes accesses to `to`.
 *   AddressSanitizer: step 2 is __sanitizer_start_switch_fiber with the
 *     target's stack bounds (a native context's from pthread_getattr_np),
 *     saving `from`'s fake stack; step 4 is ..._finish_switch_fiber with it.
 *     First entry finishes with NULL (no fake stack yet). The final switch
 *     of a terminating context passes NULL as the save slot, which frees
 *     its fake stack. stack.c unpoisons a stack when it goes back to the
 *     cache (abandoned frames leave redzones poisoned) and registers a
 *     stack in use as a LeakSanitizer root region.
 *   Kernel threads never switch: a blocking call's closure runs on the
 *   KT's own pthread stack, ordered by the KT command word (hand-off) and
 *   the completion list (return; see clist.c for its TSan annotation).
 *   Directed switches are plain csup_ctx_switch calls between two made
 *   contexts, annotated the same way.
 */
#include "csup_config.h"
#include "include/csup_context.h"
#include "include/csup_swift_tls.h"
#include "swift_tls_layout.h"
#include "include/csup_stack.h"
#include "include/csup_backtrace.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

#if defined(CSUP_ASAN)
#include <sanitizer/common_interface_defs.h>
#include <sanitizer/asan_interface.h>
#endif
#if defined(CSUP_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

/* Exported by libswiftCore. Weak, so CSupport also links into plain C test
 * programs; when absent, the switch skips the exclusivity hand-over. */
extern void swift_task_enterThreadLocalContext(char *state) __attribute__((weak));
extern void swift_task_exitThreadLocalContext(char *state) __attribute__((weak));

static void fatal(const char *msg);

struct csup_ctx {
    void *sp;                 /* asm backend: saved stack pointer */
    csup_backend backend;     /* made contexts only */
    int is_native;            /* a pthread's own context */
    uintptr_t excl[2];        /* Swift exclusivity hand-over state */
    unsigned swift_jobs;      /* Swift job nesting depth (only the context itself writes it) */
    uintptr_t swift_tls[CSUP_SWIFT_TLS_SLOTS]; /* saved Swift concurrency slots */
    ucontext_t *uc;           /* ucontext backend (and every native ctx) */
    csup_entry_fn entry;
    void *arg;
    void *stack_lo;           /* usable stack: [stack_lo, stack_lo+stack_size) */
    size_t stack_size;
    void *guard_lo;           /* guard region, for the overflow handler */
    size_t guard_size;
#if defined(CSUP_ASAN)
    void *asan_fake_stack;
#endif
#if defined(CSUP_TSAN)
    void *tsan_fiber;
#endif
    char name[48];
};

/* Where the Swift concurrency slots live (filled by csup_swift_tls_locate
 * in swift_tls.c; `ready` is stored last with release ordering and read
 * with acquire, so a reader that sees it sees the rest). */
csup_swift_tls_layout_t csup_swift_tls_layout;

typedef struct { unsigned long ti_module; unsigned long ti_offset; } csup_tls_index;
extern void *__tls_get_addr(csup_tls_index *ti);

/* This pthread's slot `i` (called fresh after every switch: never cached
 * across one). */
static inline uintptr_t *swift_slot(int i) {
    csup_tls_index ti = { csup_swift_tls_layout.module, csup_swift_tls_layout.offset[i] };
    return (uintptr_t *)__tls_get_addr(&ti);
}

/* Step 0: take the slots off this pthread into ctx. */
static inline void swift_tls_out(csup_ctx *ctx) {
    if (ctx->swift_jobs == 0 || !__atomic_load_n(&csup_swift_tls_layout.ready, __ATOMIC_ACQUIRE)) return;
    for (int i = 0; i < CSUP_SWIFT_TLS_SLOTS; i++) {
        uintptr_t *s = swift_slot(i);
        ctx->swift_tls[i] = *s;
        *s = 0;
    }
}

/* Step 7: put ctx's slots on this pthread. A pthread that runs contexts
 * holds no Swift state of its own between them (primaries and kernel
 * threads never run jobs themselves), so the slots are clear here. */
static inline void swift_tls_in(csup_ctx *ctx) {
    if (ctx->swift_jobs == 0 || !__atomic_load_n(&csup_swift_tls_layout.ready, __ATOMIC_ACQUIRE)) return;
    for (int i = 0; i < CSUP_SWIFT_TLS_SLOTS; i++) {
        uintptr_t *s = swift_slot(i);
        if (*s != 0) {
            fatal("csup: a context inside a Swift job resumed on a pthread that holds Swift concurrency "
                  "state of its own (a job run outside the scheduler on a primary or kernel thread?)\n");
        }
        *s = ctx->swift_tls[i];
    }
}

/* Debug builds: a job begins and ends with the slots clear on the pthread
 * (slot 2, the fallback task-local storage, may be set by synchronous code
 * around the job and is left alone by the runtime). */
static void check_clear(csup_ctx *ctx, const char *where) {
#if defined(DEBUG)
    if (!__atomic_load_n(&csup_swift_tls_layout.ready, __ATOMIC_ACQUIRE)) return;
    for (int i = 0; i < 2; i++) {
        if (*swift_slot(i) != 0) {
            char buf[160];
            snprintf(buf, sizeof buf, "csup: Swift job %s on context %s with runtime slot %d set\n", where, ctx->name, i);
            fatal(buf);
        }
    }
#else
    (void)ctx; (void)where;
#endif
}

unsigned csup_ctx_swift_job_begin(csup_ctx *ctx) {
    if (ctx->swift_jobs == 0) check_clear(ctx, "began");
    return ++ctx->swift_jobs;
}
unsigned csup_ctx_swift_job_end(csup_ctx *ctx) {
    if (ctx->swift_jobs == 0) fatal("csup_ctx_swift_job_end: not inside a Swift job\n");
    if (--ctx->swift_jobs == 0) check_clear(ctx, "ended");
    return ctx->swift_jobs;
}
void csup_ctx_swift_tls_enter(csup_ctx *ctx) { swift_tls_in(ctx); }
void csup_ctx_swift_tls_exit(csup_ctx *ctx) { swift_tls_out(ctx); }

/* Read by the overflow handler (overflow.c). */
CSUP_TLS csup_ctx *csup_tls_current_ctx;

CSUP_NOINLINE static void set_current(csup_ctx *ctx) {
    __asm__ __volatile__("" ::: "memory");
    csup_tls_current_ctx = ctx;
}

CSUP_NOINLINE csup_ctx *csup_ctx_current(void) {
    __asm__ __volatile__("" ::: "memory");
    return csup_tls_current_ctx;
}

/* Overflow handler helpers: read fields without exposing the struct. */
int csup_ctx_guard_contains(const csup_ctx *ctx, uintptr_t addr, size_t *stack_size, const char **name) {
    if (ctx == NULL || ctx->is_native || ctx->guard_lo == NULL) return 0;
    uintptr_t lo = (uintptr_t)ctx->guard_lo;
    /* The guard, and a margin below it: a large frame can skip past it. */
    uintptr_t margin = 64 * 1024;
    uintptr_t from = lo > margin ? lo - margin : 0;
    uintptr_t to = (uintptr_t)ctx->stack_lo;
    if (addr >= from && addr < to) {
        *stack_size = ctx->stack_size;
        *name = ctx->name;
        return 1;
    }
    return 0;
}

static void fatal(const char *msg) {
    ssize_t ignored = write(2, msg, strlen(msg));
    (void)ignored;
    abort();
}

/* This pthread's access-set head (swift_tls_layout.h), looked up on its
 * first switch with the layout known; NULL until then. Read only before a
 * switch's register switch, so never carried across one to another
 * pthread. */
static CSUP_TLS uintptr_t *access_head_here;

static inline uintptr_t *access_head(void) {
    uintptr_t *h = access_head_here;
    if (h != NULL) return h;
    if (!__atomic_load_n(&csup_swift_access_layout.ready, __ATOMIC_ACQUIRE)) return NULL;
    csup_tls_index ti = { csup_swift_access_layout.module, csup_swift_access_layout.offset };
    h = (uintptr_t *)__tls_get_addr(&ti);
    access_head_here = h;
    return h;
}

static inline void excl_exit(csup_ctx *ctx) {
    if (!swift_task_exitThreadLocalContext) return;
    /* `ctx` saved no accesses and the pthread's set is empty: the runtime's
     * exit would do nothing (its own no-op case), so skip the call. */
    if (ctx->excl[0] == 0) {
        uintptr_t *head = access_head();
        if (head != NULL && *head == 0) return;
    }
    swift_task_exitThreadLocalContext((char *)ctx->excl);
}
static inline void excl_enter(csup_ctx *ctx) {
    if (swift_task_enterThreadLocalContext) swift_task_enterThreadLocalContext((char *)ctx->excl);
}
/* After a switch. Invariant: every switch begins with excl_exit(from), which
 * leaves the thread's access set empty (a context's exit takes everything
 * pushed since its enter, and a native context's first exit takes the
 * whole set). So when the resumed context saved no accesses (excl[0] == 0),
 * entering would push nothing onto an empty set: skip the runtime call. */
static inline void excl_enter_after_switch(csup_ctx *ctx) {
    if (ctx->excl[0] != 0) excl_enter(ctx);
}

csup_ctx *csup_ctx_create_native(void) {
    csup_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return NULL;
    ctx->uc = calloc(1, sizeof *ctx->uc);
    if (!ctx->uc) { free(ctx); return NULL; }
    ctx->is_native = 1;
    ctx->backend = CSUP_BACKEND_ASM;
    strcpy(ctx->name, "native");
#if defined(CSUP_ASAN) || defined(CSUP_TSAN)
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        void *lo; size_t sz;
        if (pthread_attr_getstack(&attr, &lo, &sz) == 0) { ctx->stack_lo = lo; ctx->stack_size = sz; }
        pthread_attr_destroy(&attr);
    }
#endif
#if defined(CSUP_TSAN)
    ctx->tsan_fiber = __tsan_get_current_fiber();
#endif
    return ctx;
}

static void csup_ctx_first_entry(void *arg);

#if defined(__x86_64__) || defined(__aarch64__)
#define CSUP_HAVE_ASM 1
#endif

/* makecontext passes int arguments: split the pointer in two halves. */
static void uc_entry(unsigned int hi, unsigned int lo) {
    uintptr_t p = ((uintptr_t)hi << 32) | (uintptr_t)lo;
    csup_ctx_first_entry((void *)p);
}

static int arm(csup_ctx *ctx) {
    void *top = (char *)ctx->stack_lo + ctx->stack_size;
    if (ctx->backend == CSUP_BACKEND_ASM) {
#if CSUP_HAVE_ASM
        ctx->sp = csup_asm_make(top, csup_ctx_first_entry, ctx);
        return 0;
#else
        return ENOTSUP;
#endif
    }
    if (getcontext(ctx->uc) != 0) return errno;
    ctx->uc->uc_stack.ss_sp = ctx->stack_lo;
    ctx->uc->uc_stack.ss_size = ctx->stack_size;
    ctx->uc->uc_link = NULL;
    uintptr_t p = (uintptr_t)ctx;
    makecontext(ctx->uc, (void (*)(void))uc_entry, 2, (unsigned int)(p >> 32), (unsigned int)(p & 0xffffffffu));
    return 0;
}

int csup_ctx_create(csup_ctx **out, csup_backend backend, const csup_stack *stack,
                    csup_entry_fn entry, void *arg) {
    if (!out || !stack || !entry) return EINVAL;
    if (backend != CSUP_BACKEND_ASM && backend != CSUP_BACKEND_UCONTEXT) return EINVAL;
    csup_swift_access_locate();   /* once per process: lets switches skip an empty hand-over */
    csup_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return ENOMEM;
    ctx->backend = backend;
    ctx->entry = entry;
    ctx->arg = arg;
    ctx->stack_lo = stack->lo;
    ctx->stack_size = stack->size;
    ctx->guard_lo = stack->map_base;
    ctx->guard_size = stack->guard_size;
    strcpy(ctx->name, "unnamed");
    if (backend == CSUP_BACKEND_UCONTEXT) {
        ctx->uc = calloc(1, sizeof *ctx->uc);
        if (!ctx->uc) { free(ctx); return ENOMEM; }
    }
    int err = arm(ctx);
    if (err) { free(ctx->uc); free(ctx); return err; }
#if defined(CSUP_TSAN)
    ctx->tsan_fiber = __tsan_create_fiber(0);
#endif
    *out = ctx;
    return 0;
}

void csup_ctx_rearm(csup_ctx *ctx, csup_entry_fn entry, void *arg) {
    ctx->entry = entry;
    ctx->arg = arg;
    ctx->excl[0] = ctx->excl[1] = 0;
    ctx->swift_jobs = 0;
    if (arm(ctx) != 0) fatal("csup_ctx_rearm: getcontext failed\n");
}

void csup_ctx_destroy(csup_ctx *ctx) {
    if (!ctx) return;
#if defined(CSUP_TSAN)
    if (!ctx->is_native && ctx->tsan_fiber) __tsan_destroy_fiber(ctx->tsan_fiber);
#endif
    free(ctx->uc);
    free(ctx);
}

void csup_ctx_set_name(csup_ctx *ctx, const char *name) {
    if (!ctx || !name) return;
    strncpy(ctx->name, name, sizeof ctx->name - 1);
    ctx->name[sizeof ctx->name - 1] = 0;
}

csup_backend csup_ctx_backend(const csup_ctx *ctx) { return ctx->backend; }

static inline csup_backend pick_backend(const csup_ctx *from, const csup_ctx *to) {
    if (to->is_native) return from->backend;
    if (!from->is_native && from->backend != to->backend)
        fatal("csup_ctx_switch: the two contexts use different backends (asm vs ucontext); "
              "switch through a native context\n");
    return to->backend;
}

CSUP_NO_TSAN static void do_switch(csup_ctx *from, csup_ctx *to, int final) {
    csup_backend backend = pick_backend(from, to);
    swift_tls_out(from);
    excl_exit(from);
#if defined(CSUP_ASAN)
    __sanitizer_start_switch_fiber(final ? NULL : &from->asan_fake_stack, to->stack_lo, to->stack_size);
#else
    (void)final;
#endif
#if defined(CSUP_TSAN)
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
    if (backend == CSUP_BACKEND_ASM) {
#if CSUP_HAVE_ASM
        csup_asm_switch_ret(&from->sp, to->sp);   /* one call site: `ret` is predicted */
#else
        fatal("csup_ctx_switch: no asm backend on this architecture\n");
#endif
    } else {
        if (swapcontext(from->uc, to->uc) != 0) fatal("csup_ctx_switch: swapcontext failed\n");
    }
#if defined(CSUP_ASAN)
    __sanitizer_finish_switch_fiber(from->asan_fake_stack, NULL, NULL);
#endif
    set_current(from);
    excl_enter_after_switch(from);
    swift_tls_in(from);
}

void csup_ctx_switch(csup_ctx *from, csup_ctx *to) { do_switch(from, to, 0); }
void csup_ctx_switch_final(csup_ctx *from, csup_ctx *to) { do_switch(from, to, 1); }

static void csup_ctx_first_entry(void *arg) {
    csup_ctx *self = arg;
#if defined(CSUP_ASAN)
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    set_current(self);
    excl_enter_after_switch(self);
    self->entry(self->arg);
    fatal("csup: a context's entry function returned; it must end with csup_ctx_switch_final\n");
}

/* Test hook of csup_stack.h: needs the current context's stack bounds. */
int csup_stack_poison_own_bottom_for_test(size_t bytes) {
#if defined(CSUP_ASAN)
    csup_ctx *self = csup_ctx_current();
    if (self == NULL || self->is_native || bytes > self->stack_size / 4) return 0;
    __asan_poison_memory_region(self->stack_lo, bytes);
    return 1;
#else
    (void)bytes;
    return 0;
#endif
}

void csup_ctx_enter_access_set(csup_ctx *ctx) { excl_enter(ctx); }
void csup_ctx_exit_access_set(csup_ctx *ctx) { excl_exit(ctx); }

/* ---- backtraces (csup_backtrace.h) ------------------------------------ */

void csup_ctx_stack_bounds(const csup_ctx *ctx, uintptr_t *lo, uintptr_t *hi) {
    if (ctx == NULL || ctx->is_native || ctx->stack_lo == NULL) { *lo = 0; *hi = 0; return; }
    *lo = (uintptr_t)ctx->stack_lo;
    *hi = (uintptr_t)ctx->stack_lo + ctx->stack_size;
}

/* Reads the registers the last switch away from `ctx` saved. The record
 * stays alive (the caller's promise); the fields are read with relaxed
 * atomic loads because the context may be switching on another pthread
 * right now (then the frames are stale, which the caller detects). */
int csup_ctx_backtrace(const csup_ctx *ctx, uintptr_t *out, int max) {
    if (ctx == NULL || ctx->is_native || max <= 0) return 0;
    uintptr_t lo, hi, pc = 0, fp = 0;
    csup_ctx_stack_bounds(ctx, &lo, &hi);
    if (ctx->backend == CSUP_BACKEND_ASM) {
        uintptr_t sp = (uintptr_t)__atomic_load_n(&ctx->sp, __ATOMIC_RELAXED);
        if (sp < lo || sp >= hi) return 0;
        if (csup_backtrace_saved_frame(sp, &pc, &fp) != 0) return 0;
    } else if (ctx->uc != NULL) {
#if defined(__x86_64__)
        pc = (uintptr_t)__atomic_load_n(&ctx->uc->uc_mcontext.gregs[REG_RIP], __ATOMIC_RELAXED);
        fp = (uintptr_t)__atomic_load_n(&ctx->uc->uc_mcontext.gregs[REG_RBP], __ATOMIC_RELAXED);
#elif defined(__aarch64__)
        pc = (uintptr_t)__atomic_load_n(&ctx->uc->uc_mcontext.pc, __ATOMIC_RELAXED);
        fp = (uintptr_t)__atomic_load_n(&ctx->uc->uc_mcontext.regs[29], __ATOMIC_RELAXED);
#endif
    }
    return csup_backtrace_walk_from(pc, fp, lo, hi, out, max);
}
