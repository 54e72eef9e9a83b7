/* params.c: checks of JSON request parameters. Each check replies 400 with
 * OpenAI's error body naming the parameter (error.param) when a value has the
 * wrong type or range; a missing key or a JSON null means "use the default",
 * as the Python CLI sends null for every option it was not given. The
 * sampling parameters the two generation endpoints share (stop, logit_bias,
 * temperature, ...) are parsed here once for both (params.h).
 */
#define TUNERY_SERVER_INTERNAL
#include "server/params.h"
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *json_type_word(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

static int bad_type(req_t *r, const char *key, const char *want, const json_t *v)
{
    HTTP_400(r, key, "Invalid type for '%s': expected %s, but got %s instead.", key, want, json_type_word(v));
    return -1;
}

int json_opt_int(req_t *r, json_t *body, const char *key, long long min, long long max, long long *out, int *given)
{
    json_t *v = body ? json_object_get(body, key) : NULL;
    if (given) *given = 0;
    if (!v || json_is_null(v)) return 0;
    long long x;
    if (json_is_integer(v)) x = json_integer_value(v);
    else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) && fabs(json_real_value(v)) < 1e15)
        x = (long long)json_real_value(v);
    else return bad_type(r, key, "an integer", v);
    if (x < min || x > max) {
        HTTP_400(r, key, "%lld is out of range for '%s': it must be between %lld and %lld.", x, key, min, max);
        return -1;
    }
    *out = x;
    if (given) *given = 1;
    return 0;
}

int json_opt_num(req_t *r, json_t *body, const char *key, double min, double max, double *out, int *given)
{
    json_t *v = body ? json_object_get(body, key) : NULL;
    if (given) *given = 0;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v)) return bad_type(r, key, "a number", v);
    double x = json_number_value(v);
    if (!(x >= min && x <= max)) {
        HTTP_400(r, key, "%g is out of range for '%s': it must be between %g and %g.", x, key, min, max);
        return -1;
    }
    *out = x;
    if (given) *given = 1;
    return 0;
}

int json_opt_bool(req_t *r, json_t *body, const char *key, int *out, int *given)
{
    json_t *v = body ? json_object_get(body, key) : NULL;
    if (given) *given = 0;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) return bad_type(r, key, "a boolean", v);
    *out = json_is_true(v);
    if (given) *given = 1;
    return 0;
}

int json_opt_str(req_t *r, json_t *body, const char *key, const char **out)
{
    json_t *v = body ? json_object_get(body, key) : NULL;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v)) return bad_type(r, key, "a string", v);
    *out = json_string_value(v);
    return 0;
}

int json_check_known(req_t *r, json_t *body, const char *const *known)
{
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v) {
        int ok = 0;
        for (const char *const *p = known; *p && !ok; p++) ok = !strcmp(*p, k);
        if (!ok) {
            HTTP_400(r, k, "Unrecognized request argument supplied: %s", k);
            return -1;
        }
    }
    return 0;
}

/* ---- sampling parameters shared by completions.c and chat.c ---- */

int params_parse_sampling(req_t *r, json_t *b, gen_request_t *g)
{
    long long n = 1, seed = 0;
    double temp = 1, top_p = 1, pp = 0, fp = 0;
    int stream = 0, has_seed = 0;
    const char *user = NULL;
    if (json_opt_int(r, b, "n", -1000, 1000000, &n, NULL) ||
        json_opt_int(r, b, "seed", -(1ll << 62), 1ll << 62, &seed, &has_seed) ||
        json_opt_num(r, b, "temperature", -1e9, 1e9, &temp, NULL) || json_opt_num(r, b, "top_p", -1e9, 1e9, &top_p, NULL) ||
        json_opt_num(r, b, "presence_penalty", -1e9, 1e9, &pp, NULL) ||
        json_opt_num(r, b, "frequency_penalty", -1e9, 1e9, &fp, NULL) || json_opt_bool(r, b, "stream", &stream, NULL) ||
        json_opt_str(r, b, "user", &user))
        return -1;
    g->n = (int)n;
    g->temperature = (float)temp;
    g->top_p = (float)top_p;
    g->presence_penalty = (float)pp;
    g->frequency_penalty = (float)fp;
    g->stream = stream;
    g->has_seed = has_seed;
    g->seed = (uint64_t)seed;
    return 0;
}

static int parse_stop(req_t *r, json_t *stop, gen_request_t *g, params_gen_t *own)
{
    if (!stop || json_is_null(stop)) return 0;
    size_t n = json_is_string(stop) ? 1 : json_is_array(stop) ? json_array_size(stop) : GEN_MAX_STOP + 1;
    if (n > GEN_MAX_STOP) return HTTP_400(r, "stop", "stop must be a string or an array of up to 4 strings."), -1;
    for (size_t i = 0; i < n; i++) {
        json_t *x = json_is_string(stop) ? stop : json_array_get(stop, i);
        if (!json_is_string(x)) return HTTP_400(r, "stop", "stop must be a string or an array of up to 4 strings."), -1;
        if (!json_string_value(x)[0]) continue;
        if (!(own->stops[g->n_stop] = strdup(json_string_value(x)))) return HTTP_500(r, "Out of memory."), -1;
        g->n_stop++;
    }
    g->stop = (const char *const *)own->stops;
    return 0;
}

static int parse_bias(req_t *r, json_t *lb, gen_request_t *g, params_gen_t *own)
{
    if (!lb || json_is_null(lb)) return 0;
    if (!json_is_object(lb) || json_object_size(lb) > 300)
        return HTTP_400(r, "logit_bias", "logit_bias must be an object of at most 300 token ids to numbers from -100 to 100."), -1;
    size_t k = json_object_size(lb);
    own->bias_ids = calloc(k ? k : 1, sizeof *own->bias_ids);
    own->bias = calloc(k ? k : 1, sizeof *own->bias);
    if (!own->bias_ids || !own->bias) return HTTP_500(r, "Out of memory."), -1;
    const char *key;
    json_t *v;
    json_object_foreach(lb, key, v) {
        char *end;
        long id = strtol(key, &end, 10);
        if (*end || end == key || id < 0 || id > INT_MAX || !json_is_number(v) || json_number_value(v) < -100 ||
            json_number_value(v) > 100)
            return HTTP_400(r, "logit_bias", "logit_bias must map token ids (as strings) to numbers from -100 to 100; '%s' is not valid.", key), -1;
        own->bias_ids[g->n_logit_bias] = (int)id;
        own->bias[g->n_logit_bias++] = (float)json_number_value(v);
    }
    g->logit_bias_ids = own->bias_ids;
    g->logit_bias = own->bias;
    return 0;
}

int params_parse_stop_bias(req_t *r, json_t *b, gen_request_t *g, params_gen_t *own)
{
    return parse_stop(r, json_object_get(b, "stop"), g, own) || parse_bias(r, json_object_get(b, "logit_bias"), g, own) ? -1 : 0;
}

void params_gen_free(params_gen_t *own)
{
    for (int i = 0; i < GEN_MAX_STOP; i++) free(own->stops[i]);
    free(own->bias_ids);
    free(own->bias);
    memset(own, 0, sizeof *own);
}

model_ref_t *params_model_get(req_t *r, const char *cache_id, const char *dir, const char *name)
{
    char err[CORE_ERR_LEN];
    int hit = 0;
    model_ref_t *ref = model_cache_get(r->srv, cache_id, dir, &hit, err);
    r->extra_header[0] = "x-tunery-model-cache";
    r->extra_header[1] = hit ? "hit" : "miss";
    if (!ref) HTTP_500(r, "The model `%s` could not be loaded: %s", name, err);
    return ref;
}

void params_stream_end(http_push_t *push, int rc, const char *err)
{
    if (rc && rc != GEN_ECANCEL && !http_push_closed(push)) {
        json_t *e = server_error_json(err && err[0] ? err : "generation failed", "server_error", NULL, NULL);
        char *t = json_dumps(e, JSON_COMPACT);
        json_decref(e);
        if (t) http_push_printf(push, "data: %s\n\n", t);
        free(t);
    }
    http_push_printf(push, "data: [DONE]\n\n");
    http_push_end(push);
    http_push_release(push);
}
