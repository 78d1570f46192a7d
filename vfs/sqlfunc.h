// walrust's SQL functions, registered on every connection of a process
// that has walrust (see sqlfunc.c).
//
// Like layer.h, this declares the few SQLite types it needs from the ABI
// that sqlite3.h documents, because neither SQLite header is on the
// include path both in the extension and in programs linked with
// mattn/go-sqlite3. Pointers to SQLite's own objects are opaque.
#ifndef WALRUST_SQLFUNC_H
#define WALRUST_SQLFUNC_H

typedef void wl_db;      // sqlite3
typedef void wl_context; // sqlite3_context
typedef void wl_value;   // sqlite3_value

// SQLite's function API, as the caller reaches it: directly in a program
// linked with SQLite (layer_linked.c), through the extension API table in
// the loadable extension (cshim/walrust.c).
typedef struct wl_sql {
  int (*create_function)(wl_db *db, const char *name, int nArg, int textRep, void *app,
                         void (*xFunc)(wl_context *, int, wl_value **),
                         void (*xStep)(wl_context *, int, wl_value **), void (*xFinal)(wl_context *));
  void (*result_text)(wl_context *ctx, const char *text, int n, void (*destructor)(void *));
  int (*auto_extension)(void (*entry)(void));
  int (*libversion_number)(void);
  wl_db *(*context_db_handle)(wl_context *ctx);
  int (*file_control)(wl_db *db, const char *dbName, int op, void *arg);
  void (*result_int64)(wl_context *ctx, long long v);
  void (*result_double)(wl_context *ctx, double v);
  void (*result_error)(wl_context *ctx, const char *msg, int n);
  void (*free)(void *p);
  long long (*value_int64)(wl_value *v);
  int (*value_type)(wl_value *v);
} wl_sql;

// The oldest SQLite walrust runs on: 3.31.0, for the URI and filename
// functions its VFS calls (sqlite3_filename_database, sqlite3_uri_key) and
// SQLITE_INNOCUOUS.
#define WALRUST_MIN_SQLITE 3031000

// walrustSQLInstall checks SQLite's version and registers walrust's SQL
// functions on db (if not NULL) and, through sqlite3_auto_extension, on
// every connection opened after it. version must live as long as the
// process. It returns NULL, or why walrust cannot run in this SQLite (a
// static string).
const char *walrustSQLInstall(const wl_sql *sql, wl_db *db, const char *version);

#endif
