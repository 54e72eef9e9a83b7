/* errors.c: OpenAI's error body and the request-parameter checks that
 * produce it. Every 4xx/5xx of the server goes through server_error_json so
 * all four keys (message, type, param, code) are always present, as the
 * official clients read them.
 */
#define TUNERY_SERVER_INTERNAL
#include "server/server.h"
#include <math.h>
#include <string.h>

/* Client-supplied text (filenames, ids in messages, file lines quoted in
 * errors) may be any bytes; JSON strings must be UTF-8. */
/* Append s[0..n) to b as valid UTF-8 (invalid bytes become U+FFFD). */
static void utf8_clean(buf_t *b, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        int ok = len && i + len <= n;
        for (size_t k = 1; ok && k < len; k++) ok = ((unsigned char)s[i + k] >> 6) == 2;
        if (ok && len == 2 && c < 0xC2) ok = 0;
        if (ok) {
            buf_append(b, s + i, len);
            i += len;
        } else {
            buf_append(b, "\xEF\xBF\xBD", 3);
            i++;
        }
    }
}

json_t *server_json_text(const char *s, size_t n)
{
    json_t *j = json_stringn(s, n);
    if (j) return j;
    buf_t b = {0};
    utf8_clean(&b, s, n);
    j = json_stringn(b.data ? b.data : "", b.len);
    buf_free(&b);
    return j;
}

json_t *server_json_str(const char *s) { return server_json_text(s, strlen(s)); }

json_t *server_error_json(const char *message, const char *type, const char *param, const char *code)
{
    json_t *e = json_object();
    json_object_set_new(e, "message", server_json_str(message ? message : ""));
    json_object_set_new(e, "type", json_string(type ? type : "invalid_request_error"));
    json_object_set_new(e, "param", param ? server_json_str(param) : json_null());
    json_object_set_new(e, "code", code ? json_string(code) : json_null());
    json_t *o = json_object();
    json_object_set_new(o, "error", e);
    return o;
}
