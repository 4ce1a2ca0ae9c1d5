/* Private: where the Swift concurrency slots live (see csup_swift_tls.h).
 * Written once by csup_swift_tls_locate, `ready` last (release). */
#ifndef CSUP_SWIFT_TLS_LAYOUT_H
#define CSUP_SWIFT_TLS_LAYOUT_H

/* ActiveTask, ExecutorTrackingInfo::ActiveInfoInThread,
 * FallbackTaskLocalStorage::Value, in that order. */
#define CSUP_SWIFT_TLS_SLOTS 3

typedef struct {
    unsigned long module;                      /* TLS module id */
    unsigned long offset[CSUP_SWIFT_TLS_SLOTS]; /* offsets in its TLS block */
    int ready;
} csup_swift_tls_layout_t;

extern csup_swift_tls_layout_t csup_swift_tls_layout;

#endif
