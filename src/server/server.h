/* server: the OpenAI-compatible HTTP API of `tunery serve`, on libmicrohttpd.
 *
 * Every endpoint lives under /v1 and answers JSON with Content-Type
 * application/json (errors and unknown routes too), an x-request-id header,
 * and OpenAI's error body {"error":{"message","type","param","code"}}. The
 * resources are one file each (files.c, fine_tunes.c, models.c,
 * completions.c); http.c owns the connection life cycle (bodies, limits,
 * replies), router.c the route table and percent-decoding, multipart.c the
 * streaming upload parser, sse.c the event streams, auth.c the keys.
 *
 * Threading: a pool of event-loop threads (opts.threads) serves every
 * connection and never waits: event streams sleep suspended until the event
 * hub (notify.c) pushes to them, completions run on a small compute pool
 * (pool.c, opts.compute_threads) while their connection sleeps (http.c).
 *
 * The first section is the public face (cmd_serve.c, bench_serve.c and tests
 * use it); the second is shared by the files of this directory only.
 */
#ifndef TUNERY_SERVER_H
#define TUNERY_SERVER_H

#include "core/core.h"
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- public ---- */
typedef struct {
    const char *host;            /* "127.0.0.1" */
    int port;                    /* 0 = pick a free port (see server_port) */
    const char *data_dir;        /* NULL = core_data_dir() */
    int max_concurrent_jobs;     /* scheduler: jobs trained at once (default 1) */
    uint64_t upload_limit;       /* bytes of one request body (default 1 GiB) */
    int ping_ms;                 /* SSE keep-alive interval (default 15000) */
    int no_scheduler;            /* tests: serve without training jobs */
    size_t model_cache_bytes;    /* loaded models kept in memory (default 2 GiB) */
    int threads;                 /* HTTP event-loop threads (0 = CPUs, at least 2) */
    int compute_threads;         /* completions computed at once (0 = 1) */
} server_opts_t;

typedef struct server server_t;

/* Open the store, start the scheduler and listen. On a fresh store an org
 * "personal" and one key are created; *initial_key (if not NULL) receives a
 * malloc'd copy of that key or NULL when the store already had keys. */
int server_start(server_t **out, const server_opts_t *o, char **initial_key, char *err);
int server_port(const server_t *s);
void server_stop(server_t *s);

/* ---- internal to src/server ---- */
#ifdef TUNERY_SERVER_INTERNAL
#include "nn/nn.h"
#include "store/store.h"
#include "tok/tok.h"
#include <jansson.h>

struct MHD_Connection;
struct MHD_Response;
struct store;
struct store_blob;
typedef struct req req_t;

typedef enum { BODY_NONE = 0, BODY_JSON, BODY_MULTIPART } body_kind_t;
typedef int (*route_fn)(req_t *r);
typedef struct {
    const char *method;
    const char *pattern;  /* "/v1/files/{}/content": each {} is one decoded path segment */
    route_fn fn;
    body_kind_t body;
} route_t;

#define ROUTE_MAX_PARAMS 2
#define ROUTE_PARAM_LEN 512

/* router.c */
/* Percent-decode n bytes of in into out (NUL-terminated); plus_space maps '+'
 * to ' ' as Python's quote_plus encodes. -1 if out is too small or a %XX is
 * malformed or decodes to NUL. */
int url_decode(const char *in, size_t n, char *out, size_t outlen, int plus_space);
/* Find the route for method + raw path. 0 and params filled; -1 if no path
 * matches; -2 if the path matches but not the method (*allowed gets e.g. "GET"). */
int router_match(const char *method, const char *path, const route_t **out,
                 char params[ROUTE_MAX_PARAMS][ROUTE_PARAM_LEN], int *nparams);
extern const route_t server_routes[];
/* One pattern against a path (url.c): 0 and params filled on a match. */
int router_match_pattern(const char *pattern, const char *path,
                         char params[ROUTE_MAX_PARAMS][ROUTE_PARAM_LEN], int *nparams);

/* errors.c: OpenAI's error body, all four keys, null where not given. */
json_t *server_error_json(const char *message, const char *type, const char *param, const char *code);
/* A JSON string of any bytes: invalid UTF-8 becomes U+FFFD. Never NULL
 * (short of memory). */
json_t *server_json_text(const char *s, size_t n);
json_t *server_json_str(const char *s);

/* multipart.c */
typedef struct multipart multipart_t;
typedef struct {
    void *ctx;
    /* filename NULL when the part has none; return non-zero to refuse */
    int (*part_begin)(void *ctx, const char *name, const char *filename, const char *content_type);
    int (*part_data)(void *ctx, const char *data, size_t n);
    int (*part_end)(void *ctx);
} multipart_cb_t;
int multipart_boundary(const char *content_type, char *out, size_t outlen);
multipart_t *multipart_new(const char *boundary, const multipart_cb_t *cb);
/* Feed any number of bytes; -1 with err on malformed input or a refused part. */
int multipart_feed(multipart_t *m, const char *data, size_t n, char *err);
/* At the end of the body: -1 unless the closing boundary was seen. */
int multipart_finish(multipart_t *m, char *err);
int multipart_nparts(const multipart_t *m);
void multipart_free(multipart_t *m);

/* The upload in progress for POST /v1/files (files.c fills it through the
 * multipart callbacks; http.c drives them). */
typedef struct {
    char purpose[64];
    int has_purpose, has_file, nfiles;
    char filename[1024];
    struct store_blob *blob; /* the file part's bytes, NULL when none */
    int in_file, in_purpose;
    int failed;
} upload_t;
int files_upload_begin(req_t *r);       /* called once the headers are in */
void files_upload_abort(req_t *r);      /* removes the temp blob */
extern const multipart_cb_t files_multipart_cb;

struct req {
    struct server *srv;
    struct MHD_Connection *conn;
    const route_t *route;
    char method[16];
    char path[1024];
    char params[ROUTE_MAX_PARAMS][ROUTE_PARAM_LEN];
    int nparams;
    char request_id[40];
    /* auth */
    char org_id[64];
    char org_name[128];
    /* body */
    uint64_t limit, received;
    buf_t raw;
    json_t *body;            /* parsed JSON body or NULL */
    multipart_t *mp;
    upload_t up;
    int replied;
    void *qstrs;             /* http.c: decoded query strings to free */
    int in_body;             /* http.c: inside a body call (replies are deferred) */
    int deferred;            /* http.c: 1 on the compute pool (http_defer), 2 back */
    const char *extra_header[2]; /* one more response header (name, value), static strings */
    /* Without a connection (unit tests, fuzzers) replies are captured here;
     * the caller frees captured. */
    int captured_status;
    char *captured;
    struct MHD_Response *pending; /* a reply decided mid-body, sent at the end */
    int pending_status;
};

struct server {
    struct MHD_Daemon *daemon;
    struct store *store;
    server_opts_t opts;
    char data_dir[4096];
    int port;
    void *sched;              /* sched handle (sched.h) */
    void *models;             /* completions.c: model cache */
    volatile int stopping;
    struct hub *hub;          /* notify.c: the event hub of the followers */
    struct pool *pool;        /* pool.c: the compute queue */
    struct pool *io_pool;     /* pool.c: blocking file work (an upload's validation, fsync, commit) */
};

/* http.c: the daemon (server.c starts and stops it). */
int http_listen(struct server *s, char *err);
void http_stop(struct server *s);

/* http.c: replies. Each queues the response at once and returns 0 (or -1 if
 * the connection is gone). Every reply gets x-request-id. */
int http_reply_json(req_t *r, int status, json_t *body);      /* steals body */
int http_reply_json_text(req_t *r, int status, char *json);   /* steals a malloc'd serialized body */
int http_reply_error(req_t *r, int status, const char *type, const char *param,
                     const char *code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
int http_reply_bytes(req_t *r, int status, const char *content_type, const void *data, size_t len);
int http_reply_file(req_t *r, const char *content_type, const char *path);
/* A streamed body fed from another thread without holding one: the
 * connection sleeps suspended while nothing is buffered. http_reply_push
 * queues the 200 and returns a handle with one reference for the caller (NULL
 * after replying 500). http_push_write appends and wakes the connection; it
 * returns -1 once the client is gone (stop producing). http_push_end sends
 * what is buffered, then ends the body. Release the handle when done. */
typedef struct http_push http_push_t;
http_push_t *http_reply_push(req_t *r, const char *content_type);
int http_push_write(http_push_t *p, const void *data, size_t n);
int http_push_printf(http_push_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
size_t http_push_pending(http_push_t *p);   /* bytes buffered, not yet sent */
int http_push_closed(http_push_t *p);
/* The client's socket (-1 if unknown): watch it for a hang-up, never read,
 * write or close it. */
int http_push_fd(http_push_t *p);
void http_push_end(http_push_t *p);
void http_push_release(http_push_t *p);
/* Run fn(r, arg, ...) on the compute pool (pool.c) while the connection
 * sleeps suspended; the reply it makes is sent once it returns. If fn sets
 * *then, then(*then_arg) runs next on the same compute thread with the reply
 * already going out (a streamed reply's producer; it must not touch r). */
typedef void (*http_then_fn)(void *arg);
typedef void (*http_defer_fn)(req_t *r, void *arg, http_then_fn *then, void **then_arg);
int http_defer(req_t *r, http_defer_fn fn, void *arg);
/* The same on a given pool (http.c runs upload handlers on s->io_pool). */
int http_defer_on(struct pool *p, req_t *r, http_defer_fn fn, void *arg);

/* pool.c: a fixed set of threads running queued jobs in order. submit is -1
 * once stopping; stop runs what is queued, then joins. */
struct pool;
struct pool *pool_start(int threads, char *err);
int pool_submit(struct pool *p, void (*fn)(void *arg), void *arg);
void pool_stop(struct pool *p);
int pool_threads(const struct pool *p);

/* notify.c: one thread owns the store's event watch, reads new events once
 * per wake and pushes them to the followers of their job (sse.c formats). */
struct hub;
int hub_start(struct server *s, struct hub **out, char *err);
/* Ends every stream (resuming its connection) and joins; before http_stop. */
void hub_stop(struct hub *h);
/* Follow a job: replay every event, then push new ones with pings, and
 * [DONE] after the terminal event. Takes over the push handle. */
int hub_follow(struct hub *h, const char *org_id, const char *job_id, http_push_t *push, char *err);
long hub_followers(struct hub *h);

/* A decoded query-string argument ('+' as space); NULL if absent. The string
 * lives until the request ends. */
const char *http_query(req_t *r, const char *key);
const char *http_header(req_t *r, const char *name);

/* Shorthands for the usual errors. */
#define HTTP_400(r, param, ...) http_reply_error(r, 400, "invalid_request_error", param, NULL, __VA_ARGS__)
#define HTTP_404(r, param, ...) http_reply_error(r, 404, "invalid_request_error", param, NULL, __VA_ARGS__)
#define HTTP_500(r, ...) http_reply_error(r, 500, "server_error", NULL, NULL, __VA_ARGS__)

/* json helpers (errors.c) for request validation: each replies 400 naming
 * the parameter and returns -1 when the value is present, non-null and of
 * the wrong type; a missing or null value leaves *out unchanged, returns 0. */
int json_opt_int(req_t *r, json_t *body, const char *key, long long min, long long max, long long *out, int *given);
int json_opt_num(req_t *r, json_t *body, const char *key, double min, double max, double *out, int *given);
int json_opt_bool(req_t *r, json_t *body, const char *key, int *out, int *given);
int json_opt_str(req_t *r, json_t *body, const char *key, const char **out);
/* 400 for any key of body not in the NULL-terminated list. */
int json_check_known(req_t *r, json_t *body, const char *const *known);

/* auth.c: fill r->org_id / org_name from Authorization; 0, or -1 after replying 401. */
int auth_request(req_t *r);

/* server.c: this thread's store connection (opened on first use, closed
 * when the thread ends); server_store replies 500 itself on failure. */
struct store *server_thread_store(const struct server *s, char *err);
struct store *server_store(req_t *r);
/* The directory of a base model name (ada, curie, an imported name): the
 * server's DATA/models/<name>, then the shipped ones. -1 with err naming
 * where it looked. Names with '/', ':' or a leading '.' are never paths. */
int server_base_model_dir(const struct server *s, const char *name, char dir[4096], char *err);
/* Reply for a store error code: ENOTFOUND 404, ECONFLICT 400, else 500. */
int server_store_error(req_t *r, int rc, const char *param, const char *err);

/* files.c, fine_tunes.c, sse.c: shared object shapes. */
json_t *files_object(const store_file_t *f);
int server_is_base_model(const char *name);
json_t *fine_tunes_event_json(const store_event_t *e);
int fine_tunes_event_visible(const store_event_t *e);
int sse_events_start(req_t *r);

/* model_cache.c: loaded models shared by all connections, bounded by
 * opts.model_cache_bytes. get returns a reference (loading on a miss, *hit
 * says which); put gives it back. */
typedef struct {
    gpt2_t model;
    tok_t *tok;
} model_ref_t;
model_ref_t *model_cache_get(struct server *s, const char *id, const char *dir, int *hit, char *err);
void model_cache_put(struct server *s, model_ref_t *ref);
long model_cache_loads(struct server *s);
void completions_cache_evict(struct server *s, const char *id);
void completions_cache_free(struct server *s);

/* Route handlers (one file per resource). */
int files_create(req_t *r);
int files_list(req_t *r);
int files_get(req_t *r);
int files_delete(req_t *r);
int files_content(req_t *r);
int fine_tunes_create(req_t *r);
int fine_tunes_list(req_t *r);
int fine_tunes_get(req_t *r);
int fine_tunes_cancel(req_t *r);
int fine_tunes_delete(req_t *r);
int fine_tunes_events(req_t *r);
int models_list(req_t *r);
/* models.c: the permission id of a model ("modelperm-" + 24 characters, a
 * function of id); how many times the shared part of the list was built. */
void models_perm_id(const char *id, char out[40]);
long models_list_builds(void);
int models_get(req_t *r);
int models_delete(req_t *r);
int fine_tuning_jobs_create(req_t *r);
int fine_tuning_jobs_list(req_t *r);
int fine_tuning_jobs_get(req_t *r);
int fine_tuning_jobs_cancel(req_t *r);
int fine_tuning_jobs_pause(req_t *r);
int fine_tuning_jobs_resume(req_t *r);
int fine_tuning_jobs_events(req_t *r);
int fine_tuning_jobs_checkpoints(req_t *r);
/* fine_tunes.c's file check, shared with fine_tuning_jobs.c: replies 400
 * naming the parameter and returns -1 when the file cannot be used. */
int fine_tunes_check_file(req_t *r, struct store *st, const char *param, const char *id, store_file_t *f);
/* fine_tuning_jobs.c: the current API's job object. */
json_t *fine_tuning_job_json(const store_job_t *j);
int completions_create(req_t *r);
int completions_engine(req_t *r);
/* model_kind.c: what a model name is (base, compatibility alias,
 * fine-tuned, checkpoint) and whether it is a chat model. The one place the
 * server turns a name into a directory and a format; fine_tuning_jobs.c
 * calls server_model_is_chat to refuse a chat file for a completion base
 * and the reverse. */
enum { SERVER_MODEL_BASE = 1, SERVER_MODEL_ALIAS, SERVER_MODEL_FINE_TUNED, SERVER_MODEL_CHECKPOINT };
#define SERVER_MODEL_UNKNOWN -1   /* no such model for this org (err says so) */
#define SERVER_MODEL_ERROR -2     /* the store or aliases.json failed (err) */
#define SERVER_MODEL_MISSING -3   /* a known name whose weights are not installed; kind and is_chat are set */
typedef struct {
    int kind;                     /* SERVER_MODEL_BASE ... */
    int is_chat;                  /* 1: chat format (/v1/chat/completions, {"messages"} data) */
    char dir[4096];               /* the model directory */
    char target[STORE_NAME_LEN];  /* alias: the model it names; fine-tuned/checkpoint: its root base */
} server_model_t;
int server_model_lookup(struct server *s, const char *org_id, const char *model, server_model_t *out, char *err);
/* server_model_lookup for a request (completions.c, chat.c): 0, or -1 after
 * replying 404 model_not_found (unknown name, or weights not installed) or
 * 500. cache_id gets the model cache's key: an alias shares the entry of
 * the weights it names. */
int server_model_resolve(req_t *r, const char *name, server_model_t *m, char cache_id[STORE_NAME_LEN]);
/* 1 chat model, 0 completion model, -1 unknown model (err says so). */
int server_model_is_chat(struct server *s, const char *org_id, const char *model, char *err);
const char *server_model_kind_name(int kind);
/* The compatibility names (aliases.json of the data dir, then the shipped
 * one), as a JSON array of strings, for /v1/models. */
json_t *server_model_aliases(void);
/* chat.c */
int chat_completions_create(req_t *r);
#endif

#endif
