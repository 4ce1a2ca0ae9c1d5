/* Build configuration shared by the C sources (not part of the public API). */
#ifndef CSUP_CONFIG_H
#define CSUP_CONFIG_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#if defined(__has_feature)
#  if __has_feature(address_sanitizer)
#    define CSUP_ASAN 1
#  endif
#  if __has_feature(thread_sanitizer)
#    define CSUP_TSAN 1
#  endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(CSUP_ASAN)
#  define CSUP_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__) && !defined(CSUP_TSAN)
#  define CSUP_TSAN 1
#endif

#if defined(CSUP_TSAN)
#  define CSUP_NO_TSAN __attribute__((no_sanitize("thread")))
#else
#  define CSUP_NO_TSAN
#endif

#define CSUP_NOINLINE __attribute__((noinline))
#define CSUP_TLS __thread __attribute__((tls_model("initial-exec")))

#endif
