/*
 * Register switch for x86_64, System V ABI.
 *
 * Saved frame, at the saved stack pointer (low to high addresses):
 *
 *   offset  contents
 *   ------  ------------------------------------------------
 *    +0     MXCSR (4 bytes)
 *    +4     x87 control word (2 bytes), 2 bytes padding
 *    +8     r15
 *   +16     r14
 *   +24     r13   (fresh context: argument for the entry function)
 *   +32     r12   (fresh context: entry function)
 *   +40     rbx
 *   +48     rbp
 *   +56     return address (fresh context: csup_asm_trampoline)
 *   +64     (fresh context: 16-byte aligned top, fake null return address)
 *
 * Only callee-saved state is kept: every caller-saved register is dead at
 * a call by the ABI. No system call: the signal mask is not touched.
 */
#if defined(__x86_64__)

    .text

/* The body both switches share: save the callee-saved state on this stack,
 * publish the frame, adopt the other stack and restore its state. Ends with
 * the other context's resume address on top of the stack. */
    .macro  CSUP_SWITCH_BODY
    pushq   %rbp
    pushq   %rbx
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    subq    $8, %rsp
    stmxcsr (%rsp)
    fnstcw  4(%rsp)
    movq    %rsp, (%rdi)          /* publish the saved frame */
    movq    %rsi, %rsp            /* adopt the other context's frame */
    ldmxcsr (%rsp)
    fldcw   4(%rsp)
    addq    $8, %rsp
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %rbx
    popq    %rbp
    .endm

/* void csup_asm_switch(void **save_sp (rdi), void *load_sp (rsi)) */
    .globl  csup_asm_switch
    .type   csup_asm_switch, @function
    .p2align 4
csup_asm_switch:
    .cfi_startproc
    CSUP_SWITCH_BODY
    /* Return with an indirect jump, not `ret`: the return-stack predictor
     * would guess the caller of *this* switch and miss on every switch;
     * the branch-target predictor learns the other context's resume point.
     * (For a caller that switches from one call site, csup_asm_switch_ret
     * below is the better choice: csup_context.h.) */
    popq    %r8
    jmpq    *%r8
    .cfi_endproc
    .size   csup_asm_switch, .-csup_asm_switch

/* void csup_asm_switch_ret(void **save_sp (rdi), void *load_sp (rsi)):
 * csup_asm_switch ending in `ret` (see csup_context.h for which to use).
 * Not marked for shadow stacks (no GNU property note), like the rest of
 * this file: a shadow stack would refuse a `ret` onto another stack. */
    .globl  csup_asm_switch_ret
    .type   csup_asm_switch_ret, @function
    .p2align 4
csup_asm_switch_ret:
    .cfi_startproc
    CSUP_SWITCH_BODY
    ret
    .cfi_endproc
    .size   csup_asm_switch_ret, .-csup_asm_switch_ret

/* First instruction run on a fresh stack: r12 = entry, r13 = argument. */
    .type   csup_asm_trampoline, @function
    .p2align 4
csup_asm_trampoline:
    .cfi_startproc
    .cfi_undefined rip            /* outermost frame for unwinders */
    xorl    %ebp, %ebp
    movq    %r13, %rdi
    callq   *%r12
    ud2                           /* the entry function must not return */
    .cfi_endproc
    .size   csup_asm_trampoline, .-csup_asm_trampoline

/* void *csup_asm_make(void *stack_top (rdi), void (*fn)(void *) (rsi), void *arg (rdx)) */
    .globl  csup_asm_make
    .type   csup_asm_make, @function
    .p2align 4
csup_asm_make:
    .cfi_startproc
    movq    %rdi, %rax
    andq    $-16, %rax            /* 16-byte aligned top */
    subq    $16, %rax
    movq    $0, 8(%rax)           /* fake return address above the trampoline */
    movq    $0, (%rax)
    subq    $64, %rax             /* the saved frame; after the 7 pops and ret rsp = top-16 */
    stmxcsr (%rax)                /* start with the creator's FP control state */
    fnstcw  4(%rax)
    movq    $0, 8(%rax)           /* r15 */
    movq    $0, 16(%rax)          /* r14 */
    movq    %rdx, 24(%rax)        /* r13 = arg */
    movq    %rsi, 32(%rax)        /* r12 = fn */
    movq    $0, 40(%rax)          /* rbx */
    movq    $0, 48(%rax)          /* rbp */
    leaq    csup_asm_trampoline(%rip), %rcx
    movq    %rcx, 56(%rax)        /* return address */
    ret
    .cfi_endproc
    .size   csup_asm_make, .-csup_asm_make

#endif

    .section .note.GNU-stack,"",@progbits
