/* models.c: /v1/models. The four legacy base models (owned by "openai",
 * served from the shipped or imported model directories) plus the caller's
 * fine-tuned models and, from the current API, the checkpoints its jobs keep
 * as models (ft:...:ckpt-step-N). Ids contain ':' and arrive encoded or not;
 * the router has already decoded them. Only fine-tuned models and the
 * checkpoints of finished jobs can be deleted.
 *
 * GET /v1/models is the request clients make most (every SDK's "does my
 * key work?"). The bases and compatibility names are the same for everyone
 * and change only when an aliases.json does, so their serialized JSON is
 * kept and rebuilt only when the alias list differs from the one it was
 * built from; a request serializes only its org's own models. A permission
 * id is derived from the model id (sha256), so a model shows the same
 * modelperm-... in every response, as it did from OpenAI.
 */
#define TUNERY_SERVER_INTERNAL
#include "server/server.h"
#include "store/store.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* created values of the original legacy models */
static const struct { const char *id; long long created; } bases[] = {
    {"ada", 1649357491}, {"babbage", 1649358449}, {"curie", 1649359874}, {"davinci", 1649364042},
};

/* "modelperm-" and 24 letters and digits from sha256(id): stable across
 * requests and restarts, distinct per model. */
void models_perm_id(const char *id, char out[40])
{
    static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    uint8_t h[32];
    sha256(id, strlen(id), h);
    memcpy(out, "modelperm-", 10);
    for (int i = 0; i < 24; i++) out[10 + i] = alnum[h[i] % 62];
    out[34] = 0;
}

static json_t *model_json(const char *id, long long created, const char *owned_by, const char *root, const char *parent)
{
    char perm_id[40];
    models_perm_id(id, perm_id);
    json_t *perm = json_pack("{s:s, s:s, s:I, s:b, s:b, s:b, s:b, s:b, s:b, s:s, s:n, s:b}",
                             "id", perm_id, "object", "model_permission", "created", (json_int_t)created,
                             "allow_create_engine", 0, "allow_sampling", 1, "allow_logprobs", 1,
                             "allow_search_indices", 0, "allow_view", 1, "allow_fine_tuning", parent == NULL,
                             "organization", "*", "group", "is_blocking", 0);
    return json_pack("{s:s, s:s, s:I, s:s, s:[o], s:s, s:o}", "id", id, "object", "model",
                     "created", (json_int_t)created, "owned_by", owned_by, "permission", perm,
                     "root", root, "parent", parent ? json_string(parent) : json_null());
}

static json_t *base_json(const char *id)
{
    for (size_t i = 0; i < sizeof bases / sizeof *bases; i++)
        if (!strcmp(bases[i].id, id)) return model_json(id, bases[i].created, "openai", id, NULL);
    return NULL;
}

/* A compatibility name (aliases.json, model_kind.c): listed as tunery's
 * own, saying which local weights it names, so nobody mistakes it for
 * OpenAI's model. NULL if id is not an alias. */
static json_t *alias_entry_json(const char *id, const char *target, int chat)
{
    long long created = 0;
    for (size_t i = 0; i < sizeof bases / sizeof *bases; i++)
        if (!strcmp(bases[i].id, target)) created = bases[i].created;
    json_t *o = model_json(id, created, "tunery", target, NULL);
    json_object_set_new(o, "tunery", json_pack("{s:s, s:s, s:s}", "alias_of", target, "format", chat ? "chat" : "prompt-completion",
                                               "note", "a compatibility name for a small model trained by tunery, not OpenAI's model"));
    return o;
}

static json_t *alias_json(const char *id)
{
    char target[CORE_ALIAS_LEN], err[CORE_ERR_LEN];
    int chat = 0;
    return core_model_alias(id, target, &chat, err) ? NULL : alias_entry_json(id, target, chat);
}

static json_t *ft_json(const store_model_t *m)
{
    return model_json(m->id, m->created, m->org_id, m->base, m->parent[0] ? m->parent : m->base);
}

/* A checkpoint's parent is the model its job started from. */
static json_t *ckpt_json(store_t *st, const char *org_id, const store_checkpoint_t *c)
{
    char root[STORE_NAME_LEN], err[CORE_ERR_LEN];
    store_model_root(c->model, root);
    store_job_t j;
    json_t *o;
    if (store_job_get(st, org_id, c->job_id, &j, err) == 0) {
        o = model_json(c->model, c->created_at, org_id, root, j.model);
        store_job_clear(&j);
    } else {
        o = model_json(c->model, c->created_at, org_id, root, root);
    }
    return o;
}

/* The shared part of the list: the bases, then every alias, serialized
 * and comma-separated, with the alias list it was built from. */
static struct {
    pthread_mutex_t mu;
    char *json;
    size_t len;
    core_alias_t *aliases;
    int naliases;
    long builds;
} shared = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, NULL, 0, 0};

static int same_aliases(const core_alias_t *a, int na, const core_alias_t *b, int nb)
{
    if (na != nb) return 0;
    for (int i = 0; i < na; i++)
        if (strcmp(a[i].name, b[i].name) || strcmp(a[i].target, b[i].target) || a[i].is_chat != b[i].is_chat) return 0;
    return 1;
}

/* Append o (taken) serialized, after a comma unless b is empty. */
static int append_json(buf_t *b, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s) return -1;
    int rc = (b->len && buf_append(b, ",", 1)) || buf_appends(b, s) ? -1 : 0;
    free(s);
    return rc;
}

/* Append the shared part to out, rebuilding it if al differs (takes al). */
static int append_shared(buf_t *out, core_alias_t *al, int na)
{
    int rc = 0;
    pthread_mutex_lock(&shared.mu);
    if (!shared.json || !same_aliases(al, na, shared.aliases, shared.naliases)) {
        buf_t b = {0};
        for (size_t i = 0; i < sizeof bases / sizeof *bases && !rc; i++) rc = append_json(&b, base_json(bases[i].id));
        for (int i = 0; i < na && !rc; i++) rc = append_json(&b, alias_entry_json(al[i].name, al[i].target, al[i].is_chat));
        if (rc) {
            buf_free(&b);
        } else {
            free(shared.json);
            free(shared.aliases);
            shared.json = b.data, shared.len = b.len;
            shared.aliases = al, shared.naliases = na;
            al = NULL;
            shared.builds++;
        }
    }
    if (!rc) rc = buf_append(out, shared.json, shared.len);
    pthread_mutex_unlock(&shared.mu);
    free(al);
    return rc;
}

long models_list_builds(void)
{
    pthread_mutex_lock(&shared.mu);
    long n = shared.builds;
    pthread_mutex_unlock(&shared.mu);
    return n;
}

int models_list(req_t *r)
{
    store_t *st = server_store(r);
    if (!st) return -1;
    core_alias_t *al = NULL;
    int na = 0;
    char err[CORE_ERR_LEN];
    if (core_model_alias_list(&al, &na, err)) na = 0;   /* a broken table lists no aliases (lookups say why) */
    buf_t body = {0};
    int rc = buf_appends(&body, "{\"object\":\"list\",\"data\":[");
    if (!rc) rc = append_shared(&body, al, na);   /* never empty: the entries after it need a comma */
    store_model_t *ms = NULL;
    store_checkpoint_t *cs = NULL;
    int n = 0, nc = 0;
    if (store_model_list(st, r->org_id, &ms, &n, err) || store_checkpoint_models(st, r->org_id, &cs, &nc, err)) {
        free(ms);
        free(cs);
        buf_free(&body);
        return HTTP_500(r, "%s", err);
    }
    for (int i = 0; i < n && !rc; i++) rc = append_json(&body, ft_json(&ms[i]));
    for (int i = 0; i < nc && !rc; i++) rc = append_json(&body, ckpt_json(st, r->org_id, &cs[i]));
    free(ms);
    free(cs);
    if (!rc) rc = buf_appends(&body, "],\"has_more\":false}");
    if (rc) {
        buf_free(&body);
        return HTTP_500(r, "out of memory listing the models");
    }
    return http_reply_json_text(r, 200, body.data);
}

static int model_404(req_t *r, const char *id)
{
    return http_reply_error(r, 404, "invalid_request_error", "model", "model_not_found",
                            "The model `%s` does not exist or you do not have access to it.", id);
}

int models_get(req_t *r)
{
    json_t *b = base_json(r->params[0]);
    if (!b) b = alias_json(r->params[0]);
    if (b) return http_reply_json(r, 200, b);
    store_t *st = server_store(r);
    if (!st) return -1;
    store_model_t m;
    char err[CORE_ERR_LEN];
    int rc = store_model_get(st, r->org_id, r->params[0], &m, err);
    if (rc == 0) return http_reply_json(r, 200, ft_json(&m));
    if (rc != STORE_ENOTFOUND) return HTTP_500(r, "%s", err);
    store_checkpoint_t c;
    rc = store_checkpoint_by_model(st, r->org_id, r->params[0], &c, err);
    if (rc == STORE_ENOTFOUND) return model_404(r, r->params[0]);
    if (rc) return HTTP_500(r, "%s", err);
    return http_reply_json(r, 200, ckpt_json(st, r->org_id, &c));
}

/* A checkpoint model goes with its directory, but only once its job is
 * over: a running or paused job resumes from its newest checkpoint. */
static int delete_checkpoint(req_t *r, store_t *st, const store_checkpoint_t *c)
{
    char err[CORE_ERR_LEN];
    store_job_t j;
    int rc = store_job_get(st, r->org_id, c->job_id, &j, err);
    if (rc) return server_store_error(r, rc, "model", err);
    int terminal = store_job_is_terminal(j.status);
    char status[sizeof j.status];
    snprintf(status, sizeof status, "%s", j.status);
    store_job_clear(&j);
    if (!terminal)
        return HTTP_400(r, "model", "`%s` is a checkpoint of fine-tuning job %s, which is %s and may resume from it; "
                        "delete it once the job has finished, or cancel the job.", c->model, c->job_id, status);
    if ((rc = store_checkpoint_delete(st, c->job_id, c->step, err))) return server_store_error(r, rc, "model", err);
    char jobs[STORE_PATH_LEN + 8];
    snprintf(jobs, sizeof jobs, "%s/jobs/", store_data_dir(st));
    if (!strncmp(c->dir, jobs, strlen(jobs)) && !strstr(c->dir, "/../") && fs_rm_rf(c->dir, err))
        return HTTP_500(r, "%s", err);
    completions_cache_evict(r->srv, c->model);
    return http_reply_json(r, 200, json_pack("{s:s, s:s, s:b}", "id", c->model, "object", "model", "deleted", 1));
}

int models_delete(req_t *r)
{
    char target[CORE_ALIAS_LEN], aerr[CORE_ERR_LEN];
    if (server_is_base_model(r->params[0]) || core_model_alias(r->params[0], target, NULL, aerr) == 0)
        return http_reply_error(r, 403, "invalid_request_error", "model", "model_not_deletable",
                                "The base model `%s` cannot be deleted; only your fine-tuned models can.", r->params[0]);
    store_t *st = server_store(r);
    if (!st) return -1;
    char err[CORE_ERR_LEN];
    int rc = store_model_delete(st, r->org_id, r->params[0], err);
    store_checkpoint_t c;
    if (rc == STORE_ENOTFOUND && store_checkpoint_by_model(st, r->org_id, r->params[0], &c, err) == 0)
        return delete_checkpoint(r, st, &c);
    if (rc == STORE_ENOTFOUND) return model_404(r, r->params[0]);
    if (rc) return HTTP_500(r, "%s", err);
    completions_cache_evict(r->srv, r->params[0]);
    return http_reply_json(r, 200, json_pack("{s:s, s:s, s:b}", "id", r->params[0], "object", "model", "deleted", 1));
}
