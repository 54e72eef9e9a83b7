/* generate.c: what completions.create and chat_completions.create share.
 * The two commands differ in their flags (-p against -g), in where a
 * choice's text sits (choice.text against choice.message/delta.content) and
 * in their headers; the rest is one piece of code: the JSON body built from
 * the flag table (unset flags as null, in the original's key order), the
 * path (/engines/E/... with -e), the POST, the SSE stream and the printing
 * of choices in index order.
 */
#include "cli/cli.h"
#include <stdlib.h>
#include <string.h>

void cli_gen_body(json_t *b, const cli_flag_t *f, const cli_gen_key_t *keys)
{
    for (const cli_gen_key_t *k = keys; k->key; k++) {
        const cli_flag_t *x = &f[k->flag];
        json_t *v = x->kind == CLI_BOOL ? json_boolean(x->set)
                    : !x->set           ? json_null()
                    : x->kind == CLI_INT ? json_integer(x->i)
                    : x->kind == CLI_FLOAT ? json_real(x->f)
                                           : json_string(x->str);
        json_object_set_new(b, k->key, v);
    }
}

/* One chunk's (or the whole answer's) choices, sorted by index. */
static void print_choices(const cli_gen_style_t *st, json_t *choices, int stream)
{
    size_t n = json_array_size(choices);
    const char *obj = stream ? st->stream_object : st->object;
    for (size_t want = 0, printed = 0; printed < n && want < n + 1024; want++) {
        for (size_t i = 0; i < n; i++) {
            json_t *c = json_array_get(choices, i);
            json_t *idx = json_object_get(c, "index");
            if ((json_is_integer(idx) ? (size_t)json_integer_value(idx) : i) != want) continue;
            if (n > 1) printf("===== %s %zu =====\n", st->title, printed);
            const char *t = json_string_value(obj ? json_object_get(json_object_get(c, obj), "content") : json_object_get(c, "text"));
            if (t) fputs(t, stdout);
            if (n > 1 && (!stream || st->newline_streamed)) putchar('\n');
            fflush(stdout);
            printed++;
        }
    }
}

typedef struct {
    const cli_gen_style_t *st;
    char err[CORE_ERR_LEN];
} chunk_ctx_t;

static int on_chunk(const char *data, size_t len, void *ud)
{
    chunk_ctx_t *cx = ud;
    json_t *j = json_loadb(data, len, 0, NULL);
    if (!j) return 0;
    json_t *e = json_object_get(j, "error");
    if (e) {
        const char *m = json_string_value(json_object_get(e, "message"));
        snprintf(cx->err, sizeof cx->err, "%s (Error occurred while streaming.)", m ? m : "<empty message>");
        json_decref(j);
        return 1;
    }
    print_choices(cx->st, json_object_get(j, "choices"), 1);
    json_decref(j);
    return 0;
}

int cli_gen_post(const cli_opts_t *o, const cli_gen_style_t *st, const char *engine, int stream, char *body)
{
    if (!body) return cli_print_error("out of memory building the request");
    char path[1200];
    if (engine) {
        char q[1024];
        cli_quote_plus(engine, q, sizeof q);
        snprintf(path, sizeof path, "/engines/%s/%s", q, st->endpoint);
    } else {
        snprintf(path, sizeof path, "/%s", st->endpoint);
    }
    int rc;
    if (!stream) {
        json_t *r;
        rc = cli_call(o, "POST", path, body, &r);
        free(body);
        if (rc) return rc;
        print_choices(st, json_object_get(r, "choices"), 0);
        json_decref(r);
        return 0;
    }
    char err[CORE_ERR_LEN] = "";
    chunk_ctx_t cx = {st, ""};
    cli_resp_t r;
    rc = cli_http_sse(o, "POST", path, body, on_chunk, &cx, NULL, &r, err);
    free(body);
    if (rc < 0) { cli_resp_free(&r); return cli_print_error(err); }
    if (r.status < 200 || r.status >= 300) { rc = cli_print_api_error(&r); cli_resp_free(&r); return rc; }
    cli_resp_free(&r);
    if (cx.err[0]) return cli_print_error(cx.err);
    return 0;
}
