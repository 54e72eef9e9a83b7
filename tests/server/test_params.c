/* test_params.c: the parameters /v1/completions and /v1/chat/completions
 * share are parsed by one piece of code (params.c), so both endpoints take
 * and refuse the same values with the same 400; the strings a request keeps
 * are copies that outlive its body (a stream runs on after the client hung
 * up); both endpoints turn a model name into weights through
 * server_model_resolve, with the same 404s. Replies are captured (no
 * socket); nothing here loads a model. */
#define TUNERY_SERVER_INTERNAL
#include "server/params.h"
#include "store/store.h"
#include "test.h"
#include "server_fixture.h"
#include <stdlib.h>
#include <unistd.h>

static char tmp[256];
static struct server srv;
static char org[STORE_ID_LEN];

static void setup(void)
{
    char err[CORE_ERR_LEN], path[4200];
    fixture_data_dir(tmp, sizeof tmp, "params", &srv);
    store_t *st;
    CHECKF(store_open(tmp, &st, err) == 0, "%s", err);
    store_org_t o;
    CHECK(store_org_create(st, "alpha", &o, err) == 0);
    snprintf(org, sizeof org, "%s", o.id);
    store_close(st);
    /* two compatibility names whose weights are not installed */
    snprintf(path, sizeof path, "%s/models", tmp);
    CHECK(fs_mkdir_p(path, 0755, err) == 0);
    snprintf(path, sizeof path, "%s/models/aliases.json", tmp);
    const char *a = "{\"aliases\": {\"gone-chat\": {\"model\": \"not-installed-base\", \"format\": \"chat\"},"
                    " \"gone-002\": {\"model\": \"not-installed-base\", \"format\": \"prompt-completion\"}}}";
    CHECKF(fs_write_atomic(path, a, strlen(a), err) == 0, "%s", err);
}

/* A captured request with this body (steals it). */
static void req_init(req_t *r, json_t *body)
{
    memset(r, 0, sizeof *r);
    r->srv = &srv;
    snprintf(r->org_id, sizeof r->org_id, "%s", org);
    r->body = body;
}

static const char *reply_param(const req_t *r, char *out, size_t n)
{
    json_t *o = r->captured ? json_loads(r->captured, 0, NULL) : NULL;
    const char *p = json_string_value(json_object_get(json_object_get(o, "error"), "param"));
    snprintf(out, n, "%s", p ? p : "(null)");
    json_decref(o);
    return out;
}

/* Parse stop + logit_bias of a JSON body: the status replied (0 = none). */
static int parse(const char *json, gen_request_t *g, params_gen_t *own, char param[64])
{
    req_t r;
    req_init(&r, json_loads(json, 0, NULL));
    CHECKF(r.body != NULL, "bad test JSON: %s", json);
    gen_request_init(g);
    memset(own, 0, sizeof *own);
    int rc = params_parse_sampling(&r, r.body, g) || params_parse_stop_bias(&r, r.body, g, own);
    /* the body goes before the values are read: they must be copies */
    json_decref(r.body);
    CHECK_EQ_INT(rc != 0, r.captured_status != 0);
    reply_param(&r, param, 64);
    free(r.captured);
    return r.captured_status;
}

/* Each body is refused with a 400 naming param. */
static void expect_400s(const char *const *bodies, size_t n, const char *param)
{
    gen_request_t g;
    params_gen_t own;
    char p[64];
    for (size_t i = 0; i < n; i++) {
        CHECKF(parse(bodies[i], &g, &own, p) == 400, "%s", bodies[i]);
        CHECKF(!strcmp(p, param), "%s: param %s", bodies[i], p);
        params_gen_free(&own);
    }
}

static void test_stop(void)
{
    gen_request_t g;
    params_gen_t own;
    char p[64];
    CHECK_EQ_INT(parse("{\"stop\": \"\\n\"}", &g, &own, p), 0);
    CHECK_EQ_INT(g.n_stop, 1);
    CHECK_EQ_STR(g.stop[0], "\n");
    params_gen_free(&own);
    CHECK_EQ_INT(parse("{\"stop\": [\"END\", \"\", \"###\", \" x\"]}", &g, &own, p), 0);
    CHECK_EQ_INT(g.n_stop, 3);   /* an empty stop stops nothing: dropped */
    CHECK_EQ_STR(g.stop[0], "END");
    CHECK_EQ_STR(g.stop[1], "###");
    CHECK_EQ_STR(g.stop[2], " x");
    params_gen_free(&own);
    CHECK_EQ_INT(parse("{\"stop\": \"\"}", &g, &own, p), 0);
    CHECK_EQ_INT(g.n_stop, 0);
    params_gen_free(&own);
    CHECK_EQ_INT(parse("{\"stop\": null, \"logit_bias\": null}", &g, &own, p), 0);
    CHECK_EQ_INT(g.n_stop, 0);
    CHECK_EQ_INT(g.n_logit_bias, 0);
    params_gen_free(&own);
    const char *bad[] = {"{\"stop\": [\"a\",\"b\",\"c\",\"d\",\"e\"]}", "{\"stop\": [\"a\", 1]}", "{\"stop\": 7}",
                         "{\"stop\": {\"a\": \"b\"}}", "{\"stop\": [null]}"};
    expect_400s(bad, sizeof bad / sizeof *bad, "stop");
}

static void test_logit_bias(void)
{
    gen_request_t g;
    params_gen_t own;
    char p[64];
    CHECK_EQ_INT(parse("{\"logit_bias\": {\"50256\": -100, \"13\": 2.5, \"0\": 100}}", &g, &own, p), 0);
    CHECK_EQ_INT(g.n_logit_bias, 3);
    int seen = 0;
    for (int i = 0; i < g.n_logit_bias; i++) {
        if (g.logit_bias_ids[i] == 50256 && g.logit_bias[i] == -100.0f) seen |= 1;
        if (g.logit_bias_ids[i] == 13 && g.logit_bias[i] == 2.5f) seen |= 2;
        if (g.logit_bias_ids[i] == 0 && g.logit_bias[i] == 100.0f) seen |= 4;
    }
    CHECK_EQ_INT(seen, 7);
    params_gen_free(&own);
    CHECK_EQ_INT(parse("{\"logit_bias\": {}}", &g, &own, p), 0);
    CHECK_EQ_INT(g.n_logit_bias, 0);
    params_gen_free(&own);
    const char *bad[] = {"{\"logit_bias\": {\"13\": 101}}", "{\"logit_bias\": {\"13\": -100.5}}", "{\"logit_bias\": {\"-1\": 1}}",
                         "{\"logit_bias\": {\"abc\": 1}}", "{\"logit_bias\": {\"12x\": 1}}", "{\"logit_bias\": {\"\": 1}}",
                         "{\"logit_bias\": {\"13\": \"1\"}}", "{\"logit_bias\": [1]}", "{\"logit_bias\": 5}",
                         /* would wrap to a negative int */
                         "{\"logit_bias\": {\"4294967297\": 1}}"};
    expect_400s(bad, sizeof bad / sizeof *bad, "logit_bias");
    buf_t b = {0};   /* 301 entries: one more than allowed */
    buf_appends(&b, "{\"logit_bias\": {");
    for (int i = 0; i < 301; i++) buf_printf(&b, "%s\"%d\": 1", i ? ", " : "", i);
    buf_appends(&b, "}}");
    CHECK_EQ_INT(parse(b.data, &g, &own, p), 400);
    CHECK_EQ_STR(p, "logit_bias");
    params_gen_free(&own);
    buf_free(&b);
}

static void test_sampling(void)
{
    gen_request_t g;
    params_gen_t own;
    char p[64];
    CHECK_EQ_INT(parse("{\"n\": 3, \"seed\": 42, \"temperature\": 0.5, \"top_p\": 0.25, \"presence_penalty\": 1,"
                       " \"frequency_penalty\": -1, \"stream\": true, \"user\": \"u\"}", &g, &own, p), 0);
    CHECK_EQ_INT(g.n, 3);
    CHECK_EQ_INT(g.has_seed, 1);
    CHECK_EQ_INT(g.seed, 42);
    CHECK_NEAR(g.temperature, 0.5, 0);
    CHECK_NEAR(g.top_p, 0.25, 0);
    CHECK_NEAR(g.presence_penalty, 1, 0);
    CHECK_NEAR(g.frequency_penalty, -1, 0);
    CHECK_EQ_INT(g.stream, 1);
    params_gen_free(&own);
    /* null = the default, as the Python CLI sends it */
    CHECK_EQ_INT(parse("{\"n\": null, \"temperature\": null, \"seed\": null}", &g, &own, p), 0);
    CHECK_EQ_INT(g.n, 1);
    CHECK_EQ_INT(g.has_seed, 0);
    CHECK_NEAR(g.temperature, 1, 0);
    params_gen_free(&own);
    const char *bad[][2] = {{"{\"n\": \"2\"}", "n"}, {"{\"temperature\": \"hot\"}", "temperature"},
                            {"{\"stream\": 1}", "stream"}, {"{\"user\": 5}", "user"}, {"{\"seed\": 1.5}", "seed"},
                            {"{\"top_p\": [1]}", "top_p"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) expect_400s(&bad[i][0], 1, bad[i][1]);
}

/* Run an endpoint on a body; the captured reply (caller frees). */
static char *call(int (*fn)(req_t *), const char *json, int *status)
{
    req_t r;
    req_init(&r, json_loads(json, 0, NULL));
    CHECKF(r.body != NULL, "bad test JSON: %s", json);
    fn(&r);
    json_decref(r.body);
    *status = r.captured_status;
    return r.captured;
}

/* The same refusal from both endpoints: same status, byte-identical body. */
static void test_endpoints_agree(void)
{
    const char *extra[] = {
        "\"stop\": [\"a\",\"b\",\"c\",\"d\",\"e\"]", "\"stop\": 3", "\"logit_bias\": {\"x\": 1}", "\"logit_bias\": {\"1\": 200}",
        "\"temperature\": \"warm\"", "\"n\": true", "\"seed\": \"7\"",
        /* model resolution: unknown, and a known name whose weights are missing */
        "\"model\": \"no-such-model\"", "\"model\": \"gone-chat\"",
    };
    for (size_t i = 0; i < sizeof extra / sizeof *extra; i++) {
        char cb[512], kb[512];
        const char *model = strstr(extra[i], "\"model\"") ? "" : "\"model\": \"gone-chat\", ";
        snprintf(cb, sizeof cb, "{%s\"prompt\": \"hi\", %s}", model, extra[i]);
        snprintf(kb, sizeof kb, "{%s\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], %s}", model, extra[i]);
        int s1, s2;
        char *a = call(completions_create, cb, &s1), *b = call(chat_completions_create, kb, &s2);
        CHECKF(s1 >= 400 && s1 == s2, "%s: %d vs %d", extra[i], s1, s2);
        CHECKF(a && b && !strcmp(a, b), "%s:\n  completions %s\n  chat        %s", extra[i], a ? a : "-", b ? b : "-");
        free(a);
        free(b);
    }
    /* a completion alias without weights says where it looked, as a base name does */
    int s;
    char *a = call(completions_create, "{\"model\": \"gone-002\", \"prompt\": \"hi\"}", &s);
    CHECK_EQ_INT(s, 404);
    CHECKF(a && strstr(a, "model_not_found") && strstr(a, "not-installed-base") && !strstr(a, "does not exist"), "%s", a ? a : "-");
    free(a);
}

static void test_resolve_cache_id(void)
{
    req_t r;
    server_model_t m;
    char id[STORE_NAME_LEN];
    req_init(&r, NULL);
    /* an alias shares the cache entry of the weights it names */
    CHECKF(server_model_resolve(&r, "gpt-4o-mini", &m, id) == 0, "%s", r.captured ? r.captured : "-");
    CHECK_EQ_STR(id, "curie");
    CHECK_EQ_INT(m.is_chat, 1);
    CHECK_EQ_INT(server_model_resolve(&r, "ada", &m, id), 0);
    CHECK_EQ_STR(id, "ada");
    CHECK_EQ_INT(r.captured_status, 0);
    CHECK_EQ_INT(server_model_resolve(&r, "gone-002", &m, id), -1);
    CHECK_EQ_INT(r.captured_status, 404);
    free(r.captured);
}

int main(void)
{
    setup();
    RUN(test_stop);
    RUN(test_logit_bias);
    RUN(test_sampling);
    RUN(test_endpoints_agree);
    RUN(test_resolve_cache_id);
    char err[CORE_ERR_LEN];
    fs_rm_rf(tmp, err);
    return test_summary();
}
