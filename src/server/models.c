/* models.c: /v1/models. The four legacy base models (owned by "openai",
 * served from the shipped or imported model directories) plus the caller's
 * fine-tuned models and, from the current API, the checkpoints its jobs keep
 * as models (ft:...:ckpt-step-N). Ids contain ':' and arrive encoded or not;
 * the router has already decoded them. Only fine-tuned models and the
 * checkpoints of finished jobs can be deleted.
 */
#define TUNERY_SERVER_INTERNAL
#include "server/server.h"
#include "store/store.h"
#include <stdlib.h>
#include <string.h>

/* created values of the original legacy models */
static const struct { const char *id; long long created; } bases[] = {
    {"ada", 1649357491}, {"babbage", 1649358449}, {"curie", 1649359874}, {"davinci", 1649364042},
};

static json_t *model_json(const char *id, long long created, const char *owned_by, const char *root, const char *parent)
{
    char perm_id[40];
    id_random(perm_id, "modelperm-", 24);
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

int models_list(req_t *r)
{
    store_t *st = server_store(r);
    if (!st) return -1;
    json_t *data = json_array();
    for (size_t i = 0; i < sizeof bases / sizeof *bases; i++) json_array_append_new(data, base_json(bases[i].id));
    core_alias_t *al = NULL;
    int na = 0;
    char aerr[CORE_ERR_LEN];
    if (core_model_alias_list(&al, &na, aerr) == 0)
        for (int i = 0; i < na; i++) json_array_append_new(data, alias_entry_json(al[i].name, al[i].target, al[i].is_chat));
    free(al);
    store_model_t *ms = NULL;
    int n = 0;
    char err[CORE_ERR_LEN];
    if (store_model_list(st, r->org_id, &ms, &n, err)) {
        json_decref(data);
        return HTTP_500(r, "%s", err);
    }
    for (int i = 0; i < n; i++) json_array_append_new(data, ft_json(&ms[i]));
    free(ms);
    store_checkpoint_t *cs = NULL;
    if (store_checkpoint_models(st, r->org_id, &cs, &n, err)) {
        json_decref(data);
        return HTTP_500(r, "%s", err);
    }
    for (int i = 0; i < n; i++) json_array_append_new(data, ckpt_json(st, r->org_id, &cs[i]));
    free(cs);
    return http_reply_json(r, 200, json_pack("{s:s, s:o, s:b}", "object", "list", "data", data, "has_more", 0));
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
