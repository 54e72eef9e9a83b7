/* fuzz_http_json.c: libFuzzer target for what the server does with request
 * text before any handler runs: route matching with percent-decoding of
 * the path, JSON body parsing, and the parameter checks that answer 400
 * (replies captured without a connection, so every error body is built
 * and must parse back as OpenAI's error shape). Input: "METHOD PATH\nBODY". */
#define TUNERY_SERVER_INTERNAL
#include "server/server.h"
#include <stdlib.h>
#include <string.h>

static void check_reply(req_t *r)
{
    if (!r->captured) return;
    json_t *j = json_loads(r->captured, 0, NULL);
    json_t *e = j ? json_object_get(j, "error") : NULL;
    if (!e || !json_is_string(json_object_get(e, "message")) || json_object_size(e) != 4) abort();
    json_decref(j);
    free(r->captured);
    r->captured = NULL;
    r->replied = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *nl = memchr(data, '\n', size);
    size_t head = nl ? (size_t)(nl - (const char *)data) : size;
    char line[2048];
    if (head >= sizeof line) return 0;
    memcpy(line, data, head);
    line[head] = 0;
    if (memchr(line, 0, head)) return 0;
    char *sp = strchr(line, ' ');
    if (sp) {
        *sp = 0;
        const route_t *rt;
        char params[ROUTE_MAX_PARAMS][ROUTE_PARAM_LEN];
        int np = 0;
        if (router_match(line, sp + 1, &rt, params, &np) == 0)
            for (int i = 0; i < np; i++)
                if (strlen(params[i]) >= ROUTE_PARAM_LEN) abort();
    }
    /* any bytes become a JSON string that dumps and parses back */
    json_t *t = server_json_text((const char *)data, size);
    char *dumped = t ? json_dumps(t, JSON_ENCODE_ANY) : NULL;
    json_t *back = dumped ? json_loads(dumped, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL) : NULL;
    if (!back) abort();
    json_decref(back);
    free(dumped);
    json_decref(t);
    if (!nl) return 0;
    json_t *body = json_loadb((const char *)nl + 1, size - head - 1, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(body)) {
        json_decref(body);
        return 0;
    }
    req_t r;
    memset(&r, 0, sizeof r);
    static const char *const known[] = {"training_file", "model", "n_epochs", "prompt", "stop", NULL};
    long long i64;
    double d;
    int b;
    const char *s;
    json_check_known(&r, body, known);
    check_reply(&r);
    json_opt_int(&r, body, "n_epochs", 1, 50, &i64, NULL);
    check_reply(&r);
    json_opt_num(&r, body, "learning_rate_multiplier", 0, 10, &d, NULL);
    check_reply(&r);
    json_opt_bool(&r, body, "stream", &b, NULL);
    check_reply(&r);
    json_opt_str(&r, body, "model", &s);
    check_reply(&r);
    json_decref(body);
    return 0;
}
