/* json_print.c: JSON printed the way the Python CLI printed it.
 *
 * The original printed every object with print(resp), i.e.
 * json.dumps(obj, sort_keys=True, indent=2): keys sorted, two-space indent,
 * "key": value, non-ASCII escaped as \uXXXX, floats as Python's repr (0.01,
 * 1.0, 1e-05). jansson's own dump differs in float digits and escapes, and
 * scripts diff this output, so we write it ourselves.
 */
#include "cli/cli.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

void cli_py_float(double d, char *out, size_t cap)
{
    if (isnan(d)) { snprintf(out, cap, "NaN"); return; }
    if (isinf(d)) { snprintf(out, cap, d < 0 ? "-Infinity" : "Infinity"); return; }
    /* shortest round-tripping digits, as repr() */
    char tmp[40];
    int prec = 1;
    for (; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, d);
        if (strtod(tmp, NULL) == d) break;
    }
    /* tmp = [-]D.DDDDe[+-]XX */
    char digits[24];
    int nd = 0, neg = tmp[0] == '-';
    const char *p = tmp + neg;
    for (; *p && *p != 'e'; p++) if (*p != '.') digits[nd++] = *p;
    digits[nd] = 0;
    int exp10 = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0') digits[--nd] = 0;
    char s[64];
    int n = 0;
    if (neg) s[n++] = '-';
    if (exp10 >= -4 && exp10 < 16) {
        if (exp10 < 0) {
            n += sprintf(s + n, "0.");
            for (int i = 0; i < -exp10 - 1; i++) s[n++] = '0';
            n += sprintf(s + n, "%s", digits);
        } else {
            for (int i = 0; i <= exp10; i++) s[n++] = i < nd ? digits[i] : '0';
            s[n++] = '.';
            if (nd > exp10 + 1) n += sprintf(s + n, "%s", digits + exp10 + 1);
            else s[n++] = '0';
        }
        s[n] = 0;
    } else {
        s[n++] = digits[0];
        if (nd > 1) { s[n++] = '.'; n += sprintf(s + n, "%s", digits + 1); }
        sprintf(s + n, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
    }
    snprintf(out, cap, "%s", s);
}

/* Decode one UTF-8 sequence; invalid bytes come back as themselves. */
static uint32_t utf8_next(const unsigned char **pp, const unsigned char *end)
{
    const unsigned char *p = *pp;
    uint32_t c = *p++;
    int extra = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
    if (c >= 0x80 && extra && p + extra <= end) {
        c &= 0x3F >> extra;
        for (int i = 0; i < extra; i++) c = (c << 6) | (*p++ & 0x3F);
    }
    *pp = p;
    return c;
}

static int dump_string(const char *str, size_t len, buf_t *b)
{
    const unsigned char *p = (const unsigned char *)str, *end = p + len;
    if (buf_append(b, "\"", 1)) return -1;
    while (p < end) {
        uint32_t c = utf8_next(&p, end);
        char e[16];
        switch (c) {
        case '"': buf_appends(b, "\\\""); continue;
        case '\\': buf_appends(b, "\\\\"); continue;
        case '\n': buf_appends(b, "\\n"); continue;
        case '\r': buf_appends(b, "\\r"); continue;
        case '\t': buf_appends(b, "\\t"); continue;
        case '\b': buf_appends(b, "\\b"); continue;
        case '\f': buf_appends(b, "\\f"); continue;
        }
        if (c < 0x20 || (c > 0x7E && c != 0x7F)) {
            if (c >= 0x10000) {
                c -= 0x10000;
                snprintf(e, sizeof e, "\\u%04x\\u%04x", 0xD800 + (c >> 10), 0xDC00 + (c & 0x3FF));
            } else {
                snprintf(e, sizeof e, "\\u%04x", c);
            }
            if (buf_appends(b, e)) return -1;
        } else {
            char ch = (char)c;
            if (buf_append(b, &ch, 1)) return -1;
        }
    }
    return buf_append(b, "\"", 1);
}

static int key_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int indent(buf_t *b, int depth)
{
    if (buf_append(b, "\n", 1)) return -1;
    for (int i = 0; i < depth; i++) if (buf_append(b, "  ", 2)) return -1;
    return 0;
}

static int dump(const json_t *v, buf_t *b, int depth)
{
    char num[64];
    switch (json_typeof(v)) {
    case JSON_NULL: return buf_appends(b, "null");
    case JSON_TRUE: return buf_appends(b, "true");
    case JSON_FALSE: return buf_appends(b, "false");
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return buf_appends(b, num);
    case JSON_REAL:
        cli_py_float(json_real_value(v), num, sizeof num);
        return buf_appends(b, num);
    case JSON_STRING: return dump_string(json_string_value(v), json_string_length(v), b);
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        if (!n) return buf_appends(b, "[]");
        buf_appends(b, "[");
        for (size_t i = 0; i < n; i++) {
            if (i) buf_appends(b, ",");
            if (indent(b, depth + 1) || dump(json_array_get(v, i), b, depth + 1)) return -1;
        }
        indent(b, depth);
        return buf_appends(b, "]");
    }
    case JSON_OBJECT: {
        size_t n = json_object_size(v);
        if (!n) return buf_appends(b, "{}");
        const char **keys = malloc(n * sizeof *keys);
        if (!keys) return -1;
        size_t k = 0;
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)v, key, val) keys[k++] = key;
        qsort(keys, k, sizeof *keys, key_cmp);
        buf_appends(b, "{");
        int rc = 0;
        for (size_t i = 0; i < k && !rc; i++) {
            if (i) buf_appends(b, ",");
            rc = indent(b, depth + 1) || dump_string(keys[i], strlen(keys[i]), b) ||
                 buf_appends(b, ": ") || dump(json_object_get(v, keys[i]), b, depth + 1);
        }
        free(keys);
        if (rc || indent(b, depth)) return -1;
        return buf_appends(b, "}");
    }
    }
    return -1;
}

int cli_json_dump(const json_t *v, buf_t *b)
{
    if (buf_reserve(b, 1)) return -1;
    return dump(v, b, 0);
}

void cli_json_print(const json_t *v)
{
    buf_t b = {0};
    if (cli_json_dump(v, &b) == 0) {
        fwrite(b.data, 1, b.len, stdout);
        fputc('\n', stdout);
    }
    fflush(stdout);
    buf_free(&b);
}

int cli_py_repr_str(const char *s, buf_t *b)
{
    /* repr() picks single quotes unless the text has ' and no ". */
    char q = strchr(s, '\'') && !strchr(s, '"') ? '"' : '\'';
    if (buf_append(b, &q, 1)) return -1;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char e[8];
        if (*p == '\\') buf_appends(b, "\\\\");
        else if (*p == (unsigned char)q) { buf_append(b, "\\", 1); buf_append(b, &q, 1); }
        else if (*p == '\n') buf_appends(b, "\\n");
        else if (*p == '\r') buf_appends(b, "\\r");
        else if (*p == '\t') buf_appends(b, "\\t");
        else if (*p < 0x20 || *p == 0x7F) { snprintf(e, sizeof e, "\\x%02x", *p); buf_appends(b, e); }
        else buf_append(b, p, 1);
    }
    return buf_append(b, &q, 1);
}
