/* store_int.h: what the store_*.c files share and the rest of tunery must
 * not see (the sqlite handle, statement helpers, the migration entry point
 * the migration tests drive). */
#ifndef TUNERY_STORE_INT_H
#define TUNERY_STORE_INT_H

#include "store/store.h"
#include <pthread.h>
#include <sqlite3.h>

/* One store_t may be used by many threads: the thread that opened it uses
 * conn0, every other thread gets its own connection on first use (closed
 * when that thread exits), because an SQLite connection must not run two
 * transactions for two threads at once. Each connection keeps its prepared
 * statements: preparing the 44-column job query costs more than running it. */
#define STORE_STMT_CACHE 48
typedef struct {
    sqlite3 *db;
    int n;
    struct { char *sql; sqlite3_stmt *st; int busy; } c[STORE_STMT_CACHE];
} store_conn_t;

struct store {
    store_conn_t *conn0;
    pthread_t owner;
    pthread_key_t key;
    char dir[STORE_PATH_LEN];
};

/* Release a statement from store_prep (reset for reuse, or finalize). */
void store_finish(store_t *s, sqlite3_stmt *st);
sqlite3 *store_db(store_t *s);

/* Current schema version (PRAGMA user_version). */
#define STORE_SCHEMA_VERSION 2

/* Run migrations from the database's user_version up to target. */
int store_db_migrate(sqlite3 *db, int target, char *err);

/* Prepare sql; on failure fill err with sqlite's message. */
int store_prep(store_t *s, const char *sql, sqlite3_stmt **st, char *err);
/* Run a statement with no result rows; finalizes it. 0 or -1. */
int store_done(store_t *s, sqlite3_stmt *st, char *err);
/* Exec sql text with no parameters. */
int store_exec(store_t *s, const char *sql, char *err);
int store_sqlerr(store_t *s, char *err, const char *what);

void store_bind_str(sqlite3_stmt *st, int i, const char *v);   /* NULL -> "" */
void store_bind_nullable(sqlite3_stmt *st, int i, const char *v); /* NULL -> SQL NULL */
void store_bind_real(sqlite3_stmt *st, int i, double v);       /* NaN -> NULL */
void store_col_str(sqlite3_stmt *st, int i, char *out, size_t len);
char *store_col_dup(sqlite3_stmt *st, int i);                   /* NULL for SQL NULL */
double store_col_real(sqlite3_stmt *st, int i);                 /* NULL -> NaN */

/* Copy with truncation, always NUL-terminated. */
void store_copy(char *dst, size_t len, const char *src);

/* Grow *arr (of elem bytes) to hold at least n+1 items. 0 or -1. */
int store_grow(void **arr, int *cap, int n, size_t elem);

/* Common page tail: fills limit+1 fetch size; after the loop, trims to
 * limit and sets *has_more. */
int store_page_limit(const store_page_t *pg);

/* Touch DATA/events.tick so store_event_watch fds wake. */
void store_tick(store_t *s);

/* store_events.c: one events row (the columns seq, id, job_id, created_at,
 * level, type, message, data in that order) into e. */
void store_event_row(sqlite3_stmt *st, store_event_t *e);

#endif
