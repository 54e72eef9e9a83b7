/* test_store.c: the store's contract, query by query: bootstrap and keys,
 * streaming uploads and their crash leftovers, job state changes, events in
 * order with cursors, checkpoints, models, org isolation through every call
 * that takes an org, and migration of a version-1 database. */
#include "store/store_int.h"
#include "test.h"
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];
static char err[CORE_ERR_LEN];

static store_t *fresh(void)
{
    static int n;
    snprintf(dir, sizeof dir, "/tmp/tunery-test-store-%d-%d", (int)getpid(), n++);
    fs_rm_rf(dir, err);
    store_t *s = NULL;
    int rc = store_open(dir, &s, err);
    CHECKF(rc == 0, "%s", err);
    return s;
}

static void done(store_t *s)
{
    store_close(s);
    fs_rm_rf(dir, err);
}

static void make_org(store_t *s, const char *name, store_org_t *o, char key[STORE_KEY_LEN])
{
    store_key_t k;
    CHECK(store_org_create(s, name, o, err) == 0);
    CHECK(store_key_create(s, o->id, key, &k, err) == 0);
}

static void test_bootstrap_and_keys(void)
{
    store_t *s = fresh();
    char key[STORE_KEY_LEN], key2[STORE_KEY_LEN], p[512];
    int created;
    CHECK(store_bootstrap(s, key, &created, err) == 0);
    CHECK(created == 1);
    CHECK(strlen(key) == 51 && !strncmp(key, "sk-", 3));
    snprintf(p, sizeof p, "%s/initial-api-key", dir);
    struct stat st;
    CHECK(stat(p, &st) == 0 && (st.st_mode & 0777) == 0600);
    char *text = NULL;
    CHECK(fs_read_all(p, &text, NULL, err) == 0);
    CHECK(text && !strncmp(text, key, 51) && text[51] == '\n');
    free(text);
    CHECK(store_bootstrap(s, key2, &created, err) == 0);
    CHECK(created == 0 && key2[0] == 0);

    store_org_t org;
    CHECK(store_key_auth(s, key, &org, err) == 0);
    CHECK_EQ_STR(org.name, "personal");
    CHECK_EQ_STR(org.slug, "personal");
    CHECK(store_key_auth(s, "sk-wrong", &org, err) == STORE_ENOTFOUND);
    CHECK(store_key_auth(s, "", &org, err) == STORE_ENOTFOUND);

    /* keys create --org: new org, slug, duplicate name, list, revoke */
    store_org_t acme;
    CHECK(store_org_create(s, "Acme Co.", &acme, err) == 0);
    CHECK_EQ_STR(acme.slug, "acme-co");
    CHECK(store_org_create(s, "Acme Co.", NULL, err) == STORE_ECONFLICT);
    store_key_t k;
    CHECK(store_key_create(s, "Acme Co.", key2, &k, err) == 0);
    CHECK(strstr(k.hint, "...") != NULL);
    CHECK(store_key_auth(s, key2, &org, err) == 0 && !strcmp(org.id, acme.id));
    store_key_t *keys;
    int n;
    CHECK(store_key_list(s, NULL, &keys, &n, err) == 0 && n == 2);
    free(keys);
    CHECK(store_key_list(s, acme.id, &keys, &n, err) == 0 && n == 1);
    free(keys);
    CHECK(store_key_revoke(s, k.id, err) == 0);
    CHECK(store_key_auth(s, key2, &org, err) == STORE_ENOTFOUND);
    CHECK(store_key_revoke(s, k.id, err) == STORE_ENOTFOUND);
    store_org_t *orgs;
    CHECK(store_org_list(s, &orgs, &n, err) == 0 && n == 2);
    free(orgs);
    done(s);
}

static void test_files(void)
{
    store_t *s = fresh();
    store_org_t o;
    char key[STORE_KEY_LEN];
    make_org(s, "a", &o, key);

    store_blob_t *b;
    CHECK(store_blob_begin(s, &b, err) == 0);
    CHECK(store_blob_write(b, "{\"prompt\":", 10, err) == 0);
    CHECK(store_blob_write(b, "\"x\"}\n", 5, err) == 0);
    CHECK(store_blob_size(b) == 15);
    CHECK(access(store_blob_path(b), F_OK) == 0);
    store_file_t f;
    CHECK(store_blob_commit(s, b, o.id, "../../etc/passwd", "fine-tune", &f, err) == 0);
    CHECK(!strncmp(f.id, "file-", 5) && strlen(f.id) == 29);
    CHECK(f.bytes == 15);
    CHECK_EQ_STR(f.status, "uploaded");
    CHECK_EQ_STR(f.filename, "../../etc/passwd");
    char p[STORE_PATH_LEN];
    store_file_path(s, f.id, p);
    char *data;
    size_t len;
    CHECK(fs_read_all(p, &data, &len, err) == 0 && len == 15 && !memcmp(data, "{\"prompt\":\"x\"}\n", 15));
    free(data);

    /* an aborted upload leaves nothing */
    CHECK(store_blob_begin(s, &b, err) == 0);
    char tmp[STORE_PATH_LEN];
    store_copy(tmp, sizeof tmp, store_blob_path(b));
    store_blob_abort(b);
    CHECK(access(tmp, F_OK) != 0);

    CHECK(store_file_set_status(s, f.id, "processed", "", 1, 0, 42, err) == 0);
    store_file_t g;
    CHECK(store_file_get(s, o.id, f.id, &g, err) == 0);
    CHECK_EQ_STR(g.status, "processed");
    CHECK(g.n_examples == 1 && g.n_tokens == 42);
    CHECK(store_file_get(s, o.id, "file-nope", &g, err) == STORE_ENOTFOUND);
    CHECK(strstr(err, "No such File object: file-nope") != NULL);
    CHECK(store_file_get(s, o.id, "x' OR '1'='1", &g, err) == STORE_ENOTFOUND);

    /* list: newest first by default, ascending on request, cursor, purpose */
    store_file_t ids[5];
    for (int i = 0; i < 5; i++)
        CHECK(store_file_put(s, o.id, "r.csv", i % 2 ? "fine-tune" : "fine-tune-results", "a", 1, &ids[i], err) == 0);
    store_file_t *list;
    int n, more;
    store_page_t pg = {NULL, 2, 0};
    CHECK(store_file_list(s, o.id, NULL, &pg, &list, &n, &more, err) == 0);
    CHECK(n == 2 && more == 1);
    CHECK(n == 2 && !strcmp(list[0].id, ids[4].id) && !strcmp(list[1].id, ids[3].id));
    pg.after = list[1].id;
    char after[STORE_ID_LEN];
    store_copy(after, sizeof after, list[1].id);
    free(list);
    pg.after = after;
    pg.limit = 10;
    CHECK(store_file_list(s, o.id, NULL, &pg, &list, &n, &more, err) == 0);
    CHECK(n == 4 && more == 0);   /* ids[2], ids[1], ids[0], f */
    CHECK(n == 4 && !strcmp(list[3].id, f.id));
    free(list);
    store_page_t asc = {NULL, 0, 1};
    CHECK(store_file_list(s, o.id, "fine-tune-results", &asc, &list, &n, &more, err) == 0);
    CHECK(n == 3 && !strcmp(list[0].id, ids[0].id) && !strcmp(list[2].id, ids[4].id));
    free(list);

    /* import, delete */
    store_file_t imp;
    CHECK(store_file_import(s, o.id, "compiled_results.csv", "fine-tune-results", p, &imp, err) == 0);
    CHECK(imp.bytes == 15);
    CHECK(store_file_delete(s, o.id, f.id, err) == 0);
    CHECK(access(p, F_OK) != 0);
    CHECK(store_file_delete(s, o.id, f.id, err) == STORE_ENOTFOUND);
    done(s);
}

static void test_recover_blobs(void)
{
    store_t *s = fresh();
    store_org_t o;
    char key[STORE_KEY_LEN], p[STORE_PATH_LEN];
    make_org(s, "a", &o, key);
    store_file_t f;
    CHECK(store_file_put(s, o.id, "x", "fine-tune", "abc", 3, &f, err) == 0);
    /* what a kill -9 leaves: a half temp, and a renamed blob whose row never landed */
    store_blob_t *b;
    CHECK(store_blob_begin(s, &b, err) == 0);
    CHECK(store_blob_write(b, "half", 4, err) == 0);
    snprintf(p, sizeof p, "%s/files/file-AAAAAAAAAAAAAAAAAAAAAAAA", dir);
    CHECK(fs_write_atomic(p, "x", 1, err) == 0);
    CHECK(store_recover_blobs(s, err) == 2);
    CHECK(access(store_blob_path(b), F_OK) != 0);
    CHECK(access(p, F_OK) != 0);
    store_file_path(s, f.id, p);
    CHECK(access(p, F_OK) == 0);
    store_blob_abort(b);
    done(s);
}

static void new_job(store_t *s, const char *org_id, int api, store_job_t *j)
{
    memset(j, 0, sizeof *j);
    j->api = api;
    store_copy(j->org_id, sizeof j->org_id, org_id);
    store_copy(j->model, sizeof j->model, "curie");
    store_copy(j->training_file, sizeof j->training_file, "file-x");
    j->n_epochs = 4;
    j->prompt_loss_weight = 0.01;
    CHECKF(store_job_create(s, j, err) == 0, "%s", err);
}

static void test_jobs(void)
{
    store_t *s = fresh();
    store_org_t o;
    char key[STORE_KEY_LEN];
    make_org(s, "a", &o, key);
    store_job_t j, g;
    new_job(s, o.id, STORE_API_LEGACY, &j);
    CHECK(!strncmp(j.id, "ft-", 3) && strlen(j.id) == 27);
    CHECK(strlen(j.model_tag) == 8);
    CHECK_EQ_STR(j.status, "validating_files");
    CHECK_EQ_STR(store_job_wire_status(&j), "pending");

    store_job_t k;
    memset(&k, 0, sizeof k);
    k.api = STORE_API_JOBS;
    store_copy(k.org_id, sizeof k.org_id, o.id);
    store_copy(k.model, sizeof k.model, "babbage-002");
    k.metadata = "{\"team\":\"x\"}";
    k.method = "{\"type\":\"supervised\"}";
    CHECK(store_job_create(s, &k, err) == 0);
    CHECK(!strncmp(k.id, "ftjob-", 6));
    CHECK(store_job_get(s, o.id, k.id, &g, err) == 0);
    CHECK(g.metadata && !strcmp(g.metadata, "{\"team\":\"x\"}"));
    CHECK(g.integrations == NULL);
    CHECK_EQ_STR(store_job_wire_status(&g), "validating_files");
    store_job_clear(&g);

    /* transitions */
    CHECK(store_job_transition(s, j.id, "validating_files", "queued", err) == 0);
    CHECK(store_job_transition(s, j.id, "validating_files", "queued", err) == STORE_ECONFLICT);
    CHECK(strstr(err, "queued") != NULL);
    int pos = -1;
    CHECK(store_job_queue_position(s, j.id, &pos, err) == 0 && pos == 0);
    CHECK(store_job_transition(s, j.id, "queued", "running", err) == 0);
    CHECK(store_job_set_worker(s, j.id, 1234, err) == 0);
    CHECK(store_job_set_resolved(s, j.id, 4, 1, 0.1, 0.01, 77, 40, err) == 0);
    CHECK(store_job_set_progress(s, j.id, 10, 1000, 0, err) == 0);
    CHECK(store_job_get(s, NULL, j.id, &g, err) == 0);
    CHECK(g.started_at > 0 && g.worker_pid == 1234 && g.attempts == 1);
    CHECK(g.resolved && g.r_batch_size == 1 && g.r_seed == 77 && g.total_steps == 40);
    CHECK(g.last_step == 10 && g.trained_tokens == 1000);
    CHECK_EQ_STR(store_job_wire_status(&g), "running");
    store_job_clear(&g);
    CHECK(store_job_succeed(s, j.id, "curie:ft-a-2023", "file-r", 4000, err) == 0);
    CHECK(store_job_succeed(s, j.id, "curie:ft-a-2023", "file-r", 4000, err) == STORE_ECONFLICT);
    CHECK(store_job_fail(s, j.id, "x", "y", err) == STORE_ECONFLICT);
    CHECK(store_job_get(s, o.id, j.id, &g, err) == 0);
    CHECK_EQ_STR(g.status, "succeeded");
    CHECK(g.finished_at > 0);
    CHECK_EQ_STR(g.fine_tuned_model, "curie:ft-a-2023");
    store_job_clear(&g);

    /* fail from an active state */
    store_job_t f;
    new_job(s, o.id, STORE_API_LEGACY, &f);
    CHECK(store_job_fail(s, f.id, "worker_crashed", "the worker was killed by signal 9", err) == 0);
    CHECK(store_job_get(s, o.id, f.id, &g, err) == 0);
    CHECK_EQ_STR(g.status, "failed");
    CHECK_EQ_STR(g.error_message, "the worker was killed by signal 9");
    store_job_clear(&g);

    /* delete: only terminal */
    store_job_t a;
    new_job(s, o.id, STORE_API_LEGACY, &a);
    CHECK(store_job_delete(s, o.id, a.id, err) == STORE_ECONFLICT);
    CHECK(store_event_add(s, f.id, NULL, NULL, "Fine-tune failed", NULL, NULL, err) == 0);
    CHECK(store_job_delete(s, o.id, f.id, err) == 0);
    CHECK(store_job_get(s, o.id, f.id, &g, err) == STORE_ENOTFOUND);
    done(s);
}

static void test_job_list_and_queue(void)
{
    store_t *s = fresh();
    store_org_t o;
    char key[STORE_KEY_LEN];
    make_org(s, "a", &o, key);
    store_job_t js[7];
    for (int i = 0; i < 7; i++) {
        new_job(s, o.id, i == 6 ? STORE_API_JOBS : STORE_API_LEGACY, &js[i]);
        CHECK(store_job_transition(s, js[i].id, NULL, "queued", err) == 0);
    }
    /* queue positions follow creation order */
    for (int i = 0; i < 7; i++) {
        int pos = -1;
        CHECK(store_job_queue_position(s, js[i].id, &pos, err) == 0 && pos == i);
    }
    CHECK(store_job_transition(s, js[0].id, "queued", "running", err) == 0);
    int pos = -1;
    CHECK(store_job_queue_position(s, js[3].id, &pos, err) == 0 && pos == 2);
    store_job_t *q;
    int n, more;
    CHECK(store_job_queued(s, &q, &n, err) == 0 && n == 6);
    CHECK(n == 6 && !strcmp(q[0].id, js[1].id) && !strcmp(q[5].id, js[6].id));
    store_job_free(q, n);

    /* cursor pages visit every legacy job exactly once, newest first */
    int seen[7] = {0}, pages = 0;
    char after[STORE_ID_LEN] = "";
    do {
        store_page_t pg = {after, 2, 0};
        CHECK(store_job_list(s, o.id, STORE_API_LEGACY, &pg, NULL, NULL, &q, &n, &more, err) == 0);
        for (int i = 0; i < n; i++)
            for (int k = 0; k < 7; k++)
                if (!strcmp(q[i].id, js[k].id)) seen[k]++;
        if (n) store_copy(after, sizeof after, q[n - 1].id);
        store_job_free(q, n);
        pages++;
    } while (more && pages < 10);
    CHECK(pages == 3);
    for (int k = 0; k < 6; k++) CHECK(seen[k] == 1);
    CHECK(seen[6] == 0);

    /* metadata filter (current API) */
    store_job_t m;
    memset(&m, 0, sizeof m);
    m.api = STORE_API_JOBS;
    store_copy(m.org_id, sizeof m.org_id, o.id);
    m.metadata = "{\"team\":\"red\"}";
    CHECK(store_job_create(s, &m, err) == 0);
    CHECK(store_job_list(s, o.id, STORE_API_JOBS, NULL, "team", "red", &q, &n, &more, err) == 0);
    CHECK(n == 1 && !strcmp(q[0].id, m.id));
    store_job_free(q, n);
    CHECK(store_job_list(s, o.id, STORE_API_JOBS, NULL, "team", "blue", &q, &n, &more, err) == 0 && n == 0);
    store_job_free(q, n);
    CHECK(store_job_list(s, o.id, STORE_API_JOBS, NULL, NULL, NULL, &q, &n, &more, err) == 0 && n == 2);
    store_job_free(q, n);
    done(s);
}

static void test_events(void)
{
    store_t *s = fresh();
    store_org_t o;
    char key[STORE_KEY_LEN];
    make_org(s, "a", &o, key);
    store_job_t j, other;
    new_job(s, o.id, STORE_API_JOBS, &j);
    new_job(s, o.id, STORE_API_JOBS, &other);
    int fd = store_event_watch(s, err);
    CHECK(fd >= 0);
    store_event_watch_drain(fd);
    int64_t seqs[25];
    char msg[64];
    for (int i = 0; i < 25; i++) {
        snprintf(msg, sizeof msg, "event %d", i);
        CHECK(store_event_add(s, i % 5 == 4 ? other.id : j.id, NULL, i % 3 ? "message" : "metrics", msg,
                              i % 3 ? NULL : "{\"step\":1}", &seqs[i], err) == 0);
        if (i) CHECK(seqs[i] > seqs[i - 1]);
    }
    char buf[64];
    CHECK(read(fd, buf, sizeof buf) > 0);   /* the watcher woke */
    close(fd);
    CHECK(store_event_add(s, "ft-none", NULL, NULL, "x", NULL, NULL, err) == STORE_ENOTFOUND);

    store_event_t *ev;
    int n, more;
    CHECK(store_event_since(s, o.id, j.id, 0, 0, &ev, &n, err) == 0 && n == 20);
    CHECK(n == 20 && !strcmp(ev[0].message, "event 0") && !strcmp(ev[19].message, "event 23"));
    CHECK(n == 20 && !strcmp(ev[0].type, "metrics") && !strcmp(ev[0].data, "{\"step\":1}"));
    CHECK(n == 20 && !strcmp(ev[1].type, "message") && ev[1].data[0] == 0 && !strcmp(ev[1].level, "info"));
    CHECK(n == 20 && !strncmp(ev[0].id, "ftevent-", 8));
    int64_t mid = n == 20 ? ev[9].seq : 0;
    free(ev);
    CHECK(store_event_since(s, o.id, j.id, mid, 3, &ev, &n, err) == 0 && n == 3);
    CHECK(n == 3 && ev[0].seq > mid);
    free(ev);
    /* newest first, cursor pages, no duplicates */
    char after[STORE_ID_LEN] = "";
    int total = 0, pages = 0;
    int64_t last = INT64_MAX;
    do {
        store_page_t pg = {after, 7, 0};
        CHECK(store_event_list(s, o.id, j.id, &pg, &ev, &n, &more, err) == 0);
        for (int i = 0; i < n; i++) {
            CHECK(ev[i].seq < last);
            last = ev[i].seq;
        }
        total += n;
        if (n) store_copy(after, sizeof after, ev[n - 1].id);
        free(ev);
        pages++;
    } while (more && pages < 10);
    CHECK(total == 20 && pages == 3);
    int exists = 0;
    CHECK(store_event_exists(s, j.id, "event 3", &exists, err) == 0 && exists);
    CHECK(store_event_exists(s, j.id, "event 4", &exists, err) == 0 && !exists);
    int64_t top;
    CHECK(store_event_last_seq(s, &top, err) == 0 && top == seqs[24]);
    /* a worker's event lands while the job is active, never after it ended */
    CHECK(store_event_add_active(s, other.id, NULL, NULL, "while active", NULL, NULL, err) == 0);
    CHECK(store_job_fail(s, other.id, "test", "ended", err) == 0);
    CHECK(store_event_add_active(s, other.id, NULL, NULL, "after the end", NULL, NULL, err) == 1);
    CHECK(store_event_exists(s, other.id, "while active", &exists, err) == 0 && exists);
    CHECK(store_event_exists(s, other.id, "after the end", &exists, err) == 0 && !exists);
    CHECK(store_event_add(s, other.id, NULL, NULL, "terminal line", NULL, NULL, err) == 0);
    done(s);
}

static void test_checkpoints_and_models(void)
{
    store_t *s = fresh();
    store_org_t o;
    char key[STORE_KEY_LEN];
    make_org(s, "a", &o, key);
    store_job_t j;
    new_job(s, o.id, STORE_API_JOBS, &j);
    for (int step = 10; step <= 40; step += 10) {
        store_checkpoint_t c;
        memset(&c, 0, sizeof c);
        store_copy(c.job_id, sizeof c.job_id, j.id);
        c.step = step;
        snprintf(c.model, sizeof c.model, "ft:curie:a::%s:ckpt-step-%d", j.model_tag, step);
        snprintf(c.dir, sizeof c.dir, "%s/jobs/%s/ckpt-step-%d", dir, j.id, step);
        c.train_loss = 1.0 / step;
        c.train_mean_token_accuracy = 0.5;
        c.valid_loss = c.valid_mean_token_accuracy = NAN;
        c.full_valid_loss = c.full_valid_mean_token_accuracy = NAN;
        CHECK(store_checkpoint_add(s, &c, err) == 0);
        CHECK(!strncmp(c.id, "ftckpt_", 7));
    }
    store_checkpoint_t c, *cs;
    CHECK(store_checkpoint_last(s, j.id, &c, err) == 0 && c.step == 40);
    CHECK_NEAR(c.train_loss, 0.025, 1e-12);
    CHECK(isnan(c.valid_loss));
    int n, more;
    store_page_t pg = {NULL, 3, 0};
    CHECK(store_checkpoint_list(s, o.id, j.id, &pg, &cs, &n, &more, err) == 0);
    CHECK(n == 3 && more == 1 && cs[0].step == 40 && cs[2].step == 20);
    char after[STORE_ID_LEN];
    store_copy(after, sizeof after, n == 3 ? cs[2].id : "");
    free(cs);
    pg.after = after;
    CHECK(store_checkpoint_list(s, o.id, j.id, &pg, &cs, &n, &more, err) == 0);
    CHECK(n == 1 && more == 0 && cs[0].step == 10);
    free(cs);
    char name[STORE_NAME_LEN];
    snprintf(name, sizeof name, "ft:curie:a::%s:ckpt-step-20", j.model_tag);
    CHECK(store_checkpoint_by_model(s, o.id, name, &c, err) == 0 && c.step == 20);
    store_checkpoint_t *cm;
    CHECK(store_checkpoint_models(s, o.id, &cm, &n, err) == 0 && n == 4);
    CHECK(n == 4 && cm[0].step == 10 && cm[3].step == 40 && strstr(cm[3].model, ":ckpt-step-40") != NULL);
    free(cm);
    CHECK(store_checkpoint_models(s, "org-other", &cm, &n, err) == 0 && n == 0);
    free(cm);
    store_job_t cj;   /* a cancelled job's checkpoints are not models */
    new_job(s, o.id, STORE_API_JOBS, &cj);
    store_checkpoint_t cc;
    memset(&cc, 0, sizeof cc);
    store_copy(cc.job_id, sizeof cc.job_id, cj.id);
    cc.step = 5;
    store_copy(cc.model, sizeof cc.model, "ft:curie:a::zzz:ckpt-step-5");
    CHECK(store_checkpoint_add(s, &cc, err) == 0);
    CHECK(store_checkpoint_models(s, o.id, &cm, &n, err) == 0 && n == 5);
    free(cm);
    CHECK(store_job_transition(s, cj.id, NULL, "cancelled", err) == 0);
    CHECK(store_checkpoint_models(s, o.id, &cm, &n, err) == 0 && n == 4);
    free(cm);
    CHECK(store_checkpoint_delete(s, j.id, 20, err) == 0);
    CHECK(store_checkpoint_by_model(s, o.id, name, &c, err) == STORE_ENOTFOUND);
    CHECK(store_checkpoint_list(s, o.id, j.id, NULL, &cs, &n, &more, err) == 0 && n == 3);
    free(cs);
    CHECK(store_checkpoint_delete(s, j.id, -1, err) == 0);
    CHECK(store_checkpoint_last(s, j.id, &c, err) == STORE_ENOTFOUND);

    store_model_t m, g;
    memset(&m, 0, sizeof m);
    store_copy(m.id, sizeof m.id, "curie:ft-a-2023-04-18-09-48-38");
    store_copy(m.org_id, sizeof m.org_id, o.id);
    store_copy(m.base, sizeof m.base, "curie");
    store_copy(m.parent, sizeof m.parent, "curie");
    store_copy(m.job_id, sizeof m.job_id, j.id);
    snprintf(m.dir, sizeof m.dir, "%s/models/%s", dir, m.id);
    CHECK(fs_mkdir_p(m.dir, 0755, err) == 0);
    CHECK(store_model_add(s, &m, err) == 0);
    CHECK(store_model_add(s, &m, err) == STORE_ECONFLICT);
    CHECK(store_model_get(s, o.id, m.id, &g, err) == 0 && !strcmp(g.dir, m.dir) && g.created > 0);
    store_model_t *ms;
    CHECK(store_model_list(s, o.id, &ms, &n, err) == 0 && n == 1);
    free(ms);
    CHECK(store_model_delete(s, o.id, "curie", err) == STORE_ENOTFOUND);
    CHECK(store_model_delete(s, o.id, m.id, err) == 0);
    CHECK(access(m.dir, F_OK) != 0);
    CHECK(store_model_get(s, o.id, m.id, &g, err) == STORE_ENOTFOUND);
    done(s);
}

/* Org B must not reach org A's objects through any call that takes an org. */
static void test_isolation(void)
{
    store_t *s = fresh();
    store_org_t a, b;
    char ka[STORE_KEY_LEN], kb[STORE_KEY_LEN];
    make_org(s, "a", &a, ka);
    make_org(s, "b", &b, kb);
    store_file_t f, gf;
    CHECK(store_file_put(s, a.id, "t.jsonl", "fine-tune", "x", 1, &f, err) == 0);
    store_job_t j, gj;
    new_job(s, a.id, STORE_API_JOBS, &j);
    CHECK(store_event_add(s, j.id, NULL, NULL, "hello", NULL, NULL, err) == 0);
    store_checkpoint_t c, gc;
    memset(&c, 0, sizeof c);
    store_copy(c.job_id, sizeof c.job_id, j.id);
    c.step = 1;
    store_copy(c.model, sizeof c.model, "ft:x:a::t:ckpt-step-1");
    CHECK(store_checkpoint_add(s, &c, err) == 0);
    store_model_t m, gm;
    memset(&m, 0, sizeof m);
    store_copy(m.id, sizeof m.id, "ft:x:a::t");
    store_copy(m.org_id, sizeof m.org_id, a.id);
    CHECK(store_model_add(s, &m, err) == 0);

    CHECK(store_file_get(s, b.id, f.id, &gf, err) == STORE_ENOTFOUND);
    CHECK(store_file_delete(s, b.id, f.id, err) == STORE_ENOTFOUND);
    CHECK(store_file_get(s, a.id, f.id, &gf, err) == 0);
    store_file_t *fl;
    int n, more;
    CHECK(store_file_list(s, b.id, NULL, NULL, &fl, &n, &more, err) == 0 && n == 0);
    free(fl);
    /* a cursor naming another org's file does not position the listing */
    store_page_t pg = {f.id, 10, 0};
    CHECK(store_file_list(s, b.id, NULL, &pg, &fl, &n, &more, err) == 0 && n == 0);
    free(fl);
    CHECK(store_job_get(s, b.id, j.id, &gj, err) == STORE_ENOTFOUND);
    CHECK(store_job_delete(s, b.id, j.id, err) == STORE_ENOTFOUND);
    store_job_t *jl;
    CHECK(store_job_list(s, b.id, STORE_API_JOBS, NULL, NULL, NULL, &jl, &n, &more, err) == 0 && n == 0);
    store_job_free(jl, n);
    store_event_t *ev;
    CHECK(store_event_since(s, b.id, j.id, 0, 0, &ev, &n, err) == STORE_ENOTFOUND);
    CHECK(store_event_list(s, b.id, j.id, NULL, &ev, &n, &more, err) == STORE_ENOTFOUND);
    CHECK(store_event_since(s, a.id, j.id, 0, 0, &ev, &n, err) == 0 && n == 1);
    free(ev);
    store_checkpoint_t *cl;
    CHECK(store_checkpoint_list(s, b.id, j.id, NULL, &cl, &n, &more, err) == STORE_ENOTFOUND);
    CHECK(store_checkpoint_by_model(s, b.id, c.model, &gc, err) == STORE_ENOTFOUND);
    CHECK(store_checkpoint_by_model(s, a.id, c.model, &gc, err) == 0);
    CHECK(store_model_get(s, b.id, m.id, &gm, err) == STORE_ENOTFOUND);
    CHECK(store_model_delete(s, b.id, m.id, err) == STORE_ENOTFOUND);
    store_model_t *ml;
    CHECK(store_model_list(s, b.id, &ml, &n, err) == 0 && n == 0);
    free(ml);
    CHECK(store_model_get(s, a.id, m.id, &gm, err) == 0);
    store_key_t *kl;
    CHECK(store_key_list(s, b.id, &kl, &n, err) == 0 && n == 1 && !strcmp(kl[0].org_id, b.id));
    free(kl);
    done(s);
}

/* A store written by schema 1 (the legacy-only service) opens, migrates to
 * the current version, and keeps its rows. */
static void test_migration_from_v1(void)
{
    snprintf(dir, sizeof dir, "/tmp/tunery-test-store-%d-mig", (int)getpid());
    fs_rm_rf(dir, err);
    CHECK(fs_mkdir_p(dir, 0755, err) == 0);
    char p[512];
    snprintf(p, sizeof p, "%s/tunery.db", dir);
    sqlite3 *db;
    CHECK(sqlite3_open(p, &db) == SQLITE_OK);
    CHECK(store_db_migrate(db, 1, err) == 0);
    CHECK(sqlite3_exec(db,
        "INSERT INTO orgs VALUES('org-1','personal','personal',1);"
        "INSERT INTO jobs(id, org_id, model, training_file, status, created_at, updated_at) "
        "  VALUES('ft-old','org-1','curie','file-1','succeeded',5,6);"
        "INSERT INTO events(id, job_id, created_at, level, message) VALUES('ev-1','ft-old',5,'info','Created fine-tune: ft-old');",
        NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_stmt *st;
    CHECK(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK);
    CHECK(sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 1);
    sqlite3_finalize(st);
    sqlite3_close(db);

    store_t *s = NULL;
    CHECK(store_open(dir, &s, err) == 0);
    if (!s) return;
    CHECK(sqlite3_prepare_v2(store_db(s), "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK);
    CHECK(sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == store_schema_version());
    sqlite3_finalize(st);
    store_job_t j;
    CHECK(store_job_get(s, "org-1", "ft-old", &j, err) == 0);
    CHECK(j.api == STORE_API_LEGACY && !strcmp(j.status, "succeeded") && j.metadata == NULL);
    store_job_clear(&j);
    store_event_t *ev;
    int n;
    CHECK(store_event_since(s, "org-1", "ft-old", 0, 0, &ev, &n, err) == 0 && n == 1);
    CHECK(n == 1 && !strcmp(ev[0].type, "message") && ev[0].data[0] == 0);
    free(ev);
    store_checkpoint_t c;
    CHECK(store_checkpoint_last(s, "ft-old", &c, err) == STORE_ENOTFOUND);
    store_close(s);
    /* a second open is a no-op */
    CHECK(store_open(dir, &s, err) == 0);
    store_close(s);
    fs_rm_rf(dir, err);
}

/* One store_t shared by threads (the server's case): each thread gets its
 * own connection, so transactions of different threads never mix. */
typedef struct { store_t *s; const char *job_id; int ok; } thr_arg_t;

static void *thr_events(void *p)
{
    thr_arg_t *a = p;
    char e2[CORE_ERR_LEN];
    for (int i = 0; i < 50; i++) a->ok += store_event_add(a->s, a->job_id, NULL, NULL, "x", NULL, NULL, e2) == 0;
    return NULL;
}

static void test_threads_share_a_store(void)
{
    store_t *s = fresh();
    store_org_t o;
    char key[STORE_KEY_LEN];
    make_org(s, "a", &o, key);
    store_job_t j;
    new_job(s, o.id, STORE_API_LEGACY, &j);
    pthread_t t[6];
    thr_arg_t a[6];
    for (int i = 0; i < 6; i++) {
        a[i] = (thr_arg_t){s, j.id, 0};
        pthread_create(&t[i], NULL, thr_events, &a[i]);
    }
    int ok = 0;
    for (int i = 0; i < 6; i++) {
        pthread_join(t[i], NULL);
        ok += a[i].ok;
    }
    CHECK(ok == 300);
    store_event_t *ev;
    int n;
    CHECK(store_event_since(s, o.id, j.id, 0, 0, &ev, &n, err) == 0 && n == 300);
    for (int i = 1; i < n; i++) CHECK(ev[i].seq > ev[i - 1].seq);
    free(ev);
    done(s);
}

/* Cached statements must not pin an old snapshot: a connection that read
 * a job sees another connection's (another process's) later write. */
static void test_sees_other_writers(void)
{
    store_t *s = fresh();
    store_t *w = NULL;
    CHECK(store_open(dir, &w, err) == 0);
    store_org_t o;
    char key[STORE_KEY_LEN];
    make_org(s, "a", &o, key);
    store_job_t j, g;
    new_job(s, o.id, STORE_API_LEGACY, &j);
    for (int i = 0; i < 3; i++) {
        CHECK(store_job_get(s, o.id, j.id, &g, err) == 0);
        store_job_clear(&g);
    }
    CHECK(store_job_transition(w, j.id, NULL, "queued", err) == 0);
    CHECK(store_job_get(s, o.id, j.id, &g, err) == 0);
    CHECK_EQ_STR(g.status, "queued");
    store_job_clear(&g);
    /* and a listing stopped early (limit) does not hold a read open either */
    store_job_t *l;
    int n, more;
    store_page_t pg = {NULL, 1, 0};
    new_job(s, o.id, STORE_API_LEGACY, &g);
    CHECK(store_job_list(s, o.id, STORE_API_LEGACY, &pg, NULL, NULL, &l, &n, &more, err) == 0 && n == 1 && more);
    store_job_free(l, n);
    CHECK(store_job_transition(w, j.id, NULL, "running", err) == 0);
    CHECK(store_job_get(s, o.id, j.id, &g, err) == 0);
    CHECK_EQ_STR(g.status, "running");
    store_job_clear(&g);
    store_close(w);
    done(s);
}

/* A follower in one process wakes when another process writes an event,
 * through the inotify tick, well inside the 100 ms the server promises. The
 * child sends the monotonic time just before its write through a pipe, so
 * what is measured is write -> wake-up, not the child's start-up. */
static void test_watch_across_processes(void)
{
    store_t *s = fresh();
    store_org_t o;
    char key[STORE_KEY_LEN];
    make_org(s, "a", &o, key);
    store_job_t j;
    new_job(s, o.id, STORE_API_LEGACY, &j);
    int fd = store_event_watch(s, err);
    CHECK(fd >= 0);
    if (fd < 0) { done(s); return; }
    store_event_watch_drain(fd);
    double lat[5];
    for (int round = 0; round < 5; round++) {
        int pp[2];
        CHECK(pipe(pp) == 0);
        pid_t pid = fork();
        if (pid == 0) {
            store_t *c;
            char e2[CORE_ERR_LEN];
            if (store_open(dir, &c, e2)) _exit(1);
            double t = time_mono();
            int rc = store_event_add(c, j.id, NULL, NULL, "from a child", NULL, NULL, e2);
            _exit(rc || write(pp[1], &t, sizeof t) != sizeof t);
        }
        close(pp[1]);
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, 5000);
        double woke = time_mono(), t = woke;
        CHECK(r == 1);
        CHECK(read(pp[0], &t, sizeof t) == sizeof t);
        close(pp[0]);
        int ws;
        waitpid(pid, &ws, 0);
        CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
        store_event_watch_drain(fd);
        lat[round] = woke - t;
    }
    for (int a = 0; a < 5; a++)
        for (int b = a + 1; b < 5; b++)
            if (lat[b] < lat[a]) { double x = lat[a]; lat[a] = lat[b]; lat[b] = x; }
    /* the median: one scheduling hiccup of a loaded machine is not the mechanism */
    CHECKF(lat[2] < 0.1, "median wake-up %.1f ms", lat[2] * 1e3);
    printf("  cross-process event write -> wake-up: median %.2f ms, worst %.2f ms of 5\n", lat[2] * 1e3, lat[4] * 1e3);
    close(fd);
    store_event_t *ev;
    int n;
    CHECK(store_event_since(s, o.id, j.id, 0, 0, &ev, &n, err) == 0 && n == 5);
    free(ev);
    done(s);
}

static void test_naming(void)
{
    char out[STORE_NAME_LEN];
    store_slugify("Custom model_Name!", out, sizeof out);
    CHECK_EQ_STR(out, "custom-model-name");
    store_slugify("  --Hello,   World--  ", out, sizeof out);
    CHECK_EQ_STR(out, "hello-world");
    store_model_name_legacy("curie", "personal", NULL, 1681811318, out);
    CHECK_EQ_STR(out, "curie:ft-personal-2023-04-18-09-48-38");
    store_model_name_legacy("ada", "your-org", "Custom Model Name", 1644898864, out);
    CHECK_EQ_STR(out, "ada:ft-your-org:custom-model-name-2022-02-15-04-21-04");
    store_model_name_ft("gpt2", "openai", "", "7p4lURel", out);
    CHECK_EQ_STR(out, "ft:gpt2:openai::7p4lURel");
    store_model_name_ft("gpt2", "openai", "custom-model-name", "7p4lURel", out);
    CHECK_EQ_STR(out, "ft:gpt2:openai:custom-model-name:7p4lURel");
    store_model_root("curie:ft-personal-2023-04-18-09-48-38", out);
    CHECK_EQ_STR(out, "curie");
    store_model_root("ft:gpt2:openai::7p4lURel:ckpt-step-3", out);
    CHECK_EQ_STR(out, "gpt2");
    store_model_root("davinci", out);
    CHECK_EQ_STR(out, "davinci");
}

int main(void)
{
    RUN(test_bootstrap_and_keys);
    RUN(test_files);
    RUN(test_recover_blobs);
    RUN(test_jobs);
    RUN(test_job_list_and_queue);
    RUN(test_events);
    RUN(test_checkpoints_and_models);
    RUN(test_isolation);
    RUN(test_migration_from_v1);
    RUN(test_threads_share_a_store);
    RUN(test_sees_other_writers);
    RUN(test_watch_across_processes);
    RUN(test_naming);
    return test_summary();
}
