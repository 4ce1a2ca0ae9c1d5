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

/* Where libswiftCore's thread-local exclusivity access set lives: the
 * first word of its TLS block at `offset` (module `module`) is the head of
 * the pthread's set of tracked accesses (0 when empty). Written once by
 * csup_swift_access_locate, `ready` last (release); read with acquire. */
typedef struct {
    unsigned long module;
    unsigned long offset;
    int ready;
} csup_swift_access_layout_t;

extern csup_swift_access_layout_t csup_swift_access_layout;

/* Finds it, once per process (later calls return at once). On any failure
 * it stays unpublished and switches call the runtime every time. */
void csup_swift_access_locate(void);

#endif
