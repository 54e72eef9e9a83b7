/* store_db.c: opening the store, the schema and its migrations, first-start
 * bootstrap, crash recovery of blobs, and the small helpers the other
 * store_*.c files share.
 *
 * Schema history (PRAGMA user_version):
 *   1  the legacy service: orgs, keys, files, jobs, events, models
 *   2  the current jobs API: api kind, model tag, error code/param,
 *      metadata/integrations/method, estimated_finish on jobs; event type
 *      and data; the checkpoints table
 * A migration runs in one IMMEDIATE transaction that re-reads the version,
 * so two processes opening an old store at once migrate it once. */
#include "store/store_int.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *migration_1 =
    "CREATE TABLE orgs("
    "  id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, slug TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL);"
    "CREATE TABLE api_keys("
    "  id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs(id),"
    "  hash TEXT NOT NULL UNIQUE, hint TEXT NOT NULL, created_at INTEGER NOT NULL,"
    "  revoked_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE files("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
    "  org_id TEXT NOT NULL REFERENCES orgs(id), bytes INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL, filename TEXT NOT NULL, purpose TEXT NOT NULL,"
    "  status TEXT NOT NULL, status_details TEXT NOT NULL DEFAULT '',"
    "  n_examples INTEGER NOT NULL DEFAULT 0, is_chat INTEGER NOT NULL DEFAULT 0,"
    "  n_tokens INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX files_org ON files(org_id, seq);"
    "CREATE TABLE jobs("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
    "  org_id TEXT NOT NULL REFERENCES orgs(id), model TEXT NOT NULL,"
    "  training_file TEXT NOT NULL, validation_file TEXT NOT NULL DEFAULT '',"
    "  suffix TEXT NOT NULL DEFAULT '', status TEXT NOT NULL,"
    "  fine_tuned_model TEXT NOT NULL DEFAULT '', result_file TEXT NOT NULL DEFAULT '',"
    "  n_epochs INTEGER NOT NULL DEFAULT 0, batch_size INTEGER NOT NULL DEFAULT 0,"
    "  lr_mult REAL NOT NULL DEFAULT 0, plw REAL NOT NULL DEFAULT -1,"
    "  ccm INTEGER NOT NULL DEFAULT 0, cnc INTEGER NOT NULL DEFAULT 0,"
    "  cpc TEXT NOT NULL DEFAULT '', cbetas TEXT NOT NULL DEFAULT '',"
    "  seed INTEGER NOT NULL DEFAULT 0, has_seed INTEGER NOT NULL DEFAULT 0,"
    "  resolved INTEGER NOT NULL DEFAULT 0, r_n_epochs INTEGER NOT NULL DEFAULT 0,"
    "  r_batch_size INTEGER NOT NULL DEFAULT 0, r_lr_mult REAL NOT NULL DEFAULT 0,"
    "  r_plw REAL NOT NULL DEFAULT 0, r_seed INTEGER NOT NULL DEFAULT 0,"
    "  total_steps INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
    "  started_at INTEGER NOT NULL DEFAULT 0, finished_at INTEGER NOT NULL DEFAULT 0,"
    "  trained_tokens INTEGER NOT NULL DEFAULT 0, last_step INTEGER NOT NULL DEFAULT 0,"
    "  error_message TEXT NOT NULL DEFAULT '', queue_number INTEGER NOT NULL DEFAULT -1,"
    "  worker_pid INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX jobs_org ON jobs(org_id, seq);"
    "CREATE INDEX jobs_status ON jobs(status, seq);"
    "CREATE TABLE events("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
    "  job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    "  created_at INTEGER NOT NULL, level TEXT NOT NULL, message TEXT NOT NULL);"
    "CREATE INDEX events_job ON events(job_id, seq);"
    "CREATE TABLE models("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
    "  org_id TEXT NOT NULL REFERENCES orgs(id), base TEXT NOT NULL,"
    "  parent TEXT NOT NULL, job_id TEXT NOT NULL, dir TEXT NOT NULL,"
    "  created INTEGER NOT NULL);"
    "CREATE INDEX models_org ON models(org_id, seq);";

static const char *migration_2 =
    "ALTER TABLE jobs ADD COLUMN api INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN model_tag TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE jobs ADD COLUMN estimated_finish INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN error_code TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE jobs ADD COLUMN error_param TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE jobs ADD COLUMN metadata TEXT;"
    "ALTER TABLE jobs ADD COLUMN integrations TEXT;"
    "ALTER TABLE jobs ADD COLUMN method TEXT;"
    "DROP INDEX jobs_org;"
    "CREATE INDEX jobs_org ON jobs(org_id, api, seq);"
    "ALTER TABLE events ADD COLUMN type TEXT NOT NULL DEFAULT 'message';"
    "ALTER TABLE events ADD COLUMN data TEXT NOT NULL DEFAULT '';"
    "CREATE TABLE checkpoints("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
    "  job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    "  created_at INTEGER NOT NULL, step INTEGER NOT NULL, model TEXT NOT NULL,"
    "  dir TEXT NOT NULL, train_loss REAL, train_acc REAL, valid_loss REAL,"
    "  valid_acc REAL, full_valid_loss REAL, full_valid_acc REAL,"
    "  UNIQUE(job_id, step));"
    "CREATE INDEX checkpoints_model ON checkpoints(model);";

static int user_version(sqlite3 *db)
{
    sqlite3_stmt *st;
    int v = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK) return -1;
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

int store_db_migrate(sqlite3 *db, int target, char *err)
{
    const char *steps[] = {NULL, migration_1, migration_2};
    if (target > STORE_SCHEMA_VERSION) target = STORE_SCHEMA_VERSION;
    if (user_version(db) >= target) return 0;
    char *msg = NULL;
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK) goto fail;
    int v = user_version(db);
    if (v < 0) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return core_errf(err, "cannot read the store's schema version: %s", sqlite3_errmsg(db));
    }
    if (v > STORE_SCHEMA_VERSION) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return core_errf(err, "the store was written by a newer tunery (schema %d, this build knows %d): "
                              "upgrade tunery", v, STORE_SCHEMA_VERSION);
    }
    for (; v < target; v++) {
        if (sqlite3_exec(db, steps[v + 1], NULL, NULL, &msg) != SQLITE_OK) goto fail_rb;
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version=%d", v + 1);
        if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) goto fail_rb;
    }
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK) goto fail_rb;
    return 0;
fail_rb:
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
fail:
    core_errf(err, "cannot migrate the store's schema: %s", msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return -1;
}

int store_schema_version(void) { return STORE_SCHEMA_VERSION; }

static void conn_close(void *p)
{
    store_conn_t *c = p;
    if (!c) return;
    for (int i = 0; i < c->n; i++) {
        sqlite3_finalize(c->c[i].st);
        free(c->c[i].sql);
    }
    sqlite3_close_v2(c->db);
    free(c);
}

static int conn_open(const char *dir, store_conn_t **out, char *err)
{
    char p[STORE_PATH_LEN + 16];
    snprintf(p, sizeof p, "%s/tunery.db", dir);
    *out = NULL;
    store_conn_t *c = calloc(1, sizeof *c);
    if (!c) return core_errf(err, "out of memory");
    if (sqlite3_open_v2(p, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        core_errf(err, "cannot open the store %s: %s", p, c->db ? sqlite3_errmsg(c->db) : "out of memory");
        conn_close(c);
        return -1;
    }
    sqlite3_busy_timeout(c->db, 10000);
    /* WAL: readers never block the writer; synchronous=NORMAL is durable
     * against process crashes (kill -9), which is the promise we make. A
     * small page cache: a server may hold a connection per thread. */
    char *msg = NULL;
    if (sqlite3_exec(c->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; "
                     "PRAGMA cache_size=-512;", NULL, NULL, &msg) != SQLITE_OK) {
        core_errf(err, "cannot set up the store %s: %s", p, msg ? msg : sqlite3_errmsg(c->db));
        sqlite3_free(msg);
        conn_close(c);
        return -1;
    }
    *out = c;
    return 0;
}

static store_conn_t *store_conn(store_t *s)
{
    if (pthread_equal(pthread_self(), s->owner)) return s->conn0;
    store_conn_t *c = pthread_getspecific(s->key);
    if (c) return c;
    char err[CORE_ERR_LEN];
    /* On failure this thread shares conn0: still correct for single
     * statements, and the store is in trouble anyway. */
    if (conn_open(s->dir, &c, err)) return s->conn0;
    pthread_setspecific(s->key, c);
    return c;
}

sqlite3 *store_db(store_t *s) { return store_conn(s)->db; }

int store_open(const char *data_dir, store_t **out, char *err)
{
    *out = NULL;
    if (!data_dir || !*data_dir) data_dir = core_data_dir();
    if (strlen(data_dir) > STORE_PATH_LEN - 64)
        return core_errf(err, "data directory path is too long: %s", data_dir);
    const char *subs[] = {"", "/files", "/jobs", "/models"};
    char p[STORE_PATH_LEN];
    for (size_t i = 0; i < sizeof subs / sizeof *subs; i++) {
        snprintf(p, sizeof p, "%s%s", data_dir, subs[i]);
        if (fs_mkdir_p(p, 0755, err)) return -1;
    }
    store_t *s = calloc(1, sizeof *s);
    if (!s) return core_errf(err, "out of memory");
    store_copy(s->dir, sizeof s->dir, data_dir);
    s->owner = pthread_self();
    if (pthread_key_create(&s->key, conn_close)) {
        free(s);
        return core_errf(err, "out of thread-local keys");
    }
    if (conn_open(s->dir, &s->conn0, err) || store_db_migrate(s->conn0->db, STORE_SCHEMA_VERSION, err)) {
        store_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

void store_close(store_t *s)
{
    if (!s) return;
    /* Connections of other threads close when those threads exit; the
     * closing thread's own is closed here. */
    store_conn_t *mine = pthread_getspecific(s->key);
    if (mine) {
        pthread_setspecific(s->key, NULL);
        conn_close(mine);
    }
    pthread_key_delete(s->key);
    conn_close(s->conn0);
    free(s);
}

const char *store_data_dir(const store_t *s) { return s->dir; }

/* ------------------------------------------------------------------ helpers */

int store_sqlerr(store_t *s, char *err, const char *what)
{
    return core_errf(err, "store error while %s: %s (data directory %s)", what, sqlite3_errmsg(store_db(s)), s->dir);
}

int store_prep(store_t *s, const char *sql, sqlite3_stmt **st, char *err)
{
    store_conn_t *c = store_conn(s);
    int free_slot = -1;
    for (int i = 0; i < c->n; i++) {
        if (strcmp(c->c[i].sql, sql)) continue;
        if (c->c[i].busy) { free_slot = -2; break; }   /* in use higher up the stack: a private one */
        c->c[i].busy = 1;
        *st = c->c[i].st;
        return 0;
    }
    if (free_slot == -1 && c->n < STORE_STMT_CACHE) free_slot = c->n;
    if (sqlite3_prepare_v3(c->db, sql, -1, free_slot >= 0 ? SQLITE_PREPARE_PERSISTENT : 0, st, NULL) != SQLITE_OK) {
        *st = NULL;
        return store_sqlerr(s, err, "preparing a query");
    }
    if (free_slot >= 0 && (c->c[free_slot].sql = strdup(sql))) {
        c->c[free_slot].st = *st;
        c->c[free_slot].busy = 1;
        c->n++;
    }
    return 0;
}

void store_finish(store_t *s, sqlite3_stmt *st)
{
    if (!st) return;
    store_conn_t *c = store_conn(s);
    for (int i = 0; i < c->n; i++)
        if (c->c[i].st == st) {
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            c->c[i].busy = 0;
            return;
        }
    sqlite3_finalize(st);
}

int store_done(store_t *s, sqlite3_stmt *st, char *err)
{
    int rc = sqlite3_step(st);
    store_finish(s, st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return store_sqlerr(s, err, "writing");
    return 0;
}

int store_exec(store_t *s, const char *sql, char *err)
{
    char *msg = NULL;
    if (sqlite3_exec(store_db(s), sql, NULL, NULL, &msg) != SQLITE_OK) {
        core_errf(err, "store error: %s (data directory %s)", msg ? msg : sqlite3_errmsg(store_db(s)), s->dir);
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

void store_bind_str(sqlite3_stmt *st, int i, const char *v)
{
    sqlite3_bind_text(st, i, v ? v : "", -1, SQLITE_TRANSIENT);
}

void store_bind_nullable(sqlite3_stmt *st, int i, const char *v)
{
    if (v) sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(st, i);
}

void store_bind_real(sqlite3_stmt *st, int i, double v)
{
    if (isnan(v)) sqlite3_bind_null(st, i);
    else sqlite3_bind_double(st, i, v);
}

void store_col_str(sqlite3_stmt *st, int i, char *out, size_t len)
{
    const char *v = (const char *)sqlite3_column_text(st, i);
    store_copy(out, len, v ? v : "");
}

char *store_col_dup(sqlite3_stmt *st, int i)
{
    const char *v = (const char *)sqlite3_column_text(st, i);
    return v ? strdup(v) : NULL;
}

double store_col_real(sqlite3_stmt *st, int i)
{
    if (sqlite3_column_type(st, i) == SQLITE_NULL) return NAN;
    return sqlite3_column_double(st, i);
}

void store_copy(char *dst, size_t len, const char *src)
{
    if (!len) return;
    size_t n = src ? strlen(src) : 0;
    if (n >= len) n = len - 1;
    if (n) memcpy(dst, src, n);
    dst[n] = 0;
}

int store_grow(void **arr, int *cap, int n, size_t elem)
{
    if (n < *cap) return 0;
    int nc = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, (size_t)nc * elem);
    if (!p) return -1;
    *arr = p;
    *cap = nc;
    return 0;
}

int store_page_limit(const store_page_t *pg)
{
    if (!pg || pg->limit <= 0) return -1;   /* SQLite: LIMIT -1 = no limit */
    return pg->limit + 1;                    /* one extra row tells has_more */
}

void store_tick(store_t *s)
{
    char p[STORE_PATH_LEN];
    snprintf(p, sizeof p, "%s/events.tick", s->dir);
    int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return;
    /* A one-byte write is an IN_MODIFY for every inotify watcher. */
    if (pwrite(fd, "t", 1, 0) != 1) { /* watchers fall back to their timeout */ }
    close(fd);
}

/* ------------------------------------------------------------------ naming */

void store_slugify(const char *in, char *out, size_t out_len)
{
    size_t o = 0;
    int dash = 0;
    for (const unsigned char *p = (const unsigned char *)(in ? in : ""); *p && o + 1 < out_len; p++) {
        unsigned char c = *p;
        if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80) {
            if (dash && o > 0 && o + 2 < out_len) out[o++] = '-';
            dash = 0;
            out[o++] = (char)c;
        } else {
            dash = 1;
        }
    }
    out[o] = 0;
}

void store_model_name_legacy(const char *base, const char *org_slug, const char *suffix,
                             int64_t t, char out[STORE_NAME_LEN])
{
    char ts[32], sfx[96];
    time_fmt_model(t, ts);
    store_slugify(suffix, sfx, sizeof sfx);
    if (sfx[0]) snprintf(out, STORE_NAME_LEN, "%s:ft-%s:%s-%s", base, org_slug, sfx, ts);
    else snprintf(out, STORE_NAME_LEN, "%s:ft-%s-%s", base, org_slug, ts);
}

void store_model_name_ft(const char *base, const char *org_slug, const char *suffix,
                         const char *tag, char out[STORE_NAME_LEN])
{
    char sfx[96];
    store_slugify(suffix, sfx, sizeof sfx);
    snprintf(out, STORE_NAME_LEN, "ft:%s:%s:%s:%s", base, org_slug, sfx, tag);
}

void store_model_root(const char *model, char out[STORE_NAME_LEN])
{
    if (!strncmp(model, "ft:", 3)) {
        const char *b = model + 3, *e = strchr(b, ':');
        size_t n = e ? (size_t)(e - b) : strlen(b);
        if (n >= STORE_NAME_LEN) n = STORE_NAME_LEN - 1;
        memcpy(out, b, n);
        out[n] = 0;
        return;
    }
    const char *ft = strstr(model, ":ft-");
    size_t n = ft ? (size_t)(ft - model) : strlen(model);
    if (n >= STORE_NAME_LEN) n = STORE_NAME_LEN - 1;
    memcpy(out, model, n);
    out[n] = 0;
}

/* ------------------------------------------------------------------ recovery */

static int file_row_exists(store_t *s, const char *id)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(store_db(s), "SELECT 1 FROM files WHERE id=?", -1, &st, NULL) != SQLITE_OK) return 1;
    store_bind_str(st, 1, id);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc != SQLITE_DONE;   /* on any doubt, keep the blob */
}

int store_recover_blobs(store_t *s, char *err)
{
    char dir[STORE_PATH_LEN], p[STORE_PATH_LEN + 300];
    snprintf(dir, sizeof dir, "%s/files", s->dir);
    DIR *d = opendir(dir);
    if (!d) return core_errf(err, "cannot read %s: %s", dir, strerror(errno));
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        int tmp = !strncmp(n, ".tmp-", 5);
        int orphan = !tmp && !strncmp(n, "file-", 5) && !file_row_exists(s, n);
        if (!tmp && !orphan) continue;
        snprintf(p, sizeof p, "%s/%s", dir, n);
        if (unlink(p) == 0) removed++;
    }
    closedir(d);
    return removed;
}

/* ------------------------------------------------------------------ bootstrap */

static int write_secret(const char *path, const char *text, char *err)
{
    char tmp[STORE_PATH_LEN + 16];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return core_errf(err, "cannot create %s: %s", tmp, strerror(errno));
    fchmod(fd, 0600);
    size_t n = strlen(text);
    int ok = write(fd, text, n) == (ssize_t)n && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    close(fd);
    if (!ok || rename(tmp, path)) {
        unlink(tmp);
        return core_errf(err, "cannot write %s: %s", path, strerror(errno));
    }
    return fs_fsync_dir_of(path, err);
}

int store_bootstrap(store_t *s, char key_out[STORE_KEY_LEN], int *created, char *err)
{
    *created = 0;
    key_out[0] = 0;
    if (store_exec(s, "BEGIN IMMEDIATE", err)) return -1;
    sqlite3_stmt *st;
    if (store_prep(s, "SELECT count(*) FROM orgs", &st, err)) goto fail;
    int n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    store_finish(s, st);
    if (n < 0) { store_sqlerr(s, err, "counting organizations"); goto fail; }
    if (n == 0) {
        store_org_t org;
        store_key_t k;
        char path[STORE_PATH_LEN + 32];
        if (store_org_create(s, "personal", &org, err)) goto fail;
        if (store_key_create(s, org.id, key_out, &k, err)) goto fail;
        snprintf(path, sizeof path, "%s/initial-api-key", s->dir);
        /* The file before the commit: a crash in between leaves no org, so
         * the next start makes a fresh key and overwrites the file. */
        if (write_secret(path, key_out, err)) goto fail;
        *created = 1;
    }
    if (store_exec(s, "COMMIT", err)) goto fail;
    return 0;
fail:
    sqlite3_exec(store_db(s), "ROLLBACK", NULL, NULL, NULL);
    key_out[0] = 0;
    *created = 0;
    return -1;
}
