/* test_fine_tuning_jobs.c: the /v1/fine_tuning/jobs handlers without a
 * socket: requests are req_t values with captured replies, the store is a
 * real one in a temp directory, and there is no scheduler (jobs stop at
 * queued). What the e2e suite cannot pin cheaply is checked here: every
 * bad parameter is a 400 naming it, the job object has every field with
 * "auto" before resolution and numbers after, the state changes and their
 * 400s, and the current API's event words. */
#define TUNERY_SERVER_INTERNAL
#include "server/server.h"
#include "store/store.h"
#include "test.h"
#include <stdlib.h>
#include <unistd.h>

static struct server srv;
static store_t *st;
static char org[STORE_ID_LEN], pc_file[STORE_ID_LEN], chat_file[STORE_ID_LEN];

static void write_file(const char *path, const char *text)
{
    char err[CORE_ERR_LEN];
    CHECK(fs_write_atomic(path, text, strlen(text), err) == 0);
}

static void setup(void)
{
    char err[CORE_ERR_LEN], p[4200];
    snprintf(srv.data_dir, sizeof srv.data_dir, "/tmp/tunery-test-ftjobs-XXXXXX");
    CHECK(mkdtemp(srv.data_dir) != NULL);
    /* two base models: "curie" (completion) and "chatty" (its tunery.json says chat) */
    snprintf(p, sizeof p, "%s/models/curie", srv.data_dir);
    CHECK(fs_mkdir_p(p, 0755, err) == 0);
    snprintf(p, sizeof p, "%s/models/curie/config.json", srv.data_dir);
    write_file(p, "{}");
    snprintf(p, sizeof p, "%s/models/chatty", srv.data_dir);
    CHECK(fs_mkdir_p(p, 0755, err) == 0);
    snprintf(p, sizeof p, "%s/models/chatty/config.json", srv.data_dir);
    write_file(p, "{}");
    snprintf(p, sizeof p, "%s/models/chatty/tunery.json", srv.data_dir);
    write_file(p, "{\"format\": \"chat\"}");
    st = server_thread_store(&srv, err);
    CHECK(st != NULL);
    char key[STORE_KEY_LEN];
    int created;
    store_org_t o;
    CHECK(store_bootstrap(st, key, &created, err) == 0);
    CHECK(store_org_get(st, "personal", &o, err) == 0);
    snprintf(org, sizeof org, "%s", o.id);
    const char *pc = "{\"prompt\":\"a ->\",\"completion\":\" b\\n\"}\n";
    const char *chat = "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\"}]}\n";
    store_file_t f;
    CHECK(store_file_put(st, org, "pc.jsonl", "fine-tune", pc, strlen(pc), &f, err) == 0);
    CHECK(store_file_set_status(st, f.id, "processed", "", 1, 0, 6, err) == 0);
    snprintf(pc_file, sizeof pc_file, "%s", f.id);
    CHECK(store_file_put(st, org, "chat.jsonl", "fine-tune", chat, strlen(chat), &f, err) == 0);
    CHECK(store_file_set_status(st, f.id, "processed", "", 1, 1, 6, err) == 0);
    snprintf(chat_file, sizeof chat_file, "%s", f.id);
}

/* Run a handler on a request with this JSON body (NULL = none) and path id;
 * returns the reply parsed (caller decrefs) and its status in *status. */
static json_t *call(int (*fn)(req_t *), const char *body, const char *id, int *status)
{
    req_t r;
    memset(&r, 0, sizeof r);
    r.srv = &srv;
    snprintf(r.org_id, sizeof r.org_id, "%s", org);
    if (body) {
        r.body = json_loads(body, 0, NULL);
        CHECKF(r.body != NULL, "bad test JSON: %s", body);
    }
    if (id) {
        snprintf(r.params[0], sizeof r.params[0], "%s", id);
        r.nparams = 1;
    }
    fn(&r);
    json_decref(r.body);
    *status = r.captured_status;
    json_t *o = r.captured ? json_loads(r.captured, 0, NULL) : NULL;
    free(r.captured);
    return o;
}

static const char *err_param(json_t *o)
{
    const char *p = json_string_value(json_object_get(json_object_get(o, "error"), "param"));
    return p ? p : "(null)";
}

static json_t *create(const char *fmt, const char *file, int *status)
{
    char body[4096];
    snprintf(body, sizeof body, fmt, file);
    return call(fine_tuning_jobs_create, body, NULL, status);
}

static void test_create_bad_input_names_the_param(void)
{
    char long_value[700], suffix65[256], many_keys[1024];
    snprintf(long_value, sizeof long_value, "{\"model\":\"curie\",\"training_file\":\"%%s\",\"metadata\":{\"k\":\"%0513d\"}}", 0);
    snprintf(suffix65, sizeof suffix65, "{\"model\":\"curie\",\"training_file\":\"%%s\",\"suffix\":\"%065d\"}", 0);
    int n = snprintf(many_keys, sizeof many_keys, "{\"model\":\"curie\",\"training_file\":\"%%s\",\"metadata\":{");
    for (int i = 0; i < 17; i++) n += snprintf(many_keys + n, sizeof many_keys - n, "%s\"k%d\":\"v\"", i ? "," : "", i);
    snprintf(many_keys + n, sizeof many_keys - n, "}}");
    static const char *const bodies_params[][2] = {
        {"{\"model\":\"curie\",\"training_file\":\"%s\",\"method\":{\"type\":\"dpo\"}}", "method.type"},
        {"{\"model\":\"curie\",\"training_file\":\"%s\",\"method\":{\"type\":\"reinforcement\"}}", "method.type"},
        {"{\"model\":\"curie\",\"training_file\":\"%s\",\"method\":{\"type\":\"other\"}}", "method.type"},
        {"{\"model\":\"curie\",\"training_file\":\"%s\",\"method\":{}}", "method.type"},
        {"{\"model\":\"curie\",\"training_file\":\"%s\",\"method\":\"supervised\"}", "method"},
        {"{\"model\":\"curie\",\"training_file\":\"%s\",\"method\":{\"type\":\"supervised\",\"dpo\":{}}}", "method.dpo"},
        {"{\"model\":\"curie\",\"training_file\":\"%s\",\"hyperparameters\":{\"n_epochs\":0}}", "hyperparameters.n_epochs"},
        {"{\"model\":\"curie\",\"training_file\":\"%s\",\"hyperparameters\":{\"n_epochs\":51}}", "hyperparameters.n_epochs"},
        {"{\"model\":\"curie\",\"training_file\":\"%s\",\"hyperparameters\":{\"n_epochs\":2.5}}", "hyperparameters.n_epochs"},
        {"{\"model\":\"curie\",\"training_file\":\"%s\",\"hyperparameters\":{\"n_epochs\":\"many\"}}", "hyperparameters.n_epochs"},
        {"{\"model\":\"curie\",\"training_file\":\"%s\",\"hyperparameters\":{\"batch_size\":0}}", "hyperparameters.batch_size"},
        {"{\"model\":\"curie\",\"training_file\":\"%s\",\"hyperparameters\":{\"batch_size\":257}}", "hyperparameters.batch_size"},
        {"{\"model\":\"curie\",\"training_file\":\"%s\",\"hyperparameters\":{\"learning_rate_multiplier\":0}}", "hyperparameters.learning_rate_multiplier"},
        {"{\"model\":\"curie\",\"training_file\":\"%s\",\"hyperparameters\":{\"prompt_loss_weight\":0.1}}", "hyperparameters.prompt_loss_weight"},
        {"{\"model\":\"curie\",\"training_file\":\"%s\",\"method\":{\"type\":\"supervised\",\"supervised\":{\"hyperparameters\":{\"n_epochs\":51}}}}",
         "method.supervised.hyperparameters.n_epochs"},
        {"{\"model\":\"curie\",\"training_file\":\"%s\",\"hyperparameters\":{\"n_epochs\":2},"
         "\"method\":{\"type\":\"supervised\",\"supervised\":{\"hyperparameters\":{\"n_epochs\":3}}}}", "hyperparameters"},
        {"{\"model\":\"curie\",\"training_file\":\"%s\",\"suffix\":\"\"}", "suffix"},
        {"{\"model\":\"curie\",\"training_file\":\"%s\",\"seed\":-1}", "seed"},
        {"{\"model\":\"curie\",\"training_file\":\"%s\",\"seed\":2147483648}", "seed"},
        {"{\"model\":\"curie\",\"training_file\":\"%s\",\"metadata\":[\"x\"]}", "metadata"},
        {"{\"model\":\"curie\",\"training_file\":\"%s\",\"metadata\":{\"k\":1}}", "metadata"},
        {"{\"model\":\"curie\",\"training_file\":\"%s\",\"integrations\":[{\"type\":\"comet\"}]}", "integrations"},
        {"{\"model\":\"curie\",\"training_file\":\"%s\",\"integrations\":[{\"type\":\"wandb\",\"wandb\":{}}]}", "integrations"},
        {"{\"model\":\"curie\",\"training_file\":\"%s\",\"n_epochs\":2}", "n_epochs"},
        {"{\"training_file\":\"%s\"}", "model"},
        {"{\"model\":\"curie\",\"x\":\"%s\"}", "x"},
        {"{\"model\":\"curie\",\"validation_file\":\"%s\"}", "training_file"},
        {"{\"model\":\"nobody\",\"training_file\":\"%s\"}", "model"},
        {"{\"model\":\"curie\",\"training_file\":\"%s-nope\"}", "training_file"},
        {"{\"model\":\"curie\",\"training_file\":\"%s\",\"validation_file\":\"file-nope\"}", "validation_file"},
    };
    int status;
    for (size_t i = 0; i < sizeof bodies_params / sizeof *bodies_params; i++) {
        json_t *o = create(bodies_params[i][0], pc_file, &status);
        CHECKF(status == 400 && !strcmp(err_param(o), bodies_params[i][1]), "case %zu (%s): status %d param %s, want 400 %s",
               i, bodies_params[i][0], status, err_param(o), bodies_params[i][1]);
        json_decref(o);
    }
    const char *fmts[][2] = {{long_value, "metadata"}, {suffix65, "suffix"}, {many_keys, "metadata"}};
    for (size_t i = 0; i < 3; i++) {
        json_t *o = create(fmts[i][0], pc_file, &status);
        CHECKF(status == 400 && !strcmp(err_param(o), fmts[i][1]), "limit case %zu: %d %s", i, status, err_param(o));
        json_decref(o);
    }
    /* 64 two-byte characters: within OpenAI's limit, over what the store keeps: refused, not cut mid-character */
    char wide[512] = "{\"model\":\"curie\",\"training_file\":\"%s\",\"suffix\":\"";
    for (int i = 0; i < 64; i++) strcat(wide, "\xc3\xa9");
    strcat(wide, "\"}");
    json_t *w = create(wide, pc_file, &status);
    CHECK(status == 400 && !strcmp(err_param(w), "suffix"));
    json_decref(w);
    /* the data format against the base model's, with a message saying which is needed */
    json_t *o = create("{\"model\":\"curie\",\"training_file\":\"%s\"}", chat_file, &status);
    CHECK(status == 400 && !strcmp(err_param(o), "training_file"));
    const char *msg = json_string_value(json_object_get(json_object_get(o, "error"), "message"));
    CHECK(msg && strstr(msg, "completion model") && strstr(msg, "\"prompt\""));
    json_decref(o);
    o = create("{\"model\":\"chatty\",\"training_file\":\"%s\"}", pc_file, &status);
    CHECK(status == 400 && !strcmp(err_param(o), "training_file"));
    msg = json_string_value(json_object_get(json_object_get(o, "error"), "message"));
    CHECK(msg && strstr(msg, "chat model") && strstr(msg, "\"messages\""));
    json_decref(o);
    char body[512];
    snprintf(body, sizeof body, "{\"model\":\"chatty\",\"training_file\":\"%s\",\"validation_file\":\"%s\"}", chat_file, pc_file);
    o = call(fine_tuning_jobs_create, body, NULL, &status);
    CHECK(status == 400 && !strcmp(err_param(o), "validation_file"));
    json_decref(o);
    /* nothing was created by any of them */
    store_job_t *js;
    int nj, more;
    char err[CORE_ERR_LEN];
    CHECK(store_job_list(st, org, STORE_API_JOBS, NULL, NULL, NULL, &js, &nj, &more, err) == 0);
    CHECK_EQ_INT(nj, 0);
    store_job_free(js, nj);
}

static void test_create_job_object(void)
{
    int status;
    char body[1024];
    snprintf(body, sizeof body, "{\"model\":\"curie\",\"training_file\":\"%s\",\"suffix\":\"%064d\",\"seed\":2147483647,"
             "\"hyperparameters\":{\"n_epochs\":50,\"batch_size\":\"auto\",\"learning_rate_multiplier\":null},"
             "\"method\":{\"type\":\"supervised\"},\"metadata\":{\"team\":\"x\"},"
             "\"integrations\":[{\"type\":\"wandb\",\"wandb\":{\"project\":\"p\",\"tags\":[\"a\"]}}]}", pc_file, 7);
    json_t *o = call(fine_tuning_jobs_create, body, NULL, &status);
    CHECK_EQ_INT(status, 200);
    static const char *const required[] = {"id", "object", "created_at", "error", "fine_tuned_model", "finished_at",
        "hyperparameters", "model", "organization_id", "result_files", "status", "trained_tokens", "training_file",
        "validation_file", "seed", "estimated_finish", "integrations", "method", "metadata", "user_provided_suffix", NULL};
    for (const char *const *k = required; *k; k++) CHECKF(json_object_get(o, *k) != NULL, "missing %s", *k);
    CHECK_EQ_STR(json_string_value(json_object_get(o, "object")), "fine_tuning.job");
    CHECK(!strncmp(json_string_value(json_object_get(o, "id")), "ftjob-", 6));
    CHECK_EQ_STR(json_string_value(json_object_get(o, "status")), "queued");   /* validated at upload; no scheduler here */
    CHECK_EQ_STR(json_string_value(json_object_get(o, "organization_id")), org);
    json_t *hp = json_object_get(o, "hyperparameters");
    CHECK_EQ_INT(json_integer_value(json_object_get(hp, "n_epochs")), 50);
    CHECK_EQ_STR(json_string_value(json_object_get(hp, "batch_size")), "auto");
    CHECK_EQ_STR(json_string_value(json_object_get(hp, "learning_rate_multiplier")), "auto");
    CHECK(json_equal(json_object_get(json_object_get(json_object_get(o, "method"), "supervised"), "hyperparameters"), hp));
    CHECK_EQ_INT(json_integer_value(json_object_get(o, "seed")), 2147483647);
    CHECK_EQ_INT(strlen(json_string_value(json_object_get(o, "user_provided_suffix"))), 64);
    CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(o, "metadata"), "team")), "x");
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(json_object_get(o, "integrations"), 0), "type")), "wandb");
    CHECK(json_is_array(json_object_get(o, "result_files")) && json_array_size(json_object_get(o, "result_files")) == 0);
    static const char *const nulls[] = {"error", "fine_tuned_model", "finished_at", "trained_tokens", "validation_file", "estimated_finish", NULL};
    for (const char *const *k = nulls; *k; k++) CHECKF(json_is_null(json_object_get(o, *k)), "%s not null", *k);
    char id[STORE_ID_LEN];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(o, "id")));
    json_decref(o);

    /* resolved by the worker: numbers in both places; succeeded: the outcome */
    char err[CORE_ERR_LEN];
    CHECK(store_job_transition(st, id, "queued", "running", err) == 0);
    CHECK(store_job_set_resolved(st, id, 50, 4, 0.1, 0.01, 2147483647, 100, err) == 0);
    CHECK(store_job_set_progress(st, id, 10, 640, time_unix() + 60, err) == 0);
    o = call(fine_tuning_jobs_get, NULL, id, &status);
    CHECK_EQ_INT(status, 200);
    hp = json_object_get(o, "hyperparameters");
    CHECK_EQ_INT(json_integer_value(json_object_get(hp, "batch_size")), 4);
    CHECK_NEAR(json_number_value(json_object_get(hp, "learning_rate_multiplier")), 0.1, 1e-12);
    CHECK(json_is_integer(json_object_get(o, "estimated_finish")));
    CHECK(json_is_null(json_object_get(o, "trained_tokens")));   /* known only at the end */
    json_decref(o);
    store_file_t rf;
    CHECK(store_file_put(st, org, "compiled_results.csv", "fine-tune-results", "step\n", 5, &rf, err) == 0);
    CHECK(store_job_succeed(st, id, "ft:curie:personal:x:abcdefgh", rf.id, 1234, err) == 0);
    o = call(fine_tuning_jobs_get, NULL, id, &status);
    CHECK_EQ_STR(json_string_value(json_object_get(o, "status")), "succeeded");
    CHECK_EQ_STR(json_string_value(json_object_get(o, "fine_tuned_model")), "ft:curie:personal:x:abcdefgh");
    CHECK_EQ_STR(json_string_value(json_array_get(json_object_get(o, "result_files"), 0)), rf.id);
    CHECK_EQ_INT(json_integer_value(json_object_get(o, "trained_tokens")), 1234);
    CHECK(json_integer_value(json_object_get(o, "finished_at")) > 0);
    CHECK(json_is_null(json_object_get(o, "estimated_finish")));
    json_decref(o);

    /* without a seed, one is drawn in range and returned */
    o = create("{\"model\":\"curie\",\"training_file\":\"%s\"}", pc_file, &status);
    CHECK_EQ_INT(status, 200);
    json_int_t seed = json_integer_value(json_object_get(o, "seed"));
    CHECK(json_is_integer(json_object_get(o, "seed")) && seed >= 0 && seed <= 2147483647);
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(o, "id")));
    json_decref(o);
    store_job_t j;
    CHECK(store_job_get(st, org, id, &j, err) == 0);
    CHECK(j.has_seed && j.seed == seed && j.api == STORE_API_JOBS);
    store_job_clear(&j);
    /* chat data on a chat base */
    o = create("{\"model\":\"chatty\",\"training_file\":\"%s\"}", chat_file, &status);
    CHECK_EQ_INT(status, 200);
    json_decref(o);
}

static const char *status_of(json_t *o) { return json_string_value(json_object_get(o, "status")); }

static void test_pause_resume_cancel(void)
{
    int status;
    json_t *o = create("{\"model\":\"curie\",\"training_file\":\"%s\"}", pc_file, &status);
    char id[STORE_ID_LEN];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(o, "id")));
    json_decref(o);
    o = call(fine_tuning_jobs_resume, NULL, id, &status);
    CHECK(status == 400 && !strcmp(err_param(o), "fine_tuning_job_id"));
    const char *msg = json_string_value(json_object_get(json_object_get(o, "error"), "message"));
    CHECK(msg && strstr(msg, "it is queued") && strstr(msg, "only a paused job"));
    json_decref(o);
    o = call(fine_tuning_jobs_pause, NULL, id, &status);
    CHECK(status == 200 && !strcmp(status_of(o), "paused"));
    json_decref(o);
    o = call(fine_tuning_jobs_pause, NULL, id, &status);
    CHECK(status == 400 && !strcmp(err_param(o), "fine_tuning_job_id"));
    json_decref(o);
    o = call(fine_tuning_jobs_resume, NULL, id, &status);
    CHECK(status == 200 && !strcmp(status_of(o), "queued"));
    json_decref(o);
    o = call(fine_tuning_jobs_cancel, NULL, id, &status);
    CHECK(status == 200 && !strcmp(status_of(o), "cancelled"));
    CHECK(json_integer_value(json_object_get(o, "finished_at")) > 0);
    json_decref(o);
    o = call(fine_tuning_jobs_cancel, NULL, id, &status);
    CHECK(status == 400 && !strcmp(err_param(o), "fine_tuning_job_id"));
    json_decref(o);
    o = call(fine_tuning_jobs_pause, NULL, id, &status);
    CHECK_EQ_INT(status, 400);
    json_decref(o);

    /* events: newest first, in this API's words, default page of 20 */
    o = call(fine_tuning_jobs_events, NULL, id, &status);
    CHECK_EQ_INT(status, 200);
    json_t *data = json_object_get(o, "data");
    const char *want[] = {"Fine-tuning job cancelled", "Fine-tuning job resumed", "Fine-tuning job paused",
                          "Files validated, moving job to queued state", "Validating training file: ", "Created fine-tuning job: "};
    CHECK_EQ_INT(json_array_size(data), 6);
    for (size_t i = 0; i < 6 && i < json_array_size(data); i++) {
        json_t *e = json_array_get(data, i);
        const char *m = json_string_value(json_object_get(e, "message"));
        CHECKF(m && !strncmp(m, want[i], strlen(want[i])), "event %zu: %s", i, m ? m : "(null)");
        CHECK_EQ_STR(json_string_value(json_object_get(e, "object")), "fine_tuning.job.event");
        CHECK_EQ_STR(json_string_value(json_object_get(e, "type")), "message");
        CHECK(json_is_null(json_object_get(e, "data")));
    }
    CHECK(json_is_false(json_object_get(o, "has_more")));
    json_decref(o);

    /* a paused job can be cancelled too */
    o = create("{\"model\":\"curie\",\"training_file\":\"%s\"}", pc_file, &status);
    char id2[STORE_ID_LEN];
    snprintf(id2, sizeof id2, "%s", json_string_value(json_object_get(o, "id")));
    json_decref(o);
    o = call(fine_tuning_jobs_pause, NULL, id2, &status);
    CHECK(status == 200 && !strcmp(status_of(o), "paused"));
    json_decref(o);
    o = call(fine_tuning_jobs_cancel, NULL, id2, &status);
    CHECK(status == 200 && !strcmp(status_of(o), "cancelled"));
    json_decref(o);

    /* unknown, and a legacy job, are 404 here */
    o = call(fine_tuning_jobs_get, NULL, "ftjob-nope", &status);
    CHECK(status == 404 && !strcmp(err_param(o), "fine_tuning_job_id"));
    json_decref(o);
    store_job_t lj;
    memset(&lj, 0, sizeof lj);
    lj.api = STORE_API_LEGACY;
    snprintf(lj.org_id, sizeof lj.org_id, "%s", org);
    snprintf(lj.model, sizeof lj.model, "curie");
    snprintf(lj.training_file, sizeof lj.training_file, "%s", pc_file);
    char err[CORE_ERR_LEN];
    CHECK(store_job_create(st, &lj, err) == 0);
    o = call(fine_tuning_jobs_cancel, NULL, lj.id, &status);
    CHECK_EQ_INT(status, 404);
    json_decref(o);
    store_job_clear(&lj);
}

static void test_metrics_events_and_checkpoints(void)
{
    int status;
    json_t *o = create("{\"model\":\"curie\",\"training_file\":\"%s\"}", pc_file, &status);
    char id[STORE_ID_LEN], err[CORE_ERR_LEN];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(o, "id")));
    json_decref(o);
    CHECK(store_job_transition(st, id, "queued", "running", err) == 0);
    CHECK(store_event_add(st, id, "info", "message", "Fine-tune started", NULL, NULL, err) == 0);
    for (int step = 1; step <= 25; step++) {
        char data[256], msg[64];
        snprintf(data, sizeof data, "{\"step\":%d,\"train_loss\":%g,\"valid_loss\":null,\"train_mean_token_accuracy\":0.5}", step, 3.0 / step);
        snprintf(msg, sizeof msg, "Step %d/25: training loss=%.4f", step, 3.0 / step);
        CHECK(store_event_add(st, id, "info", "metrics", msg, data, NULL, err) == 0);
    }
    CHECK(store_event_add(st, id, "info", "message", "Uploaded model: ft:curie:personal::abcdefgh", NULL, NULL, err) == 0);
    o = call(fine_tuning_jobs_events, NULL, id, &status);
    json_t *data = json_object_get(o, "data");
    CHECK_EQ_INT(json_array_size(data), 20);
    CHECK(json_is_true(json_object_get(o, "has_more")));
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(data, 0), "message")), "New fine-tuned model created: ft:curie:personal::abcdefgh");
    json_t *m = json_array_get(data, 1);
    CHECK_EQ_STR(json_string_value(json_object_get(m, "type")), "metrics");
    CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(m, "data"), "step")), 25);
    CHECK_NEAR(json_number_value(json_object_get(json_object_get(m, "data"), "train_loss")), 3.0 / 25, 1e-6);
    json_decref(o);

    for (int step = 10; step <= 30; step += 10) {
        store_checkpoint_t c;
        memset(&c, 0, sizeof c);
        snprintf(c.job_id, sizeof c.job_id, "%s", id);
        c.step = step;
        snprintf(c.model, sizeof c.model, "ft:curie:personal::abcdefgh:ckpt-step-%d", step);
        snprintf(c.dir, sizeof c.dir, "%s/jobs/%s/ckpt-step-%d", srv.data_dir, id, step);
        c.train_loss = 1.0 / step;
        c.train_mean_token_accuracy = 0.5;
        c.valid_loss = c.valid_mean_token_accuracy = c.full_valid_loss = c.full_valid_mean_token_accuracy = NAN;
        CHECK(store_checkpoint_add(st, &c, err) == 0);
    }
    o = call(fine_tuning_jobs_checkpoints, NULL, id, &status);
    CHECK_EQ_INT(status, 200);
    data = json_object_get(o, "data");
    CHECK_EQ_INT(json_array_size(data), 3);
    json_t *c0 = json_array_get(data, 0);
    CHECK_EQ_STR(json_string_value(json_object_get(c0, "object")), "fine_tuning.job.checkpoint");
    CHECK_EQ_INT(json_integer_value(json_object_get(c0, "step_number")), 30);
    CHECK_EQ_STR(json_string_value(json_object_get(c0, "fine_tuned_model_checkpoint")), "ft:curie:personal::abcdefgh:ckpt-step-30");
    CHECK_EQ_STR(json_string_value(json_object_get(c0, "fine_tuning_job_id")), id);
    json_t *mt = json_object_get(c0, "metrics");
    CHECK_NEAR(json_number_value(json_object_get(mt, "train_loss")), 1.0 / 30, 1e-12);
    CHECK(json_is_null(json_object_get(mt, "valid_loss")) && json_is_null(json_object_get(mt, "full_valid_loss")));
    CHECK_EQ_INT(json_integer_value(json_object_get(mt, "step")), 30);
    CHECK_EQ_STR(json_string_value(json_object_get(o, "first_id")), json_string_value(json_object_get(c0, "id")));
    CHECK_EQ_STR(json_string_value(json_object_get(o, "last_id")), json_string_value(json_object_get(json_array_get(data, 2), "id")));
    CHECK(json_is_false(json_object_get(o, "has_more")));
    json_decref(o);
}

int main(void)
{
    setup();
    RUN(test_create_bad_input_names_the_param);
    RUN(test_create_job_object);
    RUN(test_pause_resume_cancel);
    RUN(test_metrics_events_and_checkpoints);
    char err[CORE_ERR_LEN];
    fs_rm_rf(srv.data_dir, err);
    return test_summary();
}
