/* params.c: checks of JSON request parameters. Each check replies 400 with
 * OpenAI's error body naming the parameter (error.param) when a value has the
 * wrong type or range; a missing key or a JSON null means "use the default",
 * as the Python CLI sends null for every option it was not given.
 */
#define TUNERY_SERVER_INTERNAL
#include "server/server.h"
#include <math.h>
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
