/* multipart.c: a streaming multipart/form-data parser (RFC 7578 / RFC 2046).
 *
 * Why streaming: an upload may be gigabytes and arrives in chunks of any size
 * (libmicrohttpd hands us whatever the socket gave, chunked or sized). The
 * parser keeps only the partial delimiter match and one header line, so the
 * file part goes straight from the socket to its blob with bounded memory.
 * Any boundary, either field order, CRLF line endings (bare LF tolerated in
 * part headers).
 */
#define TUNERY_SERVER_INTERNAL
#include "server/server.h"
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MP_LINE_MAX 8192
#define MP_BOUNDARY_MAX 70

enum { MP_PREAMBLE, MP_AFTER_DELIM, MP_AFTER_DELIM_DASH, MP_AFTER_DELIM_CR,
       MP_HEADERS, MP_BODY, MP_EPILOGUE, MP_FAILED };

struct multipart {
    multipart_cb_t cb;
    char delim[MP_BOUNDARY_MAX + 5];  /* "\r\n--" + boundary */
    size_t dlen;
    size_t match;                     /* bytes of delim matched so far */
    int state;
    int nparts;
    char line[MP_LINE_MAX];
    size_t line_len;
    char name[256];
    char filename[1024];
    char ctype[256];
    int has_filename;
};

/* Extract the boundary parameter of a multipart/form-data Content-Type. */
int multipart_boundary(const char *content_type, char *out, size_t outlen)
{
    if (!content_type || strncasecmp(content_type, "multipart/form-data", 19)) return -1;
    const char *p = content_type + 19;
    while (*p) {
        while (*p == ';' || *p == ' ' || *p == '\t') p++;
        if (!strncasecmp(p, "boundary=", 9)) {
            p += 9;
            size_t n = 0;
            if (*p == '"') {
                p++;
                while (p[n] && p[n] != '"') n++;
            } else {
                while (p[n] && p[n] != ';' && p[n] != ' ' && p[n] != '\t') n++;
            }
            if (n == 0 || n > MP_BOUNDARY_MAX || n >= outlen) return -1;
            memcpy(out, p, n);
            out[n] = 0;
            return 0;
        }
        while (*p && *p != ';') p++;
    }
    return -1;
}

multipart_t *multipart_new(const char *boundary, const multipart_cb_t *cb)
{
    size_t bl = strlen(boundary);
    if (bl == 0 || bl > MP_BOUNDARY_MAX) return NULL;
    multipart_t *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->cb = *cb;
    memcpy(m->delim, "\r\n--", 4);
    memcpy(m->delim + 4, boundary, bl);
    m->dlen = 4 + bl;
    /* The body starts with "--boundary": pretend the CRLF before it was seen. */
    m->match = 2;
    m->state = MP_PREAMBLE;
    return m;
}

void multipart_free(multipart_t *m) { free(m); }

/* Copy the value of param (name= or filename=) from a Content-Disposition
 * header; quoted strings may contain backslash escapes. Returns 1 if found. */
static int mp_param(const char *h, const char *param, char *out, size_t outlen)
{
    size_t pl = strlen(param);
    const char *p = h;
    while ((p = strchr(p, ';')) != NULL) {
        p++;
        while (*p == ' ' || *p == '\t') p++;
        if (strncasecmp(p, param, pl) || p[pl] != '=') continue;
        p += pl + 1;
        size_t n = 0;
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1]) p++;
                if (n + 1 < outlen) out[n++] = *p;
                p++;
            }
        } else {
            while (*p && *p != ';' && *p != ' ' && *p != '\t') {
                if (n + 1 < outlen) out[n++] = *p;
                p++;
            }
        }
        out[n] = 0;
        return 1;
    }
    return 0;
}

static int mp_fail(multipart_t *m, char *err, const char *msg)
{
    m->state = MP_FAILED;
    return core_errf(err, "%s", msg);
}

/* One complete part-header line (without its line end). Empty = end of headers. */
static int mp_header_line(multipart_t *m, char *err)
{
    char *l = m->line;
    l[m->line_len] = 0;
    if (m->line_len && l[m->line_len - 1] == '\r') l[--m->line_len] = 0;
    if (m->line_len == 0) {
        if (!m->name[0]) return mp_fail(m, err, "a multipart part has no Content-Disposition name; send each field as form-data; name=\"...\"");
        m->nparts++;
        if (m->cb.part_begin && m->cb.part_begin(m->cb.ctx, m->name, m->has_filename ? m->filename : NULL, m->ctype))
            return mp_fail(m, err, "the upload was refused while starting a part");
        m->state = MP_BODY;
        m->match = 0;
        return 0;
    }
    char *colon = strchr(l, ':');
    if (!colon) return mp_fail(m, err, "a multipart part header has no ':'; the body is not valid multipart/form-data");
    *colon = 0;
    char *v = colon + 1;
    while (*v == ' ' || *v == '\t') v++;
    if (!strcasecmp(l, "Content-Disposition")) {
        if (strncasecmp(v, "form-data", 9)) return mp_fail(m, err, "a multipart part is not form-data");
        if (!mp_param(v, "name", m->name, sizeof m->name) || !m->name[0])
            return mp_fail(m, err, "a multipart part has no name; send each field as form-data; name=\"...\"");
        m->has_filename = mp_param(v, "filename", m->filename, sizeof m->filename);
    } else if (!strcasecmp(l, "Content-Type")) {
        snprintf(m->ctype, sizeof m->ctype, "%s", v);
    }
    m->line_len = 0;
    return 0;
}

static int mp_data(multipart_t *m, const char *p, size_t n, char *err)
{
    if (n == 0 || !m->cb.part_data) return 0;
    if (m->cb.part_data(m->cb.ctx, p, n)) return mp_fail(m, err, "the upload could not be stored");
    return 0;
}

/* The delimiter was matched in state BODY or PREAMBLE. */
static int mp_delim_found(multipart_t *m, char *err)
{
    if (m->state == MP_BODY && m->cb.part_end && m->cb.part_end(m->cb.ctx))
        return mp_fail(m, err, "the upload could not be stored");
    m->state = MP_AFTER_DELIM;
    m->match = 0;
    return 0;
}

int multipart_feed(multipart_t *m, const char *data, size_t n, char *err)
{
    size_t i = 0;
    while (i < n) {
        switch (m->state) {
        case MP_FAILED:
            return core_errf(err, "the multipart body is malformed");
        case MP_EPILOGUE:
            return 0;
        case MP_PREAMBLE:
        case MP_BODY: {
            int body = m->state == MP_BODY;
            if (m->match == 0) {
                /* fast path: everything before the next CR is data */
                const char *cr = memchr(data + i, '\r', n - i);
                size_t run = cr ? (size_t)(cr - (data + i)) : n - i;
                if (body && mp_data(m, data + i, run, err)) return -1;
                i += run;
                if (!cr) break;
            }
            char c = data[i];
            if (c == m->delim[m->match]) {
                m->match++;
                i++;
                if (m->match == m->dlen && mp_delim_found(m, err)) return -1;
            } else {
                /* The delimiter has '\r' only at position 0 (RFC 2046
                 * boundaries have no CR), so on a mismatch the matched bytes
                 * are data and only this byte can start a new match. */
                if (body && mp_data(m, m->delim, m->match, err)) return -1;
                m->match = 0;
                if (c != '\r') {
                    if (body && mp_data(m, &c, 1, err)) return -1;
                    i++;
                }
                /* a '\r' is re-examined with match == 0 */
                else { m->match = 1; i++; }
            }
            break;
        }
        case MP_AFTER_DELIM:
            if (data[i] == '-') m->state = MP_AFTER_DELIM_DASH;
            else if (data[i] == '\r') m->state = MP_AFTER_DELIM_CR;
            else if (data[i] == '\n') goto headers;
            else if (data[i] != ' ' && data[i] != '\t')
                return mp_fail(m, err, "the multipart body has garbage after a boundary");
            i++;
            break;
        case MP_AFTER_DELIM_DASH:
            if (data[i] != '-') return mp_fail(m, err, "the multipart body has garbage after a boundary");
            m->state = MP_EPILOGUE;
            i++;
            break;
        case MP_AFTER_DELIM_CR:
            if (data[i] != '\n') return mp_fail(m, err, "the multipart body has a CR without LF after a boundary");
        headers:
            m->state = MP_HEADERS;
            m->line_len = 0;
            m->name[0] = m->filename[0] = m->ctype[0] = 0;
            m->has_filename = 0;
            i++;
            break;
        case MP_HEADERS: {
            const char *nl = memchr(data + i, '\n', n - i);
            size_t run = nl ? (size_t)(nl - (data + i)) : n - i;
            if (m->line_len + run >= MP_LINE_MAX)
                return mp_fail(m, err, "a multipart part header is longer than 8 KiB");
            memcpy(m->line + m->line_len, data + i, run);
            m->line_len += run;
            i += run;
            if (nl) {
                i++;
                if (mp_header_line(m, err)) return -1;
            }
            break;
        }
        }
    }
    return 0;
}

int multipart_finish(multipart_t *m, char *err)
{
    if (m->state == MP_FAILED) return core_errf(err, "the multipart body is malformed");
    if (m->state != MP_EPILOGUE)
        return core_errf(err, "the multipart body ended before its closing boundary; the upload was cut short");
    return 0;
}

int multipart_nparts(const multipart_t *m) { return m->nparts; }
