/* test_chat.c: POST /v1/chat/completions over a real loopback socket,
 * in-process, no scheduler, a tiny random GPT-2 as the weights. The prompt
 * the server generates from is the training template's rendering (its
 * prompt_tokens equal train_chat_encode's count), streamed deltas concatenate
 * to the non-streamed reply, the stream has OpenAI's chunk shapes (a role
 * chunk per choice, a finish chunk, the usage chunk when asked, [DONE]),
 * and every bad request is a 400 naming its param; completion models are
 * refused with a pointer to /v1/completions. */
#define TUNERY_SERVER_INTERNAL
#include "server/server.h"
#include "train/train.h"
#include "test.h"
#include <curl/curl.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

static server_t *srv;
static char base[64], key[128], datadir[] = "/tmp/tunery-test-chat-XXXXXX";

static size_t on_body(char *p, size_t sz, size_t n, void *u) { return buf_append(u, p, sz * n) ? 0 : sz * n; }

/* POST a JSON body to /v1/chat/completions; the status, body in out. */
static long post(const char *json, buf_t *out)
{
    CURL *c = curl_easy_init();
    char url[128], h_auth[200];
    snprintf(url, sizeof url, "%s/chat/completions", base);
    snprintf(h_auth, sizeof h_auth, "Authorization: Bearer %s", key);
    struct curl_slist *h = curl_slist_append(NULL, h_auth);
    h = curl_slist_append(h, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    out->len = 0;
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (buf_append(out, "", 0) == 0 && out->data) out->data[out->len] = 0;
    return status;
}

static void expect_400(const char *json, const char *param)
{
    buf_t b = {0};
    long st = post(json, &b);
    json_t *j = json_loads(b.data ? b.data : "", 0, NULL);
    const char *p = json_string_value(json_object_get(json_object_get(j, "error"), "param"));
    CHECKF(st == 400 && p && !strcmp(p, param), "%s -> %ld %s (want 400 %s)", json, st, b.data, param);
    json_decref(j);
    buf_free(&b);
}

static const char *MSGS = "[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":\"Item 3?\"}]";

static void test_non_stream_uses_training_template(void)
{
    char body[1024], err[CORE_ERR_LEN];
    snprintf(body, sizeof body, "{\"model\":\"my-chat\",\"messages\":%s,\"temperature\":0,\"max_completion_tokens\":6}", MSGS);
    buf_t b = {0};
    long st = post(body, &b);
    CHECKF(st == 200, "%ld %s", st, b.data);
    json_t *j = json_loads(b.data ? b.data : "", 0, NULL);
    CHECK_EQ_STR(json_string_value(json_object_get(j, "object")), "chat.completion");
    CHECK(!strncmp(json_string_value(json_object_get(j, "id")), "chatcmpl-", 9));
    json_t *ch = json_array_get(json_object_get(j, "choices"), 0);
    json_t *msg = json_object_get(ch, "message");
    CHECK_EQ_STR(json_string_value(json_object_get(msg, "role")), "assistant");
    CHECK(json_is_string(json_object_get(msg, "content")));
    CHECK(json_is_null(json_object_get(ch, "logprobs")));
    /* the prompt is exactly what training renders, with "assistant:" opened */
    train_chat_msg_t m[] = {{"system", "Be brief.", 9}, {"user", "Item 3?", 7}};
    tok_ids_t ids = {0};
    const tok_t *tk = tok_r50k(err);
    CHECK(tk && train_chat_encode(tk, m, 2, &ids, err) == 0);
    json_t *u = json_object_get(j, "usage");
    CHECK_EQ_INT(json_integer_value(json_object_get(u, "prompt_tokens")), (long long)ids.len);
    CHECK_EQ_INT(json_integer_value(json_object_get(u, "total_tokens")),
                 json_integer_value(json_object_get(u, "prompt_tokens")) + json_integer_value(json_object_get(u, "completion_tokens")));
    tok_ids_free(&ids);
    json_decref(j);
    buf_free(&b);
}

/* The data payloads of an SSE body, in order; *done if [DONE] ended it. */
static json_t *sse_events(const char *body, int *done)
{
    json_t *out = json_array();
    *done = 0;
    for (const char *p = body; p && *p;) {
        const char *e = strstr(p, "\n\n");
        if (!e) break;
        if (!strncmp(p, "data: ", 6)) {
            if (!strncmp(p + 6, "[DONE]", 6)) *done = 1;
            else json_array_append_new(out, json_loadb(p + 6, (size_t)(e - p - 6), 0, NULL));
        }
        p = e + 2;
    }
    return out;
}

static void test_stream_matches(void)
{
    char body[1024];
    snprintf(body, sizeof body, "{\"model\":\"my-chat\",\"messages\":%s,\"temperature\":0,\"seed\":3,\"max_tokens\":12}", MSGS);
    buf_t b = {0};
    CHECK(post(body, &b) == 200);
    json_t *plain = json_loads(b.data ? b.data : "", 0, NULL);
    json_t *pch = json_array_get(json_object_get(plain, "choices"), 0);
    snprintf(body, sizeof body, "{\"model\":\"my-chat\",\"messages\":%s,\"temperature\":0,\"seed\":3,\"max_tokens\":12,"
             "\"stream\":true,\"stream_options\":{\"include_usage\":true}}", MSGS);
    CHECK(post(body, &b) == 200);
    int done = 0;
    json_t *ev = sse_events(b.data, &done);
    CHECK(done);
    CHECKF(json_array_size(ev) >= 3, "%s", b.data);
    buf_t text = {0};
    buf_append(&text, "", 0);
    const char *role = NULL, *finish = NULL;
    json_t *usage = NULL;
    size_t i;
    json_t *e;
    json_array_foreach(ev, i, e) {
        CHECK_EQ_STR(json_string_value(json_object_get(e, "object")), "chat.completion.chunk");
        CHECK(json_object_get(e, "usage") != NULL);   /* include_usage: null on every chunk but the last */
        json_t *c = json_array_get(json_object_get(e, "choices"), 0);
        if (!c) {
            usage = json_object_get(e, "usage");
            CHECK(i + 1 == json_array_size(ev));
            continue;
        }
        json_t *d = json_object_get(c, "delta");
        if (json_object_get(d, "role")) role = json_string_value(json_object_get(d, "role"));
        const char *s = json_string_value(json_object_get(d, "content"));
        if (s) buf_appends(&text, s);
        if (json_is_string(json_object_get(c, "finish_reason"))) finish = json_string_value(json_object_get(c, "finish_reason"));
    }
    CHECK(role && !strcmp(role, "assistant"));
    CHECK_EQ_STR(text.data, json_string_value(json_object_get(json_object_get(pch, "message"), "content")));
    CHECK(finish && !strcmp(finish, json_string_value(json_object_get(pch, "finish_reason"))));
    CHECK(usage && json_equal(usage, json_object_get(plain, "usage")));
    json_decref(ev);
    json_decref(plain);
    buf_free(&text);

    /* n = 2: a role chunk for each choice, then both finish */
    snprintf(body, sizeof body, "{\"model\":\"my-chat\",\"messages\":%s,\"n\":2,\"seed\":1,\"max_tokens\":3,\"stream\":true}", MSGS);
    CHECK(post(body, &b) == 200);
    ev = sse_events(b.data, &done);
    int roles[2] = {0, 0}, fins[2] = {0, 0};
    json_array_foreach(ev, i, e) {
        CHECK(json_object_get(e, "usage") == NULL);   /* not asked for */
        json_t *c = json_array_get(json_object_get(e, "choices"), 0);
        long long k = json_integer_value(json_object_get(c, "index"));
        if (k < 0 || k > 1) { CHECK(0); continue; }
        roles[k] += json_object_get(json_object_get(c, "delta"), "role") != NULL;
        fins[k] += json_is_string(json_object_get(c, "finish_reason"));
    }
    CHECK(done && roles[0] == 1 && roles[1] == 1 && fins[0] == 1 && fins[1] == 1);
    json_decref(ev);
    buf_free(&b);
}

static void test_logprobs(void)
{
    char body[1024];
    snprintf(body, sizeof body, "{\"model\":\"my-chat\",\"messages\":%s,\"max_tokens\":4,\"logprobs\":true,\"top_logprobs\":3}", MSGS);
    buf_t b = {0};
    CHECK(post(body, &b) == 200);
    json_t *j = json_loads(b.data ? b.data : "", 0, NULL);
    json_t *ch = json_array_get(json_object_get(j, "choices"), 0);
    json_t *content = json_object_get(json_object_get(ch, "logprobs"), "content");
    CHECKF(json_array_size(content) >= 1, "%s", b.data);
    size_t i;
    json_t *t;
    json_array_foreach(content, i, t) {
        CHECK(json_is_string(json_object_get(t, "token")));
        CHECK(json_number_value(json_object_get(t, "logprob")) <= 0);
        CHECK(json_is_array(json_object_get(t, "bytes")));
        CHECK_EQ_INT(json_array_size(json_object_get(t, "top_logprobs")), 3);
    }
    json_decref(j);
    buf_free(&b);
}

static void test_bad_requests(void)
{
    buf_t b = {0};
    /* a completion model: 400 on model, saying where to go */
    char body[1024];
    snprintf(body, sizeof body, "{\"model\":\"curie\",\"messages\":%s}", MSGS);
    CHECK(post(body, &b) == 400);
    CHECKF(strstr(b.data, "/v1/completions") != NULL, "%s", b.data);
    snprintf(body, sizeof body, "{\"model\":\"nope-model\",\"messages\":%s}", MSGS);
    CHECK(post(body, &b) == 404);
    buf_free(&b);
    expect_400("{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}", "model");
    expect_400("{\"model\":\"my-chat\"}", "messages");
    expect_400("{\"model\":\"my-chat\",\"messages\":[]}", "messages");
    expect_400("{\"model\":\"my-chat\",\"messages\":{}}", "messages");
    expect_400("{\"model\":\"my-chat\",\"messages\":[\"hi\"]}", "messages[0]");
    expect_400("{\"model\":\"my-chat\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"robot\",\"content\":\"b\"}]}", "messages[1].role");
    expect_400("{\"model\":\"my-chat\",\"messages\":[{\"content\":\"a\"}]}", "messages[0].role");
    expect_400("{\"model\":\"my-chat\",\"messages\":[{\"role\":\"user\"}]}", "messages[0].content");
    expect_400("{\"model\":\"my-chat\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}", "messages[0].content[0]");
    char longmsg[2048];
    int n = snprintf(longmsg, sizeof longmsg, "{\"model\":\"my-chat\",\"messages\":[{\"role\":\"user\",\"content\":\"");
    for (int i = 0; i < 100; i++) n += snprintf(longmsg + n, sizeof longmsg - n, "word ");
    snprintf(longmsg + n, sizeof longmsg - n, "\"}]}");
    expect_400(longmsg, "messages");   /* longer than the 64-token context */
    snprintf(body, sizeof body, "{\"model\":\"my-chat\",\"messages\":%s,\"max_completion_tokens\":0}", MSGS);
    expect_400(body, "max_completion_tokens");
    snprintf(body, sizeof body, "{\"model\":\"my-chat\",\"messages\":%s,\"max_tokens\":1000}", MSGS);
    expect_400(body, "max_tokens");
    snprintf(body, sizeof body, "{\"model\":\"my-chat\",\"messages\":%s,\"top_logprobs\":2}", MSGS);
    expect_400(body, "top_logprobs");
    snprintf(body, sizeof body, "{\"model\":\"my-chat\",\"messages\":%s,\"logprobs\":true,\"top_logprobs\":6}", MSGS);
    expect_400(body, "top_logprobs");
    snprintf(body, sizeof body, "{\"model\":\"my-chat\",\"messages\":%s,\"stream_options\":{\"include_usage\":true}}", MSGS);
    expect_400(body, "stream_options");
    snprintf(body, sizeof body, "{\"model\":\"my-chat\",\"messages\":%s,\"temperature\":2.5}", MSGS);
    expect_400(body, "temperature");
    snprintf(body, sizeof body, "{\"model\":\"my-chat\",\"messages\":%s,\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", MSGS);
    expect_400(body, "stop");
    snprintf(body, sizeof body, "{\"model\":\"my-chat\",\"messages\":%s,\"tools\":[]}", MSGS);
    expect_400(body, "tools");
}

int main(void)
{
    char err[CORE_ERR_LEN];
    /* the shipped tokenizer only: no shipped models or aliases can change what this test sees */
    char shipped[PATH_MAX], share[] = "/tmp/tunery-chat-share-XXXXXX", link_from[PATH_MAX], link_to[PATH_MAX + 8];
    if (!realpath(getenv("TUNERY_SHARE") ? getenv("TUNERY_SHARE") : "data", shipped) || !mkdtemp(share)) return 1;
    snprintf(link_to, sizeof link_to, "%s/tok", shipped);
    snprintf(link_from, sizeof link_from, "%s/tok", share);
    if (symlink(link_to, link_from)) return 1;
    setenv("TUNERY_SHARE", share, 1);
    if (!mkdtemp(datadir)) return 1;
    setenv("TUNERY_DATA", datadir, 1);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    /* "curie": a tiny random GPT-2 (completion model); "my-chat": a chat alias of it */
    char mdir[sizeof datadir + 32], apath[sizeof datadir + 32];
    snprintf(mdir, sizeof mdir, "%s/models/curie", datadir);
    gpt2_t m;
    gpt2_config_t cfg = {.max_seq_len = 64, .vocab_size = 50257, .num_layers = 1, .num_heads = 2, .channels = 32};
    if (gpt2_create(&m, &cfg, err) || (gpt2_init_random(&m, 7), gpt2_save(&m, mdir, err))) {
        fprintf(stderr, "tiny model: %s\n", err);
        return 1;
    }
    gpt2_free(&m);
    snprintf(apath, sizeof apath, "%s/models/aliases.json", datadir);
    const char *aliases = "{\"aliases\": {\"my-chat\": {\"model\": \"curie\", \"format\": \"chat\"}}}";
    if (fs_write_atomic(apath, aliases, strlen(aliases), err)) return 1;
    server_opts_t o;
    memset(&o, 0, sizeof o);
    o.host = "127.0.0.1";
    o.data_dir = datadir;
    o.no_scheduler = 1;
    char *k = NULL;
    if (server_start(&srv, &o, &k, err) || !k) {
        fprintf(stderr, "server_start: %s\n", err);
        return 1;
    }
    snprintf(base, sizeof base, "http://127.0.0.1:%d/v1", server_port(srv));
    snprintf(key, sizeof key, "%s", k);
    RUN(test_non_stream_uses_training_template);
    RUN(test_stream_matches);
    RUN(test_logprobs);
    RUN(test_bad_requests);
    server_stop(srv);
    free(k);
    curl_global_cleanup();
    fs_rm_rf(datadir, err);
    fs_rm_rf(share, err);
    return test_summary();
}
