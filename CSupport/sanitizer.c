/* Sanitizer of this build (see csup_sanitizer.h). */
#include "csup_config.h"
#include "include/csup_sanitizer.h"

int csup_built_with_tsan(void) {
#if defined(CSUP_TSAN)
    return 1;
#else
    return 0;
#endif
}

int csup_built_with_asan(void) {
#if defined(CSUP_ASAN)
    return 1;
#else
    return 0;
#endif
}
