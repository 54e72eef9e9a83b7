/* errors.c: OpenAI's error body and the request-parameter checks that
 * produce it. Every 4xx/5xx of the server goes through server_error_json so
 * all four keys (message, type, param, code) are always present, as the
 * official clients read them.
 */
#define TUNERY_SERVER_INTERNAL
#include "server/server.h"
#include <math.h>
#include <string.h>

json_t *server_error_json(const char *message, const char *type, const char *param, const char *code)
{
    json_t *e = json_object();
    json_object_set_new(e, "message", json_string(message ? message : ""));
    json_object_set_new(e, "type", json_string(type ? type : "invalid_request_error"));
    json_object_set_new(e, "param", param ? json_string(param) : json_null());
    json_object_set_new(e, "code", code ? json_string(code) : json_null());
    json_t *o = json_object();
    json_object_set_new(o, "error", e);
    return o;
}
