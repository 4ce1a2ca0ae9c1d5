/*
 * Register switch for aarch64, AAPCS64.
 *
 * Saved frame, at the saved stack pointer (low to high addresses), 176 bytes:
 *
 *   offset  contents
 *   ------  ------------------------------------------------
 *    +0     x19  (fresh context: entry function)
 *    +8     x20  (fresh context: argument for the entry function)
 *   +16     x21, x22
 *   +32     x23, x24
 *   +48     x25, x26
 *   +64     x27, x28
 *   +80     x29 (frame pointer)
 *   +88     x30 (link register; fresh context: csup_asm_trampoline)
 *   +96     d8,  d9
 *  +112     d10, d11
 *  +128     d12, d13
 *  +144     d14, d15
 *  +160     FPCR
 *  +168     padding (keeps sp 16-byte aligned)
 *
 * Only callee-saved state is kept (x19-x29, lr, low halves of v8-v15, FPCR).
 * No system call.
 */
#if defined(__aarch64__)

    .text

/* void csup_asm_switch(void **save_sp (x0), void *load_sp (x1)) */
    .globl  csup_asm_switch
    .type   csup_asm_switch, %function
    .p2align 4
csup_asm_switch:
    .cfi_startproc
    sub     sp, sp, #176
    stp     x19, x20, [sp, #0]
    stp     x21, x22, [sp, #16]
    stp     x23, x24, [sp, #32]
    stp     x25, x26, [sp, #48]
    stp     x27, x28, [sp, #64]
    stp     x29, x30, [sp, #80]
    stp     d8,  d9,  [sp, #96]
    stp     d10, d11, [sp, #112]
    stp     d12, d13, [sp, #128]
    stp     d14, d15, [sp, #144]
    mrs     x9, fpcr
    str     x9, [sp, #160]
    mov     x9, sp
    str     x9, [x0]              /* publish the saved frame */
    mov     sp, x1                /* adopt the other context's frame */
    ldr     x9, [sp, #160]
    msr     fpcr, x9
    ldp     x19, x20, [sp, #0]
    ldp     x21, x22, [sp, #16]
    ldp     x23, x24, [sp, #32]
    ldp     x25, x26, [sp, #48]
    ldp     x27, x28, [sp, #64]
    ldp     x29, x30, [sp, #80]
    ldp     d8,  d9,  [sp, #96]
    ldp     d10, d11, [sp, #112]
    ldp     d12, d13, [sp, #128]
    ldp     d14, d15, [sp, #144]
    add     sp, sp, #176
    ret                           /* `ret`, not `br x30`: keeps the switch valid under BTI */
    .cfi_endproc
    .size   csup_asm_switch, .-csup_asm_switch

/* csup_asm_switch_ret (csup_context.h): the switch above already returns
 * with `ret`. */
    .globl  csup_asm_switch_ret
    .type   csup_asm_switch_ret, %function
    .set    csup_asm_switch_ret, csup_asm_switch

/* First instruction run on a fresh stack: x19 = entry, x20 = argument. */
    .type   csup_asm_trampoline, %function
    .p2align 4
csup_asm_trampoline:
    .cfi_startproc
    .cfi_undefined x30            /* outermost frame for unwinders */
    mov     x29, #0
    mov     x30, #0
    mov     x0, x20
    blr     x19
    brk     #0                    /* the entry function must not return */
    .cfi_endproc
    .size   csup_asm_trampoline, .-csup_asm_trampoline

/* void *csup_asm_make(void *stack_top (x0), void (*fn)(void *) (x1), void *arg (x2)) */
    .globl  csup_asm_make
    .type   csup_asm_make, %function
    .p2align 4
csup_asm_make:
    .cfi_startproc
    and     x0, x0, #~15          /* 16-byte aligned top */
    sub     x0, x0, #16
    stp     xzr, xzr, [x0]        /* null frame record above the trampoline */
    sub     x0, x0, #176
    stp     x1, x2, [x0, #0]      /* x19 = fn, x20 = arg */
    stp     xzr, xzr, [x0, #16]
    stp     xzr, xzr, [x0, #32]
    stp     xzr, xzr, [x0, #48]
    stp     xzr, xzr, [x0, #64]
    adr     x9, csup_asm_trampoline
    stp     xzr, x9, [x0, #80]    /* x29 = 0, x30 = trampoline */
    stp     xzr, xzr, [x0, #96]
    stp     xzr, xzr, [x0, #112]
    stp     xzr, xzr, [x0, #128]
    stp     xzr, xzr, [x0, #144]
    mrs     x9, fpcr              /* start with the creator's FP control state */
    stp     x9, xzr, [x0, #160]
    ret
    .cfi_endproc
    .size   csup_asm_make, .-csup_asm_make

#endif

    .section .note.GNU-stack,"",%progbits
