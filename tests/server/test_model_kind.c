/* test_model_kind.c: what a model name is and whether it is a chat model.
 * The legacy names are completion models; the compatibility names take
 * their format from aliases.json (and a site's own table overrides the
 * shipped one); a fine-tuned model from its tunery.json; a checkpoint from
 * its job's training file; an org never sees another org's models. */
#define TUNERY_SERVER_INTERNAL
#include "server/server.h"
#include "store/store.h"
#include "test.h"
#include "server_fixture.h"
#include <stdlib.h>
#include <unistd.h>

static char tmp[256];
static struct server srv;
static char org_a[STORE_ID_LEN], org_b[STORE_ID_LEN];

static void write_file(const char *path, const char *text)
{
    char err[CORE_ERR_LEN];
    CHECKF(fs_write_atomic(path, text, strlen(text), err) == 0, "%s", err);
}

/* A fine-tuned model directory: the shipped ada weights plus a tunery.json. */
static void make_model_dir(const char *dir, const char *format)
{
    char err[CORE_ERR_LEN], src[4096], path[4200], *bytes;
    size_t len;
    CHECK(fs_mkdir_p(dir, 0755, err) == 0);
    snprintf(src, sizeof src, "%s/models/ada/config.json", core_share_dir());
    if (fs_read_all(src, &bytes, &len, err) == 0) {
        snprintf(path, sizeof path, "%s/config.json", dir);
        fs_write_atomic(path, bytes, len, err);
        free(bytes);
    }
    char tj[256];
    snprintf(tj, sizeof tj, "{\"format\": \"%s\"}", format);
    snprintf(path, sizeof path, "%s/tunery.json", dir);
    write_file(path, tj);
}

static void setup(void)
{
    char err[CORE_ERR_LEN];
    fixture_data_dir(tmp, sizeof tmp, "model-kind", &srv);
    store_t *st;
    CHECKF(store_open(tmp, &st, err) == 0, "%s", err);
    store_org_t a, b;
    CHECK(store_org_create(st, "alpha", &a, err) == 0);
    CHECK(store_org_create(st, "beta", &b, err) == 0);
    snprintf(org_a, sizeof org_a, "%s", a.id);
    snprintf(org_b, sizeof org_b, "%s", b.id);

    /* a chat fine-tune of gpt-4o-mini and a completion fine-tune of ada */
    char dir[4096];
    store_model_t m;
    memset(&m, 0, sizeof m);
    snprintf(dir, sizeof dir, "%s/models/ft-chat", tmp);
    make_model_dir(dir, "chat");
    snprintf(m.id, sizeof m.id, "ft:gpt-4o-mini-2024-07-18:alpha::abcd1234");
    snprintf(m.org_id, sizeof m.org_id, "%s", org_a);
    snprintf(m.base, sizeof m.base, "gpt-4o-mini-2024-07-18");
    snprintf(m.dir, sizeof m.dir, "%s", dir);
    CHECKF(store_model_add(st, &m, err) == 0, "%s", err);
    snprintf(dir, sizeof dir, "%s/models/ft-compl", tmp);
    make_model_dir(dir, "prompt-completion");
    snprintf(m.id, sizeof m.id, "ada:ft-alpha-2026-01-01-00-00-00");
    snprintf(m.base, sizeof m.base, "ada");
    snprintf(m.dir, sizeof m.dir, "%s", dir);
    CHECKF(store_model_add(st, &m, err) == 0, "%s", err);

    /* a job on chat data with a checkpoint model (its directory has no tunery.json) */
    const char *chat = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"yo\"}]}\n";
    store_file_t f;
    CHECKF(store_file_put(st, org_a, "chat.jsonl", "fine-tune", chat, strlen(chat), &f, err) == 0, "%s", err);
    CHECK(store_file_set_status(st, f.id, "processed", NULL, 1, 1, 10, err) == 0);
    store_job_t j;
    memset(&j, 0, sizeof j);
    j.api = STORE_API_JOBS;
    snprintf(j.org_id, sizeof j.org_id, "%s", org_a);
    snprintf(j.model, sizeof j.model, "gpt-4o-mini");
    snprintf(j.training_file, sizeof j.training_file, "%s", f.id);
    j.prompt_loss_weight = -1;
    CHECKF(store_job_create(st, &j, err) == 0, "%s", err);
    store_checkpoint_t c;
    memset(&c, 0, sizeof c);
    snprintf(c.job_id, sizeof c.job_id, "%s", j.id);
    c.step = 4;
    snprintf(c.model, sizeof c.model, "ft:gpt-4o-mini:alpha::%s:ckpt-step-4", j.model_tag);
    snprintf(c.dir, sizeof c.dir, "%s/jobs/%s/ckpt-step-4", tmp, j.id);
    CHECKF(store_checkpoint_add(st, &c, err) == 0, "%s", err);
    store_job_clear(&j);
    store_close(st);
}

static void test_bases_and_aliases(void)
{
    char err[CORE_ERR_LEN];
    /* the GPT-3 era names are completion models, installed or not */
    CHECK_EQ_INT(server_model_is_chat(&srv, org_a, "ada", err), 0);
    CHECK_EQ_INT(server_model_is_chat(&srv, org_a, "curie", err), 0);
    CHECK_EQ_INT(server_model_is_chat(&srv, org_a, "davinci", err), 0);
    CHECK_EQ_INT(server_model_is_chat(&srv, org_a, "babbage-002", err), 0);
    CHECK_EQ_INT(server_model_is_chat(&srv, org_a, "davinci-002", err), 0);
    CHECK_EQ_INT(server_model_is_chat(&srv, org_a, "gpt-4o-mini", err), 1);
    CHECK_EQ_INT(server_model_is_chat(&srv, org_a, "gpt-4o-mini-2024-07-18", err), 1);
    CHECK_EQ_INT(server_model_is_chat(&srv, org_a, "gpt-3.5-turbo", err), 1);
    CHECK_EQ_INT(server_model_is_chat(&srv, org_a, "gpt-5-turbo-nonexistent", err), -1);
    CHECKF(strstr(err, "does not exist") != NULL, "%s", err);

    server_model_t m;
    CHECK_EQ_INT(server_model_lookup(&srv, org_a, "gpt-4o-mini", &m, err), 0);
    CHECK_EQ_INT(m.kind, SERVER_MODEL_ALIAS);
    CHECK_EQ_STR(m.target, "curie");
    char want[4096];
    snprintf(want, sizeof want, "%s/models/curie", core_share_dir());
    CHECK_EQ_STR(m.dir, want);
    CHECK_EQ_INT(server_model_lookup(&srv, org_a, "babbage-002", &m, err), 0);
    CHECK_EQ_STR(m.target, "babbage");
    CHECK_EQ_INT(m.is_chat, 0);
    CHECK_EQ_INT(server_model_lookup(&srv, org_a, "ada", &m, err), 0);
    CHECK_EQ_INT(m.kind, SERVER_MODEL_BASE);
    /* core_model_dir (train, generate, the worker) follows aliases too */
    char dir[4096];
    CHECKF(core_model_dir("gpt-4o-mini-2024-07-18", dir, err) == 0, "%s", err);
    CHECK_EQ_STR(dir, want);
}

static void test_site_aliases_override(void)
{
    char err[CORE_ERR_LEN], path[4096];
    snprintf(path, sizeof path, "%s/models", tmp);
    fs_mkdir_p(path, 0755, err);
    snprintf(path, sizeof path, "%s/models/aliases.json", tmp);
    write_file(path, "{\"aliases\": {\"gpt-4o-mini\": {\"model\": \"ada\", \"format\": \"prompt-completion\"},"
                     " \"my-chat\": {\"model\": \"babbage\", \"format\": \"chat\"},"
                     " \"old-002\": {\"model\": \"not-installed-base\", \"format\": \"prompt-completion\"}}}");
    server_model_t m;
    /* an alias whose weights are not installed: missing, and the error names the target */
    CHECK_EQ_INT(server_model_lookup(&srv, org_a, "old-002", &m, err), SERVER_MODEL_MISSING);
    CHECK_EQ_INT(m.kind, SERVER_MODEL_ALIAS);
    CHECKF(strstr(err, "not-installed-base") != NULL, "%s", err);
    char dir[4096];
    CHECK(core_model_dir("old-002", dir, err) == -1);
    CHECKF(strstr(err, "compatibility name for 'not-installed-base'") != NULL, "%s", err);
    CHECK_EQ_INT(server_model_lookup(&srv, org_a, "gpt-4o-mini", &m, err), 0);
    CHECK_EQ_STR(m.target, "ada");
    CHECK_EQ_INT(m.is_chat, 0);
    CHECK_EQ_INT(server_model_is_chat(&srv, org_a, "my-chat", err), 1);
    CHECK_EQ_INT(server_model_is_chat(&srv, org_a, "gpt-3.5-turbo", err), 1);   /* the shipped table still answers */
    json_t *names = server_model_aliases();
    int mine = 0, shipped = 0;
    size_t i;
    json_t *x;
    json_array_foreach(names, i, x) {
        mine += !strcmp(json_string_value(x), "my-chat");
        shipped += !strcmp(json_string_value(x), "gpt-4o-mini");
    }
    CHECK_EQ_INT(mine, 1);
    CHECK_EQ_INT(shipped, 1);   /* listed once though both tables have it */
    json_decref(names);
    /* a broken table is an error that names the file, not "not found" */
    write_file(path, "{\"aliases\": {\"gpt-4o-mini\": {\"model\": \"ada\", \"format\": \"text\"}}}");
    CHECK_EQ_INT(server_model_lookup(&srv, org_a, "gpt-4o-mini", &m, err), SERVER_MODEL_ERROR);
    CHECKF(strstr(err, "aliases.json") != NULL, "%s", err);
    write_file(path, "{not json");
    CHECK_EQ_INT(server_model_is_chat(&srv, org_a, "gpt-4o-mini", err), -1);
    CHECKF(strstr(err, "not valid JSON") != NULL, "%s", err);
    unlink(path);
}

static void test_fine_tuned_and_checkpoints(void)
{
    char err[CORE_ERR_LEN];
    server_model_t m;
    CHECK_EQ_INT(server_model_lookup(&srv, org_a, "ft:gpt-4o-mini-2024-07-18:alpha::abcd1234", &m, err), 0);
    CHECK_EQ_INT(m.kind, SERVER_MODEL_FINE_TUNED);
    CHECK_EQ_INT(m.is_chat, 1);
    CHECK_EQ_INT(server_model_is_chat(&srv, org_a, "ada:ft-alpha-2026-01-01-00-00-00", err), 0);
    /* checkpoints: chat because their job trained on chat data */
    store_t *st = server_thread_store(&srv, err);
    store_checkpoint_t *cs = NULL;
    int n = 0;
    CHECK(st && store_checkpoint_models(st, org_a, &cs, &n, err) == 0);
    CHECK_EQ_INT(n, 1);
    if (n == 1) {
        CHECKF(server_model_lookup(&srv, org_a, cs[0].model, &m, err) == 0, "%s", err);
        CHECK_EQ_INT(m.kind, SERVER_MODEL_CHECKPOINT);
        CHECK_EQ_INT(m.is_chat, 1);
        CHECK_EQ_STR(m.dir, cs[0].dir);
        /* another org sees nothing of it */
        CHECK_EQ_INT(server_model_is_chat(&srv, org_b, cs[0].model, err), -1);
    }
    free(cs);
    CHECK_EQ_INT(server_model_is_chat(&srv, org_b, "ft:gpt-4o-mini-2024-07-18:alpha::abcd1234", err), -1);
    CHECK_EQ_STR(server_model_kind_name(SERVER_MODEL_CHECKPOINT), "checkpoint");
}

int main(void)
{
    setup();
    RUN(test_bases_and_aliases);
    RUN(test_site_aliases_override);
    RUN(test_fine_tuned_and_checkpoints);
    char err[CORE_ERR_LEN];
    fs_rm_rf(tmp, err);
    return test_summary();
}
