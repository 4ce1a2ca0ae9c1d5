/* The per-pthread carrier slot (see csup_tls.h). Out-of-line on purpose. */
#include "csup_config.h"
#include "include/csup_tls.h"

static CSUP_TLS void *carrier;

CSUP_NOINLINE void *csup_tls_get_carrier(void) {
    __asm__ __volatile__("" ::: "memory");
    return carrier;
}

CSUP_NOINLINE void csup_tls_set_carrier(void *value) {
    __asm__ __volatile__("" ::: "memory");
    carrier = value;
}

static CSUP_TLS void *user_context;

CSUP_NOINLINE void *csup_tls_get_user_context(void) {
    __asm__ __volatile__("" ::: "memory");
    return user_context;
}

CSUP_NOINLINE void csup_tls_set_user_context(void *value) {
    __asm__ __volatile__("" ::: "memory");
    user_context = value;
}

CSUP_NOINLINE void *csup_tls_swap_user_context(void *value) {
    __asm__ __volatile__("" ::: "memory");
    void *old = user_context;
    user_context = value;
    return old;
}
