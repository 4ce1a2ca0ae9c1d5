/* Swift-closure call shims (see csup_closure.h). */
#include "csup_config.h"
#include "include/csup_closure.h"

#if defined(__clang__) && __has_attribute(swiftcall)

typedef void (*csup_swift_void_fn)(void *ctx __attribute__((swift_context))) __attribute__((swiftcall));

void csup_closure_call(void *fn, void *ctx) {
    ((csup_swift_void_fn)fn)(ctx);
}

/* The two words of a `() -> Void` closure, as Swift passes them. Under
 * swiftcall a two-pointer struct comes back in two registers (rax, rdx on
 * x86-64; x0, x1 on arm64), which is how Swift returns the tuple
 * `(UnsafeMutableRawPointer?, UnsafeMutableRawPointer?)` that ConcRT
 * declares for it (WorkItem.swift, closureWords). */
typedef struct { void *fn; void *ctx; } csup_closure_pair;

__attribute__((swiftcall)) csup_closure_pair csup_closure_words(void *fn, void *ctx) {
    csup_closure_pair p = { fn, ctx };
    return p;
}

#endif
