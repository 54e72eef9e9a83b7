/* store_events.c: the job's history (events), its checkpoints and the
 * models it produced. Events carry a store-wide sequence number so a
 * follower can ask for "everything after the last one I sent" — that is what
 * makes SSE replay exact after a reconnect — and every insert touches
 * DATA/events.tick so followers in the server wake through inotify, whichever
 * process (server or worker) wrote the event. */
#include "store/store_int.h"
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

/* ------------------------------------------------------------------ events */

#define EVENT_COLS "e.seq, e.id, e.job_id, e.created_at, e.level, e.type, e.message, e.data"

void store_event_row(sqlite3_stmt *st, store_event_t *e)
{
    e->seq = sqlite3_column_int64(st, 0);
    store_col_str(st, 1, e->id, sizeof e->id);
    store_col_str(st, 2, e->job_id, sizeof e->job_id);
    e->created_at = sqlite3_column_int64(st, 3);
    store_col_str(st, 4, e->level, sizeof e->level);
    store_col_str(st, 5, e->type, sizeof e->type);
    store_col_str(st, 6, e->message, sizeof e->message);
    store_col_str(st, 7, e->data, sizeof e->data);
}

static int event_add(store_t *s, const char *job_id, int only_active, const char *level, const char *type,
                     const char *message, const char *data, int64_t *seq_out, char *err);

int store_event_add(store_t *s, const char *job_id, const char *level, const char *type,
                    const char *message, const char *data, int64_t *seq_out, char *err)
{
    return event_add(s, job_id, 0, level, type, message, data, seq_out, err);
}

int store_event_add_active(store_t *s, const char *job_id, const char *level, const char *type,
                           const char *message, const char *data, int64_t *seq_out, char *err)
{
    return event_add(s, job_id, 1, level, type, message, data, seq_out, err);
}

static int event_add(store_t *s, const char *job_id, int only_active, const char *level, const char *type,
                     const char *message, const char *data, int64_t *seq_out, char *err)
{
    char id[STORE_ID_LEN];
    id_random(id, "ftevent-", 24);
    int64_t now = time_unix();
    if (store_exec(s, "BEGIN IMMEDIATE", err)) return -1;
    sqlite3_stmt *st;
    if (store_prep(s, only_active ? "INSERT INTO events(id, job_id, created_at, level, type, message, data) "
                                    "SELECT ?,?,?,?,?,?,? WHERE EXISTS (SELECT 1 FROM jobs WHERE id=?2 AND "
                                    "status NOT IN ('succeeded','failed','cancelled'))"
                             : "INSERT INTO events(id, job_id, created_at, level, type, message, data) VALUES(?,?,?,?,?,?,?)",
                   &st, err))
        goto fail;
    store_bind_str(st, 1, id);
    store_bind_str(st, 2, job_id);
    sqlite3_bind_int64(st, 3, now);
    store_bind_str(st, 4, level ? level : "info");
    store_bind_str(st, 5, type ? type : "message");
    store_bind_str(st, 6, message);
    store_bind_str(st, 7, data);
    int rc = sqlite3_step(st);
    store_finish(s, st);
    if (rc == SQLITE_CONSTRAINT) {
        core_errf(err, "No such fine-tune job: %s", job_id);
        sqlite3_exec(store_db(s), "ROLLBACK", NULL, NULL, NULL);
        return STORE_ENOTFOUND;
    }
    if (rc != SQLITE_DONE) {
        store_sqlerr(s, err, "adding an event");
        goto fail;
    }
    if (only_active && sqlite3_changes(store_db(s)) == 0) {
        sqlite3_exec(store_db(s), "ROLLBACK", NULL, NULL, NULL);
        return 1;
    }
    int64_t seq = sqlite3_last_insert_rowid(store_db(s));
    if (store_prep(s, "UPDATE jobs SET updated_at=? WHERE id=?", &st, err)) goto fail;
    sqlite3_bind_int64(st, 1, now);
    store_bind_str(st, 2, job_id);
    if (store_done(s, st, err) || store_exec(s, "COMMIT", err)) goto fail;
    if (seq_out) *seq_out = seq;
    store_tick(s);
    return 0;
fail:
    sqlite3_exec(store_db(s), "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

static int event_rows(store_t *s, sqlite3_stmt *st, store_event_t **out, int *n, char *err)
{
    int cap = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (store_grow((void **)out, &cap, *n, sizeof **out)) { rc = SQLITE_NOMEM; break; }
        store_event_row(st, &(*out)[(*n)++]);
    }
    store_finish(s, st);
    if (rc != SQLITE_DONE) {
        free(*out);
        *out = NULL;
        *n = 0;
        return core_errf(err, "cannot list events: %s", sqlite3_errstr(rc));
    }
    return 0;
}

/* Org check for the event, checkpoint and model lists: a job of another org
 * is "not found", exactly like a missing one. */
static int job_visible(store_t *s, const char *org_id, const char *job_id, char *err)
{
    sqlite3_stmt *st;
    if (store_prep(s, "SELECT 1 FROM jobs WHERE id=?1 AND (?2 IS NULL OR org_id=?2)", &st, err)) return -1;
    store_bind_str(st, 1, job_id);
    store_bind_nullable(st, 2, org_id);
    int rc = sqlite3_step(st);
    store_finish(s, st);
    if (rc == SQLITE_ROW) return 0;
    if (rc != SQLITE_DONE) return store_sqlerr(s, err, "reading a job");
    core_errf(err, "No such fine-tune job: %s", job_id);
    return STORE_ENOTFOUND;
}

int store_event_since(store_t *s, const char *org_id, const char *job_id, int64_t since_seq,
                      int max, store_event_t **out, int *n, char *err)
{
    *out = NULL;
    *n = 0;
    int rc = job_visible(s, org_id, job_id, err);
    if (rc) return rc;
    sqlite3_stmt *st;
    if (store_prep(s, "SELECT " EVENT_COLS " FROM events e WHERE e.job_id=? AND e.seq>? ORDER BY e.seq LIMIT ?",
                   &st, err))
        return -1;
    store_bind_str(st, 1, job_id);
    sqlite3_bind_int64(st, 2, since_seq);
    sqlite3_bind_int(st, 3, max > 0 ? max : -1);
    return event_rows(s, st, out, n, err);
}

int store_event_list(store_t *s, const char *org_id, const char *job_id, const store_page_t *page,
                     store_event_t **out, int *n, int *has_more, char *err)
{
    *out = NULL;
    *n = 0;
    if (has_more) *has_more = 0;
    int rc = job_visible(s, org_id, job_id, err);
    if (rc) return rc;
    const char *after = page && page->after && *page->after ? page->after : NULL;
    sqlite3_stmt *st;
    if (store_prep(s, "SELECT " EVENT_COLS " FROM events e WHERE e.job_id=?1 "
                      "AND (?2 IS NULL OR e.seq < (SELECT seq FROM events WHERE id=?2 AND job_id=?1)) "
                      "ORDER BY e.seq DESC LIMIT ?3", &st, err))
        return -1;
    int lim = store_page_limit(page);
    store_bind_str(st, 1, job_id);
    store_bind_nullable(st, 2, after);
    sqlite3_bind_int(st, 3, lim);
    if (event_rows(s, st, out, n, err)) return -1;
    if (lim > 0 && *n == lim) {
        (*n)--;
        if (has_more) *has_more = 1;
    }
    return 0;
}

int store_event_exists(store_t *s, const char *job_id, const char *message, int *exists, char *err)
{
    sqlite3_stmt *st;
    if (store_prep(s, "SELECT 1 FROM events WHERE job_id=? AND message=? LIMIT 1", &st, err)) return -1;
    store_bind_str(st, 1, job_id);
    store_bind_str(st, 2, message);
    int rc = sqlite3_step(st);
    store_finish(s, st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return store_sqlerr(s, err, "reading events");
    *exists = rc == SQLITE_ROW;
    return 0;
}

int store_event_last_seq(store_t *s, int64_t *seq, char *err)
{
    sqlite3_stmt *st;
    if (store_prep(s, "SELECT coalesce(max(seq), 0) FROM events", &st, err)) return -1;
    int rc = sqlite3_step(st);
    *seq = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    store_finish(s, st);
    if (rc != SQLITE_ROW) return store_sqlerr(s, err, "reading events");
    return 0;
}

int store_event_watch(store_t *s, char *err)
{
    char p[STORE_PATH_LEN];
    store_tick(s);   /* make sure the file exists before watching it */
    snprintf(p, sizeof p, "%s/events.tick", s->dir);
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) return core_errf(err, "cannot watch for events (inotify): %s", strerror(errno));
    if (inotify_add_watch(fd, p, IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE) < 0) {
        core_errf(err, "cannot watch %s: %s", p, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

void store_event_watch_drain(int fd)
{
    char buf[4096];
    while (read(fd, buf, sizeof buf) > 0) {}
}

/* ------------------------------------------------------------------ checkpoints */

#define CKPT_COLS "c.id, c.job_id, c.created_at, c.step, c.model, c.dir, c.train_loss, c.train_acc, " \
                  "c.valid_loss, c.valid_acc, c.full_valid_loss, c.full_valid_acc"

static void ckpt_row(sqlite3_stmt *st, store_checkpoint_t *c)
{
    store_col_str(st, 0, c->id, sizeof c->id);
    store_col_str(st, 1, c->job_id, sizeof c->job_id);
    c->created_at = sqlite3_column_int64(st, 2);
    c->step = sqlite3_column_int(st, 3);
    store_col_str(st, 4, c->model, sizeof c->model);
    store_col_str(st, 5, c->dir, sizeof c->dir);
    c->train_loss = store_col_real(st, 6);
    c->train_mean_token_accuracy = store_col_real(st, 7);
    c->valid_loss = store_col_real(st, 8);
    c->valid_mean_token_accuracy = store_col_real(st, 9);
    c->full_valid_loss = store_col_real(st, 10);
    c->full_valid_mean_token_accuracy = store_col_real(st, 11);
}

int store_checkpoint_add(store_t *s, store_checkpoint_t *c, char *err)
{
    if (!c->id[0]) id_random(c->id, "ftckpt_", 24);
    if (!c->created_at) c->created_at = time_unix();
    sqlite3_stmt *st;
    if (store_prep(s, "INSERT OR REPLACE INTO checkpoints(id, job_id, created_at, step, model, dir, train_loss, "
                      "train_acc, valid_loss, valid_acc, full_valid_loss, full_valid_acc) "
                      "VALUES(?,?,?,?,?,?,?,?,?,?,?,?)", &st, err))
        return -1;
    store_bind_str(st, 1, c->id);
    store_bind_str(st, 2, c->job_id);
    sqlite3_bind_int64(st, 3, c->created_at);
    sqlite3_bind_int(st, 4, c->step);
    store_bind_str(st, 5, c->model);
    store_bind_str(st, 6, c->dir);
    store_bind_real(st, 7, c->train_loss);
    store_bind_real(st, 8, c->train_mean_token_accuracy);
    store_bind_real(st, 9, c->valid_loss);
    store_bind_real(st, 10, c->valid_mean_token_accuracy);
    store_bind_real(st, 11, c->full_valid_loss);
    store_bind_real(st, 12, c->full_valid_mean_token_accuracy);
    int rc = sqlite3_step(st);
    store_finish(s, st);
    if (rc == SQLITE_CONSTRAINT) {
        core_errf(err, "No such fine-tune job: %s", c->job_id);
        return STORE_ENOTFOUND;
    }
    if (rc != SQLITE_DONE) return store_sqlerr(s, err, "adding a checkpoint");
    return 0;
}

static int ckpt_rows(store_t *s, sqlite3_stmt *st, store_checkpoint_t **out, int *n, char *err)
{
    int cap = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (store_grow((void **)out, &cap, *n, sizeof **out)) { rc = SQLITE_NOMEM; break; }
        ckpt_row(st, &(*out)[(*n)++]);
    }
    store_finish(s, st);
    if (rc != SQLITE_DONE) {
        free(*out);
        *out = NULL;
        *n = 0;
        return core_errf(err, "cannot list checkpoints: %s", sqlite3_errstr(rc));
    }
    return 0;
}

int store_checkpoint_list(store_t *s, const char *org_id, const char *job_id,
                          const store_page_t *page, store_checkpoint_t **out, int *n,
                          int *has_more, char *err)
{
    *out = NULL;
    *n = 0;
    if (has_more) *has_more = 0;
    int rc = job_visible(s, org_id, job_id, err);
    if (rc) return rc;
    const char *after = page && page->after && *page->after ? page->after : NULL;
    sqlite3_stmt *st;
    if (store_prep(s, "SELECT " CKPT_COLS " FROM checkpoints c WHERE c.job_id=?1 "
                      "AND (?2 IS NULL OR c.step < (SELECT step FROM checkpoints WHERE id=?2 AND job_id=?1)) "
                      "ORDER BY c.step DESC LIMIT ?3", &st, err))
        return -1;
    int lim = store_page_limit(page);
    store_bind_str(st, 1, job_id);
    store_bind_nullable(st, 2, after);
    sqlite3_bind_int(st, 3, lim);
    if (ckpt_rows(s, st, out, n, err)) return -1;
    if (lim > 0 && *n == lim) {
        (*n)--;
        if (has_more) *has_more = 1;
    }
    return 0;
}

int store_checkpoint_last(store_t *s, const char *job_id, store_checkpoint_t *out, char *err)
{
    sqlite3_stmt *st;
    if (store_prep(s, "SELECT " CKPT_COLS " FROM checkpoints c WHERE c.job_id=? ORDER BY c.step DESC LIMIT 1",
                   &st, err))
        return -1;
    store_bind_str(st, 1, job_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) ckpt_row(st, out);
    store_finish(s, st);
    if (rc == SQLITE_ROW) return 0;
    if (rc != SQLITE_DONE) return store_sqlerr(s, err, "reading checkpoints");
    core_errf(err, "fine-tune %s has no checkpoint yet", job_id);
    return STORE_ENOTFOUND;
}

int store_checkpoint_delete(store_t *s, const char *job_id, int step, char *err)
{
    sqlite3_stmt *st;
    if (store_prep(s, "DELETE FROM checkpoints WHERE job_id=?1 AND (?2 < 0 OR step=?2)", &st, err)) return -1;
    store_bind_str(st, 1, job_id);
    sqlite3_bind_int(st, 2, step);
    return store_done(s, st, err);
}

int store_checkpoint_by_model(store_t *s, const char *org_id, const char *model,
                              store_checkpoint_t *out, char *err)
{
    sqlite3_stmt *st;
    if (store_prep(s, "SELECT " CKPT_COLS " FROM checkpoints c JOIN jobs j ON j.id = c.job_id "
                      "WHERE c.model=?1 AND c.model<>'' AND (?2 IS NULL OR j.org_id=?2)", &st, err))
        return -1;
    store_bind_str(st, 1, model);
    store_bind_nullable(st, 2, org_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) ckpt_row(st, out);
    store_finish(s, st);
    if (rc == SQLITE_ROW) return 0;
    if (rc != SQLITE_DONE) return store_sqlerr(s, err, "reading checkpoints");
    core_errf(err, "The model `%s` does not exist", model);
    return STORE_ENOTFOUND;
}

int store_checkpoint_models(store_t *s, const char *org_id, store_checkpoint_t **out, int *n, char *err)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    if (store_prep(s, "SELECT " CKPT_COLS " FROM checkpoints c JOIN jobs j ON j.id = c.job_id "
                      "WHERE c.model<>'' AND j.status<>'cancelled' AND (?1 IS NULL OR j.org_id=?1) ORDER BY c.seq",
                   &st, err))
        return -1;
    store_bind_nullable(st, 1, org_id);
    return ckpt_rows(s, st, out, n, err);
}

/* ------------------------------------------------------------------ models */

#define MODEL_COLS "id, org_id, base, parent, job_id, dir, created"

static void model_row(sqlite3_stmt *st, store_model_t *m)
{
    store_col_str(st, 0, m->id, sizeof m->id);
    store_col_str(st, 1, m->org_id, sizeof m->org_id);
    store_col_str(st, 2, m->base, sizeof m->base);
    store_col_str(st, 3, m->parent, sizeof m->parent);
    store_col_str(st, 4, m->job_id, sizeof m->job_id);
    store_col_str(st, 5, m->dir, sizeof m->dir);
    m->created = sqlite3_column_int64(st, 6);
}

int store_model_add(store_t *s, store_model_t *m, char *err)
{
    if (!m->created) m->created = time_unix();
    sqlite3_stmt *st;
    if (store_prep(s, "INSERT INTO models(" MODEL_COLS ") VALUES(?,?,?,?,?,?,?)", &st, err)) return -1;
    store_bind_str(st, 1, m->id);
    store_bind_str(st, 2, m->org_id);
    store_bind_str(st, 3, m->base);
    store_bind_str(st, 4, m->parent);
    store_bind_str(st, 5, m->job_id);
    store_bind_str(st, 6, m->dir);
    sqlite3_bind_int64(st, 7, m->created);
    int rc = sqlite3_step(st);
    store_finish(s, st);
    if (rc == SQLITE_CONSTRAINT) {
        core_errf(err, "a model called %s already exists", m->id);
        return STORE_ECONFLICT;
    }
    if (rc != SQLITE_DONE) return store_sqlerr(s, err, "registering a model");
    return 0;
}

int store_model_get(store_t *s, const char *org_id, const char *id, store_model_t *out, char *err)
{
    sqlite3_stmt *st;
    if (store_prep(s, "SELECT " MODEL_COLS " FROM models WHERE id=?1 AND (?2 IS NULL OR org_id=?2)", &st, err))
        return -1;
    store_bind_str(st, 1, id);
    store_bind_nullable(st, 2, org_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) model_row(st, out);
    store_finish(s, st);
    if (rc == SQLITE_ROW) return 0;
    if (rc != SQLITE_DONE) return store_sqlerr(s, err, "reading a model");
    core_errf(err, "The model `%s` does not exist", id);
    return STORE_ENOTFOUND;
}

int store_model_list(store_t *s, const char *org_id, store_model_t **out, int *n, char *err)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    if (store_prep(s, "SELECT " MODEL_COLS " FROM models WHERE ?1 IS NULL OR org_id=?1 ORDER BY seq", &st, err))
        return -1;
    store_bind_nullable(st, 1, org_id);
    int cap = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (store_grow((void **)out, &cap, *n, sizeof **out)) { rc = SQLITE_NOMEM; break; }
        model_row(st, &(*out)[(*n)++]);
    }
    store_finish(s, st);
    if (rc != SQLITE_DONE) {
        free(*out);
        *out = NULL;
        *n = 0;
        return core_errf(err, "cannot list models: %s", sqlite3_errstr(rc));
    }
    return 0;
}

int store_model_delete(store_t *s, const char *org_id, const char *id, char *err)
{
    store_model_t m;
    int rc = store_model_get(s, org_id, id, &m, err);
    if (rc) return rc;
    sqlite3_stmt *st;
    if (store_prep(s, "DELETE FROM models WHERE id=?", &st, err)) return -1;
    store_bind_str(st, 1, id);
    if (store_done(s, st, err)) return -1;
    /* Only directories the store made (under DATA/models) are removed. */
    char mine[STORE_PATH_LEN];
    snprintf(mine, sizeof mine, "%s/models/", s->dir);
    if (m.dir[0] && !strncmp(m.dir, mine, strlen(mine)) && !strstr(m.dir, "/../")) {
        char e2[CORE_ERR_LEN];
        fs_rm_rf(m.dir, e2);   /* the row is gone: a leftover directory is only disk space */
    }
    return 0;
}
