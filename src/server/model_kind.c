/* model_kind.c: what a model name is, for every endpoint that takes one.
 *
 * A name is one of
 *   base        ada, babbage, curie, davinci, or a name imported with
 *               `tunery models import` (a directory under DATA/models or the
 *               shipped data/models);
 *   alias       a compatibility name from aliases.json ("gpt-4o-mini" ->
 *               curie weights, chat format; see core/model_alias.c);
 *   fine-tuned  a row of the caller's models table;
 *   checkpoint  ft:...:ckpt-step-N of one of the caller's jobs;
 * and it is either a chat model (served by /v1/chat/completions, fine-tuned
 * with {"messages": [...]} data) or a completion model (/v1/completions,
 * prompt/completion data). The format comes from the model directory's
 * tunery.json ("format": "chat", written by the trainer from its training
 * data), from the alias table for aliases, and from the job's training file
 * for checkpoints, whose directories carry no tunery.json. A model without
 * a recorded format is a completion model: that is what every GPT-3 era
 * name was. /v1/completions accepts both kinds (a chat model is still a
 * language model); /v1/chat/completions only chat models.
 */
#define TUNERY_SERVER_INTERNAL
#include "server/server.h"
#include "store/store.h"
#include <stdlib.h>
#include <string.h>

/* "format" of <dir>/tunery.json: 1 chat, 0 anything else or no file. */
static int dir_is_chat(const char *dir)
{
    char path[4096 + 16];
    snprintf(path, sizeof path, "%s/tunery.json", dir);
    json_t *j = json_load_file(path, 0, NULL);
    const char *f = json_string_value(json_object_get(j, "format"));
    int chat = f && !strcmp(f, "chat");
    json_decref(j);
    return chat;
}

/* Was this job trained on chat data? Its training file says so; if the file
 * is gone, the model it started from does. */
static int job_is_chat(struct server *s, store_t *st, const char *org_id, const char *job_id, int depth, char *err)
{
    store_job_t j;
    memset(&j, 0, sizeof j);
    if (store_job_get(st, org_id, job_id, &j, err)) return -2;
    store_file_t f;
    int rc;
    char e2[CORE_ERR_LEN];
    if (store_file_get(st, org_id, j.training_file, &f, e2) == 0 && !strcmp(f.status, "processed")) {
        rc = f.is_chat;
    } else if (depth < 4) {
        server_model_t m;
        rc = server_model_lookup(s, org_id, j.model, &m, err) ? -2 : m.is_chat;
    } else {
        rc = 0;
    }
    store_job_clear(&j);
    return rc;
}

static int lookup(struct server *s, const char *org_id, const char *name, server_model_t *out, int depth, char *err)
{
    memset(out, 0, sizeof *out);
    if (!name || !name[0]) return core_errf(err, "no model name given"), SERVER_MODEL_UNKNOWN;
    char target[CORE_ALIAS_LEN];
    int chat = 0;
    /* a real directory of this name (built-in or imported) comes first */
    char e2[CORE_ERR_LEN];
    if (!strchr(name, ':') && server_base_model_dir(s, name, out->dir, e2) == 0) {
        int arc = core_model_alias(name, target, &chat, e2);
        size_t dl = strlen(out->dir), nl = strlen(name);
        int is_dir_of_name = arc != 0 || (dl >= nl && !strcmp(out->dir + dl - nl, name));
        out->kind = is_dir_of_name ? SERVER_MODEL_BASE : SERVER_MODEL_ALIAS;
        out->is_chat = is_dir_of_name ? dir_is_chat(out->dir) : chat;
        snprintf(out->target, sizeof out->target, "%s", is_dir_of_name ? name : target);
        return 0;
    }
    int arc = core_model_alias(name, target, &chat, err);
    if (arc < 0) return SERVER_MODEL_ERROR;
    if (arc == 0) {
        out->kind = SERVER_MODEL_ALIAS;
        out->is_chat = chat;
        snprintf(out->target, sizeof out->target, "%s", target);
        /* an alias whose weights are missing (davinci-002 -> davinci) */
        if (server_base_model_dir(s, target, out->dir, err)) return SERVER_MODEL_MISSING;
        return 0;
    }
    if (server_is_base_model(name)) {   /* a legacy name whose weights are not installed */
        out->kind = SERVER_MODEL_BASE;
        snprintf(out->target, sizeof out->target, "%s", name);
        server_base_model_dir(s, name, out->dir, err);
        return SERVER_MODEL_MISSING;
    }
    store_t *st = server_thread_store(s, err);
    if (!st) return SERVER_MODEL_ERROR;
    store_model_t m;
    int rc = store_model_get(st, org_id, name, &m, err);
    if (rc == 0) {
        out->kind = SERVER_MODEL_FINE_TUNED;
        snprintf(out->dir, sizeof out->dir, "%s", m.dir);
        snprintf(out->target, sizeof out->target, "%s", m.base);
        out->is_chat = dir_is_chat(m.dir);
        return 0;
    }
    if (rc != STORE_ENOTFOUND) return SERVER_MODEL_ERROR;
    store_checkpoint_t c;
    rc = store_checkpoint_by_model(st, org_id, name, &c, err);
    if (rc == 0) {
        out->kind = SERVER_MODEL_CHECKPOINT;
        snprintf(out->dir, sizeof out->dir, "%s", c.dir);
        store_model_root(name, out->target);
        int jc = job_is_chat(s, st, org_id, c.job_id, depth + 1, err);
        if (jc < 0) return SERVER_MODEL_ERROR;
        out->is_chat = jc;
        return 0;
    }
    if (rc != STORE_ENOTFOUND) return SERVER_MODEL_ERROR;
    core_errf(err, "The model `%s` does not exist or you do not have access to it.", name);
    return SERVER_MODEL_UNKNOWN;
}

int server_model_lookup(struct server *s, const char *org_id, const char *model, server_model_t *out, char *err)
{
    return lookup(s, org_id, model, out, 0, err);
}

int server_model_resolve(req_t *r, const char *name, server_model_t *m, char cache_id[STORE_NAME_LEN])
{
    char err[CORE_ERR_LEN];
    int rc = server_model_lookup(r->srv, r->org_id, name, m, err);
    if (rc == SERVER_MODEL_UNKNOWN)
        return http_reply_error(r, 404, "invalid_request_error", "model", "model_not_found",
                                "The model `%s` does not exist or you do not have access to it.", name), -1;
    if (rc == SERVER_MODEL_MISSING)   /* a known name whose weights are missing: err says how to add them */
        return http_reply_error(r, 404, "invalid_request_error", "model", "model_not_found", "%s", err), -1;
    if (rc) return HTTP_500(r, "%s", err), -1;
    snprintf(cache_id, STORE_NAME_LEN, "%s", m->kind == SERVER_MODEL_ALIAS ? m->target : name);
    return 0;
}

int server_model_is_chat(struct server *s, const char *org_id, const char *model, char *err)
{
    server_model_t m;
    int rc = server_model_lookup(s, org_id, model, &m, err);
    /* the kind of a known name does not depend on its weights being installed */
    if (rc == 0 || rc == SERVER_MODEL_MISSING) return m.is_chat;
    return -1;
}

const char *server_model_kind_name(int kind)
{
    switch (kind) {
    case SERVER_MODEL_BASE: return "base";
    case SERVER_MODEL_ALIAS: return "alias";
    case SERVER_MODEL_FINE_TUNED: return "fine-tuned";
    case SERVER_MODEL_CHECKPOINT: return "checkpoint";
    default: return "unknown";
    }
}

json_t *server_model_aliases(void)
{
    json_t *out = json_array();
    core_alias_t *a = NULL;
    int n = 0;
    char err[CORE_ERR_LEN];
    if (core_model_alias_list(&a, &n, err) == 0)
        for (int i = 0; i < n; i++) json_array_append_new(out, json_string(a[i].name));
    free(a);
    return out;
}
