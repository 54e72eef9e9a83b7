/* test_server.c: the server pieces that need no socket: the streaming
 * multipart parser (any chunking must give the same parts), percent-decoding
 * and route patterns, and OpenAI's error body. */
#define TUNERY_SERVER_INTERNAL
#include "server/server.h"
#include "test.h"
#include <stdlib.h>
#include <jansson.h>

typedef struct {
    int nparts;
    char names[8][64];
    char filenames[8][256];
    int has_filename[8];
    buf_t data[8];
    int ended[8];
    int refuse_name;          /* refuse a part named "refuse" */
} collect_t;

static int c_begin(void *ctx, const char *name, const char *filename, const char *ct)
{
    collect_t *c = ctx;
    if (c->nparts >= 8) return -1;
    if (c->refuse_name && !strcmp(name, "refuse")) return -1;
    snprintf(c->names[c->nparts], 64, "%s", name);
    c->has_filename[c->nparts] = filename != NULL;
    snprintf(c->filenames[c->nparts], 256, "%s", filename ? filename : "");
    c->nparts++;
    return 0;
}
static int c_data(void *ctx, const char *d, size_t n)
{
    collect_t *c = ctx;
    return buf_append(&c->data[c->nparts - 1], d, n);
}
static int c_end(void *ctx)
{
    collect_t *c = ctx;
    c->ended[c->nparts - 1] = 1;
    return 0;
}
static void c_free(collect_t *c)
{
    for (int i = 0; i < 8; i++) buf_free(&c->data[i]);
}

/* Parse body in pieces of `step` bytes (0 = one piece). Returns feed/finish result. */
static int parse(const char *boundary, const char *body, size_t len, size_t step, collect_t *c)
{
    memset(c, 0, sizeof *c);
    multipart_cb_t cb = {c, c_begin, c_data, c_end};
    multipart_t *m = multipart_new(boundary, &cb);
    char err[CORE_ERR_LEN];
    int rc = 0;
    if (!step) step = len ? len : 1;
    for (size_t i = 0; i < len && !rc; i += step)
        rc = multipart_feed(m, body + i, len - i < step ? len - i : step, err);
    if (!rc) rc = multipart_finish(m, err);
    multipart_free(m);
    return rc;
}

/* The Node SDK's order (file first), a file body full of near-boundaries. */
static void test_multipart_node_order_any_chunking(void)
{
    const char *b = "--------------------------123456789012345678901234";
    const char file[] = "{\"prompt\":\"a\",\"completion\":\" b\"}\r\n\r\n--\r\n-----\r\r\n--------------------------12345\x00\xff end";
    size_t flen = sizeof file - 1;
    buf_t body = {0};
    buf_printf(&body, "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"train.jsonl\"\r\n"
               "Content-Type: application/octet-stream\r\n\r\n", b);
    buf_append(&body, file, flen);
    buf_printf(&body, "\r\n--%s\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nfine-tune\r\n--%s--\r\n", b, b);
    size_t steps[] = {0, 1, 2, 3, 7, 13, 64};
    for (size_t k = 0; k < sizeof steps / sizeof *steps; k++) {
        collect_t c;
        CHECK_EQ_INT(parse(b, body.data, body.len, steps[k], &c), 0);
        CHECK_EQ_INT(c.nparts, 2);
        CHECK_EQ_STR(c.names[0], "file");
        CHECK_EQ_STR(c.filenames[0], "train.jsonl");
        CHECKF(c.data[0].len == flen && !memcmp(c.data[0].data, file, flen), "step %zu: file bytes differ (%zu vs %zu)", steps[k], c.data[0].len, flen);
        CHECK_EQ_STR(c.names[1], "purpose");
        CHECK(!c.has_filename[1]);
        CHECK(c.data[1].len == 9 && !memcmp(c.data[1].data, "fine-tune", 9));
        CHECK(c.ended[0] && c.ended[1]);
        c_free(&c);
    }
    buf_free(&body);
}

/* Python's order (purpose first), a preamble, a quoted filename with a path
 * and an escaped quote, an empty file. */
static void test_multipart_python_order_and_filename(void)
{
    const char *body =
        "preamble to ignore\r\n"
        "--xYz\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nfine-tune\r\n"
        "--xYz\r\ncontent-disposition: form-data; name=\"file\"; filename=\"../../etc/pa\\\"sswd\"\r\n\r\n"
        "\r\n--xYz--";
    collect_t c;
    CHECK_EQ_INT(parse("xYz", body, strlen(body), 1, &c), 0);
    CHECK_EQ_INT(c.nparts, 2);
    CHECK_EQ_STR(c.names[0], "purpose");
    CHECK_EQ_STR(c.filenames[1], "../../etc/pa\"sswd");
    CHECK_EQ_INT(c.data[1].len, 0);
    c_free(&c);
}

static void test_multipart_malformed(void)
{
    collect_t c;
    const char *cut = "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x\"\r\n\r\nabc";
    CHECK(parse("b", cut, strlen(cut), 0, &c) < 0);   /* no closing boundary */
    c_free(&c);
    const char *nocolon = "--b\r\nContent-Disposition form-data\r\n\r\nabc\r\n--b--";
    CHECK(parse("b", nocolon, strlen(nocolon), 0, &c) < 0);
    c_free(&c);
    const char *noname = "--b\r\nContent-Type: text/plain\r\n\r\nabc\r\n--b--";
    CHECK(parse("b", noname, strlen(noname), 0, &c) < 0);
    c_free(&c);
    const char *garbage = "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nabc\r\n--bX\r\n--b--";
    /* "--bX" is not a delimiter line: the parser must fail rather than guess */
    CHECK(parse("b", garbage, strlen(garbage), 0, &c) < 0);
    c_free(&c);
    const char *empty = "";
    CHECK(parse("b", empty, 0, 0, &c) < 0);
    c_free(&c);
    /* a refused part stops the parse */
    memset(&c, 0, sizeof c);
    c.refuse_name = 1;
    multipart_cb_t cb = {&c, c_begin, c_data, c_end};
    multipart_t *m = multipart_new("b", &cb);
    char err[CORE_ERR_LEN];
    const char *refused = "--b\r\nContent-Disposition: form-data; name=\"refuse\"\r\n\r\nabc\r\n--b--";
    CHECK(multipart_feed(m, refused, strlen(refused), err) < 0);
    multipart_free(m);
    c_free(&c);
    /* a header line over 8 KiB */
    buf_t big = {0};
    buf_appends(&big, "--b\r\nX-Long: ");
    for (int i = 0; i < 9000; i++) buf_append(&big, "a", 1);
    buf_appends(&big, "\r\n\r\n--b--");
    CHECK(parse("b", big.data, big.len, 100, &c) < 0);
    c_free(&c);
    buf_free(&big);
}

static void test_multipart_boundary_header(void)
{
    char b[80];
    CHECK_EQ_INT(multipart_boundary("multipart/form-data; boundary=----formdata-undici-0123", b, sizeof b), 0);
    CHECK_EQ_STR(b, "----formdata-undici-0123");
    CHECK_EQ_INT(multipart_boundary("Multipart/Form-Data; charset=utf-8; boundary=\"a b:c\"", b, sizeof b), 0);
    CHECK_EQ_STR(b, "a b:c");
    CHECK(multipart_boundary("application/json", b, sizeof b) < 0);
    CHECK(multipart_boundary("multipart/form-data", b, sizeof b) < 0);
    CHECK(multipart_boundary(NULL, b, sizeof b) < 0);
    char longb[200] = "multipart/form-data; boundary=";
    memset(longb + strlen(longb), 'x', 100);
    CHECK(multipart_boundary(longb, b, sizeof b) < 0);   /* RFC 2046: at most 70 */
}

static void test_url_decode(void)
{
    char out[64];
    CHECK_EQ_INT(url_decode("curie%3Aft-org%3Amy-2023", 24, out, sizeof out, 1), 0);
    CHECK_EQ_STR(out, "curie:ft-org:my-2023");
    CHECK_EQ_INT(url_decode("a+b%2Bc", 7, out, sizeof out, 1), 0);
    CHECK_EQ_STR(out, "a b+c");
    CHECK_EQ_INT(url_decode("a+b", 3, out, sizeof out, 0), 0);
    CHECK_EQ_STR(out, "a+b");
    CHECK(url_decode("%zz", 3, out, sizeof out, 1) < 0);
    CHECK(url_decode("abc%2", 5, out, sizeof out, 1) < 0);
    CHECK(url_decode("%00", 3, out, sizeof out, 1) < 0);
    CHECK(url_decode("abcdef", 6, out, 4, 1) < 0);
    CHECK_EQ_INT(url_decode("%27%3B%20DROP", 13, out, sizeof out, 1), 0);
    CHECK_EQ_STR(out, "'; DROP");
}

static void test_route_patterns(void)
{
    char p[ROUTE_MAX_PARAMS][ROUTE_PARAM_LEN];
    int np = -1;
    CHECK_EQ_INT(router_match_pattern("/v1/files", "/v1/files", p, &np), 0);
    CHECK_EQ_INT(np, 0);
    CHECK(router_match_pattern("/v1/files", "/v1/files/", p, &np) < 0);
    CHECK_EQ_INT(router_match_pattern("/v1/files/{}/content", "/v1/files/file-abc/content", p, &np), 0);
    CHECK_EQ_INT(np, 1);
    CHECK_EQ_STR(p[0], "file-abc");
    /* an encoded '/' stays inside the segment */
    CHECK_EQ_INT(router_match_pattern("/v1/models/{}", "/v1/models/a%2Fb%3Ac", p, &np), 0);
    CHECK_EQ_STR(p[0], "a/b:c");
    CHECK(router_match_pattern("/v1/models/{}", "/v1/models/a/b", p, &np) < 0);
    CHECK(router_match_pattern("/v1/models/{}", "/v1/models/", p, &np) < 0);
    CHECK(router_match_pattern("/v1/files/{}", "/v1/files/%zz", p, &np) < 0);
    CHECK_EQ_INT(router_match_pattern("/v1/engines/{}/completions", "/v1/engines/curie:ft-x+y/completions", p, &np), 0);
    CHECK_EQ_STR(p[0], "curie:ft-x y");
}

static void test_error_shape(void)
{
    json_t *e = server_error_json("No such File object: x", "invalid_request_error", "id", NULL);
    json_t *o = json_object_get(e, "error");
    CHECK(json_is_object(o));
    CHECK_EQ_INT(json_object_size(e), 1);
    CHECK_EQ_INT(json_object_size(o), 4);
    CHECK_EQ_STR(json_string_value(json_object_get(o, "message")), "No such File object: x");
    CHECK_EQ_STR(json_string_value(json_object_get(o, "type")), "invalid_request_error");
    CHECK_EQ_STR(json_string_value(json_object_get(o, "param")), "id");
    CHECK(json_is_null(json_object_get(o, "code")));
    json_decref(e);
    e = server_error_json("boom", NULL, NULL, "invalid_api_key");
    o = json_object_get(e, "error");
    CHECK(json_is_null(json_object_get(o, "param")));
    CHECK_EQ_STR(json_string_value(json_object_get(o, "code")), "invalid_api_key");
    json_decref(e);
}

/* Parameter checks reply through a captured req (no connection). */
static json_t *captured_error(req_t *r)
{
    json_t *j = r->captured ? json_loads(r->captured, 0, NULL) : NULL;
    free(r->captured);
    r->captured = NULL;
    r->replied = 0;
    return j;
}

static void test_params_types_and_nulls(void)
{
    req_t r;
    memset(&r, 0, sizeof r);
    json_t *b = json_loads("{\"n\":3,\"x\":2.0,\"s\":\"str\",\"t\":true,\"nul\":null,\"bad\":\"4\",\"big\":99}", 0, NULL);
    long long n = -1;
    int given = -1;
    CHECK_EQ_INT(json_opt_int(&r, b, "n", 1, 10, &n, &given), 0);
    CHECK(n == 3 && given == 1);
    CHECK_EQ_INT(json_opt_int(&r, b, "x", 1, 10, &n, NULL), 0);   /* 2.0 is an integer */
    CHECK_EQ_INT(n, 2);
    n = 7;
    CHECK_EQ_INT(json_opt_int(&r, b, "nul", 1, 10, &n, &given), 0);   /* null = default */
    CHECK(n == 7 && given == 0);
    CHECK_EQ_INT(json_opt_int(&r, b, "absent", 1, 10, &n, &given), 0);
    CHECK(n == 7 && given == 0 && !r.replied);
    CHECK(json_opt_int(&r, b, "bad", 1, 10, &n, NULL) < 0);
    json_t *e = captured_error(&r);
    CHECK_EQ_INT(r.captured_status, 400);
    CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(e, "error"), "param")), "bad");
    CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(e, "error"), "type")), "invalid_request_error");
    json_decref(e);
    CHECK(json_opt_int(&r, b, "big", 1, 10, &n, NULL) < 0);
    e = captured_error(&r);
    CHECK(e && strstr(json_string_value(json_object_get(json_object_get(e, "error"), "message")), "between 1 and 10"));
    json_decref(e);
    double d = 0;
    CHECK_EQ_INT(json_opt_num(&r, b, "n", 0, 5, &d, NULL), 0);
    CHECK_NEAR(d, 3, 0);
    CHECK(json_opt_num(&r, b, "s", 0, 5, &d, NULL) < 0);
    json_decref(captured_error(&r));
    int t = 0;
    CHECK_EQ_INT(json_opt_bool(&r, b, "t", &t, NULL), 0);
    CHECK_EQ_INT(t, 1);
    CHECK(json_opt_bool(&r, b, "n", &t, NULL) < 0);
    json_decref(captured_error(&r));
    const char *str = NULL;
    CHECK_EQ_INT(json_opt_str(&r, b, "s", &str), 0);
    CHECK_EQ_STR(str, "str");
    CHECK(json_opt_str(&r, b, "n", &str) < 0);
    json_decref(captured_error(&r));
    static const char *const known[] = {"n", "x", "s", "t", "nul", "bad", NULL};
    CHECK(json_check_known(&r, b, known) < 0);   /* "big" is not known */
    e = captured_error(&r);
    CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(e, "error"), "param")), "big");
    CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(e, "error"), "message")), "Unrecognized request argument supplied: big");
    json_decref(e);
    json_decref(b);
}

static void test_router_table(void)
{
    char p[ROUTE_MAX_PARAMS][ROUTE_PARAM_LEN];
    int np;
    const route_t *rt = NULL;
    CHECK_EQ_INT(router_match("GET", "/v1/files/file-1/content", &rt, p, &np), 0);
    CHECK(rt && rt->fn == files_content);
    CHECK_EQ_INT(router_match("DELETE", "/v1/models/curie%3Aft-acme-2021", &rt, p, &np), 0);
    CHECK(rt->fn == models_delete);
    CHECK_EQ_STR(p[0], "curie:ft-acme-2021");
    CHECK_EQ_INT(router_match("POST", "/v1/fine-tunes/ft-1/cancel", &rt, p, &np), 0);
    CHECK(rt->fn == fine_tunes_cancel && rt->body == BODY_JSON);
    CHECK_EQ_INT(router_match("POST", "/v1/files", &rt, p, &np), 0);
    CHECK(rt->body == BODY_MULTIPART);
    CHECK_EQ_INT(router_match("PUT", "/v1/files", &rt, p, &np), -2);   /* path known, method not */
    CHECK_EQ_INT(router_match("GET", "/v1/nothing", &rt, p, &np), -1);
    CHECK_EQ_INT(router_match("GET", "/files", &rt, p, &np), -1);      /* everything is under /v1 */
}

static void test_json_text_any_bytes(void)
{
    /* valid UTF-8 stays; overlongs, surrogates, > U+10FFFF and stray bytes become U+FFFD each */
    static const struct { const char *in; const char *out; } cases[] = {
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x99\x82", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x99\x82"},
        {"caf\xe9", "caf\xef\xbf\xbd"},
        {"\xc0\xa0", "\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xe2\x82", "\xef\xbf\xbd\xef\xbf\xbd"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_t *j = server_json_str(cases[i].in);
        CHECKF(j && !strcmp(json_string_value(j), cases[i].out), "case %zu", i);
        json_decref(j);
    }
    json_t *e = server_error_json("No such File object: \xff", NULL, "\xfe", NULL);
    char *d = json_dumps(e, 0);
    CHECK(d && strstr(d, "No such File object: \xef\xbf\xbd\""));
    free(d);
    json_decref(e);
}

int main(void)
{
    RUN(test_multipart_node_order_any_chunking);
    RUN(test_multipart_python_order_and_filename);
    RUN(test_multipart_malformed);
    RUN(test_multipart_boundary_header);
    RUN(test_url_decode);
    RUN(test_route_patterns);
    RUN(test_error_shape);
    RUN(test_params_types_and_nulls);
    RUN(test_router_table);
    RUN(test_json_text_any_bytes);
    return test_summary();
}
