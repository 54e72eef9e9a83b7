/* test_models.c: GET /v1/models serves the bases and compatibility names
 * from a serialized copy kept between requests. This checks that the copy
 * changes exactly when an aliases.json does, that every listed object is the
 * one GET /v1/models/{id} gives (same permission id: it is a function of
 * the model id), and that an org sees its own fine-tuned and checkpoint
 * models after the shared part and never another org's. */
#define TUNERY_SERVER_INTERNAL
#include "server/server.h"
#include "store/store.h"
#include "test.h"
#include "server_fixture.h"
#include <ctype.h>
#include <stdlib.h>
#include <unistd.h>

static char tmp[256];
static struct server srv;
static char org_a[STORE_ID_LEN], org_b[STORE_ID_LEN], ckpt_model[STORE_NAME_LEN];

static void setup(void)
{
    char err[CORE_ERR_LEN];
    fixture_data_dir(tmp, sizeof tmp, "models", &srv);
    store_t *st;
    CHECKF(store_open(tmp, &st, err) == 0, "%s", err);
    store_org_t a, b;
    CHECK(store_org_create(st, "alpha", &a, err) == 0);
    CHECK(store_org_create(st, "beta", &b, err) == 0);
    snprintf(org_a, sizeof org_a, "%s", a.id);
    snprintf(org_b, sizeof org_b, "%s", b.id);

    store_model_t m;
    memset(&m, 0, sizeof m);
    snprintf(m.id, sizeof m.id, "ada:ft-alpha-2026-01-01-00-00-00");
    snprintf(m.org_id, sizeof m.org_id, "%s", org_a);
    snprintf(m.base, sizeof m.base, "ada");
    snprintf(m.dir, sizeof m.dir, "%s/models/ft", tmp);
    CHECKF(store_model_add(st, &m, err) == 0, "%s", err);

    const char *data = "{\"prompt\":\"a\",\"completion\":\" b\"}\n";
    store_file_t f;
    CHECKF(store_file_put(st, org_a, "t.jsonl", "fine-tune", data, strlen(data), &f, err) == 0, "%s", err);
    store_job_t j;
    memset(&j, 0, sizeof j);
    j.api = STORE_API_JOBS;
    snprintf(j.org_id, sizeof j.org_id, "%s", org_a);
    snprintf(j.model, sizeof j.model, "babbage-002");
    snprintf(j.training_file, sizeof j.training_file, "%s", f.id);
    j.prompt_loss_weight = -1;
    CHECKF(store_job_create(st, &j, err) == 0, "%s", err);
    store_checkpoint_t c;
    memset(&c, 0, sizeof c);
    snprintf(c.job_id, sizeof c.job_id, "%s", j.id);
    c.step = 2;
    snprintf(c.model, sizeof c.model, "ft:babbage-002:alpha::%s:ckpt-step-2", j.model_tag);
    snprintf(c.dir, sizeof c.dir, "%s/jobs/%s/ckpt-step-2", tmp, j.id);
    CHECKF(store_checkpoint_add(st, &c, err) == 0, "%s", err);
    snprintf(ckpt_model, sizeof ckpt_model, "%s", c.model);
    store_job_clear(&j);
    store_close(st);
}

/* Run a handler without a connection; returns the parsed body (or NULL). */
static json_t *call(int (*fn)(req_t *), const char *org, const char *param, char **raw)
{
    req_t r;
    memset(&r, 0, sizeof r);
    r.srv = &srv;
    snprintf(r.org_id, sizeof r.org_id, "%s", org);
    if (param) {
        snprintf(r.params[0], sizeof r.params[0], "%s", param);
        r.nparams = 1;
    }
    fn(&r);
    CHECK_EQ_INT(r.captured_status, 200);
    json_error_t je;
    json_t *j = r.captured ? json_loads(r.captured, 0, &je) : NULL;
    CHECKF(j != NULL, "not JSON: %s", r.captured ? r.captured : "(nothing)");
    if (raw) *raw = r.captured;
    else free(r.captured);
    return j;
}

static const char *id_at(json_t *data, size_t i)
{
    return json_string_value(json_object_get(json_array_get(data, i), "id"));
}

static int has_id(json_t *data, const char *id)
{
    size_t i;
    json_t *x;
    json_array_foreach(data, i, x) if (!strcmp(json_string_value(json_object_get(x, "id")), id)) return 1;
    return 0;
}

static void test_list_shape_and_order(void)
{
    char *raw = NULL;
    json_t *body = call(models_list, org_a, NULL, &raw);
    CHECK_EQ_STR(json_string_value(json_object_get(body, "object")), "list");
    CHECK(json_is_false(json_object_get(body, "has_more")));
    json_t *data = json_object_get(body, "data");
    core_alias_t *al = NULL;
    int na = 0;
    char err[CORE_ERR_LEN];
    CHECKF(core_model_alias_list(&al, &na, err) == 0, "%s", err);
    CHECK(na > 0);   /* the shipped table */
    CHECK_EQ_INT((int)json_array_size(data), 4 + na + 2);
    const char *bases[] = {"ada", "babbage", "curie", "davinci"};
    for (int i = 0; i < 4; i++) CHECK_EQ_STR(id_at(data, i), bases[i]);
    for (int i = 0; i < na; i++) CHECK_EQ_STR(id_at(data, 4 + i), al[i].name);
    CHECK_EQ_STR(id_at(data, 4 + na), "ada:ft-alpha-2026-01-01-00-00-00");
    CHECK_EQ_STR(id_at(data, 4 + na + 1), ckpt_model);
    free(al);

    /* every object is the one GET /v1/models/{id} gives, permission id included */
    size_t i, k;
    json_t *x, *y;
    json_array_foreach(data, i, x) {
        const char *id = json_string_value(json_object_get(x, "id"));
        json_t *one = call(models_get, org_a, id, NULL);
        CHECKF(json_equal(x, one), "%s differs between the list and GET /v1/models/{id}", id);
        json_decref(one);
        json_t *perm = json_array_get(json_object_get(x, "permission"), 0);
        const char *pid = json_string_value(json_object_get(perm, "id"));
        CHECK(pid && strlen(pid) == 34 && !strncmp(pid, "modelperm-", 10));
        for (int c = 10; pid && pid[c]; c++) CHECK(isalnum((unsigned char)pid[c]));
        char want[40];
        models_perm_id(id, want);
        CHECK_EQ_STR(pid, want);
        CHECK_EQ_STR(json_string_value(json_object_get(perm, "object")), "model_permission");
        CHECK(json_is_null(json_object_get(perm, "group")));
        json_array_foreach(data, k, y) {   /* distinct per model */
            if (k == i) continue;
            json_t *p2 = json_array_get(json_object_get(y, "permission"), 0);
            CHECK(strcmp(pid, json_string_value(json_object_get(p2, "id"))) != 0);
        }
    }
    json_t *ft = json_array_get(data, 4 + na);
    CHECK_EQ_STR(json_string_value(json_object_get(ft, "owned_by")), org_a);
    CHECK_EQ_STR(json_string_value(json_object_get(ft, "root")), "ada");
    CHECK_EQ_STR(json_string_value(json_object_get(ft, "parent")), "ada");
    json_t *ck = json_array_get(data, 4 + na + 1);
    CHECK_EQ_STR(json_string_value(json_object_get(ck, "parent")), "babbage-002");
    CHECK(json_is_null(json_object_get(json_array_get(data, 0), "parent")));
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(data, 0), "owned_by")), "openai");

    /* the next request is byte for byte the same and builds nothing */
    long builds = models_list_builds();
    char *raw2 = NULL;
    json_t *again = call(models_list, org_a, NULL, &raw2);
    CHECK(raw && raw2 && !strcmp(raw, raw2));
    CHECK_EQ_INT((int)models_list_builds(), (int)builds);
    free(raw);
    free(raw2);
    json_decref(again);
    json_decref(body);

    /* another org: the same shared part, none of alpha's models */
    json_t *b = call(models_list, org_b, NULL, NULL);
    json_t *bd = json_object_get(b, "data");
    CHECK_EQ_INT((int)json_array_size(bd), 4 + na);
    CHECK(!has_id(bd, "ada:ft-alpha-2026-01-01-00-00-00"));
    CHECK(!has_id(bd, ckpt_model));
    CHECK_EQ_INT((int)models_list_builds(), (int)builds);
    json_decref(b);
}

static void test_aliases_change_rebuilds(void)
{
    char err[CORE_ERR_LEN], path[4096];
    snprintf(path, sizeof path, "%s/models", tmp);
    fs_mkdir_p(path, 0755, err);
    snprintf(path, sizeof path, "%s/models/aliases.json", tmp);
    long builds = models_list_builds();
    const char *t = "{\"aliases\": {\"site-chat\": {\"model\": \"curie\", \"format\": \"chat\"}}}";
    CHECKF(fs_write_atomic(path, t, strlen(t), err) == 0, "%s", err);
    json_t *body = call(models_list, org_b, NULL, NULL);
    json_t *data = json_object_get(body, "data");
    CHECK(has_id(data, "site-chat"));
    CHECK_EQ_STR(id_at(data, 4), "site-chat");   /* the data dir's table comes first */
    CHECK_EQ_INT((int)models_list_builds(), (int)builds + 1);
    size_t i;
    json_t *x;
    json_array_foreach(data, i, x) {
        if (strcmp(json_string_value(json_object_get(x, "id")), "site-chat")) continue;
        json_t *tj = json_object_get(x, "tunery");
        CHECK_EQ_STR(json_string_value(json_object_get(tj, "alias_of")), "curie");
        CHECK_EQ_STR(json_string_value(json_object_get(tj, "format")), "chat");
        CHECK_EQ_STR(json_string_value(json_object_get(x, "owned_by")), "tunery");
    }
    json_decref(body);
    /* repointed: rebuilt again */
    t = "{\"aliases\": {\"site-chat\": {\"model\": \"ada\", \"format\": \"prompt-completion\"}}}";
    CHECKF(fs_write_atomic(path, t, strlen(t), err) == 0, "%s", err);
    body = call(models_list, org_b, NULL, NULL);
    json_t *e = json_array_get(json_object_get(body, "data"), 4);
    CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(e, "tunery"), "alias_of")), "ada");
    CHECK_EQ_INT((int)models_list_builds(), (int)builds + 2);
    json_decref(body);
    /* removed: gone */
    unlink(path);
    body = call(models_list, org_b, NULL, NULL);
    CHECK(!has_id(json_object_get(body, "data"), "site-chat"));
    CHECK_EQ_INT((int)models_list_builds(), (int)builds + 3);
    json_decref(body);
}

int main(void)
{
    setup();
    RUN(test_list_shape_and_order);
    RUN(test_aliases_change_rebuilds);
    char err[CORE_ERR_LEN];
    fs_rm_rf(tmp, err);
    return test_summary();
}
