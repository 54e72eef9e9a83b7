/* http.c: the connection life cycle on libmicrohttpd.
 *
 * libmicrohttpd calls on_request several times per request: once with the
 * headers, once per piece of body (chunked or sized, already de-chunked), and
 * once at the end. The first call routes, authenticates and checks the
 * declared size, so a wrong key or an oversized upload is refused before a
 * byte of body is stored (the reply waits until the body is drained, within
 * DRAIN_MAX, so the client reads it instead of a reset). Body pieces go to a
 * bounded JSON buffer or straight through the multipart parser into a blob.
 * The last call runs the handler.
 *
 * Threading: a small pool of event-loop threads (MHD's thread pool, epoll on
 * Linux, --threads) serves every connection; none of them may wait. Work
 * that waits is moved off the pool with libmicrohttpd's suspend/resume:
 *  - http_defer runs a handler on the compute pool (pool.c) while its
 *    connection sleeps suspended; the reply it makes is queued when the
 *    connection is resumed (MHD takes responses only inside on_request);
 *  - http_reply_push is a streamed body fed by another thread (the event hub
 *    of notify.c, a completion's producer): when its buffer is empty the
 *    content reader suspends the connection and returns 0, and the next
 *    http_push_write resumes it. A suspended connection costs its socket and
 *    a few hundred bytes, never a thread or a wake-up.
 *
 * Every reply leaves here: JSON with Content-Type application/json,
 * x-request-id always, x-should-retry: false on 5xx (the failures here are
 * not transient, and the Node SDK would otherwise retry them).
 */
#define TUNERY_SERVER_INTERNAL
#include "server/server.h"
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#define JSON_BODY_LIMIT (64u << 20)   /* a JSON request body (prompts included) */
/* Total request header bytes we accept; over it a JSON 431. Headers past
 * the per-connection memory (128 KiB) get libmicrohttpd's own 431 page. */
#define HEADER_LIMIT (48u << 10)
/* A refused body up to this much over the limit is read and dropped before
 * the error goes out: a client still writing its body would otherwise get a
 * reset instead of the 413. Beyond it the connection is closed. */
#define DRAIN_MAX (64ull << 20)

/* Per-request decoded query strings, freed with the request. */
typedef struct qstr {
    struct qstr *next;
    char s[];
} qstr_t;

static qstr_t **req_qstrs(req_t *r);

static void add_common_headers(req_t *r, struct MHD_Response *resp, int status, const char *ctype)
{
    MHD_add_response_header(resp, "Content-Type", ctype);
    MHD_add_response_header(resp, "x-request-id", r->request_id);
    if (status >= 500) MHD_add_response_header(resp, "x-should-retry", "false");
    if (r->org_id[0]) MHD_add_response_header(resp, "openai-organization", r->org_name);
    if (r->extra_header[0]) MHD_add_response_header(resp, r->extra_header[0], r->extra_header[1]);
}

static int queue(req_t *r, int status, struct MHD_Response *resp)
{
    if (!resp) return -1;
    if (r->in_body) {
        /* libmicrohttpd takes a response only before or after the body:
         * keep it, drain the rest, send it at the end of the request */
        if (r->pending) MHD_destroy_response(resp);
        else {
            r->pending = resp;
            r->pending_status = status;
        }
        r->replied = 1;
        return 0;
    }
    enum MHD_Result ok = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    r->replied = 1;
    return ok == MHD_YES ? 0 : -1;
}

int http_reply_bytes(req_t *r, int status, const char *content_type, const void *data, size_t len)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (!resp) return -1;
    add_common_headers(r, resp, status, content_type);
    return queue(r, status, resp);
}

int http_reply_json(req_t *r, int status, json_t *body)
{
    char *s = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    return http_reply_json_text(r, status, s);
}

int http_reply_json_text(req_t *r, int status, char *s)
{
    if (!s) return -1;
    if (!r->conn) {
        free(r->captured);
        r->captured = s;
        r->captured_status = status;
        r->replied = 1;
        return 0;
    }
    size_t n = strlen(s);
    struct MHD_Response *resp = MHD_create_response_from_buffer(n, s, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(s);
        return -1;
    }
    add_common_headers(r, resp, status, "application/json");
    return queue(r, status, resp);
}

int http_reply_error(req_t *r, int status, const char *type, const char *param,
                     const char *code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return http_reply_json(r, status, server_error_json(msg, type, param, code));
}

int http_reply_file(req_t *r, const char *content_type, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st)) {
        if (fd >= 0) close(fd);
        return HTTP_500(r, "The stored bytes of this file are missing from the data directory.");
    }
    struct MHD_Response *resp = MHD_create_response_from_fd64((uint64_t)st.st_size, fd);
    if (!resp) {
        close(fd);
        return -1;
    }
    add_common_headers(r, resp, 200, content_type);
    return queue(r, 200, resp);
}

/* ---- pushed streams ----
 * Two owners: the response (MHD frees it when the connection is done with
 * it: push_free) and the producer (http_push_release). conn is touched only
 * while the connection is known to be suspended by us, so never after it
 * closed: a suspended connection cannot time out or be closed by MHD. */
struct http_push {
    pthread_mutex_t mu;
    struct MHD_Connection *conn;
    server_t *srv;
    int fd;          /* the client's socket, for the hub's hang-up watch */
    buf_t buf;
    size_t pos;
    int refs;
    int suspended;   /* the reader suspended the connection; the next write resumes it */
    int ended;       /* http_push_end: the body ends once buf is sent */
    int closed;      /* the response is gone (client left, server stopping) */
};

static void push_unref_locked(http_push_t *p)
{
    if (--p->refs > 0) {
        pthread_mutex_unlock(&p->mu);
        return;
    }
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_destroy(&p->mu);
    buf_free(&p->buf);
    free(p);
}

static ssize_t push_read(void *cls, uint64_t pos, char *out, size_t max)
{
    http_push_t *p = cls;
    (void)pos;
    pthread_mutex_lock(&p->mu);
    if (p->pos < p->buf.len) {
        size_t n = p->buf.len - p->pos;
        if (n > max) n = max;
        memcpy(out, p->buf.data + p->pos, n);
        p->pos += n;
        if (p->pos == p->buf.len) p->buf.len = p->pos = 0;
        pthread_mutex_unlock(&p->mu);
        return (ssize_t)n;
    }
    if (p->ended) {
        pthread_mutex_unlock(&p->mu);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    /* nothing to send: sleep until http_push_write (0 with the connection
     * suspended is what MHD allows in internal polling; without the suspend
     * it would spin) */
    MHD_suspend_connection(p->conn);
    p->suspended = 1;
    pthread_mutex_unlock(&p->mu);
    return 0;
}

static void push_free(void *cls)
{
    http_push_t *p = cls;
    pthread_mutex_lock(&p->mu);
    p->closed = 1;
    p->conn = NULL;
    push_unref_locked(p);
}

http_push_t *http_reply_push(req_t *r, const char *content_type)
{
    if (!r->conn) {   /* captured replies (tests, fuzzers) have no stream */
        HTTP_500(r, "A streamed reply needs a connection.");
        return NULL;
    }
    http_push_t *p = calloc(1, sizeof *p);
    if (!p) {
        HTTP_500(r, "Out of memory.");
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    p->conn = r->conn;
    p->srv = r->srv;
    p->refs = 2;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    p->fd = ci ? ci->connect_fd : -1;
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, push_read, p, push_free);
    if (!resp) {
        pthread_mutex_destroy(&p->mu);
        free(p);
        HTTP_500(r, "Out of memory.");
        return NULL;
    }
    add_common_headers(r, resp, 200, content_type);
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    queue(r, 200, resp);   /* on failure MHD has freed resp: push_free ran, p->closed */
    return p;
}

static void push_wake_locked(http_push_t *p)
{
    if (p->suspended && !p->closed) {
        p->suspended = 0;
        MHD_resume_connection(p->conn);
    }
}

int http_push_write(http_push_t *p, const void *data, size_t n)
{
    pthread_mutex_lock(&p->mu);
    if (p->closed || p->ended) {
        pthread_mutex_unlock(&p->mu);
        return -1;
    }
    if (p->pos > 65536 && p->pos * 2 > p->buf.len) {   /* a slow reader: reuse the sent part */
        memmove(p->buf.data, p->buf.data + p->pos, p->buf.len - p->pos);
        p->buf.len -= p->pos;
        p->pos = 0;
    }
    int rc = buf_append(&p->buf, data, n);
    push_wake_locked(p);
    pthread_mutex_unlock(&p->mu);
    return rc ? -1 : 0;
}

int http_push_printf(http_push_t *p, const char *fmt, ...)
{
    char small[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return -1;
    if ((size_t)n < sizeof small) return http_push_write(p, small, (size_t)n);
    char *big = malloc((size_t)n + 1);
    if (!big) return -1;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = http_push_write(p, big, (size_t)n);
    free(big);
    return rc;
}

size_t http_push_pending(http_push_t *p)
{
    pthread_mutex_lock(&p->mu);
    size_t n = p->buf.len - p->pos;
    pthread_mutex_unlock(&p->mu);
    return n;
}

int http_push_fd(http_push_t *p) { return p->fd; }

int http_push_closed(http_push_t *p)
{
    pthread_mutex_lock(&p->mu);
    int c = p->closed;
    pthread_mutex_unlock(&p->mu);
    return c;
}

void http_push_end(http_push_t *p)
{
    pthread_mutex_lock(&p->mu);
    p->ended = 1;
    push_wake_locked(p);
    pthread_mutex_unlock(&p->mu);
}

void http_push_release(http_push_t *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    push_unref_locked(p);
}

/* ---- deferred handlers ---- */
/* Set by http_defer on the event-loop thread that dispatched the request. */
static _Thread_local int deferred_here;

typedef struct {
    req_t *r;
    http_defer_fn fn;
    void *arg;
} defer_t;

static void defer_run(void *arg)
{
    defer_t *d = arg;
    req_t *r = d->r;
    http_then_fn then = NULL;
    void *then_arg = NULL;
    /* replies are kept in r->pending, exactly as for a reply decided while
     * the body is read, and queued by on_request once resumed */
    r->in_body = 1;
    d->fn(r, d->arg, &then, &then_arg);
    if (!r->pending) HTTP_500(r, "The server failed to answer this request.");
    r->in_body = 0;
    r->deferred = 2;
    MHD_resume_connection(r->conn);   /* r may be gone from here on */
    free(d);
    if (then) then(then_arg);
}

int http_defer(req_t *r, http_defer_fn fn, void *arg) { return http_defer_on(r->srv->pool, r, fn, arg); }

int http_defer_on(struct pool *pool, req_t *r, http_defer_fn fn, void *arg)
{
    if (!r->conn) {   /* no connection (tests): run it here */
        http_then_fn then = NULL;
        void *then_arg = NULL;
        fn(r, arg, &then, &then_arg);
        if (then) then(then_arg);
        return 0;
    }
    defer_t *d = malloc(sizeof *d);
    if (!d) {
        http_then_fn then = NULL;
        void *then_arg = NULL;
        fn(r, arg, &then, &then_arg);   /* out of memory: here, rather than fail it */
        if (then) then(then_arg);
        return 0;
    }
    d->r = r;
    d->fn = fn;
    d->arg = arg;
    r->deferred = 1;
    r->replied = 1;
    deferred_here = 1;
    MHD_suspend_connection(r->conn);
    /* the pool refuses only while the server stops: run it on this thread
     * then, through the same suspend/resume path */
    if (!pool || pool_submit(pool, defer_run, d)) defer_run(d);
    return 0;
}

const char *http_header(req_t *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

static qstr_t **req_qstrs(req_t *r) { return (qstr_t **)&r->qstrs; }

const char *http_query(req_t *r, const char *key)
{
    const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
    if (!v) return NULL;
    size_t n = strlen(v);
    qstr_t *q = malloc(sizeof *q + n + 1);
    if (!q) return NULL;
    if (url_decode(v, n, q->s, n + 1, 1)) {
        free(q);
        return NULL;
    }
    qstr_t **head = req_qstrs(r);
    q->next = *head;
    *head = q;
    return q->s;
}

static void req_free(req_t *r)
{
    if (!r) return;
    if (r->mp) multipart_free(r->mp);
    if (r->pending) MHD_destroy_response(r->pending);
    if (r->route && r->route->body == BODY_MULTIPART) files_upload_abort(r);
    buf_free(&r->raw);
    if (r->body) json_decref(r->body);
    qstr_t *q = *req_qstrs(r);
    while (q) {
        qstr_t *n = q->next;
        free(q);
        q = n;
    }
    free(r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    req_free(*con_cls);
    *con_cls = NULL;
}

/* Leave %XX in the path as is: router.c decodes per segment, so an encoded
 * '/' inside an id cannot split it. Query values are decoded by http_query. */
static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s) { return strlen(s); }

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    size_t *n = cls;
    *n += strlen(key) + (value ? strlen(value) : 0) + 4;
    return MHD_YES;
}

/* First call: route, size limits, auth. Returns 0 to go on reading the body. */
static int req_start(req_t *r, const char *url)
{
    /* With a body on its way, an early refusal waits for the body to be
     * drained (see DRAIN_MAX), so the client reads the error, not a reset. */
    const char *cl = http_header(r, "Content-Length");
    const char *te = http_header(r, "Transfer-Encoding");
    unsigned long long declared = cl ? strtoull(cl, NULL, 10) : 0;
    r->in_body = (declared > 0 && declared <= r->srv->opts.upload_limit + DRAIN_MAX) || (!cl && te);
    size_t hdr = 0;
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, count_header, &hdr);
    if (hdr > HEADER_LIMIT) {
        http_reply_error(r, 431, "invalid_request_error", NULL, NULL,
                         "The request headers are %zu bytes; the limit is %u.", hdr, HEADER_LIMIT);
        return -1;
    }
    snprintf(r->path, sizeof r->path, "%s", url);
    int m = router_match(r->method, url, &r->route, r->params, &r->nparams);
    if (m) {
        r->route = NULL;
        http_reply_error(r, 404, "invalid_request_error", NULL, NULL, "Invalid URL (%s %s)", r->method, url);
        return -1;
    }
    if (auth_request(r)) return -1;
    r->limit = r->route->body == BODY_MULTIPART ? r->srv->opts.upload_limit
             : (JSON_BODY_LIMIT < r->srv->opts.upload_limit ? JSON_BODY_LIMIT : r->srv->opts.upload_limit);
    if (cl && declared > r->limit) {
        r->in_body = declared <= r->limit + DRAIN_MAX;   /* else refuse at once and close */
        http_reply_error(r, 413, "invalid_request_error", NULL, "request_too_large",
                         "The request body is %s bytes; the limit is %llu bytes.", cl, (unsigned long long)r->limit);
        return -1;
    }
    if (r->route->body == BODY_MULTIPART) {
        const char *ct = http_header(r, "Content-Type");
        char boundary[80];
        if (multipart_boundary(ct, boundary, sizeof boundary)) {
            HTTP_400(r, NULL, "Uploads must be multipart/form-data with a boundary; got Content-Type %s.", ct ? ct : "(none)");
            return -1;
        }
        multipart_cb_t cb = files_multipart_cb;
        cb.ctx = r;
        r->mp = multipart_new(boundary, &cb);
        if (!r->mp) {
            HTTP_500(r, "Out of memory.");
            return -1;
        }
        if (files_upload_begin(r)) return -1;
    }
    return 0;
}

static int req_body(req_t *r, const char *data, size_t n)
{
    r->received += n;
    if (r->received > r->limit) {
        http_reply_error(r, 413, "invalid_request_error", NULL, "request_too_large",
                         "The request body is over the limit of %llu bytes.", (unsigned long long)r->limit);
        return -1;
    }
    if (r->mp) {
        char err[CORE_ERR_LEN];
        if (multipart_feed(r->mp, data, n, err)) {
            if (r->up.failed) HTTP_500(r, "%s", err);
            else HTTP_400(r, NULL, "%s", err);
            return -1;
        }
        return 0;
    }
    if (r->route->body == BODY_NONE) return 0;   /* ignore bodies on GET/DELETE */
    if (buf_append(&r->raw, data, n)) {
        HTTP_500(r, "Out of memory.");
        return -1;
    }
    return 0;
}

static void route_deferred(req_t *r, void *arg, http_then_fn *then, void **then_arg) { r->route->fn(r); }

static void req_dispatch(req_t *r)
{
    if (r->route->body == BODY_JSON && r->raw.len) {
        json_error_t je;
        r->body = json_loadb(r->raw.data, r->raw.len, JSON_REJECT_DUPLICATES, &je);
        if (!r->body) {
            HTTP_400(r, NULL, "We could not parse the JSON body of your request (%s at line %d column %d). "
                     "(HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API "
                     "expects a JSON payload, but what was sent was not valid JSON.)", je.text, je.line, je.column);
            return;
        }
        if (!json_is_object(r->body)) {
            HTTP_400(r, NULL, "The JSON body of the request must be an object.");
            return;
        }
    }
    deferred_here = 0;
    if (r->route->body == BODY_MULTIPART && r->conn) {
        /* an upload ends with work that waits on the disk and the CPU for
         * seconds (JSONL validation, token count, fsync): not here */
        http_defer_on(r->srv->io_pool, r, route_deferred, NULL);
        return;
    }
    r->route->fn(r);
    /* once deferred, r belongs to the compute thread: do not read it */
    if (!deferred_here && !r->replied) HTTP_500(r, "The server failed to answer this request.");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    server_t *srv = cls;
    req_t *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        *con_cls = r;
        r->srv = srv;
        r->conn = conn;
        snprintf(r->method, sizeof r->method, "%s", method);
        id_random(r->request_id, "req_", 32);
        req_start(r, url);
        r->in_body = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->replied) {   /* refused: drain quietly, within reason */
            r->received += n;
            return r->received > r->srv->opts.upload_limit + DRAIN_MAX ? MHD_NO : MHD_YES;
        }
        r->in_body = 1;
        req_body(r, upload_data, n);
        r->in_body = 0;
        if (r->replied) files_upload_abort(r);
        return MHD_YES;
    }
    if (r->deferred == 1) return MHD_YES;   /* still on the compute pool */
    if (r->pending) {
        struct MHD_Response *resp = r->pending;
        r->pending = NULL;
        queue(r, r->pending_status, resp);
        return MHD_YES;
    }
    if (r->replied) return MHD_YES;
    req_dispatch(r);
    return MHD_YES;
}

static void log_mhd(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    (void)fmt;
    (void)ap;   /* libmicrohttpd's own notices are not the user's business */
}

int http_listen(server_t *s, char *err)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)s->opts.port);
    if (inet_pton(AF_INET, s->opts.host, &sa.sin_addr) != 1) {
        struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai = NULL;
        if (getaddrinfo(s->opts.host, NULL, &hints, &ai) || !ai)
            return core_errf(err, "cannot listen on '%s': give an IPv4 address such as 127.0.0.1 or 0.0.0.0, or a host name that resolves to one", s->opts.host);
        sa.sin_addr = ((struct sockaddr_in *)ai->ai_addr)->sin_addr;
        freeaddrinfo(ai);
    }
    /* a pool of event loops, epoll where there is one (no FD_SETSIZE
     * ceiling on followers, no per-connection thread) */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    flags |= MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES ? MHD_USE_EPOLL : MHD_USE_POLL;
    s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
                                 MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                                 MHD_OPTION_THREAD_POOL_SIZE, (unsigned)s->opts.threads,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                 MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL,
                                 MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(128u << 10),
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)16384,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600,   /* idle keep-alive; streams ping well inside it */
                                 MHD_OPTION_EXTERNAL_LOGGER, log_mhd, NULL,
                                 MHD_OPTION_END);
    if (!s->daemon)
        return core_errf(err, "cannot listen on %s:%d: the address is in use or not available; pick another with --listen HOST:PORT",
                         s->opts.host, s->opts.port);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : s->opts.port;
    return 0;
}

void http_stop(server_t *s)
{
    if (s->daemon) MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
}
