/* http.c: the client's only door to the network, on libcurl.
 *
 * Three shapes of call cover the whole legacy CLI: a JSON request/answer, a
 * multipart upload, and a server-sent-events stream (fine-tune events and
 * streamed completions). Failures to reach the server are turned into one
 * sentence that says where we tried and what to start; answers with an error
 * status are printed as the Python CLI printed them:
 *   [organization=org-x] Error: No such File object: file-1 (HTTP status code: 404)
 */
#include "cli/cli.h"
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CLI_USER_AGENT "tunery-cli/0.1 (OpenAI/v1 PythonBindings/0.28.1 compatible)"

void cli_resp_free(cli_resp_t *r)
{
    buf_free(&r->body);
    memset(r, 0, sizeof *r);
}

void cli_quote_plus(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && n + 4 < cap; p++) {
        if (isalnum(*p) || strchr("_.-~", *p)) out[n++] = (char)*p;
        else if (*p == ' ') out[n++] = '+';
        else { out[n++] = '%'; out[n++] = hex[*p >> 4]; out[n++] = hex[*p & 15]; }
    }
    out[n] = 0;
}

/* ---- callbacks ---- */

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    return buf_append((buf_t *)ud, p, sz * n) ? 0 : sz * n;
}

static void copy_header_value(char *dst, size_t cap, const char *v, size_t len)
{
    while (len && (*v == ' ' || *v == '\t')) { v++; len--; }
    while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' ')) len--;
    if (len >= cap) len = cap - 1;
    memcpy(dst, v, len);
    dst[len] = 0;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    cli_resp_t *r = ud;
    size_t len = sz * n;
    static const struct { const char *name; size_t off, cap; } want[] = {
        {"content-type:", offsetof(cli_resp_t, content_type), sizeof ((cli_resp_t *)0)->content_type},
        {"openai-organization:", offsetof(cli_resp_t, organization), sizeof ((cli_resp_t *)0)->organization},
        {"request-id:", offsetof(cli_resp_t, request_id), sizeof ((cli_resp_t *)0)->request_id},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        size_t k = strlen(want[i].name);
        if (len > k && !strncasecmp(p, want[i].name, k))
            copy_header_value((char *)r + want[i].off, want[i].cap, p + k, len - k);
    }
    return len;
}

/* ---- common setup ---- */

typedef struct {
    volatile sig_atomic_t *stop;
    int bar;                 /* draw the upload progress bar */
    double started;
} progress_t;

static void draw_bar(curl_off_t now, curl_off_t total, double started)
{
    int pct = total ? (int)(100 * now / total) : 0, w = 10, fill = total ? (int)(w * now / total) : 0;
    char bar[64] = {0};
    for (int i = 0; i < w; i++) strcat(bar, i < fill ? "\xe2\x96\x88" : " ");
    double el = time_mono() - started;
    fprintf(stderr, "\rUpload progress: %3d%%|%s| %.2fM/%.2fM [%02d:%02d, %.2fMB/s]", pct, bar,
            now / 1e6, total / 1e6, (int)el / 60, (int)el % 60, el > 0 ? now / 1e6 / el : 0.0);
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    progress_t *pr = ud;
    if (pr->stop && *pr->stop) return 1;
    if (pr->bar && ultotal > 0) draw_bar(ulnow, ultotal, pr->started);
    return 0;
}

static struct curl_slist *base_headers(const cli_opts_t *o, int json)
{
    struct curl_slist *h = NULL;
    char line[1200];
    if (o->api_key[0]) {
        snprintf(line, sizeof line, "Authorization: Bearer %s", o->api_key);
        h = curl_slist_append(h, line);
    }
    if (o->organization[0]) {
        snprintf(line, sizeof line, "OpenAI-Organization: %s", o->organization);
        h = curl_slist_append(h, line);
    }
    if (json) h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:");
    return h;
}

static CURL *easy_new(const cli_opts_t *o, const char *url, cli_resp_t *r, char *curl_err)
{
    static int inited;
    if (!inited) { curl_global_init(CURL_GLOBAL_DEFAULT); inited = 1; }
    CURL *c = curl_easy_init();
    if (!c) return NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_USERAGENT, CLI_USER_AGENT);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    /* The Python client's 600 s read timeout, applied to silence, not length. */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 600L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    if (o->verbose > 1) curl_easy_setopt(c, CURLOPT_VERBOSE, 1L);
    curl_err[0] = 0;
    return c;
}

/* The sentence for a request that got no answer. */
static int transport_error(const cli_opts_t *o, const char *url, CURLcode rc, const char *curl_err, char *err)
{
    const char *base = o->api_base;
    int ours = !strncmp(url, base, strlen(base));
    const char *where = ours ? base : url;
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
        if (ours)
            return core_errf(err, "cannot connect to %s: connection refused; is `tunery serve` running? "
                             "Start it with `tunery serve --listen HOST:PORT`, or point -b/OPENAI_API_BASE at a running server", where);
        return core_errf(err, "cannot connect to %s: connection refused", where);
    case CURLE_COULDNT_RESOLVE_HOST:
        return core_errf(err, "cannot resolve the host of %s; check the URL in -b/OPENAI_API_BASE", where);
    case CURLE_OPERATION_TIMEDOUT:
        return core_errf(err, "no answer from %s for too long (%s); is the server overloaded or stuck?", where,
                         curl_err[0] ? curl_err : "timed out");
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return core_errf(err, "bad URL %s; -b/OPENAI_API_BASE should look like http://127.0.0.1:8080/v1", where);
    default:
        return core_errf(err, "request to %s failed: %s", where, curl_err[0] ? curl_err : curl_easy_strerror(rc));
    }
}

static void log_request(const cli_opts_t *o, const char *method, const char *url)
{
    if (o->verbose) fprintf(stderr, "message='Request to OpenAI API' method=%s path=%s\n", method, url);
}

static void log_response(const cli_opts_t *o, const char *url, const cli_resp_t *r)
{
    if (o->verbose)
        fprintf(stderr, "message='OpenAI API response' path=%s request_id=%s response_code=%ld\n", url,
                r->request_id[0] ? r->request_id : "None", r->status);
}

static void lower_method(const char *m, char *out)
{
    size_t i = 0;
    for (; m[i] && i < 15; i++) out[i] = (char)tolower((unsigned char)m[i]);
    out[i] = 0;
}

static int perform(const cli_opts_t *o, CURL *c, const char *method, const char *url,
                   cli_resp_t *r, const char *curl_err, char *err)
{
    char lm[16];
    lower_method(method, lm);
    log_request(o, lm, url);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    if (rc != CURLE_OK) return transport_error(o, url, rc, curl_err, err);
    log_response(o, url, r);
    return 0;
}

int cli_http(const cli_opts_t *o, const char *method, const char *path,
             const char *json_body, cli_resp_t *r, char *err)
{
    char url[4096], curl_err[CURL_ERROR_SIZE];
    snprintf(url, sizeof url, "%s%s", o->api_base, path);
    memset(r, 0, sizeof *r);
    CURL *c = easy_new(o, url, r, curl_err);
    if (!c) return core_errf(err, "cannot start libcurl (out of memory?)");
    struct curl_slist *h = base_headers(o, json_body != NULL);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (!strcmp(method, "POST")) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, json_body ? json_body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)(json_body ? strlen(json_body) : 0));
    } else if (strcmp(method, "GET")) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    int rc = perform(o, c, method, url, r, curl_err, err);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return rc;
}

int cli_http_get_url(const cli_opts_t *o, const char *url, cli_resp_t *r, char *err)
{
    char curl_err[CURL_ERROR_SIZE];
    memset(r, 0, sizeof *r);
    CURL *c = easy_new(o, url, r, curl_err);
    if (!c) return core_errf(err, "cannot start libcurl (out of memory?)");
    int rc = perform(o, c, "GET", url, r, curl_err, err);
    curl_easy_cleanup(c);
    return rc;
}

int cli_http_upload(const cli_opts_t *o, const char *filename, const char *local_path,
                    const void *data, size_t len, const char *purpose,
                    cli_resp_t *r, char *err)
{
    char url[4096], curl_err[CURL_ERROR_SIZE];
    snprintf(url, sizeof url, "%s/files", o->api_base);
    memset(r, 0, sizeof *r);
    CURL *c = easy_new(o, url, r, curl_err);
    if (!c) return core_errf(err, "cannot start libcurl (out of memory?)");
    curl_mime *mime = curl_mime_init(c);
    curl_mimepart *part = curl_mime_addpart(mime);
    curl_mime_name(part, "purpose");
    curl_mime_data(part, purpose, CURL_ZERO_TERMINATED);
    part = curl_mime_addpart(mime);
    curl_mime_name(part, "file");
    CURLcode mrc = local_path ? curl_mime_filedata(part, local_path) : curl_mime_data(part, data, len);
    if (mrc != CURLE_OK) {
        curl_mime_free(mime);
        curl_easy_cleanup(c);
        return core_errf(err, "cannot read %s: %s", local_path ? local_path : filename, curl_easy_strerror(mrc));
    }
    curl_mime_filename(part, filename);
    curl_mime_type(part, "application/octet-stream");
    curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
    struct curl_slist *h = base_headers(o, 0);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    progress_t pr = {.stop = NULL, .bar = isatty(2), .started = time_mono()};
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &pr);
    int rc = perform(o, c, "POST", url, r, curl_err, err);
    if (pr.bar) fputc('\n', stderr);
    curl_slist_free_all(h);
    curl_mime_free(mime);
    curl_easy_cleanup(c);
    return rc;
}

/* ---- server-sent events ---- */

typedef struct {
    CURL *c;
    cli_resp_t *r;
    cli_sse_fn fn;
    void *ud;
    buf_t line;
    int checked, ok, done, fn_stop;
} sse_t;

static int sse_line(sse_t *s, char *l, size_t n)
{
    if (n && l[n - 1] == '\r') l[--n] = 0;
    if (n < 5 || strncmp(l, "data:", 5)) return 0;   /* comments, event:, id:, blank */
    l += 5; n -= 5;
    if (n && *l == ' ') { l++; n--; }
    if (n == 6 && !strncmp(l, "[DONE]", 6)) { s->done = 1; return 1; }
    if (s->fn(l, n, s->ud)) { s->fn_stop = 1; return 1; }
    return 0;
}

static size_t on_sse(char *p, size_t sz, size_t n, void *ud)
{
    sse_t *s = ud;
    size_t len = sz * n;
    if (!s->checked) {
        curl_easy_getinfo(s->c, CURLINFO_RESPONSE_CODE, &s->r->status);
        s->ok = s->r->status >= 200 && s->r->status < 300;
        s->checked = 1;
    }
    if (!s->ok) return buf_append(&s->r->body, p, len) ? 0 : len;
    for (size_t i = 0; i < len; i++) {
        if (p[i] != '\n') { if (buf_append(&s->line, p + i, 1)) return 0; continue; }
        buf_reserve(&s->line, 1);
        s->line.data[s->line.len] = 0;
        int stop = sse_line(s, s->line.data, s->line.len);
        s->line.len = 0;
        if (stop) return 0;   /* abort the transfer: we have what we wanted */
    }
    return len;
}

int cli_http_sse(const cli_opts_t *o, const char *method, const char *path,
                 const char *json_body, cli_sse_fn fn, void *ud,
                 volatile sig_atomic_t *stop, cli_resp_t *r, char *err)
{
    char url[4096], curl_err[CURL_ERROR_SIZE];
    snprintf(url, sizeof url, "%s%s", o->api_base, path);
    memset(r, 0, sizeof *r);
    CURL *c = easy_new(o, url, r, curl_err);
    if (!c) return core_errf(err, "cannot start libcurl (out of memory?)");
    sse_t s = {.c = c, .r = r, .fn = fn, .ud = ud};
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_sse);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    struct curl_slist *h = base_headers(o, json_body != NULL);
    h = curl_slist_append(h, "Accept: text/event-stream");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (json_body) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, json_body);
    } else if (strcmp(method, "GET")) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    progress_t pr = {.stop = stop};
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &pr);
    char lm[16];
    lower_method(method, lm);
    log_request(o, lm, url);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    int ret;
    if (stop && *stop) ret = 1;
    else if (s.done) ret = 0;
    else if (s.fn_stop) ret = 2;
    else if (rc == CURLE_OK) {
        /* EOF without [DONE]; a line without its newline still counts */
        if (s.ok && s.line.len) { buf_reserve(&s.line, 1); s.line.data[s.line.len] = 0; sse_line(&s, s.line.data, s.line.len); }
        ret = s.done ? 0 : s.fn_stop ? 2 : s.ok ? 3 : 0;
    } else if (s.checked) {
        ret = core_errf(err, "the stream from %s broke: %s", url, curl_err[0] ? curl_err : curl_easy_strerror(rc));
    } else {
        ret = transport_error(o, url, rc, curl_err, err);
    }
    log_response(o, url, r);
    buf_free(&s.line);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return ret;
}

/* ---- error lines ---- */

int cli_print_error(const char *msg)
{
    int tty = isatty(2);
    fprintf(stderr, "%sError:%s %s\n", tty ? "\033[91m" : "", tty ? "\033[0m" : "", msg);
    return 1;
}

int cli_print_api_error(const cli_resp_t *r)
{
    char msg[2048] = "";
    json_t *j = r->body.data ? json_loadb(r->body.data, r->body.len, 0, NULL) : NULL;
    json_t *e = j ? json_object_get(j, "error") : NULL;
    if (r->status == 503) {
        snprintf(msg, sizeof msg, "The server is overloaded or not ready yet.");
    } else if (json_is_object(e)) {
        const char *m = json_string_value(json_object_get(e, "message"));
        const char *im = json_string_value(json_object_get(e, "internal_message"));
        snprintf(msg, sizeof msg, "%s%s%s", m ? m : "<empty message>", im ? "\n\n" : "", im ? im : "");
    } else {
        snprintf(msg, sizeof msg, "Invalid response object from API: %.*s (HTTP response code was %ld)",
                 (int)(r->body.len > 1000 ? 1000 : r->body.len), r->body.data ? r->body.data : "''", r->status);
    }
    json_decref(j);
    int tty = isatty(2);
    if (r->organization[0]) fprintf(stderr, "[organization=%s] ", r->organization);
    fprintf(stderr, "%sError:%s ", tty ? "\033[91m" : "", tty ? "\033[0m" : "");
    if (r->request_id[0]) fprintf(stderr, "Request %s: ", r->request_id);
    fprintf(stderr, "%s (HTTP status code: %ld)\n", msg, r->status);
    return 1;
}

int cli_call(const cli_opts_t *o, const char *method, const char *path,
             const char *json_body, json_t **out)
{
    char err[CORE_ERR_LEN];
    cli_resp_t r;
    *out = NULL;
    if (cli_http(o, method, path, json_body, &r, err)) {
        cli_resp_free(&r);
        return cli_print_error(err);
    }
    if (r.status < 200 || r.status >= 300) {
        int rc = cli_print_api_error(&r);
        cli_resp_free(&r);
        return rc;
    }
    if (r.status == 204 || r.body.len == 0) {
        *out = json_object();
        cli_resp_free(&r);
        return 0;
    }
    json_error_t je;
    *out = json_loadb(r.body.data, r.body.len, JSON_DECODE_ANY, &je);
    if (!*out) {
        char msg[1400];
        snprintf(msg, sizeof msg, "Invalid response object from API: %.1000s (HTTP response code was %ld)",
                 r.body.data, r.status);
        cli_resp_free(&r);
        return cli_print_error(msg);
    }
    cli_resp_free(&r);
    return 0;
}

int cli_call_print(const cli_opts_t *o, const char *method, const char *path, const char *json_body)
{
    json_t *j;
    int rc = cli_call(o, method, path, json_body, &j);
    if (rc) return rc;
    cli_json_print(j);
    json_decref(j);
    return 0;
}
