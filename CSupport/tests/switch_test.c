/*
 * switch_test.c - self-checking test of the CSupport context switch.
 *
 * Every check runs in three modes:
 *   raw           csup_asm_make / csup_asm_switch called directly
 *   ctx-asm       csup_ctx_create(CSUP_BACKEND_ASM) + csup_ctx_switch
 *   ctx-ucontext  csup_ctx_create(CSUP_BACKEND_UCONTEXT) (glibc reference)
 *
 * Checks, and why:
 *   pingpong  main <-> 3 made contexts, 100,000 switches. A token written
 *             before each switch and answered after it proves every switch
 *             lands in the right context, in order, with its stack intact.
 *   ring      main -> c0 -> c1 -> c2 -> main: made contexts switch directly
 *             to each other; shutdown ends with a final switch into a made
 *             context.
 *   regs      an asm helper (below) loads known values into every
 *             callee-saved register (rbx rbp r12-r15 / x19-x29 d8-d15),
 *             switches, and stores them back afterwards. The other context
 *             does the same with other values, so any register the switch
 *             forgets to save or restore shows up as a mismatch.
 *   locals    16 integer and 10 double locals live across a switch at -O2:
 *             what real compiled code relies on (callee-saved registers,
 *             including d8-d15 on aarch64, plus spills on the stack).
 *   fpenv     the FP control state is per context: a fresh context starts
 *             with its creator's rounding mode (as of creation); a context
 *             that sets FE_TOWARDZERO keeps it across switches while main
 *             keeps (and changes) its own. Observed with fegetround and with
 *             the rounding of 1/10 in double (SSE MXCSR / FPCR) and long
 *             double (x87 control word / soft-float reading FPCR).
 *   align     the stack at entry to a made context is aligned as the ABI
 *             requires: an alignas(16) local and the frame address are
 *             16-aligned; in raw mode an asm entry stub records the entry sp
 *             ((rsp+8)%16==0 on x86_64, sp%16==0 on aarch64) for all 16
 *             misalignments of stack_top, and csup_asm_make must not write
 *             at or above stack_top.
 *
 * The last line is "N passed, M failed"; the exit status is non-zero on any
 * failure.
 */
#include "csup_context.h"
#include "csup_stack.h"

#include <fenv.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STACK_SIZE (64 * 1024)
#define PINGPONG_ROUNDS 50000 /* round trips: 100,000 switches */
#define RING_ROUNDS 10000
#define REG_ROUNDS 2000
#define LOCAL_ROUNDS 2000
#define FP_ROUNDS 200

typedef void (*switch_fn)(void *from, void *to);

/* ---- per-architecture asm helpers ------------------------------------ */

/* swtest_regcheck(sw, from, to, in, out): loads in[] into the callee-saved
 * registers, calls sw(from, to), stores the same registers into out[].
 * It saves and restores its caller's callee-saved registers itself.
 *
 * swtest_probe_entry(arg): entry point for a raw made context. Records the
 * stack pointer exactly as the trampoline left it, then tail-jumps to
 * swtest_align_entry(arg). */
void swtest_regcheck(switch_fn sw, void *from, void *to, const uint64_t *in, uint64_t *out);
void swtest_probe_entry(void *arg);
void swtest_align_entry(void *arg);
volatile uintptr_t swtest_entry_sp;

#define OPAQUE_U(x) __asm__ volatile("" : "+r"(x))

#if defined(__x86_64__)
#define ARCH "x86_64"
#define NREG 6
static const char *const reg_names[NREG] = {"rbx", "rbp", "r12", "r13", "r14", "r15"};
#define OPAQUE_D(x) __asm__ volatile("" : "+x"(x))
#define ENTRY_SP_ALIGNED(sp) ((((sp) + 8) % 16) == 0) /* as after a call */

__asm__(
    "    .pushsection .text\n"
    "    .globl  swtest_regcheck\n"
    "    .type   swtest_regcheck, @function\n"
    "    .p2align 4\n"
    "swtest_regcheck:\n" /* rdi=sw rsi=from rdx=to rcx=in r8=out */
    "    pushq   %rbp\n"
    "    pushq   %rbx\n"
    "    pushq   %r12\n"
    "    pushq   %r13\n"
    "    pushq   %r14\n"
    "    pushq   %r15\n"
    "    pushq   %r8\n" /* out; rsp is now 16-byte aligned */
    "    movq    %rdi, %rax\n"
    "    movq    %rsi, %rdi\n"
    "    movq    %rdx, %rsi\n"
    "    movq    0(%rcx), %rbx\n"
    "    movq    8(%rcx), %rbp\n"
    "    movq    16(%rcx), %r12\n"
    "    movq    24(%rcx), %r13\n"
    "    movq    32(%rcx), %r14\n"
    "    movq    40(%rcx), %r15\n"
    "    callq   *%rax\n"
    "    movq    (%rsp), %rax\n"
    "    movq    %rbx, 0(%rax)\n"
    "    movq    %rbp, 8(%rax)\n"
    "    movq    %r12, 16(%rax)\n"
    "    movq    %r13, 24(%rax)\n"
    "    movq    %r14, 32(%rax)\n"
    "    movq    %r15, 40(%rax)\n"
    "    addq    $8, %rsp\n"
    "    popq    %r15\n"
    "    popq    %r14\n"
    "    popq    %r13\n"
    "    popq    %r12\n"
    "    popq    %rbx\n"
    "    popq    %rbp\n"
    "    ret\n"
    "    .size   swtest_regcheck, .-swtest_regcheck\n"
    "\n"
    "    .globl  swtest_probe_entry\n"
    "    .type   swtest_probe_entry, @function\n"
    "    .p2align 4\n"
    "swtest_probe_entry:\n"
    "    movq    %rsp, swtest_entry_sp(%rip)\n"
    "    jmp     swtest_align_entry\n"
    "    .size   swtest_probe_entry, .-swtest_probe_entry\n"
    "    .popsection\n");

#elif defined(__aarch64__)
#define ARCH "aarch64"
#define NREG 19
static const char *const reg_names[NREG] = {
    "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27", "x28",
    "x29", "d8",  "d9",  "d10", "d11", "d12", "d13", "d14", "d15"};
#define OPAQUE_D(x) __asm__ volatile("" : "+w"(x))
#define ENTRY_SP_ALIGNED(sp) (((sp) % 16) == 0)

/* in[]/out[] layout: x19..x28 at 0..72, x29 at 80, d8..d15 at 88..144. */
__asm__(
    "    .pushsection .text\n"
    "    .globl  swtest_regcheck\n"
    "    .type   swtest_regcheck, %function\n"
    "    .p2align 4\n"
    "swtest_regcheck:\n" /* x0=sw x1=from x2=to x3=in x4=out */
    "    hint    #34\n"  /* bti c */
    "    stp     x29, x30, [sp, #-176]!\n"
    "    stp     x19, x20, [sp, #16]\n"
    "    stp     x21, x22, [sp, #32]\n"
    "    stp     x23, x24, [sp, #48]\n"
    "    stp     x25, x26, [sp, #64]\n"
    "    stp     x27, x28, [sp, #80]\n"
    "    stp     d8,  d9,  [sp, #96]\n"
    "    stp     d10, d11, [sp, #112]\n"
    "    stp     d12, d13, [sp, #128]\n"
    "    stp     d14, d15, [sp, #144]\n"
    "    str     x4, [sp, #160]\n"
    "    mov     x9, x0\n"
    "    mov     x0, x1\n"
    "    mov     x1, x2\n"
    "    ldp     x19, x20, [x3, #0]\n"
    "    ldp     x21, x22, [x3, #16]\n"
    "    ldp     x23, x24, [x3, #32]\n"
    "    ldp     x25, x26, [x3, #48]\n"
    "    ldp     x27, x28, [x3, #64]\n"
    "    ldr     x29, [x3, #80]\n"
    "    ldp     d8,  d9,  [x3, #88]\n"
    "    ldp     d10, d11, [x3, #104]\n"
    "    ldp     d12, d13, [x3, #120]\n"
    "    ldp     d14, d15, [x3, #136]\n"
    "    blr     x9\n"
    "    ldr     x4, [sp, #160]\n"
    "    stp     x19, x20, [x4, #0]\n"
    "    stp     x21, x22, [x4, #16]\n"
    "    stp     x23, x24, [x4, #32]\n"
    "    stp     x25, x26, [x4, #48]\n"
    "    stp     x27, x28, [x4, #64]\n"
    "    str     x29, [x4, #80]\n"
    "    stp     d8,  d9,  [x4, #88]\n"
    "    stp     d10, d11, [x4, #104]\n"
    "    stp     d12, d13, [x4, #120]\n"
    "    stp     d14, d15, [x4, #136]\n"
    "    ldp     x19, x20, [sp, #16]\n"
    "    ldp     x21, x22, [sp, #32]\n"
    "    ldp     x23, x24, [sp, #48]\n"
    "    ldp     x25, x26, [sp, #64]\n"
    "    ldp     x27, x28, [sp, #80]\n"
    "    ldp     d8,  d9,  [sp, #96]\n"
    "    ldp     d10, d11, [sp, #112]\n"
    "    ldp     d12, d13, [sp, #128]\n"
    "    ldp     d14, d15, [sp, #144]\n"
    "    ldp     x29, x30, [sp], #176\n"
    "    ret\n"
    "    .size   swtest_regcheck, .-swtest_regcheck\n"
    "\n"
    "    .globl  swtest_probe_entry\n"
    "    .type   swtest_probe_entry, %function\n"
    "    .p2align 4\n"
    "swtest_probe_entry:\n"
    "    hint    #34\n" /* bti c: reached by blr from the trampoline */
    "    mov     x9, sp\n"
    "    adrp    x10, swtest_entry_sp\n"
    "    str     x9, [x10, #:lo12:swtest_entry_sp]\n"
    "    b       swtest_align_entry\n"
    "    .size   swtest_probe_entry, .-swtest_probe_entry\n"
    "    .popsection\n");

#else
#error "switch_test.c: x86_64 or aarch64 only"
#endif

/* ---- bookkeeping ------------------------------------------------------- */

enum mode { MODE_RAW, MODE_CTX_ASM, MODE_CTX_UC, MODE_COUNT };
static const char *const mode_names[MODE_COUNT] = {"raw", "ctx-asm", "ctx-ucontext"};
static enum mode g_mode;

static const char *g_test = "";
static int g_errors, g_passed, g_failed;

static void fail(int line, const char *what) {
    g_errors++;
    if (g_errors <= 25) {
        printf("  FAIL %s [%s] line %d: %s\n", g_test, mode_names[g_mode], line, what);
        fflush(stdout);
    }
}
#define CHECK(cond) do { if (!(cond)) fail(__LINE__, #cond); } while (0)

/* ---- one API over the three modes -------------------------------------- */

typedef struct fiber {
    void *sp;        /* raw mode: saved stack pointer */
    csup_ctx *ctx;   /* ctx modes */
    csup_stack stack;
} fiber;

typedef struct worker {
    fiber f;
    int id;
    uint64_t count;
} worker;

static fiber g_main;
static worker g_w[3];
static volatile uint64_t g_token;
static volatile int g_stop;

static int fiber_start(fiber *f, void (*entry)(void *), void *arg) {
    int err = csup_stack_alloc(STACK_SIZE, &f->stack);
    if (err) return err;
    if (g_mode == MODE_RAW) {
        f->sp = csup_asm_make((char *)f->stack.lo + f->stack.size, entry, arg);
        return 0;
    }
    csup_backend b = g_mode == MODE_CTX_ASM ? CSUP_BACKEND_ASM : CSUP_BACKEND_UCONTEXT;
    err = csup_ctx_create(&f->ctx, b, &f->stack, entry, arg);
    if (err) csup_stack_free(&f->stack);
    return err;
}

static void fiber_switch(fiber *from, fiber *to) {
    if (g_mode == MODE_RAW) csup_asm_switch(&from->sp, to->sp);
    else csup_ctx_switch(from->ctx, to->ctx);
}

static _Noreturn void fiber_exit(fiber *self, fiber *to) {
    if (g_mode == MODE_RAW) csup_asm_switch(&self->sp, to->sp);
    else csup_ctx_switch_final(self->ctx, to->ctx);
    printf("a finished context was resumed\n");
    abort();
}

static void fiber_free(fiber *f) {
    csup_ctx_destroy(f->ctx);
    csup_stack_free(&f->stack);
    memset(f, 0, sizeof *f);
}

/* The switch as a plain function pointer, for swtest_regcheck and mix. */
static void sw_generic(void *from, void *to) { fiber_switch(from, to); }
static void sw_nop(void *from, void *to) { (void)from; (void)to; }
static switch_fn volatile g_nop = sw_nop; /* volatile: no specialisation */

static void start_worker(int k, void (*entry)(void *)) {
    worker *w = &g_w[k];
    memset(w, 0, sizeof *w);
    w->id = k;
    int err = fiber_start(&w->f, entry, w);
    if (err) {
        printf("cannot make a context: %s\n", strerror(err));
        exit(2);
    }
}

/* Lets each of the first n workers see g_stop and finish, then frees them. */
static void stop_workers(int n) {
    g_stop = 1;
    for (int k = 0; k < n; k++) {
        fiber_switch(&g_main, &g_w[k].f);
        fiber_free(&g_w[k].f);
    }
    g_stop = 0;
}

static int current_is(const fiber *f) {
    return g_mode == MODE_RAW || csup_ctx_current() == f->ctx;
}

static uint64_t splitmix(uint64_t x) {
    x += 0x9E3779B97F4A7C15u;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9u;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBu;
    return x ^ (x >> 31);
}

/* ---- pingpong ---------------------------------------------------------- */

static void pingpong_entry(void *arg) {
    worker *w = arg;
    for (uint64_t n = 0; !g_stop; n++) {
        CHECK(g_token == 3 * n + (uint64_t)w->id);
        CHECK(current_is(&w->f));
        g_token = g_token * 2 + 1;
        w->count++;
        fiber_switch(&w->f, &g_main);
    }
    fiber_exit(&w->f, &g_main);
}

static void test_pingpong(void) {
    for (int k = 0; k < 3; k++) start_worker(k, pingpong_entry);
    for (uint64_t i = 0; i < PINGPONG_ROUNDS; i++) {
        g_token = i;
        fiber_switch(&g_main, &g_w[i % 3].f);
        if (g_token != 2 * i + 1) { fail(__LINE__, "token after round trip"); break; }
        CHECK(current_is(&g_main));
    }
    for (int k = 0; k < 3; k++) CHECK(g_w[k].count == (uint64_t)(PINGPONG_ROUNDS - k + 2) / 3);
    stop_workers(3);
}

/* ---- ring: made contexts switch to each other -------------------------- */

static void ring_entry(void *arg) {
    worker *w = arg;
    fiber *next = w->id == 2 ? &g_main : &g_w[w->id + 1].f;
    for (uint64_t n = 0; !g_stop; n++) {
        CHECK(g_token == 3 * n + (uint64_t)w->id);
        CHECK(current_is(&w->f));
        g_token++;
        w->count++;
        fiber_switch(&w->f, next);
    }
    fiber_exit(&w->f, next); /* c0 -> c1 -> c2 -> main */
}

static void test_ring(void) {
    for (int k = 0; k < 3; k++) start_worker(k, ring_entry);
    g_token = 0;
    for (uint64_t r = 0; r < RING_ROUNDS; r++) {
        fiber_switch(&g_main, &g_w[0].f);
        if (g_token != 3 * (r + 1)) { fail(__LINE__, "token after a lap"); break; }
        CHECK(current_is(&g_main));
    }
    g_stop = 1;
    fiber_switch(&g_main, &g_w[0].f);
    g_stop = 0;
    for (int k = 0; k < 3; k++) {
        CHECK(g_w[k].count == RING_ROUNDS);
        fiber_free(&g_w[k].f);
    }
}

/* ---- regs: every callee-saved register, via swtest_regcheck ------------ */

static void compare_regs(int line, const char *side, const uint64_t *in, const uint64_t *out) {
    for (int i = 0; i < NREG; i++) {
        if (in[i] != out[i]) {
            char msg[160];
            snprintf(msg, sizeof msg, "%s: %s was %016llx, now %016llx", side, reg_names[i],
                     (unsigned long long)in[i], (unsigned long long)out[i]);
            fail(line, msg);
        }
    }
}

static void regs_entry(void *arg) {
    worker *w = arg;
    uint64_t in[NREG], out[NREG];
    for (uint64_t n = 0; !g_stop; n++) {
        for (int i = 0; i < NREG; i++) in[i] = splitmix(0xB0000000u + n * NREG + i);
        swtest_regcheck(sw_generic, &w->f, &g_main, in, out);
        compare_regs(__LINE__, "made context", in, out);
        w->count++;
    }
    fiber_exit(&w->f, &g_main);
}

static void test_regs(void) {
    uint64_t in[NREG], out[NREG];
    start_worker(0, regs_entry);
    for (uint64_t r = 0; r < REG_ROUNDS; r++) {
        for (int i = 0; i < NREG; i++) in[i] = splitmix(0xA0000000u + r * NREG + i);
        swtest_regcheck(sw_generic, &g_main, &g_w[0].f, in, out);
        compare_regs(__LINE__, "main", in, out);
    }
    stop_workers(1);
    CHECK(g_w[0].count == REG_ROUNDS);
}

/* ---- locals: compiled code with many values live across a switch ------- */

#define NEXT_U(p, c) ((p) * 0xBF58476D1CE4E5B9u + (c))
#define NEXT_D(p, c) ((p) * 1.0001 + (c) * 0.25)

/* The asm barriers make every value opaque before the switch, so the
 * compiler cannot recompute it afterwards: it must keep all 26 alive. */
__attribute__((noinline)) static uint64_t mix(switch_fn sw, void *from, void *to, uint64_t seed) {
    uint64_t a0 = splitmix(seed), a1 = NEXT_U(a0, 1), a2 = NEXT_U(a1, 2), a3 = NEXT_U(a2, 3);
    uint64_t a4 = NEXT_U(a3, 4), a5 = NEXT_U(a4, 5), a6 = NEXT_U(a5, 6), a7 = NEXT_U(a6, 7);
    uint64_t a8 = NEXT_U(a7, 8), a9 = NEXT_U(a8, 9), a10 = NEXT_U(a9, 10), a11 = NEXT_U(a10, 11);
    uint64_t a12 = NEXT_U(a11, 12), a13 = NEXT_U(a12, 13), a14 = NEXT_U(a13, 14);
    uint64_t a15 = NEXT_U(a14, 15);
    double d0 = (double)(seed & 0xffff) + 0.5, d1 = NEXT_D(d0, 1), d2 = NEXT_D(d1, 2);
    double d3 = NEXT_D(d2, 3), d4 = NEXT_D(d3, 4), d5 = NEXT_D(d4, 5), d6 = NEXT_D(d5, 6);
    double d7 = NEXT_D(d6, 7), d8 = NEXT_D(d7, 8), d9 = NEXT_D(d8, 9);
    OPAQUE_U(a0); OPAQUE_U(a1); OPAQUE_U(a2); OPAQUE_U(a3); OPAQUE_U(a4); OPAQUE_U(a5);
    OPAQUE_U(a6); OPAQUE_U(a7); OPAQUE_U(a8); OPAQUE_U(a9); OPAQUE_U(a10); OPAQUE_U(a11);
    OPAQUE_U(a12); OPAQUE_U(a13); OPAQUE_U(a14); OPAQUE_U(a15);
    OPAQUE_D(d0); OPAQUE_D(d1); OPAQUE_D(d2); OPAQUE_D(d3); OPAQUE_D(d4);
    OPAQUE_D(d5); OPAQUE_D(d6); OPAQUE_D(d7); OPAQUE_D(d8); OPAQUE_D(d9);

    sw(from, to);

    uint64_t h = a0;
    h = h * 31 + a1; h = h * 31 + a2; h = h * 31 + a3; h = h * 31 + a4; h = h * 31 + a5;
    h = h * 31 + a6; h = h * 31 + a7; h = h * 31 + a8; h = h * 31 + a9; h = h * 31 + a10;
    h = h * 31 + a11; h = h * 31 + a12; h = h * 31 + a13; h = h * 31 + a14; h = h * 31 + a15;
    double s = d0;
    s = s * 0.5 + d1; s = s * 0.5 + d2; s = s * 0.5 + d3; s = s * 0.5 + d4;
    s = s * 0.5 + d5; s = s * 0.5 + d6; s = s * 0.5 + d7; s = s * 0.5 + d8; s = s * 0.5 + d9;
    uint64_t sb;
    memcpy(&sb, &s, sizeof sb);
    return h ^ sb;
}

static void locals_entry(void *arg) {
    worker *w = arg;
    for (uint64_t n = 0; !g_stop; n++) {
        uint64_t want = mix(g_nop, NULL, NULL, 0x50000 + n);
        uint64_t got = mix(sw_generic, &w->f, &g_main, 0x50000 + n);
        CHECK(got == want);
        w->count++;
    }
    fiber_exit(&w->f, &g_main);
}

static void test_locals(void) {
    start_worker(0, locals_entry);
    for (uint64_t r = 0; r < LOCAL_ROUNDS; r++) {
        uint64_t want = mix(g_nop, NULL, NULL, 0xA0000 + r);
        uint64_t got = mix(sw_generic, &g_main, &g_w[0].f, 0xA0000 + r);
        CHECK(got == want);
    }
    stop_workers(1);
    CHECK(g_w[0].count == LOCAL_ROUNDS);
}

/* ---- fpenv: rounding mode per context ---------------------------------- */

static volatile double g_one = 1.0, g_ten = 10.0;
static volatile long double g_lone = 1.0L, g_lten = 10.0L;
static const int k_round[4] = {FE_TONEAREST, FE_TOWARDZERO, FE_UPWARD, FE_DOWNWARD};
static double ref_d[4];        /* 1/10 in each rounding mode */
static long double ref_ld[4];

__attribute__((noinline)) static double tenth_d(void) { return g_one / g_ten; }
__attribute__((noinline)) static long double tenth_ld(void) { return g_lone / g_lten; }

static int round_index(int mode) {
    for (int i = 0; i < 4; i++)
        if (k_round[i] == mode) return i;
    return 0;
}

static void fp_init_refs(void) {
    int saved = fegetround();
    for (int i = 0; i < 4; i++) {
        fesetround(k_round[i]);
        ref_d[i] = tenth_d();
        ref_ld[i] = tenth_ld();
    }
    fesetround(saved);
}

/* The rounding mode in force, as reported and as actually applied. */
static int fp_is(int mode) {
    int i = round_index(mode);
    return fegetround() == mode && tenth_d() == ref_d[i] && tenth_ld() == ref_ld[i];
}

static void fpenv_entry(void *arg) {
    worker *w = arg;
    CHECK(fp_is(FE_DOWNWARD)); /* the creator's mode when the context was made */
    fesetround(FE_TOWARDZERO);
    CHECK(fp_is(FE_TOWARDZERO));
    while (!g_stop) {
        fiber_switch(&w->f, &g_main);
        CHECK(fp_is(FE_TOWARDZERO));
        w->count++;
    }
    fiber_exit(&w->f, &g_main);
}

static void test_fpenv(void) {
    /* The probe must be able to tell the modes apart. */
    CHECK(ref_d[0] != ref_d[1] && ref_ld[0] != ref_ld[1]);
    fesetround(FE_DOWNWARD);
    start_worker(0, fpenv_entry);
    fesetround(FE_TONEAREST);
    for (int r = 0; r < FP_ROUNDS; r++) {
        int mine = (r & 1) ? FE_UPWARD : FE_TONEAREST;
        fesetround(mine);
        fiber_switch(&g_main, &g_w[0].f);
        CHECK(fp_is(mine));
    }
    fesetround(FE_TONEAREST);
    stop_workers(1);
    CHECK(fp_is(FE_TONEAREST)); /* the final switch from a TOWARDZERO context */
    CHECK(g_w[0].count == FP_ROUNDS);
}

/* ---- align: stack alignment at entry ----------------------------------- */

__attribute__((used, noinline)) void swtest_align_entry(void *arg) {
    worker *w = arg;
    alignas(16) unsigned char buf[32];
    uintptr_t local = (uintptr_t)buf;
    uintptr_t frame = (uintptr_t)__builtin_frame_address(0);
    OPAQUE_U(local); /* no folding of the checks below */
    OPAQUE_U(frame);
    CHECK(local % 16 == 0);
    CHECK(frame % 16 == 0);
    __asm__ volatile("" : : "r"(buf) : "memory");
    w->count++;
    fiber_exit(&w->f, &g_main);
}

static void test_align(void) {
    if (g_mode != MODE_RAW) {
        start_worker(0, swtest_align_entry);
        fiber_switch(&g_main, &g_w[0].f);
        CHECK(g_w[0].count == 1);
        fiber_free(&g_w[0].f);
        return;
    }
    /* Raw: enter through the asm probe, from every misalignment of the top. */
    worker *w = &g_w[0];
    memset(w, 0, sizeof *w);
    if (csup_stack_alloc(STACK_SIZE, &w->f.stack) != 0) { fail(__LINE__, "stack"); return; }
    unsigned char *end = (unsigned char *)w->f.stack.lo + w->f.stack.size;
    for (int k = 0; k < 16; k++) {
        unsigned char *top = end - 64 - k;
        memset(top, 0xA5, (size_t)(end - top));
        swtest_entry_sp = 0;
        w->f.sp = csup_asm_make(top, swtest_probe_entry, w);
        fiber_switch(&g_main, &w->f);
        uintptr_t sp = swtest_entry_sp;
        CHECK(sp != 0 && ENTRY_SP_ALIGNED(sp));
        CHECK(sp < (uintptr_t)top && sp > (uintptr_t)top - 256);
        int clean = 1;
        for (unsigned char *p = top; p < end; p++) clean &= *p == 0xA5;
        CHECK(clean); /* nothing written at or above stack_top */
    }
    CHECK(w->count == 16);
    fiber_free(&w->f);
}

/* ---- driver ------------------------------------------------------------ */

static void run(const char *name, void (*fn)(void)) {
    int before = g_errors;
    g_test = name;
    fn();
    CHECK(fp_is(FE_TONEAREST));
    fesetround(FE_TONEAREST);
    int ok = g_errors == before;
    printf("%s %-9s [%s]\n", ok ? "ok  " : "FAIL", name, mode_names[g_mode]);
    fflush(stdout);
    if (ok) g_passed++;
    else g_failed++;
}

int main(void) {
    printf("switch_test: %s, %d callee-saved registers checked\n", ARCH, NREG);
    fp_init_refs();
    for (int m = 0; m < MODE_COUNT; m++) {
        g_mode = (enum mode)m;
        memset(&g_main, 0, sizeof g_main);
        if (g_mode != MODE_RAW && (g_main.ctx = csup_ctx_create_native()) == NULL) {
            printf("csup_ctx_create_native failed\n");
            return 2;
        }
        run("pingpong", test_pingpong);
        run("ring", test_ring);
        run("regs", test_regs);
        run("locals", test_locals);
        run("fpenv", test_fpenv);
        run("align", test_align);
        csup_ctx_destroy(g_main.ctx);
    }
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}
