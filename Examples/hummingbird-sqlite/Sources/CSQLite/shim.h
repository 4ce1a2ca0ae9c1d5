/* libsqlite3, reached through pkg-config (sqlite3.pc; Debian: libsqlite3-dev).
 * Plain C calls only: sqlite3_open_v2, prepare, step, busy_timeout. */
#ifndef CSQLITE_SHIM_H
#define CSQLITE_SHIM_H
#include <sqlite3.h>
#endif
