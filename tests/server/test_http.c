/* test_http.c: the server over a real loopback socket, in-process, with
 * libcurl as the client and no scheduler, so `make check` (and `make asan`)
 * cover the connection life cycle without Node: auth, JSON errors on every
 * path, chunked multipart uploads, limits, the event stream (replay, pings,
 * [DONE] at cancel) and percent-decoded ids. */
#define TUNERY_SERVER_INTERNAL
#include "server/server.h"
#include "test.h"
#include <curl/curl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static server_t *srv;
static char base[64], auth[128], datadir[] = "/tmp/tunery-test-http-XXXXXX";

typedef struct {
    long status;
    buf_t body;
    buf_t headers;
} resp_t;

static size_t on_body(char *p, size_t sz, size_t n, void *u) { return buf_append(u, p, sz * n) ? 0 : sz * n; }

/* One request. body_type: NULL (no body), "json", or "multipart:" + boundary. */
static resp_t req(const char *method, const char *path, const char *body, size_t body_len,
                  const char *content_type, int chunked, const char *key)
{
    resp_t r;
    memset(&r, 0, sizeof r);
    CURL *c = curl_easy_init();
    char url[1024], h_auth[160], h_ct[256];
    snprintf(url, sizeof url, "%s%s", base, path);
    struct curl_slist *h = NULL;
    if (key) {
        snprintf(h_auth, sizeof h_auth, "Authorization: Bearer %s", key);
        h = curl_slist_append(h, h_auth);
    }
    if (content_type) {
        snprintf(h_ct, sizeof h_ct, "Content-Type: %s", content_type);
        h = curl_slist_append(h, h_ct);
    }
    if (chunked) h = curl_slist_append(h, "Transfer-Encoding: chunked");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r.headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
    }
    curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (!r.body.data) buf_append(&r.body, "", 0);
    if (!r.headers.data) buf_append(&r.headers, "", 0);
    return r;
}

static void resp_free(resp_t *r)
{
    buf_free(&r->body);
    buf_free(&r->headers);
}

/* The error body: all four keys; returns the parsed JSON (caller decrefs). */
static json_t *check_error(resp_t *r, long status, const char *param)
{
    CHECKF(r->status == status, "status %ld, want %ld: %s", r->status, status, r->body.data);
    CHECK(strcasestr(r->headers.data, "content-type: application/json") != NULL);
    CHECK(strcasestr(r->headers.data, "x-request-id: req_") != NULL);
    json_t *j = json_loads(r->body.data, 0, NULL);
    json_t *e = json_object_get(j, "error");
    CHECKF(json_is_object(e) && json_object_size(e) == 4, "error body: %s", r->body.data);
    if (param) CHECK(json_is_string(json_object_get(e, "param")) && !strcmp(json_string_value(json_object_get(e, "param")), param));
    return j;
}

static void test_auth_and_routes(void)
{
    resp_t r = req("GET", "/models", NULL, 0, NULL, 0, NULL);
    json_t *j = check_error(&r, 401, NULL);
    CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(j, "error"), "code")), "invalid_api_key");
    json_decref(j);
    resp_free(&r);
    r = req("GET", "/files", NULL, 0, NULL, 0, "sk-not-a-key");
    json_decref(check_error(&r, 401, NULL));
    resp_free(&r);
    r = req("GET", "/nowhere", NULL, 0, NULL, 0, auth + 22);
    json_decref(check_error(&r, 404, NULL));
    resp_free(&r);
    r = req("PATCH", "/files", NULL, 0, NULL, 0, auth + 22);
    json_decref(check_error(&r, 404, NULL));
    resp_free(&r);
    r = req("GET", "/models", NULL, 0, NULL, 0, auth + 22);
    CHECK_EQ_INT(r.status, 200);
    CHECK(strstr(r.body.data, "\"id\":\"davinci\"") != NULL);
    resp_free(&r);
    r = req("GET", "/models/curie%3Aft-x%3Ay-2020-01-01-00-00-00", NULL, 0, NULL, 0, auth + 22);
    j = check_error(&r, 404, "model");
    CHECK(strstr(json_string_value(json_object_get(json_object_get(j, "error"), "message")), "curie:ft-x:y-2020") != NULL);
    json_decref(j);
    resp_free(&r);
    r = req("DELETE", "/models/ada", NULL, 0, NULL, 0, auth + 22);
    json_decref(check_error(&r, 403, "model"));
    resp_free(&r);
    r = req("GET", "/files/a+b%27%3B--", NULL, 0, NULL, 0, auth + 22);
    j = check_error(&r, 404, "id");
    CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(j, "error"), "message")), "No such File object: a b';--");
    json_decref(j);
    resp_free(&r);
}

static const char *upload_body(buf_t *b, const char *purpose, const char *data)
{
    b->len = 0;
    buf_printf(b, "--bNd\r\nContent-Disposition: form-data; name=\"file\"; filename=\"../x/t.jsonl\"\r\n"
               "Content-Type: application/octet-stream\r\n\r\n%s\r\n--bNd\r\n"
               "Content-Disposition: form-data; name=\"purpose\"\r\n\r\n%s\r\n--bNd--\r\n", data, purpose);
    return b->data;
}

static char file_id[64];

static void test_uploads(void)
{
    buf_t b = {0};
    const char *data = "{\"prompt\":\"a ->\",\"completion\":\" b\\n\"}\n{\"prompt\":\"c ->\",\"completion\":\" d\\n\"}\n";
    upload_body(&b, "fine-tune", data);
    resp_t r = req("POST", "/files", b.data, b.len, "multipart/form-data; boundary=bNd", 1, auth + 22);
    CHECKF(r.status == 200, "%s", r.body.data);
    json_t *j = json_loads(r.body.data, 0, NULL);
    CHECK_EQ_STR(json_string_value(json_object_get(j, "filename")), "../x/t.jsonl");
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "bytes")), strlen(data));
    CHECK_EQ_STR(json_string_value(json_object_get(j, "status")), "processed");
    snprintf(file_id, sizeof file_id, "%s", json_string_value(json_object_get(j, "id")) ? json_string_value(json_object_get(j, "id")) : "");
    json_decref(j);
    resp_free(&r);
    char path[128];
    snprintf(path, sizeof path, "/files/%s/content", file_id);
    r = req("GET", path, NULL, 0, NULL, 0, auth + 22);
    CHECK_EQ_INT(r.status, 200);
    CHECK(r.body.len == strlen(data) && !memcmp(r.body.data, data, r.body.len));
    resp_free(&r);
    /* a bad fine-tune file is stored with status error naming the line */
    upload_body(&b, "fine-tune", "{\"prompt\":\"a\",\"completion\":\"b\"}\nnot json\n");
    r = req("POST", "/files", b.data, b.len, "multipart/form-data; boundary=bNd", 0, auth + 22);
    CHECK(strstr(r.body.data, "\"status\":\"error\"") && strstr(r.body.data, "line 2"));
    resp_free(&r);
    /* a filename that is not UTF-8 (a Latin-1 client) is kept, shown with U+FFFD */
    const char *latin = "--bNd\r\nContent-Disposition: form-data; name=\"file\"; filename=\"caf\xe9.txt\"\r\n\r\nx\r\n"
                        "--bNd\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--bNd--\r\n";
    r = req("POST", "/files", latin, strlen(latin), "multipart/form-data; boundary=bNd", 0, auth + 22);
    CHECKF(r.status == 200 && strstr(r.body.data, "\"filename\":\"caf\xef\xbf\xbd.txt\""), "%s", r.body.data);
    resp_free(&r);
    r = req("GET", "/files/%FF%FE", NULL, 0, NULL, 0, auth + 22);
    json_decref(check_error(&r, 404, "id"));
    resp_free(&r);
    /* malformed multipart and wrong purpose */
    r = req("POST", "/files", "--bNd\r\nnonsense", 15, "multipart/form-data; boundary=bNd", 1, auth + 22);
    json_decref(check_error(&r, 400, NULL));
    resp_free(&r);
    upload_body(&b, "fine-tune-results", "x");
    r = req("POST", "/files", b.data, b.len, "multipart/form-data; boundary=bNd", 0, auth + 22);
    json_decref(check_error(&r, 400, "purpose"));
    resp_free(&r);
    r = req("POST", "/files", "{}", 2, "application/json", 0, auth + 22);
    json_decref(check_error(&r, 400, NULL));
    resp_free(&r);
    /* over the 64 KiB limit of this server: sized and chunked */
    buf_t big = {0};
    for (int i = 0; i < 3000; i++) buf_appends(&big, "{\"prompt\":\"p\",\"completion\":\"q\"}\n");
    upload_body(&b, "fine-tune", big.data);
    r = req("POST", "/files", b.data, b.len, "multipart/form-data; boundary=bNd", 0, auth + 22);
    json_decref(check_error(&r, 413, NULL));
    resp_free(&r);
    r = req("POST", "/files", b.data, b.len, "multipart/form-data; boundary=bNd", 1, auth + 22);
    json_decref(check_error(&r, 413, NULL));
    resp_free(&r);
    r = req("GET", "/files", NULL, 0, NULL, 0, auth + 22);
    j = json_loads(r.body.data, 0, NULL);
    CHECK_EQ_INT(json_array_size(json_object_get(j, "data")), 3);   /* the three small uploads only */
    json_decref(j);
    resp_free(&r);
    buf_free(&big);
    buf_free(&b);
}

static char job_id[64];

static void *cancel_later(void *arg)
{
    usleep(400 * 1000);
    char path[128];
    snprintf(path, sizeof path, "/fine-tunes/%s/cancel", job_id);
    resp_t r = req("POST", path, NULL, 0, NULL, 0, auth + 22);
    resp_free(&r);
    return NULL;
}

static void test_fine_tune_and_stream(void)
{
    char body[256];
    snprintf(body, sizeof body, "{\"training_file\":\"%s\",\"n_epochs\":2,\"suffix\":null}", file_id);
    resp_t r = req("POST", "/fine-tunes", body, strlen(body), "application/json", 0, auth + 22);
    CHECKF(r.status == 200, "%s", r.body.data);
    json_t *j = json_loads(r.body.data, 0, NULL);
    snprintf(job_id, sizeof job_id, "%s", json_string_value(json_object_get(j, "id")) ? json_string_value(json_object_get(j, "id")) : "");
    CHECK_EQ_STR(json_string_value(json_object_get(j, "status")), "pending");
    json_t *ev = json_object_get(j, "events");
    CHECK(json_array_size(ev) == 3);
    CHECK(strstr(json_string_value(json_object_get(json_array_get(ev, 1), "message")), "Fine-tune costs $") != NULL);
    json_decref(j);
    resp_free(&r);
    /* a known base whose weights are not installed: 400 saying how to add them */
    snprintf(body, sizeof body, "{\"training_file\":\"%s\",\"model\":\"davinci\"}", file_id);
    r = req("POST", "/fine-tunes", body, strlen(body), "application/json", 0, auth + 22);
    j = check_error(&r, 400, "model");
    CHECK(strstr(json_string_value(json_object_get(json_object_get(j, "error"), "message")), "tunery models import") != NULL);
    json_decref(j);
    resp_free(&r);
    r = req("POST", "/fine-tunes", "{\"training_file\":", 17, "application/json", 0, auth + 22);
    json_decref(check_error(&r, 400, NULL));
    resp_free(&r);
    snprintf(body, sizeof body, "{\"training_file\":\"%s\",\"n_epochs\":\"two\"}", file_id);
    r = req("POST", "/fine-tunes", body, strlen(body), "application/json", 0, auth + 22);
    json_decref(check_error(&r, 400, "n_epochs"));
    resp_free(&r);

    /* follow: replay, pings (50 ms here), then cancel from another thread ends it with [DONE] */
    pthread_t th;
    pthread_create(&th, NULL, cancel_later, NULL);
    char path[128];
    snprintf(path, sizeof path, "/fine-tunes/%s/events?stream=true", job_id);
    r = req("GET", path, NULL, 0, NULL, 0, auth + 22);
    pthread_join(th, NULL);
    CHECK_EQ_INT(r.status, 200);
    CHECK(strcasestr(r.headers.data, "content-type: text/event-stream") != NULL);
    CHECK(!strncmp(r.body.data, "data: {\"object\":\"fine-tune-event\"", strlen("data: {\"object\":\"fine-tune-event\"")));
    CHECK(strstr(r.body.data, "\n: ping\n\n") != NULL);
    const char *tail = "\"message\":\"Fine-tune cancelled\"";
    CHECK(strstr(r.body.data, tail) != NULL);
    CHECK(r.body.len > 14 && !strcmp(r.body.data + r.body.len - 14, "data: [DONE]\n\n"));
    resp_free(&r);
    snprintf(path, sizeof path, "/fine-tunes/%s/cancel", job_id);
    r = req("POST", path, NULL, 0, "application/x-www-form-urlencoded", 0, auth + 22);
    json_decref(check_error(&r, 400, NULL));
    resp_free(&r);
    snprintf(path, sizeof path, "/fine-tunes/%s", job_id);
    r = req("DELETE", path, NULL, 0, NULL, 0, auth + 22);
    CHECK_EQ_INT(r.status, 200);
    resp_free(&r);
    r = req("GET", path, NULL, 0, NULL, 0, auth + 22);
    json_decref(check_error(&r, 404, NULL));
    resp_free(&r);
}

static void test_completions(void)
{
    const char *body = "{\"model\":\"curie\",\"prompt\":\"Hello ->\",\"max_tokens\":4,\"temperature\":0,\"logprobs\":2,\"echo\":true,\"n\":null,\"stop\":null}";
    resp_t r = req("POST", "/completions", body, strlen(body), "application/json", 0, auth + 22);
    CHECKF(r.status == 200, "%s", r.body.data);
    CHECK(strcasestr(r.headers.data, "x-tunery-model-cache: miss") != NULL);
    json_t *j = json_loads(r.body.data, 0, NULL);
    json_t *ch = json_array_get(json_object_get(j, "choices"), 0);
    CHECK(!strncmp(json_string_value(json_object_get(ch, "text")), "Hello ->", 8));
    json_t *lp = json_object_get(ch, "logprobs");
    CHECK(json_is_null(json_array_get(json_object_get(lp, "token_logprobs"), 0)));   /* the first echoed token */
    json_t *usage = json_object_get(j, "usage");
    CHECK_EQ_INT(json_array_size(json_object_get(lp, "tokens")), json_integer_value(json_object_get(usage, "total_tokens")));
    char *plain = strdup(json_string_value(json_object_get(ch, "text")) + 8);
    json_decref(j);
    resp_free(&r);
    /* streamed, through the engine path: same text, then [DONE]; the model is cached now */
    body = "{\"prompt\":\"Hello ->\",\"max_tokens\":4,\"temperature\":0,\"stream\":true}";
    r = req("POST", "/engines/curie/completions", body, strlen(body), "application/json", 0, auth + 22);
    CHECK_EQ_INT(r.status, 200);
    CHECK(strcasestr(r.headers.data, "content-type: text/event-stream") != NULL);
    CHECK(strcasestr(r.headers.data, "x-tunery-model-cache: hit") != NULL);
    CHECK(r.body.len > 14 && !strcmp(r.body.data + r.body.len - 14, "data: [DONE]\n\n"));
    buf_t text = {0};
    for (char *p = r.body.data; (p = strstr(p, "data: {")); p++) {
        char *end = strstr(p, "\n\n");
        json_t *c = end ? json_loadb(p + 6, (size_t)(end - p - 6), 0, NULL) : NULL;
        const char *t = json_string_value(json_object_get(json_array_get(json_object_get(c, "choices"), 0), "text"));
        if (t) buf_appends(&text, t);
        json_decref(c);
    }
    CHECKF(text.data && !strcmp(text.data, plain), "streamed '%s' vs plain '%s'", text.data ? text.data : "", plain);
    buf_free(&text);
    free(plain);
    resp_free(&r);
    r = req("POST", "/completions", "{\"model\":\"curie\",\"temperature\":9}", 33, "application/json", 0, auth + 22);
    json_decref(check_error(&r, 400, "temperature"));
    resp_free(&r);
    r = req("POST", "/completions", "{\"model\":\"babbage\"}", 19, "application/json", 0, auth + 22);
    json_decref(check_error(&r, 404, "model"));
    resp_free(&r);
}

int main(void)
{
    char err[CORE_ERR_LEN];
    /* A share directory of our own holding only the tokenizer, so which base
     * models the repository ships (data/models) cannot change what this test
     * sees: here babbage and davinci are never installed. */
    char shipped[PATH_MAX], share[] = "/tmp/tunery-http-share-XXXXXX", link_from[PATH_MAX], link_to[PATH_MAX + 8];
    if (!realpath(getenv("TUNERY_SHARE") ? getenv("TUNERY_SHARE") : "data", shipped) || !mkdtemp(share)) return 1;
    snprintf(link_to, sizeof link_to, "%s/tok", shipped);
    snprintf(link_from, sizeof link_from, "%s/tok", share);
    if (symlink(link_to, link_from)) return 1;
    setenv("TUNERY_SHARE", share, 1);
    if (!mkdtemp(datadir)) return 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    server_opts_t o;
    memset(&o, 0, sizeof o);
    o.host = "127.0.0.1";
    o.data_dir = datadir;
    o.no_scheduler = 1;
    o.ping_ms = 50;
    o.upload_limit = 64 << 10;
    /* a tiny random GPT-2 as the base model "curie" (r50k tokenizer by default) */
    char mdir[sizeof datadir + 32];
    snprintf(mdir, sizeof mdir, "%s/models/curie", datadir);
    gpt2_t m;
    gpt2_config_t cfg = {.max_seq_len = 64, .vocab_size = 50257, .num_layers = 1, .num_heads = 2, .channels = 32};
    if (gpt2_create(&m, &cfg, err) || (gpt2_init_random(&m, 1), gpt2_save(&m, mdir, err))) {
        fprintf(stderr, "tiny model: %s\n", err);
        return 1;
    }
    gpt2_free(&m);
    char *key = NULL;
    if (server_start(&srv, &o, &key, err) || !key) {
        fprintf(stderr, "server_start: %s\n", err);
        return 1;
    }
    snprintf(base, sizeof base, "http://127.0.0.1:%d/v1", server_port(srv));
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);   /* auth + 22 is the key */
    RUN(test_auth_and_routes);
    RUN(test_uploads);
    RUN(test_fine_tune_and_stream);
    RUN(test_completions);
    server_stop(srv);
    free(key);
    curl_global_cleanup();
    fs_rm_rf(datadir, err);
    fs_rm_rf(share, err);
    return test_summary();
}
