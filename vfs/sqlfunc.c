// walrust's SQL functions.
//
//   walrust_version()  the version of walrust in this process, the same as
//                      `walrust version` prints (plain C: never enters Go)
//   walrust_txid()     the TXID this connection sees
//   walrust_lag()      seconds since the replica was last confirmed current
//   walrust_status()   the replica's status, a JSON object
//   walrust_wait(txid [, timeout_ms])
//                      returns once the replica holds txid (polling at
//                      once), with the TXID it holds
//   walrust_sync([timeout_ms])
//                      polls now; returns once the replica holds what the
//                      store held at the call, with the TXID it holds
//
// The last three ask the connection's main database file, through
// SQLITE_FCNTL_PRAGMA: the same question, and the same answer, as the
// PRAGMA of the same name (vfs/dbfile.go FileControl). A connection whose
// main database is not a walrust replica gets an error saying so.
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlfunc.h"

// From sqlite3.h (stable ABI constants).
#define WL_SQLITE_UTF8 1
#define WL_SQLITE_DETERMINISTIC 0x000000800
#define WL_SQLITE_INNOCUOUS 0x000200000
#define WL_SQLITE_OK 0
#define WL_SQLITE_BUSY 5
#define WL_SQLITE_NOTFOUND 12
#define WL_SQLITE_FCNTL_PRAGMA 14
#define WL_SQLITE_NULL 5

// Set once by walrustSQLInstall, before any connection can call a
// function; read-only afterwards.
static const wl_sql *sqlAPI;
static const char *walrustVersion;

static void fnVersion(wl_context *ctx, int argc, wl_value **argv) {
  (void)argc;
  (void)argv;
  sqlAPI->result_text(ctx, walrustVersion, -1, NULL); // NULL: SQLITE_STATIC
}

// askMain asks the connection's main database file the PRAGMA name (with
// value, if not NULL); it returns the answer (sqlite3_free it), or NULL
// after setting the function's error.
static char *askMainValue(wl_context *ctx, const char *name, const char *value) {
  char *az[3] = {NULL, (char *)name, (char *)value};
  int rc = sqlAPI->file_control(sqlAPI->context_db_handle(ctx), "main", WL_SQLITE_FCNTL_PRAGMA, az);
  if (rc == WL_SQLITE_OK && az[0] != NULL) {
    return az[0];
  }
  char msg[200];
  if (rc == WL_SQLITE_NOTFOUND) {
    snprintf(msg, sizeof msg, "%s(): the main database of this connection is not a walrust replica", name);
  } else {
    snprintf(msg, sizeof msg, "%s(): %s", name, az[0] != NULL ? az[0] : "the replica cannot answer");
  }
  sqlAPI->free(az[0]);
  sqlAPI->result_error(ctx, msg, -1);
  return NULL;
}

static char *askMain(wl_context *ctx, const char *name) { return askMainValue(ctx, name, NULL); }

// call runs a walrust_call_* PRAGMA (vfs/calls.go), whose answer is
// "ok:TXID" or "error:MESSAGE", and sets the function's result.
static void call(wl_context *ctx, const char *pragma, const char *value) {
  char *s = askMainValue(ctx, pragma, value);
  if (s == NULL) {
    return;
  }
  if (strncmp(s, "ok:", 3) == 0) {
    sqlAPI->result_int64(ctx, strtoll(s + 3, NULL, 10));
  } else {
    const char *msg = strncmp(s, "error:", 6) == 0 ? s + 6 : s;
    sqlAPI->result_error(ctx, msg, -1);
  }
  sqlAPI->free(s);
}

static void fnWait(wl_context *ctx, int argc, wl_value **argv) {
  if (sqlAPI->value_type(argv[0]) == WL_SQLITE_NULL || (argc > 1 && sqlAPI->value_type(argv[1]) == WL_SQLITE_NULL)) {
    sqlAPI->result_error(ctx, "walrust_wait(txid [, timeout_ms]): the arguments may not be NULL", -1);
    return;
  }
  char value[64];
  if (argc > 1) {
    snprintf(value, sizeof value, "%lld,%lld", sqlAPI->value_int64(argv[0]), sqlAPI->value_int64(argv[1]));
  } else {
    snprintf(value, sizeof value, "%lld", sqlAPI->value_int64(argv[0]));
  }
  call(ctx, "walrust_call_wait", value);
}

static void fnSync(wl_context *ctx, int argc, wl_value **argv) {
  char value[32] = "";
  if (argc > 0) {
    if (sqlAPI->value_type(argv[0]) == WL_SQLITE_NULL) {
      sqlAPI->result_error(ctx, "walrust_sync([timeout_ms]): the argument may not be NULL", -1);
      return;
    }
    snprintf(value, sizeof value, "%lld", sqlAPI->value_int64(argv[0]));
  }
  call(ctx, "walrust_call_sync", value);
}

static void fnTXID(wl_context *ctx, int argc, wl_value **argv) {
  (void)argc;
  (void)argv;
  char *s = askMain(ctx, "walrust_txid");
  if (s != NULL) {
    sqlAPI->result_int64(ctx, strtoll(s, NULL, 10));
    sqlAPI->free(s);
  }
}

static void fnLag(wl_context *ctx, int argc, wl_value **argv) {
  (void)argc;
  (void)argv;
  char *s = askMain(ctx, "walrust_lag");
  if (s != NULL) {
    sqlAPI->result_double(ctx, strtod(s, NULL));
    sqlAPI->free(s);
  }
}

static void fnStatus(wl_context *ctx, int argc, wl_value **argv) {
  (void)argc;
  (void)argv;
  char *s = askMain(ctx, "walrust_status");
  if (s != NULL) {
    sqlAPI->result_text(ctx, s, -1, (void (*)(void *))-1); // SQLITE_TRANSIENT: copied
    sqlAPI->free(s);
  }
}

static int registerFunctions(wl_db *db) {
  // walrust_version is innocuous: safe in triggers and views of an
  // untrusted schema; it reads nothing but a constant. The others read
  // the replica's state: plain functions, neither deterministic nor
  // innocuous.
  static const struct {
    const char *name;
    int nArg; // -1: any number (the function checks)
    int flags;
    void (*fn)(wl_context *, int, wl_value **);
  } fns[] = {
      {"walrust_version", 0, WL_SQLITE_DETERMINISTIC | WL_SQLITE_INNOCUOUS, fnVersion},
      {"walrust_txid", 0, 0, fnTXID},
      {"walrust_lag", 0, 0, fnLag},
      {"walrust_status", 0, 0, fnStatus},
      {"walrust_wait", 1, 0, fnWait},
      {"walrust_wait", 2, 0, fnWait},
      {"walrust_sync", 0, 0, fnSync},
      {"walrust_sync", 1, 0, fnSync},
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    int rc = sqlAPI->create_function(db, fns[i].name, fns[i].nArg, WL_SQLITE_UTF8 | fns[i].flags, NULL, fns[i].fn, NULL,
                                     NULL);
    // SQLite refuses to replace a function of the same name and arity
    // while a statement runs: the extension was loaded before, and is
    // loaded again by SQL's load_extension(). The first registration
    // stands; it is the same code.
    if (rc == WL_SQLITE_BUSY) {
      continue;
    }
    if (rc != WL_SQLITE_OK) {
      return rc;
    }
  }
  return WL_SQLITE_OK;
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
