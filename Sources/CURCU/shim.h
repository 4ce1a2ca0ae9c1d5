/* liburcu, reached through pkg-config (liburcu.pc). Only the wait-free
 * concurrent queue is used; its out-of-line functions live in
 * liburcu-common. */
#ifndef CURCU_SHIM_H
#define CURCU_SHIM_H
#include <urcu/wfcqueue.h>
#endif
