/* Swift-closure call shims (see csup_closure.h). */
#include "csup_config.h"
#include "include/csup_closure.h"

#if defined(__clang__) && __has_attribute(swiftcall)

typedef void (*csup_swift_void_fn)(void *ctx __attribute__((swift_context))) __attribute__((swiftcall));

void csup_closure_call(void *fn, void *ctx) {
    ((csup_swift_void_fn)fn)(ctx);
}

/* Swift calls this with a non-escaping `() -> Void` closure, which the
 * Swift calling convention passes as two words: function, then context.
 * It stores both in out[0], out[1]. */
__attribute__((swiftcall)) void csup_closure_stash(void *fn, void *ctx, void **out) {
    out[0] = fn;
    out[1] = ctx;
}

#endif
