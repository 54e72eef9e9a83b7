/* fine_tuning_jobs.c: the current fine-tuning API, /v1/fine_tuning/jobs, as
 * the openai@7.x SDK calls it. It shares everything below the wire with the
 * legacy /v1/fine-tunes (fine_tunes.c): one jobs table, the same scheduler,
 * workers, events and checkpoints. What differs is the shape: "auto" hyper-
 * parameters until the job starts, result_files as id strings, cursor pages
 * (newest first, `after` = the last id seen, has_more), events typed message
 * or metrics, checkpoints usable as models, pause and resume.
 *
 * The scheduler and the worker write the lifecycle lines in the legacy words
 * ("Fine-tune started"); event_message() shows them in the current API's
 * words ("Fine-tuning job started"), so the two APIs keep one event log.
 */
#define TUNERY_SERVER_INTERNAL
#include "server/server.h"
#include "sched/sched.h"
#include "store/store.h"
#include <microhttpd.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define JOBS_LIMIT_MAX 100

/* ------------------------------------------------------------------ objects */

/* Characters, not bytes, as OpenAI counts the limits (invalid UTF-8 was
 * refused by jansson already). */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static json_t *str_or_null(const char *s) { return s && s[0] ? server_json_str(s) : json_null(); }
static json_t *time_or_null(int64_t t) { return t > 0 ? json_integer((json_int_t)t) : json_null(); }

static json_t *json_text_or_null(const char *text)
{
    json_t *v = text && text[0] ? json_loads(text, 0, NULL) : NULL;
    return v ? v : json_null();
}

/* Requested values until the worker resolves them, then the numbers it used. */
static json_t *hyperparameters_json(const store_job_t *j)
{
    json_t *batch, *lrm, *epochs;
    if (j->resolved) {
        batch = json_integer(j->r_batch_size);
        lrm = json_real(j->r_learning_rate_multiplier);
        epochs = json_integer(j->r_n_epochs);
    } else {
        batch = j->batch_size > 0 ? json_integer(j->batch_size) : json_string("auto");
        lrm = j->learning_rate_multiplier > 0 ? json_real(j->learning_rate_multiplier) : json_string("auto");
        epochs = j->n_epochs > 0 ? json_integer(j->n_epochs) : json_string("auto");
    }
    return json_pack("{s:o, s:o, s:o}", "batch_size", batch, "learning_rate_multiplier", lrm, "n_epochs", epochs);
}

json_t *fine_tuning_job_json(const store_job_t *j)
{
    json_t *error = json_null();
    if (j->error_message[0])
        error = json_pack("{s:o, s:o, s:o}", "code", str_or_null(j->error_code), "message", server_json_str(j->error_message),
                          "param", str_or_null(j->error_param));
    json_t *results = json_array();
    if (j->result_file[0]) json_array_append_new(results, json_string(j->result_file));
    int terminal = store_job_is_terminal(j->status);
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(j->id));
    json_object_set_new(o, "object", json_string("fine_tuning.job"));
    json_object_set_new(o, "created_at", json_integer((json_int_t)j->created_at));
    json_object_set_new(o, "error", error);
    json_object_set_new(o, "fine_tuned_model", str_or_null(j->fine_tuned_model));
    json_object_set_new(o, "finished_at", terminal ? time_or_null(j->finished_at) : json_null());
    json_object_set_new(o, "hyperparameters", hyperparameters_json(j));
    json_object_set_new(o, "model", server_json_str(j->model));
    json_object_set_new(o, "organization_id", json_string(j->org_id));
    json_object_set_new(o, "result_files", results);
    json_object_set_new(o, "status", json_string(j->status));
    json_object_set_new(o, "trained_tokens", terminal && j->trained_tokens > 0 ? json_integer(j->trained_tokens) : json_null());
    json_object_set_new(o, "training_file", json_string(j->training_file));
    json_object_set_new(o, "validation_file", str_or_null(j->validation_file));
    json_object_set_new(o, "seed", json_integer((json_int_t)(j->resolved ? j->r_seed : j->seed)));
    json_object_set_new(o, "estimated_finish",
                        !strcmp(j->status, "running") ? time_or_null(j->estimated_finish) : json_null());
    json_object_set_new(o, "integrations", json_text_or_null(j->integrations));
    json_object_set_new(o, "method", json_pack("{s:s, s:{s:o}}", "type", "supervised", "supervised",
                                               "hyperparameters", hyperparameters_json(j)));
    json_object_set_new(o, "metadata", json_text_or_null(j->metadata));
    json_object_set_new(o, "user_provided_suffix", str_or_null(j->suffix));
    return o;
}

/* The lifecycle lines the scheduler and worker share with the legacy API,
 * in the current API's words. Matched by prefix; the rest of the line (a
 * model name, a queue number) is kept where it means something. */
static const struct { const char *legacy, *current; int keep_rest; } renames[] = {
    {"Fine-tune enqueued. Queue number: ", "Files validated, moving job to queued state", 0},
    {"Fine-tune is in the queue. Queue number: ", "Job is in the queue. Queue number: ", 1},
    {"Fine-tune started", "Fine-tuning job started", 0},
    {"Fine-tune paused", "Fine-tuning job paused", 0},
    {"Fine-tune resumed", "Fine-tuning job resumed", 0},
    {"Fine-tune cancelled", "Fine-tuning job cancelled", 0},
    {"Fine-tune failed", "Fine-tuning job failed", 0},
    {"Fine-tune succeeded", "Fine tuning job successfully completed", 0},
    {"Uploaded model: ", "New fine-tuned model created: ", 1},
    {"Uploaded result file: ", "Result file created: ", 1},
};

static void event_message(const char *msg, char *out, size_t len)
{
    for (size_t i = 0; i < sizeof renames / sizeof *renames; i++) {
        size_t n = strlen(renames[i].legacy);
        if (strncmp(msg, renames[i].legacy, n)) continue;
        if (renames[i].legacy[n - 1] != ' ' && msg[n]) continue;   /* whole line only */
        snprintf(out, len, "%s%s", renames[i].current, renames[i].keep_rest ? msg + n : "");
        return;
    }
    snprintf(out, len, "%s", msg);
}

static json_t *event_json(const store_event_t *e)
{
    char msg[STORE_TEXT_LEN + 64];
    event_message(e->message, msg, sizeof msg);
    json_t *data = !strcmp(e->type, "metrics") ? json_text_or_null(e->data) : json_null();
    return json_pack("{s:s, s:s, s:I, s:s, s:o, s:s, s:o}", "object", "fine_tuning.job.event", "id", e->id,
                     "created_at", (json_int_t)e->created_at, "level", e->level[0] ? e->level : "info",
                     "message", server_json_str(msg), "type", e->type[0] ? e->type : "message", "data", data);
}

static json_t *num_or_null(double v) { return isnan(v) ? json_null() : json_real(v); }

static json_t *checkpoint_json(const store_checkpoint_t *c)
{
    json_t *m = json_pack("{s:i, s:o, s:o, s:o, s:o, s:o, s:o}", "step", c->step, "train_loss", num_or_null(c->train_loss),
                          "train_mean_token_accuracy", num_or_null(c->train_mean_token_accuracy),
                          "valid_loss", num_or_null(c->valid_loss),
                          "valid_mean_token_accuracy", num_or_null(c->valid_mean_token_accuracy),
                          "full_valid_loss", num_or_null(c->full_valid_loss),
                          "full_valid_mean_token_accuracy", num_or_null(c->full_valid_mean_token_accuracy));
    return json_pack("{s:s, s:s, s:I, s:o, s:s, s:i, s:o}", "object", "fine_tuning.job.checkpoint", "id", c->id,
                     "created_at", (json_int_t)c->created_at, "fine_tuned_model_checkpoint", server_json_str(c->model),
                     "fine_tuning_job_id", c->job_id, "step_number", c->step, "metrics", m);
}

/* ------------------------------------------------------------------ create: parameters */

static const char *const create_params[] = {
    "model", "training_file", "validation_file", "hyperparameters", "method", "suffix", "seed",
    "metadata", "integrations", NULL,
};

/* One hyper-parameter: "auto", null or absent leave *out as it is. */
static int hyper_one(req_t *r, json_t *hp, const char *prefix, const char *key, double min, double max,
                     int integer, double *out)
{
    json_t *v = json_object_get(hp, key);
    if (!v || json_is_null(v) || (json_is_string(v) && !strcmp(json_string_value(v), "auto"))) return 0;
    char param[96];
    snprintf(param, sizeof param, "%s.%s", prefix, key);
    double x = json_is_number(v) ? json_number_value(v) : NAN;
    int ok = integer ? json_is_integer(v) || (json_is_real(v) && x == floor(x)) : json_is_number(v);
    if (!ok || !(x >= min && x <= max) || (!integer && x <= 0)) {
        if (integer) return HTTP_400(r, param, "%s must be \"auto\" or an integer from %g to %g.", param, min, max), -1;
        return HTTP_400(r, param, "%s must be \"auto\" or a number greater than 0.", param), -1;
    }
    *out = x;
    return 0;
}

/* {batch_size, learning_rate_multiplier, n_epochs}; prefix names the object
 * in errors ("hyperparameters" or "method.supervised.hyperparameters"). */
static int hyper_parse(req_t *r, json_t *hp, const char *prefix, store_job_t *j)
{
    if (!hp || json_is_null(hp)) return 0;
    if (!json_is_object(hp)) return HTTP_400(r, prefix, "%s must be an object.", prefix), -1;
    static const char *const known[] = {"batch_size", "learning_rate_multiplier", "n_epochs", NULL};
    const char *k;
    json_t *v;
    json_object_foreach(hp, k, v) {
        int ok = 0;
        for (const char *const *p = known; *p && !ok; p++) ok = !strcmp(*p, k);
        if (!ok) {
            char param[160];
            snprintf(param, sizeof param, "%s.%s", prefix, k);
            return HTTP_400(r, param, "Unknown hyper-parameter '%s': %s takes batch_size, learning_rate_multiplier and n_epochs.", k, prefix), -1;
        }
    }
    double batch = 0, lrm = 0, epochs = 0;
    if (hyper_one(r, hp, prefix, "batch_size", 1, 256, 1, &batch) ||
        hyper_one(r, hp, prefix, "learning_rate_multiplier", 0, 1e6, 0, &lrm) ||
        hyper_one(r, hp, prefix, "n_epochs", 1, 50, 1, &epochs))
        return -1;
    j->batch_size = (int)batch;
    j->learning_rate_multiplier = lrm;
    j->n_epochs = (int)epochs;
    return 0;
}

/* method: {type: "supervised", supervised: {hyperparameters: {...}}}. Only
 * supervised fine-tuning is trained here. *hp_out gets the hyper-parameters
 * object inside it (borrowed), NULL if none. */
static int method_parse(req_t *r, json_t *m, json_t **hp_out)
{
    *hp_out = NULL;
    if (!m || json_is_null(m)) return 0;
    if (!json_is_object(m)) return HTTP_400(r, "method", "method must be an object such as {\"type\": \"supervised\"}."), -1;
    json_t *type = json_object_get(m, "type");
    if (!json_is_string(type)) return HTTP_400(r, "method.type", "method.type is required: \"supervised\"."), -1;
    const char *t = json_string_value(type);
    if (!strcmp(t, "dpo") || !strcmp(t, "reinforcement"))
        return HTTP_400(r, "method.type", "method.type '%s' is not supported by this server; it trains supervised fine-tunes only (method.type \"supervised\").", t), -1;
    if (strcmp(t, "supervised"))
        return HTTP_400(r, "method.type", "Invalid value for method.type: '%s'. Supported: \"supervised\".", t), -1;
    const char *k;
    json_t *v;
    json_object_foreach(m, k, v) if (strcmp(k, "type") && strcmp(k, "supervised")) {
        char param[160];
        snprintf(param, sizeof param, "method.%s", k);
        return HTTP_400(r, param, "Unrecognized argument method.%s for method.type \"supervised\".", k), -1;
    }
    json_t *sup = json_object_get(m, "supervised");
    if (!sup || json_is_null(sup)) return 0;
    if (!json_is_object(sup)) return HTTP_400(r, "method.supervised", "method.supervised must be an object."), -1;
    json_object_foreach(sup, k, v) if (strcmp(k, "hyperparameters")) {
        char param[160];
        snprintf(param, sizeof param, "method.supervised.%s", k);
        return HTTP_400(r, param, "Unrecognized argument method.supervised.%s.", k), -1;
    }
    *hp_out = json_object_get(sup, "hyperparameters");
    return 0;
}

/* metadata: at most 16 string values, keys up to 64 and values up to 512 characters. */
static int metadata_parse(req_t *r, json_t *md, char **text)
{
    *text = NULL;
    if (!md || json_is_null(md)) return 0;
    if (!json_is_object(md)) return HTTP_400(r, "metadata", "metadata must be an object of string values."), -1;
    if (json_object_size(md) > 16)
        return HTTP_400(r, "metadata", "metadata has %zu keys; at most 16 are allowed.", json_object_size(md)), -1;
    const char *k;
    json_t *v;
    json_object_foreach(md, k, v) {
        if (strlen(k) > 64) return HTTP_400(r, "metadata", "metadata key '%.64s...' is %zu characters long; at most 64 are allowed.", k, strlen(k)), -1;
        if (!json_is_string(v)) return HTTP_400(r, "metadata", "metadata value of '%s' must be a string.", k), -1;
        size_t n = utf8_chars(json_string_value(v));
        if (n > 512) return HTTP_400(r, "metadata", "metadata value of '%s' is %zu characters long; at most 512 are allowed.", k, n), -1;
    }
    *text = json_dumps(md, JSON_COMPACT);
    return 0;
}

/* integrations: [{type: "wandb", wandb: {project, name?, entity?, tags?}}]. */
static int integrations_parse(req_t *r, json_t *in, char **text)
{
    *text = NULL;
    if (!in || json_is_null(in)) return 0;
    if (!json_is_array(in)) return HTTP_400(r, "integrations", "integrations must be an array."), -1;
    size_t i;
    json_t *it;
    json_array_foreach(in, i, it) {
        json_t *type = json_object_get(it, "type");
        if (!json_is_object(it) || !json_is_string(type) || strcmp(json_string_value(type), "wandb"))
            return HTTP_400(r, "integrations", "integrations[%zu]: the only integration type is \"wandb\".", i), -1;
        json_t *w = json_object_get(it, "wandb");
        if (!json_is_object(w) || !json_is_string(json_object_get(w, "project")))
            return HTTP_400(r, "integrations", "integrations[%zu].wandb.project is required (a string).", i), -1;
        static const char *const known[] = {"project", "name", "entity", "tags", NULL};
        const char *k;
        json_t *v;
        json_object_foreach(w, k, v) {
            int ok = 0;
            for (const char *const *p = known; *p && !ok; p++) ok = !strcmp(*p, k);
            if (!ok) return HTTP_400(r, "integrations", "integrations[%zu].wandb.%s is not a known setting (project, name, entity, tags).", i, k), -1;
        }
    }
    *text = json_dumps(in, JSON_COMPACT);
    return 0;
}

/* ------------------------------------------------------------------ create: model and files */

/* The base model: a base or compatibility name, or one of this org's
 * fine-tuned models or checkpoints (continued fine-tuning), with its weights
 * here. *is_chat: 1 chat model, 0 completion model. -1 after replying. */
static int model_check(req_t *r, const char *model, int *is_chat)
{
    char err[CORE_ERR_LEN];
    server_model_t m;
    int rc = server_model_lookup(r->srv, r->org_id, model, &m, err);
    if (rc == SERVER_MODEL_UNKNOWN)
        return HTTP_400(r, "model", "%s Use a base model (GET /v1/models lists them) or one of your fine-tuned models.", err), -1;
    if (rc == SERVER_MODEL_MISSING) return HTTP_400(r, "model", "%s.", err), -1;   /* known name, weights not installed */
    if (rc) return HTTP_500(r, "%s", err), -1;
    *is_chat = m.is_chat;
    return 0;
}

static int format_check(req_t *r, const char *param, const store_file_t *f, const char *model, int model_chat)
{
    if (f->is_chat == model_chat) return 0;
    if (f->is_chat)
        return HTTP_400(r, param, "File %s holds chat examples ({\"messages\": [...]} lines), but `%s` is a completion model: "
                        "it needs {\"prompt\": ..., \"completion\": ...} lines. Use a chat base model or convert the file.", f->id, model), -1;
    return HTTP_400(r, param, "File %s holds prompt/completion examples, but `%s` is a chat model: it needs "
                    "{\"messages\": [{\"role\": ..., \"content\": ...}, ...]} lines. Use a completion base model or convert the file.", f->id, model), -1;
}

static int64_t random_seed(void)
{
    uint32_t x = 0;
    if (getrandom(&x, sizeof x, 0) != (ssize_t)sizeof x) x = (uint32_t)time_unix() * 2654435761u;
    return (int64_t)(x & 0x7fffffff);
}

/* ------------------------------------------------------------------ handlers */

static int job_reply(req_t *r, store_t *st, const char *id)
{
    store_job_t j;
    char err[CORE_ERR_LEN];
    int rc = store_job_get(st, r->org_id, id, &j, err);
    if (rc) return server_store_error(r, rc, "fine_tuning_job_id", err);
    json_t *o = fine_tuning_job_json(&j);
    store_job_clear(&j);
    return http_reply_json(r, 200, o);
}

int fine_tuning_jobs_create(req_t *r)
{
    json_t *b = r->body;
    if (!b) return HTTP_400(r, "model", "Missing required parameter: 'model'.");
    if (json_check_known(r, b, create_params)) return -1;
    const char *model = NULL, *training = NULL, *validation = NULL, *suffix = NULL;
    long long seed = 0;
    int has_seed = 0;
    if (json_opt_str(r, b, "model", &model) || json_opt_str(r, b, "training_file", &training) ||
        json_opt_str(r, b, "validation_file", &validation) || json_opt_str(r, b, "suffix", &suffix) ||
        json_opt_int(r, b, "seed", 0, 2147483647, &seed, &has_seed))
        return -1;
    if (!model || !model[0]) return HTTP_400(r, "model", "Missing required parameter: 'model'.");
    if (!training || !training[0]) return HTTP_400(r, "training_file", "Missing required parameter: 'training_file'.");
    if (suffix) {
        size_t n = utf8_chars(suffix);
        if (n < 1 || n > 64) return HTTP_400(r, "suffix", "suffix must be 1 to 64 characters long; got %zu.", n);
        if (strlen(suffix) >= sizeof ((store_job_t *)0)->suffix)   /* 64 characters of 2+ bytes each */
            return HTTP_400(r, "suffix", "suffix is %zu bytes of UTF-8; this server keeps at most %zu. Use fewer non-ASCII characters.",
                            strlen(suffix), sizeof ((store_job_t *)0)->suffix - 1);
    }

    store_job_t j;
    memset(&j, 0, sizeof j);
    json_t *mhp;
    if (method_parse(r, json_object_get(b, "method"), &mhp)) return -1;
    json_t *hp = json_object_get(b, "hyperparameters");
    if (mhp && !json_is_null(mhp) && hp && !json_is_null(hp))
        return HTTP_400(r, "hyperparameters", "Give the hyper-parameters once: in method.supervised.hyperparameters or in hyperparameters (deprecated), not both.");
    if (hyper_parse(r, hp, "hyperparameters", &j) || hyper_parse(r, mhp, "method.supervised.hyperparameters", &j)) return -1;
    if (metadata_parse(r, json_object_get(b, "metadata"), &j.metadata)) return -1;
    int rc = -1;
    if (integrations_parse(r, json_object_get(b, "integrations"), &j.integrations)) goto out;

    store_t *st = server_store(r);
    if (!st) goto out;
    store_file_t tf, vf;
    int model_chat;
    if (fine_tunes_check_file(r, st, "training_file", training, &tf) ||
        (validation && validation[0] && fine_tunes_check_file(r, st, "validation_file", validation, &vf)) ||
        model_check(r, model, &model_chat) || format_check(r, "training_file", &tf, model, model_chat) ||
        (validation && validation[0] && format_check(r, "validation_file", &vf, model, model_chat)))
        goto out;

    j.api = STORE_API_JOBS;
    snprintf(j.org_id, sizeof j.org_id, "%s", r->org_id);
    snprintf(j.model, sizeof j.model, "%s", model);
    snprintf(j.training_file, sizeof j.training_file, "%s", training);
    if (validation) snprintf(j.validation_file, sizeof j.validation_file, "%s", validation);
    if (suffix) snprintf(j.suffix, sizeof j.suffix, "%s", suffix);
    j.prompt_loss_weight = -1;
    j.seed = has_seed ? seed : random_seed();
    j.has_seed = 1;
    j.queue_number = -1;
    j.method = strdup("{\"type\":\"supervised\"}");
    char err[CORE_ERR_LEN];
    if (store_job_create(st, &j, err)) {
        rc = HTTP_500(r, "%s", err);
        goto out;
    }
    char msg[STORE_TEXT_LEN];
    snprintf(msg, sizeof msg, "Created fine-tuning job: %s", j.id);
    if (store_event_add(st, j.id, "info", "message", msg, NULL, NULL, err)) goto fail;
    snprintf(msg, sizeof msg, "Validating training file: %s", training);
    if (store_event_add(st, j.id, "info", "message", msg, NULL, NULL, err)) goto fail;
    if (validation && validation[0]) {
        snprintf(msg, sizeof msg, "Validating validation file: %s", validation);
        if (store_event_add(st, j.id, "info", "message", msg, NULL, NULL, err)) goto fail;
    }
    if (sched_enqueue(r->srv->sched, st, j.id, err)) goto fail;
    rc = job_reply(r, st, j.id);
    goto out;
fail:
    rc = HTTP_500(r, "%s", err);
out:
    store_job_clear(&j);
    return rc;
}

/* A query argument; a request without a connection (unit tests) has none. */
static const char *query(req_t *r, const char *key) { return r->conn ? http_query(r, key) : NULL; }

/* after and limit of a list request; -1 after replying 400. */
static int page_parse(req_t *r, int def, store_page_t *p)
{
    const char *after = query(r, "after"), *limit = query(r, "limit");
    p->after = after && after[0] ? after : NULL;
    p->limit = def;
    p->ascending = 0;
    if (limit) {
        char *end;
        long v = strtol(limit, &end, 10);
        if (end == limit || *end || v < 1 || v > JOBS_LIMIT_MAX)
            return HTTP_400(r, "limit", "limit must be an integer from 1 to %d; got '%s'.", JOBS_LIMIT_MAX, limit), -1;
        p->limit = (int)v;
    }
    return 0;
}

typedef struct {
    char key[ROUTE_PARAM_LEN], value[ROUTE_PARAM_LEN];
    int n, bad;
} meta_filter_t;

/* metadata[k]=v in the query string (the SDK encodes the brackets). */
static enum MHD_Result meta_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    meta_filter_t *f = cls;
    char k[ROUTE_PARAM_LEN];
    if (url_decode(key, strlen(key), k, sizeof k, 1) || strncmp(k, "metadata[", 9)) return MHD_YES;
    size_t n = strlen(k);
    if (n < 11 || k[n - 1] != ']' || f->n++) {
        f->bad = 1;
        return MHD_YES;
    }
    snprintf(f->key, sizeof f->key, "%.*s", (int)(n - 10), k + 9);
    if (url_decode(value ? value : "", value ? strlen(value) : 0, f->value, sizeof f->value, 1)) f->bad = 1;
    return MHD_YES;
}

int fine_tuning_jobs_list(req_t *r)
{
    store_page_t page;
    if (page_parse(r, 20, &page)) return -1;
    meta_filter_t mf;
    memset(&mf, 0, sizeof mf);
    if (r->conn) MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, meta_arg, &mf);
    if (mf.bad) return HTTP_400(r, "metadata", "Filter by one metadata key at a time: metadata[KEY]=VALUE.");
    store_t *st = server_store(r);
    if (!st) return -1;
    store_job_t *js = NULL;
    int n = 0, more = 0;
    char err[CORE_ERR_LEN];
    int rc = store_job_list(st, r->org_id, STORE_API_JOBS, &page, mf.n ? mf.key : NULL, mf.n ? mf.value : NULL,
                            &js, &n, &more, err);
    if (rc) return server_store_error(r, rc, NULL, err);
    json_t *data = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(data, fine_tuning_job_json(&js[i]));
    store_job_free(js, n);
    return http_reply_json(r, 200, json_pack("{s:s, s:o, s:b}", "object", "list", "data", data, "has_more", more));
}

/* The path's job, of this org and of the current API, or 404. */
static int lookup(req_t *r, store_t *st)
{
    store_job_t j;
    char err[CORE_ERR_LEN];
    int rc = store_job_get(st, r->org_id, r->params[0], &j, err);
    if (rc == 0 && j.api != STORE_API_JOBS) rc = STORE_ENOTFOUND;
    if (rc == 0) store_job_clear(&j);
    else if (rc != STORE_ENOTFOUND) return HTTP_500(r, "%s", err), -1;
    if (rc) return HTTP_404(r, "fine_tuning_job_id", "No such fine-tuning job: %s", r->params[0]), -1;
    return 0;
}

int fine_tuning_jobs_get(req_t *r)
{
    store_t *st = server_store(r);
    if (!st || lookup(r, st)) return -1;
    return job_reply(r, st, r->params[0]);
}

typedef int (*sched_op_fn)(sched_t *, store_t *, const char *, const char *, char *);

/* cancel, pause, resume; `when` says which states allow it, for the 400. */
static int state_change(req_t *r, sched_op_fn op, const char *verb, const char *when)
{
    store_t *st = server_store(r);
    if (!st || lookup(r, st)) return -1;
    char err[CORE_ERR_LEN];
    int rc = op(r->srv->sched, st, r->org_id, r->params[0], err);
    if (rc == STORE_ECONFLICT) {
        store_job_t j;
        if (store_job_get(st, r->org_id, r->params[0], &j, err)) return HTTP_500(r, "%s", err);
        HTTP_400(r, "fine_tuning_job_id", "Cannot %s fine-tuning job %s: it is %s; %s.", verb, r->params[0], j.status, when);
        store_job_clear(&j);
        return -1;
    }
    if (rc) return server_store_error(r, rc, "fine_tuning_job_id", err);
    return job_reply(r, st, r->params[0]);
}

int fine_tuning_jobs_cancel(req_t *r)
{
    return state_change(r, sched_cancel, "cancel", "only a job that has not finished can be cancelled");
}
int fine_tuning_jobs_pause(req_t *r)
{
    return state_change(r, sched_pause, "pause", "only a queued or running job can be paused");
}
int fine_tuning_jobs_resume(req_t *r)
{
    return state_change(r, sched_resume, "resume", "only a paused job can be resumed");
}

int fine_tuning_jobs_events(req_t *r)
{
    store_page_t page;
    if (page_parse(r, 20, &page)) return -1;
    store_t *st = server_store(r);
    if (!st || lookup(r, st)) return -1;
    store_event_t *es = NULL;
    int n = 0, more = 0;
    char err[CORE_ERR_LEN];
    int rc = store_event_list(st, r->org_id, r->params[0], &page, &es, &n, &more, err);
    if (rc) return server_store_error(r, rc, "fine_tuning_job_id", err);
    json_t *data = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(data, event_json(&es[i]));
    free(es);
    return http_reply_json(r, 200, json_pack("{s:s, s:o, s:b}", "object", "list", "data", data, "has_more", more));
}

int fine_tuning_jobs_checkpoints(req_t *r)
{
    store_page_t page;
    if (page_parse(r, 10, &page)) return -1;
    store_t *st = server_store(r);
    if (!st || lookup(r, st)) return -1;
    store_checkpoint_t *cs = NULL;
    int n = 0, more = 0;
    char err[CORE_ERR_LEN];
    int rc = store_checkpoint_list(st, r->org_id, r->params[0], &page, &cs, &n, &more, err);
    if (rc) return server_store_error(r, rc, "fine_tuning_job_id", err);
    json_t *data = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(data, checkpoint_json(&cs[i]));
    json_t *o = json_pack("{s:s, s:o, s:o, s:o, s:b}", "object", "list", "data", data,
                          "first_id", n ? json_string(cs[0].id) : json_null(),
                          "last_id", n ? json_string(cs[n - 1].id) : json_null(), "has_more", more);
    free(cs);
    return http_reply_json(r, 200, o);
}
