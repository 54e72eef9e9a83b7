/* prepare_read.c: the input side of `tunery tools fine_tunes.prepare_data`.
 *
 * The original loaded any of .csv .tsv .xlsx .txt .json .jsonl with pandas
 * (every cell a string, NaN as ""), and printed a note plus a "[Necessary]"
 * conversion for everything that was not JSONL. We read the same formats the
 * same way, without pandas: JSONL is streamed line by line into an arena (a
 * 500 MB file costs about its size in memory, once), with a small JSON object
 * parser for the common line shape and jansson for anything else. .xlsx is
 * refused with a message saying how to export it.
 */
#include "cli/cli.h"
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- arena and table ---- */

struct pd_block {
    pd_block_t *next;
    size_t used, cap;
    char data[];
};

static char *arena_alloc(pd_table_t *t, size_t n)
{
    pd_block_t *b = t->arena;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > (16u << 20) ? n : (16u << 20);
        pd_block_t *nb = malloc(sizeof *nb + cap);
        if (!nb) return NULL;
        nb->next = b;
        nb->used = 0;
        nb->cap = cap;
        t->arena = b = nb;
    }
    char *p = b->data + b->used;
    b->used += n;
    return p;
}

static char *arena_strndup(pd_table_t *t, const char *s, size_t n)
{
    char *p = arena_alloc(t, n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *pd_strndup(pd_table_t *t, const char *s, size_t n) { return arena_strndup(t, s, n); }

const char *pd_cell(const pd_table_t *t, size_t row, int col)
{
    return col < t->rowlen[row] && t->cells[row][col] ? t->cells[row][col] : "";
}

void pd_table_free(pd_table_t *t)
{
    for (size_t r = 0; r < t->nrows; r++) free(t->cells[r]);
    free(t->cells);
    free(t->rowlen);
    free(t->cols);   /* names live in the arena */
    for (pd_block_t *b = t->arena, *n; b; b = n) { n = b->next; free(b); }
    memset(t, 0, sizeof *t);
}

static int col_index(pd_table_t *t, const char *name, size_t n, int add)
{
    for (int i = 0; i < t->ncols; i++)
        if (strlen(t->cols[i]) == n && !memcmp(t->cols[i], name, n)) return i;
    if (!add) return -1;
    char **c = realloc(t->cols, (t->ncols + 1) * sizeof *c);
    if (!c) return -1;
    t->cols = c;
    if (!(c[t->ncols] = arena_strndup(t, name, n))) return -1;
    return t->ncols++;
}

/* Append a row: vals[i] belongs to column idx[i]. */
static int add_row(pd_table_t *t, const int *idx, char **vals, int n)
{
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 1024;
        char ***c = realloc(t->cells, cap * sizeof *c);
        if (!c) return -1;
        t->cells = c;
        int *l = realloc(t->rowlen, cap * sizeof *l);
        if (!l) return -1;
        t->rowlen = l;
        t->cap = cap;
    }
    int len = 0;
    for (int i = 0; i < n; i++) if (idx[i] + 1 > len) len = idx[i] + 1;
    char **row = calloc(len ? len : 1, sizeof *row);
    if (!row) return -1;
    for (int i = 0; i < n; i++) row[idx[i]] = vals[i];
    t->cells[t->nrows] = row;
    t->rowlen[t->nrows++] = len;
    return 0;
}

/* ---- JSON ---- */

static const char *skip_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) p++;
    return p;
}

static int hex4(const char *p, const char *e, unsigned *out)
{
    if (e - p < 4) return -1;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int c = p[i], d = isdigit(c) ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + (unsigned)d;
    }
    *out = v;
    return 0;
}

static char *put_utf8(char *o, unsigned c)
{
    if (c < 0x80) *o++ = (char)c;
    else if (c < 0x800) { *o++ = (char)(0xC0 | c >> 6); *o++ = (char)(0x80 | (c & 63)); }
    else if (c < 0x10000) { *o++ = (char)(0xE0 | c >> 12); *o++ = (char)(0x80 | ((c >> 6) & 63)); *o++ = (char)(0x80 | (c & 63)); }
    else { *o++ = (char)(0xF0 | c >> 18); *o++ = (char)(0x80 | ((c >> 12) & 63)); *o++ = (char)(0x80 | ((c >> 6) & 63)); *o++ = (char)(0x80 | (c & 63)); }
    return o;
}

/* A JSON string at *pp (after the opening quote) into the arena. */
static char *parse_string(pd_table_t *t, const char **pp, const char *e, size_t *outlen)
{
    const char *p = *pp, *q = p;
    while (q < e && *q != '"' && *q != '\\') q++;
    if (q < e && *q == '"') {          /* no escapes: one copy */
        *pp = q + 1;
        if (outlen) *outlen = (size_t)(q - p);
        return arena_strndup(t, p, (size_t)(q - p));
    }
    const char *end = q;                /* find the closing quote first */
    while (end < e && *end != '"') { if (*end == '\\') end++; end++; }
    if (end >= e) return NULL;
    char *out = arena_alloc(t, (size_t)(end - p) + 1), *o = out;
    if (!out) return NULL;
    while (p < end) {
        if ((unsigned char)*p < 0x20) return NULL;
        if (*p != '\\') { *o++ = *p++; continue; }
        p++;
        switch (*p++) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            unsigned c, lo;
            if (hex4(p, end, &c)) return NULL;
            p += 4;
            if (c >= 0xD800 && c < 0xDC00 && end - p >= 6 && p[0] == '\\' && p[1] == 'u' &&
                !hex4(p + 2, end, &lo) && lo >= 0xDC00 && lo < 0xE000) {
                c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            } else if (c >= 0xD800 && c < 0xE000) {
                c = 0xFFFD;   /* a lone surrogate cannot be UTF-8 */
            }
            o = put_utf8(o, c);
            break;
        }
        default: return NULL;
        }
    }
    *o = 0;
    *pp = end + 1;
    if (outlen) *outlen = (size_t)(o - out);
    return out;
}

/* A non-string JSON value as the string pandas would give it (dtype=str). */
static char *value_text(pd_table_t *t, json_t *v)
{
    char num[64];
    switch (json_typeof(v)) {
    case JSON_STRING: return arena_strndup(t, json_string_value(v), json_string_length(v));
    case JSON_NULL: return arena_strndup(t, "", 0);
    case JSON_TRUE: return arena_strndup(t, "True", 4);
    case JSON_FALSE: return arena_strndup(t, "False", 5);
    case JSON_INTEGER: snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); return arena_strndup(t, num, strlen(num));
    case JSON_REAL: cli_py_float(json_real_value(v), num, sizeof num); return arena_strndup(t, num, strlen(num));
    default: {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        char *r = s ? arena_strndup(t, s, strlen(s)) : NULL;
        free(s);
        return r;
    }
    }
}

static int parse_line_slow(pd_table_t *t, const char *s, size_t n, char **keys, char **vals, int max)
{
    json_t *j = json_loadb(s, n, 0, NULL);
    if (!json_is_object(j)) { json_decref(j); return -1; }
    int k = 0;
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v) {
        if (k == max) break;
        keys[k] = arena_strndup(t, key, strlen(key));
        vals[k] = value_text(t, v);
        if (!keys[k] || !vals[k]) { json_decref(j); return -1; }
        k++;
    }
    json_decref(j);
    return k;
}

int pd_parse_json_line(pd_table_t *t, const char *s, size_t n, char **keys, char **vals, int max)
{
    const char *p = skip_ws(s, s + n), *e = s + n;
    if (p == e || *p != '{') return -1;
    p = skip_ws(p + 1, e);
    int k = 0;
    if (p < e && *p == '}') return skip_ws(p + 1, e) == e ? 0 : -1;
    for (;;) {
        if (p >= e || *p != '"' || k == max) return parse_line_slow(t, s, n, keys, vals, max);
        p++;
        if (!(keys[k] = parse_string(t, &p, e, NULL))) return parse_line_slow(t, s, n, keys, vals, max);
        p = skip_ws(p, e);
        if (p >= e || *p != ':') return -1;
        p = skip_ws(p + 1, e);
        if (p >= e || *p != '"') return parse_line_slow(t, s, n, keys, vals, max);
        p++;
        if (!(vals[k] = parse_string(t, &p, e, NULL))) return parse_line_slow(t, s, n, keys, vals, max);
        k++;
        p = skip_ws(p, e);
        if (p < e && *p == ',') { p = skip_ws(p + 1, e); continue; }
        if (p < e && *p == '}') break;
        return -1;
    }
    if (skip_ws(p + 1, e) != e) return -1;
    /* a repeated key: the last one wins, as in every JSON reader */
    for (int a = 0; a < k; a++)
        for (int b = a + 1; b < k; b++)
            if (!strcmp(keys[a], keys[b])) { vals[a] = vals[b]; memmove(keys + b, keys + b + 1, (k - b - 1) * sizeof *keys); memmove(vals + b, vals + b + 1, (k - b - 1) * sizeof *vals); k--; b--; }
    return k;
}

#define MAX_KEYS 256

static int add_json_line(pd_table_t *t, const char *s, size_t n)
{
    char *keys[MAX_KEYS], *vals[MAX_KEYS];
    int idx[MAX_KEYS];
    int k = pd_parse_json_line(t, s, n, keys, vals, MAX_KEYS);
    if (k < 0) return -1;
    for (int i = 0; i < k; i++) if ((idx[i] = col_index(t, keys[i], strlen(keys[i]), 1)) < 0) return -1;
    return add_row(t, idx, vals, k);
}

static int blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) if (!isspace((unsigned char)s[i])) return 0;
    return 1;
}

/* JSONL from memory: 0, or -1 on a line that is not a JSON object. */
static int read_jsonl_mem(pd_table_t *t, const char *data, size_t len)
{
    const char *p = data, *e = data + len;
    while (p < e) {
        const char *nl = memchr(p, '\n', (size_t)(e - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(e - p);
        if (!blank(p, n) && add_json_line(t, p, n)) return -1;
        p += n + 1;
    }
    return 0;
}

/* A JSON document: [records…], {col: {idx: v}} or {col: [v…]}. */
static int read_json_doc(pd_table_t *t, const char *data, size_t len)
{
    json_t *j = json_loadb(data, len, 0, NULL);
    if (!j) return -1;
    int rc = 0;
    if (json_is_array(j)) {
        size_t i;
        json_t *rec;
        json_array_foreach(j, i, rec) {
            if (!json_is_object(rec)) { rc = -1; break; }
            int idx[MAX_KEYS], k = 0;
            char *vals[MAX_KEYS];
            const char *key;
            json_t *v;
            json_object_foreach(rec, key, v) {
                if (k == MAX_KEYS) break;
                idx[k] = col_index(t, key, strlen(key), 1);
                vals[k] = value_text(t, v);
                k++;
            }
            if ((rc = add_row(t, idx, vals, k))) break;
        }
    } else if (json_is_object(j)) {
        /* column orientation: rows are the union of the inner keys, in order */
        json_t *rows = json_object(), *col;
        const char *name;
        size_t nrows = 0;
        json_object_foreach(j, name, col) {
            if (json_is_object(col)) {
                const char *rk;
                json_t *v;
                json_object_foreach(col, rk, v) if (!json_object_get(rows, rk)) json_object_set_new(rows, rk, json_integer((json_int_t)nrows++));
            } else if (json_is_array(col)) {
                for (size_t i = 0; i < json_array_size(col); i++) {
                    char rk[32];
                    snprintf(rk, sizeof rk, "%zu", i);
                    if (!json_object_get(rows, rk)) json_object_set_new(rows, rk, json_integer((json_int_t)nrows++));
                }
            } else {
                /* all scalars: one row (pandas wanted an index here) */
                if (!json_object_get(rows, "0")) json_object_set_new(rows, "0", json_integer((json_int_t)nrows++));
            }
        }
        size_t base = t->nrows;
        int ncol = (int)json_object_size(j);
        for (size_t r = 0; r < nrows && !rc; r++) rc = add_row(t, NULL, NULL, 0);
        json_object_foreach(j, name, col) {
            int c = col_index(t, name, strlen(name), 1);
            for (size_t r = 0; r < nrows && !rc; r++) {
                char **row = realloc(t->cells[base + r], (size_t)ncol * sizeof *row);
                if (!row) { rc = -1; break; }
                for (int x = t->rowlen[base + r]; x < ncol; x++) row[x] = NULL;
                t->cells[base + r] = row;
                if (t->rowlen[base + r] < ncol) t->rowlen[base + r] = ncol;
            }
            const char *rk;
            json_t *v, *ri;
            if (json_is_object(col)) {
                json_object_foreach(col, rk, v) t->cells[base + json_integer_value(json_object_get(rows, rk))][c] = value_text(t, v);
            } else if (json_is_array(col)) {
                for (size_t i = 0; i < json_array_size(col); i++) t->cells[base + i][c] = value_text(t, json_array_get(col, i));
            } else if ((ri = json_object_get(rows, "0"))) {
                t->cells[base + json_integer_value(ri)][c] = value_text(t, col);
            }
        }
        json_decref(rows);
    } else {
        rc = -1;
    }
    json_decref(j);
    return rc;
}

/* ---- CSV / TSV (pandas read_csv defaults) ---- */

static int is_na(const char *s)
{
    static const char *na[] = {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
                               "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"};
    for (size_t i = 0; i < sizeof na / sizeof *na; i++) if (!strcmp(s, na[i])) return 1;
    return 0;
}

/* Next record: fields into f (arena strings). Returns field count, 0 for a
 * blank line, -1 at the end, -2 on an unterminated quote. */
static int csv_record(pd_table_t *t, const char **pp, const char *e, char sep, char **f, int max)
{
    const char *p = *pp;
    if (p >= e) return -1;
    int n = 0;
    buf_t b = {0};
    for (;;) {
        b.len = 0;
        int quoted = 0;
        if (p < e && *p == '"') {
            quoted = 1;
            p++;
            for (;;) {
                if (p >= e) { buf_free(&b); return -2; }
                if (*p == '"') {
                    if (p + 1 < e && p[1] == '"') { buf_append(&b, "\"", 1); p += 2; continue; }
                    p++;
                    break;
                }
                buf_append(&b, p++, 1);
            }
        }
        while (p < e && *p != sep && *p != '\n' && !(*p == '\r' && (p + 1 == e || p[1] == '\n'))) buf_append(&b, p++, 1);
        if (n < max) f[n++] = arena_strndup(t, b.data ? b.data : "", b.len);
        (void)quoted;
        if (p < e && *p == sep) { p++; continue; }
        if (p < e && *p == '\r') p++;
        if (p < e && *p == '\n') p++;
        break;
    }
    buf_free(&b);
    *pp = p;
    if (n == 1 && !f[0][0]) return 0;   /* blank line */
    return n;
}

static int read_csv(pd_table_t *t, const char *data, size_t len, char sep, char *err, const char *fname, const char *ext)
{
    const char *p = data, *e = data + len;
    char *f[MAX_KEYS];
    int idx[MAX_KEYS], nh;
    while ((nh = csv_record(t, &p, e, sep, f, MAX_KEYS)) == 0) {}
    if (nh < 0) return core_errf(err, "Your file `%s` does not appear to be in valid %s format. Please ensure your file is formatted as a valid %s file.", fname, ext, ext);
    for (int i = 0; i < nh; i++) {
        char name[300];
        if (!f[i][0]) snprintf(name, sizeof name, "Unnamed: %d", i);
        else snprintf(name, sizeof name, "%s", f[i]);
        for (int dup = 1; col_index(t, name, strlen(name), 0) >= 0; dup++)   /* pandas mangles x, x.1, x.2 */
            snprintf(name, sizeof name, "%s.%d", f[i], dup);
        idx[i] = col_index(t, name, strlen(name), 1);
    }
    int line = 1, n;
    while ((n = csv_record(t, &p, e, sep, f, MAX_KEYS)) != -1) {
        line++;
        if (n == 0) continue;
        if (n == -2 || n > nh)
            return core_errf(err, "Your file `%s` does not appear to be in valid %s format. Please ensure your file is formatted as a valid %s file.", fname, ext, ext);
        for (int i = 0; i < n; i++) if (is_na(f[i])) f[i] = NULL;
        if (add_row(t, idx, f, n)) return core_errf(err, "out of memory reading %s", fname);
    }
    return 0;
}

/* ---- TXT: every line a completion with an empty prompt ---- */

static int read_txt(pd_table_t *t, const char *data, size_t len)
{
    int idx[2] = {col_index(t, "prompt", 6, 1), col_index(t, "completion", 10, 1)};
    const char *p = data, *e = data + len;
    for (;;) {   /* content.split("\n"): a trailing newline gives a last empty line */
        const char *nl = p;
        while (nl < e && *nl != '\n' && *nl != '\r') nl++;
        char *v[2] = {arena_strndup(t, "", 0), arena_strndup(t, p, (size_t)(nl - p))};
        if (add_row(t, idx, v, 2)) return -1;
        if (nl >= e) break;
        p = nl + (*nl == '\r' && nl + 1 < e && nl[1] == '\n' ? 2 : 1);
    }
    return 0;
}

/* ---- dispatch ---- */

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcasecmp(s + a - b, suf);
}

static int bad_format(char *err, const char *fname)
{
    const char *dot = strrchr(fname, '.');
    char ext[64];
    snprintf(ext, sizeof ext, "%s", dot ? dot + 1 : fname);
    for (char *c = ext; *c; c++) *c = (char)toupper((unsigned char)*c);
    return core_errf(err, "Your file `%s` does not appear to be in valid %s format. Please ensure your file is formatted as a valid %s file.", fname, ext, ext);
}

static int read_format(const char *fname, const char *data, size_t len, pd_table_t *t,
                       char *fmt_msg, size_t fmt_cap, char *nec, size_t nec_cap, char *err)
{
    fmt_msg[0] = nec[0] = 0;
    if (ends_with(fname, ".csv") || ends_with(fname, ".tsv")) {
        const char *k = ends_with(fname, ".csv") ? "CSV" : "TSV";
        snprintf(fmt_msg, fmt_cap, "\n- Based on your file extension, your file is formatted as a %s file", k);
        snprintf(nec, nec_cap, "Your format `%s` will be converted to `JSONL`", k);
        return read_csv(t, data, len, k[0] == 'C' ? ',' : '\t', err, fname, k);
    }
    if (ends_with(fname, ".xlsx"))
        return core_errf(err, "Your file `%s` is an Excel workbook, which tunery cannot read. Export the sheet "
                         "with your data to CSV (File > Save As > CSV) and run this again on the .csv file.", fname);
    if (ends_with(fname, ".txt")) {
        snprintf(fmt_msg, fmt_cap, "\n- Based on your file extension, you provided a text file");
        snprintf(nec, nec_cap, "Your format `TXT` will be converted to `JSONL`");
        return read_txt(t, data, len) ? core_errf(err, "out of memory reading %s", fname) : 0;
    }
    int jsonl = ends_with(fname, ".jsonl");
    if (jsonl || ends_with(fname, ".json")) {
        int rc = read_jsonl_mem(t, data, len);
        if (rc == 0 && t->nrows != 1) {
            if (!jsonl && t->nrows > 1) {
                snprintf(fmt_msg, fmt_cap, "\n- Your JSON file appears to be in a JSONL format. Your file will be converted to JSONL format");
                snprintf(nec, nec_cap, "Your format `JSON` will be converted to `JSONL`");
            }
            return 0;
        }
        /* One line, or not JSON lines at all: read it as one JSON document,
         * as pandas did (a lone object of scalars is one row, where pandas
         * asked for an index). A .jsonl file must at least be one line. */
        int one_line = rc == 0;
        for (size_t r = 0; r < t->nrows; r++) free(t->cells[r]);
        t->nrows = 0;
        if (jsonl && !one_line) return bad_format(err, fname);
        if (read_json_doc(t, data, len)) return bad_format(err, fname);
        if (jsonl) {
            snprintf(fmt_msg, fmt_cap, "\n- Your JSONL file appears to be in a JSON format. Your file will be converted to JSONL format");
            snprintf(nec, nec_cap, "Your format `JSON` will be converted to `JSONL`");
        }
        return 0;
    }
    const char *slash = strrchr(fname, '/'), *dot = strrchr(slash ? slash : fname, '.');
    if (dot)
        return core_errf(err, "Your file must have one of the following extensions: .CSV, .TSV, .XLSX, .TXT, .JSON or .JSONL "
                         "Your file `%s` ends with the extension `%s` which is not supported.", fname, dot);
    return core_errf(err, "Your file must have one of the following extensions: .CSV, .TSV, .XLSX, .TXT, .JSON or .JSONL "
                     "Your file `%s` is missing a file extension.", fname);
}

int pd_read_mem(const char *fname, const char *data, size_t len, pd_table_t *t,
                char *fmt_msg, size_t fmt_cap, char *necessary, size_t nec_cap, char *err)
{
    memset(t, 0, sizeof *t);
    return read_format(fname, data, len, t, fmt_msg, fmt_cap, necessary, nec_cap, err);
}

int pd_read_any(const char *fname, pd_table_t *t, char *fmt_msg, size_t fmt_cap,
                char *necessary, size_t nec_cap, char *err)
{
    memset(t, 0, sizeof *t);
    fmt_msg[0] = necessary[0] = 0;
    struct stat sb;
    if (stat(fname, &sb) || !S_ISREG(sb.st_mode)) return core_errf(err, "File %s does not exist.", fname);
    if (ends_with(fname, ".jsonl")) {
        /* stream: the file is never held whole unless it turns out to be one JSON document */
        FILE *f = fopen(fname, "rb");
        if (!f) return core_errf(err, "cannot open %s: %s", fname, strerror(errno));
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        int rc = 0;
        while ((n = getline(&line, &cap, f)) >= 0)
            if (!blank(line, (size_t)n) && add_json_line(t, line, (size_t)n)) { rc = -1; break; }
        free(line);
        fclose(f);
        if (rc == 0 && t->nrows != 1) return 0;
        pd_table_free(t);   /* one line or not JSON lines: small, read it whole */
    }
    char *data;
    size_t len;
    if (fs_read_all(fname, &data, &len, err)) return -1;
    int rc = read_format(fname, data, len, t, fmt_msg, fmt_cap, necessary, nec_cap, err);
    free(data);
    return rc;
}
