/* liburing (Debian: liburing-dev), reached through pkg-config (liburing.pc).
 * CSupport's csup_uring.c is its only user; Swift code goes through
 * csup_uring.h, which exposes no liburing type. */
#ifndef CURING_SHIM_H
#define CURING_SHIM_H
#include <liburing.h>
#endif
