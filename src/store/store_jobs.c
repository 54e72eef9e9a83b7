/* store_jobs.c: fine-tune jobs of both APIs in one table. Every state change
 * is a single conditional UPDATE (… WHERE status IN (…)), so the server,
 * the scheduler and a worker racing on the same job (cancel vs success,
 * pause vs crash) cannot both win: the loser gets STORE_ECONFLICT and
 * changes nothing. */
#include "store/store_int.h"
#include <stdlib.h>
#include <string.h>

#define JOB_COLS \
    "id, api, org_id, model, training_file, validation_file, suffix, status, fine_tuned_model, " \
    "result_file, model_tag, n_epochs, batch_size, lr_mult, plw, ccm, cnc, cpc, cbetas, seed, " \
    "has_seed, resolved, r_n_epochs, r_batch_size, r_lr_mult, r_plw, r_seed, total_steps, " \
    "created_at, updated_at, started_at, finished_at, estimated_finish, trained_tokens, last_step, " \
    "error_code, error_param, error_message, queue_number, worker_pid, attempts, metadata, " \
    "integrations, method"
#define JOB_NCOLS 44

static void job_row(sqlite3_stmt *st, store_job_t *j)
{
    int c = 0;
    memset(j, 0, sizeof *j);
    store_col_str(st, c++, j->id, sizeof j->id);
    j->api = sqlite3_column_int(st, c++);
    store_col_str(st, c++, j->org_id, sizeof j->org_id);
    store_col_str(st, c++, j->model, sizeof j->model);
    store_col_str(st, c++, j->training_file, sizeof j->training_file);
    store_col_str(st, c++, j->validation_file, sizeof j->validation_file);
    store_col_str(st, c++, j->suffix, sizeof j->suffix);
    store_col_str(st, c++, j->status, sizeof j->status);
    store_col_str(st, c++, j->fine_tuned_model, sizeof j->fine_tuned_model);
    store_col_str(st, c++, j->result_file, sizeof j->result_file);
    store_col_str(st, c++, j->model_tag, sizeof j->model_tag);
    j->n_epochs = sqlite3_column_int(st, c++);
    j->batch_size = sqlite3_column_int(st, c++);
    j->learning_rate_multiplier = sqlite3_column_double(st, c++);
    j->prompt_loss_weight = sqlite3_column_double(st, c++);
    j->compute_classification_metrics = sqlite3_column_int(st, c++);
    j->classification_n_classes = sqlite3_column_int(st, c++);
    store_col_str(st, c++, j->classification_positive_class, sizeof j->classification_positive_class);
    store_col_str(st, c++, j->classification_betas, sizeof j->classification_betas);
    j->seed = sqlite3_column_int64(st, c++);
    j->has_seed = sqlite3_column_int(st, c++);
    j->resolved = sqlite3_column_int(st, c++);
    j->r_n_epochs = sqlite3_column_int(st, c++);
    j->r_batch_size = sqlite3_column_int(st, c++);
    j->r_learning_rate_multiplier = sqlite3_column_double(st, c++);
    j->r_prompt_loss_weight = sqlite3_column_double(st, c++);
    j->r_seed = sqlite3_column_int64(st, c++);
    j->total_steps = sqlite3_column_int(st, c++);
    j->created_at = sqlite3_column_int64(st, c++);
    j->updated_at = sqlite3_column_int64(st, c++);
    j->started_at = sqlite3_column_int64(st, c++);
    j->finished_at = sqlite3_column_int64(st, c++);
    j->estimated_finish = sqlite3_column_int64(st, c++);
    j->trained_tokens = sqlite3_column_int64(st, c++);
    j->last_step = sqlite3_column_int(st, c++);
    store_col_str(st, c++, j->error_code, sizeof j->error_code);
    store_col_str(st, c++, j->error_param, sizeof j->error_param);
    store_col_str(st, c++, j->error_message, sizeof j->error_message);
    j->queue_number = sqlite3_column_int(st, c++);
    j->worker_pid = sqlite3_column_int(st, c++);
    j->attempts = sqlite3_column_int(st, c++);
    j->metadata = store_col_dup(st, c++);
    j->integrations = store_col_dup(st, c++);
    j->method = store_col_dup(st, c++);
}

void store_job_clear(store_job_t *j)
{
    if (!j) return;
    free(j->metadata);
    free(j->integrations);
    free(j->method);
    memset(j, 0, sizeof *j);
}

void store_job_free(store_job_t *arr, int n)
{
    for (int i = 0; arr && i < n; i++) store_job_clear(&arr[i]);
    free(arr);
}

int store_job_is_terminal(const char *status)
{
    return !strcmp(status, "succeeded") || !strcmp(status, "failed") || !strcmp(status, "cancelled");
}

const char *store_job_wire_status(const store_job_t *j)
{
    if (j->api == STORE_API_LEGACY &&
        (!strcmp(j->status, "queued") || !strcmp(j->status, "validating_files") || !strcmp(j->status, "paused")))
        return "pending";
    return j->status;
}

int store_job_create(store_t *s, store_job_t *j, char *err)
{
    id_random(j->id, j->api == STORE_API_JOBS ? "ftjob-" : "ft-", 24);
    id_random(j->model_tag, "", 8);
    j->created_at = j->updated_at = time_unix();
    if (!j->status[0]) store_copy(j->status, sizeof j->status, "validating_files");
    j->queue_number = -1;
    char q[JOB_NCOLS * 2 + 1];
    for (int i = 0; i < JOB_NCOLS; i++) { q[2 * i] = '?'; q[2 * i + 1] = ','; }
    q[JOB_NCOLS * 2 - 1] = 0;
    char sql[1024];
    snprintf(sql, sizeof sql, "INSERT INTO jobs(" JOB_COLS ") VALUES(%s)", q);
    sqlite3_stmt *st;
    if (store_prep(s, sql, &st, err)) return -1;
    int c = 1;
    store_bind_str(st, c++, j->id);
    sqlite3_bind_int(st, c++, j->api);
    store_bind_str(st, c++, j->org_id);
    store_bind_str(st, c++, j->model);
    store_bind_str(st, c++, j->training_file);
    store_bind_str(st, c++, j->validation_file);
    store_bind_str(st, c++, j->suffix);
    store_bind_str(st, c++, j->status);
    store_bind_str(st, c++, j->fine_tuned_model);
    store_bind_str(st, c++, j->result_file);
    store_bind_str(st, c++, j->model_tag);
    sqlite3_bind_int(st, c++, j->n_epochs);
    sqlite3_bind_int(st, c++, j->batch_size);
    sqlite3_bind_double(st, c++, j->learning_rate_multiplier);
    sqlite3_bind_double(st, c++, j->prompt_loss_weight);
    sqlite3_bind_int(st, c++, j->compute_classification_metrics);
    sqlite3_bind_int(st, c++, j->classification_n_classes);
    store_bind_str(st, c++, j->classification_positive_class);
    store_bind_str(st, c++, j->classification_betas);
    sqlite3_bind_int64(st, c++, j->seed);
    sqlite3_bind_int(st, c++, j->has_seed);
    sqlite3_bind_int(st, c++, j->resolved);
    sqlite3_bind_int(st, c++, j->r_n_epochs);
    sqlite3_bind_int(st, c++, j->r_batch_size);
    sqlite3_bind_double(st, c++, j->r_learning_rate_multiplier);
    sqlite3_bind_double(st, c++, j->r_prompt_loss_weight);
    sqlite3_bind_int64(st, c++, j->r_seed);
    sqlite3_bind_int(st, c++, j->total_steps);
    sqlite3_bind_int64(st, c++, j->created_at);
    sqlite3_bind_int64(st, c++, j->updated_at);
    sqlite3_bind_int64(st, c++, j->started_at);
    sqlite3_bind_int64(st, c++, j->finished_at);
    sqlite3_bind_int64(st, c++, j->estimated_finish);
    sqlite3_bind_int64(st, c++, j->trained_tokens);
    sqlite3_bind_int(st, c++, j->last_step);
    store_bind_str(st, c++, j->error_code);
    store_bind_str(st, c++, j->error_param);
    store_bind_str(st, c++, j->error_message);
    sqlite3_bind_int(st, c++, j->queue_number);
    sqlite3_bind_int(st, c++, j->worker_pid);
    sqlite3_bind_int(st, c++, j->attempts);
    store_bind_nullable(st, c++, j->metadata);
    store_bind_nullable(st, c++, j->integrations);
    store_bind_nullable(st, c++, j->method);
    int rc = sqlite3_step(st);
    store_finish(s, st);
    if (rc == SQLITE_CONSTRAINT)
        return core_errf(err, "cannot create the job: organization '%s' does not exist", j->org_id);
    if (rc != SQLITE_DONE) return store_sqlerr(s, err, "creating a job");
    return 0;
}

static int job_not_found(char *err, const char *id)
{
    core_errf(err, "No such fine-tune job: %s", id);
    return STORE_ENOTFOUND;
}

int store_job_get(store_t *s, const char *org_id, const char *id, store_job_t *out, char *err)
{
    sqlite3_stmt *st;
    memset(out, 0, sizeof *out);
    if (store_prep(s, "SELECT " JOB_COLS " FROM jobs WHERE id=?1 AND (?2 IS NULL OR org_id=?2)", &st, err))
        return -1;
    store_bind_str(st, 1, id);
    store_bind_nullable(st, 2, org_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) job_row(st, out);
    store_finish(s, st);
    if (rc == SQLITE_ROW) return 0;
    if (rc != SQLITE_DONE) return store_sqlerr(s, err, "reading a job");
    return job_not_found(err, id);
}

static int job_rows(store_t *s, sqlite3_stmt *st, store_job_t **out, int *n, char *err)
{
    int cap = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (store_grow((void **)out, &cap, *n, sizeof **out)) { rc = SQLITE_NOMEM; break; }
        job_row(st, &(*out)[(*n)++]);
    }
    store_finish(s, st);
    if (rc != SQLITE_DONE) {
        store_job_free(*out, *n);
        *out = NULL;
        *n = 0;
        return core_errf(err, "cannot list jobs: %s", sqlite3_errstr(rc));
    }
    return 0;
}

int store_job_list(store_t *s, const char *org_id, int api, const store_page_t *page,
                   const char *meta_key, const char *meta_value,
                   store_job_t **out, int *n, int *has_more, char *err)
{
    *out = NULL;
    *n = 0;
    if (has_more) *has_more = 0;
    const char *after = page && page->after && *page->after ? page->after : NULL;
    sqlite3_stmt *st;
    if (store_prep(s, "SELECT " JOB_COLS " FROM jobs WHERE org_id=?1 AND api=?2 "
                      "AND (?3 IS NULL OR seq < (SELECT seq FROM jobs WHERE id=?3 AND org_id=?1)) "
                      "AND (?4 IS NULL OR (json_valid(metadata) AND json_extract(metadata, '$.' || json_quote(?4)) = ?5)) "
                      "ORDER BY seq DESC LIMIT ?6", &st, err))
        return -1;
    int lim = store_page_limit(page);
    store_bind_str(st, 1, org_id);
    sqlite3_bind_int(st, 2, api);
    store_bind_nullable(st, 3, after);
    store_bind_nullable(st, 4, meta_key);
    store_bind_str(st, 5, meta_value);
    sqlite3_bind_int(st, 6, lim);
    if (job_rows(s, st, out, n, err)) return -1;
    if (lim > 0 && *n == lim) {
        store_job_clear(&(*out)[--(*n)]);
        if (has_more) *has_more = 1;
    }
    return 0;
}

int store_job_delete(store_t *s, const char *org_id, const char *id, char *err)
{
    store_job_t j;
    int rc = store_job_get(s, org_id, id, &j, err);
    if (rc) return rc;
    int term = store_job_is_terminal(j.status);
    char status[sizeof j.status];
    store_copy(status, sizeof status, j.status);
    store_job_clear(&j);
    if (!term) {
        core_errf(err, "fine-tune %s is %s: cancel it before deleting it", id, status);
        return STORE_ECONFLICT;
    }
    sqlite3_stmt *st;
    if (store_prep(s, "DELETE FROM jobs WHERE id=? AND status IN ('succeeded','failed','cancelled')", &st, err))
        return -1;
    store_bind_str(st, 1, id);
    return store_done(s, st, err);
}

/* Is `status` one of the comma-separated names in `set`? */
static int status_in(const char *status, const char *set)
{
    size_t n = strlen(status);
    for (const char *p = set; p && *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !strncmp(p, status, n)) return 1;
        p = e ? e + 1 : NULL;
    }
    return 0;
}

static int conflict(store_t *s, const char *id, const char *wanted, char *err)
{
    store_job_t j;
    int rc = store_job_get(s, NULL, id, &j, err);
    if (rc) return rc;
    core_errf(err, "fine-tune %s is %s, so it cannot become %s", id, j.status, wanted);
    store_job_clear(&j);
    return STORE_ECONFLICT;
}

int store_job_transition(store_t *s, const char *id, const char *from, const char *to, char *err)
{
    /* Read-check-write inside one IMMEDIATE transaction: the status set is
     * a free-form list, so the check is done in C, under the write lock. */
    if (store_exec(s, "BEGIN IMMEDIATE", err)) return -1;
    store_job_t j;
    int rc = store_job_get(s, NULL, id, &j, err);
    if (rc) goto out;
    if (from && !status_in(j.status, from)) {
        core_errf(err, "fine-tune %s is %s, so it cannot become %s", id, j.status, to);
        rc = STORE_ECONFLICT;
        goto out;
    }
    sqlite3_stmt *st;
    rc = -1;
    if (store_prep(s, "UPDATE jobs SET status=?1, updated_at=?2, "
                      "finished_at=CASE WHEN ?1 IN ('succeeded','failed','cancelled') THEN ?2 ELSE finished_at END, "
                      "started_at=CASE WHEN ?1='running' AND started_at=0 THEN ?2 ELSE started_at END, "
                      "estimated_finish=CASE WHEN ?1='running' THEN estimated_finish ELSE 0 END "
                      "WHERE id=?3", &st, err))
        goto out;
    store_bind_str(st, 1, to);
    sqlite3_bind_int64(st, 2, time_unix());
    store_bind_str(st, 3, id);
    rc = store_done(s, st, err);
out:
    store_job_clear(&j);
    if (rc == 0) {
        if (store_exec(s, "COMMIT", err)) rc = -1;
    }
    if (rc) sqlite3_exec(store_db(s), "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

int store_job_fail(store_t *s, const char *id, const char *code, const char *message, char *err)
{
    sqlite3_stmt *st;
    if (store_prep(s, "UPDATE jobs SET status='failed', error_code=?1, error_message=?2, finished_at=?3, "
                      "updated_at=?3, estimated_finish=0, worker_pid=0 WHERE id=?4 AND status IN (" STORE_JOB_ACTIVE ")",
                   &st, err))
        return -1;
    store_bind_str(st, 1, code ? code : "");
    store_bind_str(st, 2, message ? message : "");
    sqlite3_bind_int64(st, 3, time_unix());
    store_bind_str(st, 4, id);
    if (store_done(s, st, err)) return -1;
    if (sqlite3_changes(store_db(s)) == 0) return conflict(s, id, "failed", err);
    return 0;
}

int store_job_succeed(store_t *s, const char *id, const char *fine_tuned_model,
                      const char *result_file, long long trained_tokens, char *err)
{
    sqlite3_stmt *st;
    if (store_prep(s, "UPDATE jobs SET status='succeeded', fine_tuned_model=?1, result_file=?2, trained_tokens=?3, "
                      "finished_at=?4, updated_at=?4, estimated_finish=0 WHERE id=?5 AND status='running'", &st, err))
        return -1;
    store_bind_str(st, 1, fine_tuned_model);
    store_bind_str(st, 2, result_file);
    sqlite3_bind_int64(st, 3, trained_tokens);
    sqlite3_bind_int64(st, 4, time_unix());
    store_bind_str(st, 5, id);
    if (store_done(s, st, err)) return -1;
    if (sqlite3_changes(store_db(s)) == 0) return conflict(s, id, "succeeded", err);
    return 0;
}

/* One UPDATE of a few integer columns by id. */
static int job_update(store_t *s, const char *id, const char *sql, const int64_t *v, int nv, char *err)
{
    sqlite3_stmt *st;
    if (store_prep(s, sql, &st, err)) return -1;
    for (int i = 0; i < nv; i++) sqlite3_bind_int64(st, i + 1, v[i]);
    store_bind_str(st, nv + 1, id);
    if (store_done(s, st, err)) return -1;
    if (sqlite3_changes(store_db(s)) == 0) return job_not_found(err, id);
    return 0;
}

int store_job_set_worker(store_t *s, const char *id, int pid, char *err)
{
    int64_t v[] = {pid, pid ? 1 : 0};
    return job_update(s, id, "UPDATE jobs SET worker_pid=?1, attempts=attempts+?2 WHERE id=?3", v, 2, err);
}

int store_job_set_queue_number(store_t *s, const char *id, int queue_number, char *err)
{
    int64_t v[] = {queue_number};
    return job_update(s, id, "UPDATE jobs SET queue_number=?1 WHERE id=?2", v, 1, err);
}

int store_job_set_progress(store_t *s, const char *id, int step, long long trained_tokens,
                           int64_t estimated_finish, char *err)
{
    int64_t v[] = {step, trained_tokens, estimated_finish};
    return job_update(s, id, "UPDATE jobs SET last_step=?1, trained_tokens=?2, estimated_finish=?3 WHERE id=?4",
                      v, 3, err);
}

int store_job_set_resolved(store_t *s, const char *id, int n_epochs, int batch_size,
                           double lr_multiplier, double prompt_loss_weight, int64_t seed,
                           int total_steps, char *err)
{
    sqlite3_stmt *st;
    if (store_prep(s, "UPDATE jobs SET resolved=1, r_n_epochs=?, r_batch_size=?, r_lr_mult=?, r_plw=?, r_seed=?, "
                      "total_steps=? WHERE id=?", &st, err))
        return -1;
    sqlite3_bind_int(st, 1, n_epochs);
    sqlite3_bind_int(st, 2, batch_size);
    sqlite3_bind_double(st, 3, lr_multiplier);
    sqlite3_bind_double(st, 4, prompt_loss_weight);
    sqlite3_bind_int64(st, 5, seed);
    sqlite3_bind_int(st, 6, total_steps);
    store_bind_str(st, 7, id);
    if (store_done(s, st, err)) return -1;
    if (sqlite3_changes(store_db(s)) == 0) return job_not_found(err, id);
    return 0;
}

int store_job_by_status(store_t *s, const char *status, store_job_t **out, int *n, char *err)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    if (store_prep(s, "SELECT " JOB_COLS " FROM jobs WHERE status=? ORDER BY seq", &st, err)) return -1;
    store_bind_str(st, 1, status);
    return job_rows(s, st, out, n, err);
}

int store_job_queued(store_t *s, store_job_t **out, int *n, char *err)
{
    return store_job_by_status(s, "queued", out, n, err);
}

int store_job_queue_position(store_t *s, const char *id, int *pos, char *err)
{
    sqlite3_stmt *st;
    if (store_prep(s, "SELECT (SELECT count(*) FROM jobs q WHERE q.status='queued' AND q.seq < j.seq) "
                      "FROM jobs j WHERE j.id=?", &st, err))
        return -1;
    store_bind_str(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *pos = sqlite3_column_int(st, 0);
    store_finish(s, st);
    if (rc == SQLITE_ROW) return 0;
    if (rc != SQLITE_DONE) return store_sqlerr(s, err, "reading the queue");
    return job_not_found(err, id);
}
