/* libsqlite3 (Debian: libsqlite3-dev), reached through pkg-config
 * (sqlite3.pc). Used only by ConcRTTests (UnwrappedSQLiteTests): a real C
 * library that blocks without telling the runtime (its busy handler
 * sleeps). No library or example target links it. */
#ifndef CSQLITE3_SHIM_H
#define CSQLITE3_SHIM_H
#include <sqlite3.h>
#endif
