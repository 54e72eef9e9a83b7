/* fine_tunes.c: the legacy /v1/fine-tunes API. Create checks every
 * parameter (400 naming it), counts the cost from the file's token count and
 * the legacy price table, writes the job and its first two events, and hands
 * it to the scheduler, which writes the queue and training events. The
 * objects follow OpenAI's 2023 responses: hyperparams batch_size and
 * learning_rate_multiplier stay null until the job starts, embedded file
 * objects, events on create/retrieve/cancel but not in the list.
 */
#define TUNERY_SERVER_INTERNAL
#include "server/server.h"
#include "sched/sched.h"
#include "store/store.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const base_models[] = {"ada", "babbage", "curie", "davinci", NULL};

int server_is_base_model(const char *name)
{
    for (const char *const *b = base_models; *b; b++)
        if (!strcmp(*b, name)) return 1;
    return 0;
}

/* Training price per 1K tokens (pricing page, 2022-07). */
static double price_per_1k(const char *base)
{
    if (!strcmp(base, "ada")) return 0.0004;
    if (!strcmp(base, "babbage")) return 0.0006;
    if (!strcmp(base, "curie")) return 0.0030;
    if (!strcmp(base, "davinci")) return 0.0300;
    return 0.0;
}

json_t *fine_tunes_event_json(const store_event_t *e)
{
    return json_pack("{s:s, s:s, s:o, s:I}", "object", "fine-tune-event", "level", e->level[0] ? e->level : "info",
                     "message", server_json_str(e->message), "created_at", (json_int_t)e->created_at);
}

/* Events of the legacy stream: the messages (metrics rows are for the new API). */
int fine_tunes_event_visible(const store_event_t *e) { return strcmp(e->type, "metrics") != 0; }

static json_t *file_array(store_t *st, const char *org_id, const char *id)
{
    json_t *a = json_array();
    store_file_t f;
    char err[CORE_ERR_LEN];
    if (id[0] && store_file_get(st, org_id, id, &f, err) == 0) json_array_append_new(a, files_object(&f));
    return a;
}

static json_t *num_or_null(int known, double v) { return known ? json_real(v) : json_null(); }

/* with_events: 0 none, 1 all, 2 the create response: the job as it was
 * created (pending, events up to the enqueue), even if the scheduler has
 * already started it. */
static json_t *job_json(store_t *st, const store_job_t *j, int with_events)
{
    json_t *hp = json_object();
    if (j->resolved && with_events != 2) {
        json_object_set_new(hp, "n_epochs", json_integer(j->r_n_epochs));
        json_object_set_new(hp, "batch_size", json_integer(j->r_batch_size));
        json_object_set_new(hp, "prompt_loss_weight", json_real(j->r_prompt_loss_weight));
        json_object_set_new(hp, "learning_rate_multiplier", json_real(j->r_learning_rate_multiplier));
    } else {
        json_object_set_new(hp, "n_epochs", json_integer(j->n_epochs > 0 ? j->n_epochs : 4));
        json_object_set_new(hp, "batch_size", j->batch_size > 0 ? json_integer(j->batch_size) : json_null());
        json_object_set_new(hp, "prompt_loss_weight", json_real(j->prompt_loss_weight >= 0 ? j->prompt_loss_weight : 0.01));
        json_object_set_new(hp, "learning_rate_multiplier", num_or_null(j->learning_rate_multiplier > 0, j->learning_rate_multiplier));
    }
    if (j->compute_classification_metrics) {
        json_object_set_new(hp, "compute_classification_metrics", json_true());
        if (j->classification_n_classes) json_object_set_new(hp, "classification_n_classes", json_integer(j->classification_n_classes));
        if (j->classification_positive_class[0])
            json_object_set_new(hp, "classification_positive_class", server_json_str(j->classification_positive_class));
        if (j->classification_betas[0]) {
            json_t *b = json_loads(j->classification_betas, 0, NULL);
            if (b) json_object_set_new(hp, "classification_betas", b);
        }
    }
    json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:o, s:o, s:s, s:s, s:o}",
                          "id", j->id, "object", "fine-tune", "created_at", (json_int_t)j->created_at,
                          "updated_at", (json_int_t)j->updated_at, "model", server_json_str(j->model),
                          "fine_tuned_model", j->fine_tuned_model[0] ? server_json_str(j->fine_tuned_model) : json_null(),
                          "organization_id", j->org_id, "status", with_events == 2 ? "pending" : store_job_wire_status(j),
                          "hyperparams", hp);
    json_object_set_new(o, "training_files", file_array(st, j->org_id, j->training_file));
    json_object_set_new(o, "validation_files", file_array(st, j->org_id, j->validation_file));
    json_object_set_new(o, "result_files", file_array(st, j->org_id, j->result_file));
    if (with_events) {
        json_t *ev = json_array();
        store_event_t *es = NULL;
        int n = 0;
        char err[CORE_ERR_LEN];
        if (store_event_since(st, j->org_id, j->id, 0, 0, &es, &n, err) == 0) {
            for (int i = 0; i < n; i++) {
                if (fine_tunes_event_visible(&es[i])) json_array_append_new(ev, fine_tunes_event_json(&es[i]));
                if (with_events == 2 && !strncmp(es[i].message, "Fine-tune enqueued", 18)) break;
            }
            free(es);
        }
        json_object_set_new(o, "events", ev);
    }
    return o;
}

/* A training or validation file: this org's, purpose fine-tune, processed. */
static int check_file(req_t *r, store_t *st, const char *param, const char *id, store_file_t *f)
{
    char err[CORE_ERR_LEN];
    int rc = store_file_get(st, r->org_id, id, f, err);
    if (rc == STORE_ENOTFOUND) return HTTP_400(r, param, "No such File object: %s (%s). Upload it first with POST /v1/files.", id, param), -1;
    if (rc) return HTTP_500(r, "%s", err), -1;
    if (strcmp(f->purpose, "fine-tune"))
        return HTTP_400(r, param, "File %s has purpose '%s'; %s must be a file uploaded with purpose 'fine-tune'.", id, f->purpose, param), -1;
    if (!strcmp(f->status, "error"))
        return HTTP_400(r, param, "File %s failed validation: %s", id, f->status_details), -1;
    if (strcmp(f->status, "processed"))
        return HTTP_400(r, param, "File %s is still being processed (status %s); try again in a moment.", id, f->status), -1;
    return 0;
}

/* The base model, or a fine-tuned model of this org (continued fine-tuning). */
static int check_model(req_t *r, store_t *st, const char *model)
{
    char err[CORE_ERR_LEN], dir[4096];
    store_model_t m;
    if (store_model_get(st, r->org_id, model, &m, err) == 0) return 0;
    if (server_base_model_dir(r->srv, model, dir, err) == 0) return 0;
    if (server_is_base_model(model)) return HTTP_400(r, "model", "%s.", err), -1;
    return HTTP_400(r, "model", "The model `%s` does not exist or you do not have access to it. Use ada, babbage, curie, davinci or one of your fine-tuned models.", model), -1;
}

/* The same check for the current API (fine_tuning_jobs.c). */
int fine_tunes_check_file(req_t *r, store_t *st, const char *param, const char *id, store_file_t *f)
{
    return check_file(r, st, param, id, f);
}

static const char *const create_params[] = {
    "training_file", "validation_file", "model", "n_epochs", "batch_size", "learning_rate_multiplier",
    "prompt_loss_weight", "compute_classification_metrics", "classification_n_classes",
    "classification_positive_class", "classification_betas", "suffix", "hyperparameters", "seed", NULL,
};

/* hyperparameters: {"n_epochs": "auto" | int, ...} (late-2023 spec alias). */
static int hyper_alias(req_t *r, json_t *hp, const char *key, long long min, long long max, double *num, long long *num_i)
{
    json_t *v = json_object_get(hp, key);
    if (!v || json_is_null(v) || (json_is_string(v) && !strcmp(json_string_value(v), "auto"))) return 0;
    char full[64];
    snprintf(full, sizeof full, "hyperparameters.%s", key);
    if (num) {
        if (!json_is_number(v) || json_number_value(v) <= 0)
            return HTTP_400(r, full, "%s must be \"auto\" or a positive number.", full), -1;
        *num = json_number_value(v);
    } else {
        if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
            return HTTP_400(r, full, "%s must be \"auto\" or an integer from %lld to %lld.", full, min, max), -1;
        *num_i = json_integer_value(v);
    }
    return 0;
}

int fine_tunes_create(req_t *r)
{
    json_t *b = r->body;
    if (!b) return HTTP_400(r, "training_file", "Missing required parameter: 'training_file'.");
    if (json_check_known(r, b, create_params)) return -1;
    const char *training = NULL, *validation = NULL, *model = "curie", *suffix = NULL, *pos_class = NULL;
    long long n_epochs = 0, batch = 0, n_classes = 0, seed = 0;
    double lrm = 0, plw = -1;
    int ccm = 0, has_seed = 0;
    if (json_opt_str(r, b, "training_file", &training) || json_opt_str(r, b, "validation_file", &validation) ||
        json_opt_str(r, b, "model", &model) || json_opt_str(r, b, "suffix", &suffix) ||
        json_opt_str(r, b, "classification_positive_class", &pos_class) ||
        json_opt_int(r, b, "n_epochs", 1, 50, &n_epochs, NULL) ||
        json_opt_int(r, b, "batch_size", 1, 256, &batch, NULL) ||
        json_opt_int(r, b, "classification_n_classes", 2, 1000000, &n_classes, NULL) ||
        json_opt_int(r, b, "seed", 0, 2147483647, &seed, &has_seed) ||
        json_opt_num(r, b, "learning_rate_multiplier", 1e-6, 100, &lrm, NULL) ||
        json_opt_num(r, b, "prompt_loss_weight", 0, 10, &plw, NULL) ||
        json_opt_bool(r, b, "compute_classification_metrics", &ccm, NULL))
        return -1;
    json_t *hp = json_object_get(b, "hyperparameters");
    if (hp && !json_is_null(hp)) {
        if (!json_is_object(hp)) return HTTP_400(r, "hyperparameters", "hyperparameters must be an object.");
        if ((!n_epochs && hyper_alias(r, hp, "n_epochs", 1, 50, NULL, &n_epochs)) ||
            (!batch && hyper_alias(r, hp, "batch_size", 1, 256, NULL, &batch)) ||
            (lrm == 0 && hyper_alias(r, hp, "learning_rate_multiplier", 0, 0, &lrm, NULL)))
            return -1;
    }
    json_t *betas = json_object_get(b, "classification_betas");
    char betas_text[256] = "";
    if (betas && !json_is_null(betas)) {
        if (!json_is_array(betas) || json_array_size(betas) > 16)
            return HTTP_400(r, "classification_betas", "classification_betas must be an array of at most 16 numbers.");
        size_t i;
        json_t *x;
        json_array_foreach(betas, i, x) if (!json_is_number(x) || json_number_value(x) <= 0)
            return HTTP_400(r, "classification_betas", "classification_betas must hold positive numbers.");
        char *t = json_dumps(betas, JSON_COMPACT);
        snprintf(betas_text, sizeof betas_text, "%s", t ? t : "");
        free(t);
    }
    if (!training || !training[0]) return HTTP_400(r, "training_file", "Missing required parameter: 'training_file'.");
    if (suffix && (strlen(suffix) < 1 || strlen(suffix) > 40))
        return HTTP_400(r, "suffix", "suffix must be 1 to 40 characters long; got %zu.", strlen(suffix));
    if (ccm && (!validation || !validation[0]))
        return HTTP_400(r, "compute_classification_metrics", "compute_classification_metrics needs a validation_file to compute the metrics on.");
    if (ccm && !n_classes && !pos_class)
        return HTTP_400(r, "compute_classification_metrics", "compute_classification_metrics needs classification_n_classes (multiclass) or classification_positive_class (binary).");

    store_t *st = server_store(r);
    if (!st) return -1;
    store_file_t tf, vf;
    if (check_file(r, st, "training_file", training, &tf)) return -1;
    if (validation && validation[0] && check_file(r, st, "validation_file", validation, &vf)) return -1;
    if (check_model(r, st, model)) return -1;

    store_job_t j;
    memset(&j, 0, sizeof j);
    j.api = STORE_API_LEGACY;
    snprintf(j.org_id, sizeof j.org_id, "%s", r->org_id);
    snprintf(j.model, sizeof j.model, "%s", model);
    snprintf(j.training_file, sizeof j.training_file, "%s", training);
    if (validation) snprintf(j.validation_file, sizeof j.validation_file, "%s", validation);
    if (suffix) snprintf(j.suffix, sizeof j.suffix, "%s", suffix);
    j.n_epochs = (int)n_epochs;
    j.batch_size = (int)batch;
    j.learning_rate_multiplier = lrm;
    j.prompt_loss_weight = plw;
    j.compute_classification_metrics = ccm;
    j.classification_n_classes = (int)n_classes;
    if (pos_class) snprintf(j.classification_positive_class, sizeof j.classification_positive_class, "%s", pos_class);
    snprintf(j.classification_betas, sizeof j.classification_betas, "%s", betas_text);
    j.seed = seed;
    j.has_seed = has_seed;
    j.queue_number = -1;
    char err[CORE_ERR_LEN], msg[256];
    if (store_job_create(st, &j, err)) return HTTP_500(r, "%s", err);

    char root[STORE_NAME_LEN];
    store_model_root(model, root);
    double cost = (double)tf.n_tokens * (n_epochs ? n_epochs : 4) / 1000.0 * price_per_1k(root);
    snprintf(msg, sizeof msg, "Created fine-tune: %s", j.id);
    if (store_event_add(st, j.id, "info", "message", msg, NULL, NULL, err)) goto fail;
    snprintf(msg, sizeof msg, "Fine-tune costs $%.2f", cost);
    if (store_event_add(st, j.id, "info", "message", msg, NULL, NULL, err)) goto fail;
    if (sched_enqueue(r->srv->sched, st, j.id, err)) goto fail;
    char id[STORE_ID_LEN];
    snprintf(id, sizeof id, "%s", j.id);
    store_job_clear(&j);
    if (store_job_get(st, r->org_id, id, &j, err)) goto fail;
    json_t *o = job_json(st, &j, 2);
    store_job_clear(&j);
    return http_reply_json(r, 200, o);
fail:
    store_job_clear(&j);
    return HTTP_500(r, "%s", err);
}

int fine_tunes_list(req_t *r)
{
    store_t *st = server_store(r);
    if (!st) return -1;
    store_page_t page = {NULL, 0, 0};
    store_job_t *js = NULL;
    int n = 0, more = 0;
    char err[CORE_ERR_LEN];
    int rc = store_job_list(st, r->org_id, STORE_API_LEGACY, &page, NULL, NULL, &js, &n, &more, err);
    if (rc) return server_store_error(r, rc, NULL, err);
    json_t *data = json_array();
    /* oldest first, as the legacy API listed them */
    for (int i = n - 1; i >= 0; i--) json_array_append_new(data, job_json(st, &js[i], 0));
    store_job_free(js, n);
    return http_reply_json(r, 200, json_pack("{s:s, s:o, s:b}", "object", "list", "data", data, "has_more", 0));
}

/* The path's job in the caller's org, or 404. */
int fine_tunes_lookup(req_t *r, store_t *st, store_job_t *j)
{
    char err[CORE_ERR_LEN];
    int rc = store_job_get(st, r->org_id, r->params[0], j, err);
    if (rc == 0 && j->api != STORE_API_LEGACY) {
        store_job_clear(j);
        rc = STORE_ENOTFOUND;
    }
    if (rc == STORE_ENOTFOUND) return HTTP_404(r, "fine_tune_id", "No such fine-tune: %s", r->params[0]), -1;
    if (rc) return HTTP_500(r, "%s", err), -1;
    return 0;
}

int fine_tunes_get(req_t *r)
{
    store_t *st = server_store(r);
    store_job_t j;
    if (!st || fine_tunes_lookup(r, st, &j)) return -1;
    json_t *o = job_json(st, &j, 1);
    store_job_clear(&j);
    return http_reply_json(r, 200, o);
}

int fine_tunes_cancel(req_t *r)
{
    store_t *st = server_store(r);
    store_job_t j;
    if (!st || fine_tunes_lookup(r, st, &j)) return -1;
    store_job_clear(&j);
    char err[CORE_ERR_LEN];
    int rc = sched_cancel(r->srv->sched, st, r->org_id, r->params[0], err);
    if (rc == STORE_ECONFLICT) return HTTP_400(r, "fine_tune_id", "Cannot cancel fine-tune %s: %s", r->params[0], err);
    if (rc) return server_store_error(r, rc, "fine_tune_id", err);
    if (fine_tunes_lookup(r, st, &j)) return -1;
    json_t *o = job_json(st, &j, 1);
    store_job_clear(&j);
    return http_reply_json(r, 200, o);
}

int fine_tunes_delete(req_t *r)
{
    store_t *st = server_store(r);
    store_job_t j;
    if (!st || fine_tunes_lookup(r, st, &j)) return -1;
    store_job_clear(&j);
    char err[CORE_ERR_LEN];
    int rc = store_job_delete(st, r->org_id, r->params[0], err);
    if (rc == STORE_ECONFLICT)
        return HTTP_400(r, "fine_tune_id", "Fine-tune %s is still active; cancel it before deleting it.", r->params[0]);
    if (rc) return server_store_error(r, rc, "fine_tune_id", err);
    return http_reply_json(r, 200, json_pack("{s:s, s:s, s:b}", "id", r->params[0], "object", "fine-tune", "deleted", 1));
}

int fine_tunes_events(req_t *r)
{
    store_t *st = server_store(r);
    store_job_t j;
    if (!st || fine_tunes_lookup(r, st, &j)) return -1;
    store_job_clear(&j);
    const char *stream = http_query(r, "stream");
    if (stream && (!strcmp(stream, "true") || !strcmp(stream, "True") || !strcmp(stream, "1")))
        return sse_events_start(r);
    store_event_t *es = NULL;
    int n = 0;
    char err[CORE_ERR_LEN];
    int rc = store_event_since(st, r->org_id, r->params[0], 0, 0, &es, &n, err);
    if (rc) return server_store_error(r, rc, "fine_tune_id", err);
    json_t *data = json_array();
    for (int i = 0; i < n; i++)
        if (fine_tunes_event_visible(&es[i])) json_array_append_new(data, fine_tunes_event_json(&es[i]));
    free(es);
    return http_reply_json(r, 200, json_pack("{s:s, s:o, s:b}", "object", "list", "data", data, "has_more", 0));
}
