// walrust's SQL functions. They are plain C: a call never enters Go.
//
//   walrust_version()  the version of walrust in this process, the same as
//                      `walrust version` prints
#include <stddef.h>
#include <stdio.h>

#include "sqlfunc.h"

// From sqlite3.h (stable ABI constants).
#define WL_SQLITE_UTF8 1
#define WL_SQLITE_DETERMINISTIC 0x000000800
#define WL_SQLITE_INNOCUOUS 0x000200000

// Set once by walrustSQLInstall, before any connection can call a
// function; read-only afterwards.
static const wl_sql *sqlAPI;
static const char *walrustVersion;

static void fnVersion(wl_context *ctx, int argc, wl_value **argv) {
  (void)argc;
  (void)argv;
  sqlAPI->result_text(ctx, walrustVersion, -1, NULL); // NULL: SQLITE_STATIC
}

static int registerFunctions(wl_db *db) {
  // Innocuous: safe in triggers and views of an untrusted schema; it
  // reads nothing but a constant.
  return sqlAPI->create_function(db, "walrust_version", 0,
                                 WL_SQLITE_UTF8 | WL_SQLITE_DETERMINISTIC | WL_SQLITE_INNOCUOUS, NULL,
                                 fnVersion, NULL, NULL);
}

// autoEntry is the auto-extension SQLite calls for each new connection.
static int autoEntry(wl_db *db, char **pzErrMsg, const void *pApi) {
  (void)pzErrMsg;
  (void)pApi;
  return registerFunctions(db);
}

const char *walrustSQLInstall(const wl_sql *sql, wl_db *db, const char *version) {
  static char tooOld[160];
  int have = sql->libversion_number();
  if (have < WALRUST_MIN_SQLITE) {
    snprintf(tooOld, sizeof tooOld, "walrust needs SQLite %d.%d.%d or newer; this process runs SQLite %d.%d.%d",
             WALRUST_MIN_SQLITE / 1000000, WALRUST_MIN_SQLITE / 1000 % 1000, WALRUST_MIN_SQLITE % 1000,
             have / 1000000, have / 1000 % 1000, have % 1000);
    return tooOld;
  }
  sqlAPI = sql;
  walrustVersion = version;
  if (db != NULL && registerFunctions(db) != 0) {
    return "walrust: cannot register its SQL functions";
  }
  // SQLite declares the entry point as void(void) and calls it with
  // (db, pzErrMsg, pApi).
  if (sql->auto_extension((void (*)(void))autoEntry) != 0) {
    return "walrust: cannot register its SQL functions for new connections";
  }
  return NULL;
}
