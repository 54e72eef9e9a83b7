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
/* Length of the valid UTF-8 sequence at s[0..n) (RFC 3629: no overlongs,
 * no surrogates, nothing past U+10FFFF), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else return 0;
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t k = 2; k < len; k++)
        if ((s[k] & 0xC0) != 0x80) return 0;
    return len;
}

/* Append s[0..n) to b as valid UTF-8 (invalid bytes become U+FFFD). */
static void utf8_clean(buf_t *b, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t len = utf8_seq((const unsigned char *)s + i, n - i);
        if (len) {
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
