/* files.c: /v1/files. Uploads stream from the socket through the multipart
 * parser into a store blob (temp name, fsync, rename, then the row), so a
 * kill -9 mid-upload leaves nothing half-written. Fine-tune files are
 * checked before the row is written visible as processed: the file object
 * says "processed", or "error" with the line at fault in status_details.
 * The filename is kept exactly as sent and never used as a path.
 */
#define TUNERY_SERVER_INTERNAL
#include "server/server.h"
#include "store/store.h"
#include "train/train.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static const char *const upload_purposes[] = {
    "fine-tune", "search", "answers", "classifications",
    "assistants", "batch", "vision", "user_data", "evals", NULL,
};

json_t *files_object(const store_file_t *f)
{
    return json_pack("{s:s, s:s, s:I, s:I, s:o, s:s, s:s, s:o}",
                     "id", f->id, "object", "file", "bytes", (json_int_t)f->bytes,
                     "created_at", (json_int_t)f->created_at, "filename", server_json_str(f->filename),
                     "purpose", f->purpose, "status", f->status,
                     "status_details", f->status_details[0] ? server_json_str(f->status_details) : json_null());
}

/* ---- multipart callbacks: r->up collects purpose and streams the file ---- */

static int up_begin(void *ctx, const char *name, const char *filename, const char *ct)
{
    req_t *r = ctx;
    upload_t *u = &r->up;
    u->in_file = u->in_purpose = 0;
    if (!strcmp(name, "file")) {
        if (u->has_file) return -1;      /* one file per upload */
        u->has_file = 1;
        u->in_file = 1;
        snprintf(u->filename, sizeof u->filename, "%s", filename ? filename : "file");
    } else if (!strcmp(name, "purpose")) {
        u->in_purpose = 1;
        u->has_purpose = 1;
        u->purpose[0] = 0;
    }
    return 0;   /* other fields (the 0.x CLI's "model") are ignored */
}

static int up_data(void *ctx, const char *d, size_t n)
{
    req_t *r = ctx;
    upload_t *u = &r->up;
    if (u->in_file) {
        char err[CORE_ERR_LEN];
        if (!u->blob || store_blob_write(u->blob, d, n, err)) {
            u->failed = 1;
            return -1;
        }
    } else if (u->in_purpose) {
        size_t l = strlen(u->purpose);
        if (l + n >= sizeof u->purpose) n = sizeof u->purpose - 1 - l;
        memcpy(u->purpose + l, d, n);
        u->purpose[l + n] = 0;
    }
    return 0;
}

static int up_end(void *ctx)
{
    req_t *r = ctx;
    r->up.in_file = r->up.in_purpose = 0;
    return 0;
}

const multipart_cb_t files_multipart_cb = {NULL, up_begin, up_data, up_end};

int files_upload_begin(req_t *r)
{
    store_t *st = server_store(r);
    if (!st) return -1;
    char err[CORE_ERR_LEN];
    if (store_blob_begin(st, &r->up.blob, err)) {
        HTTP_500(r, "%s", err);
        return -1;
    }
    return 0;
}

void files_upload_abort(req_t *r)
{
    if (r->up.blob) store_blob_abort(r->up.blob);
    r->up.blob = NULL;
}

/* The token count (for the cost event) runs beside the line-by-line check:
 * they read the same file independently, and the count is the slower. */
typedef struct {
    const char *path;
    long long n_tokens;
    char err[CORE_ERR_LEN];
} count_job_t;

static void *count_main(void *arg)
{
    count_job_t *c = arg;
    c->n_tokens = train_count_tokens(c->path, c->err);
    return NULL;
}

int files_create(req_t *r)
{
    char err[CORE_ERR_LEN];
    upload_t *u = &r->up;
    if (multipart_finish(r->mp, err)) return HTTP_400(r, NULL, "%s", err);
    if (!u->has_file) return HTTP_400(r, "file", "Missing required parameter: 'file'. Send the data as a multipart part named \"file\" with a filename.");
    if (!u->has_purpose || !u->purpose[0]) return HTTP_400(r, "purpose", "Missing required parameter: 'purpose'. Use purpose \"fine-tune\" for training data.");
    int ok = 0;
    for (const char *const *p = upload_purposes; *p && !ok; p++) ok = !strcmp(*p, u->purpose);
    if (!ok) return HTTP_400(r, "purpose", "'%s' is not a valid purpose: use 'fine-tune' (or one of search, answers, classifications, assistants, batch, vision, user_data, evals).", u->purpose);
    store_t *st = server_store(r);
    if (!st) return -1;

    /* Check a fine-tune file while it is still the temp blob. */
    int fine_tune = !strcmp(u->purpose, "fine-tune");
    int n_examples = 0, is_chat = 0;
    long long n_tokens = 0;
    char details[CORE_ERR_LEN] = "";
    if (fine_tune) {
        count_job_t cj = {store_blob_path(u->blob), -1, ""};
        pthread_t th;
        int threaded = pthread_create(&th, NULL, count_main, &cj) == 0;
        int bad = train_check_file(cj.path, &n_examples, &is_chat, details);
        if (threaded) pthread_join(th, NULL);
        else count_main(&cj);
        if (bad) {
            n_examples = 0;
        } else if (cj.n_tokens < 0) {
            snprintf(details, sizeof details, "%s", cj.err);   /* valid lines, but no tokenizer */
        } else {
            n_tokens = cj.n_tokens;
        }
    }
    store_file_t f;
    store_blob_t *b = u->blob;
    u->blob = NULL;   /* commit frees it, whatever happens */
    if (store_blob_commit(st, b, r->org_id, u->filename, u->purpose, &f, err)) return HTTP_500(r, "%s", err);
    if (fine_tune) {
        const char *status = details[0] ? "error" : "processed";
        if (store_file_set_status(st, f.id, status, details[0] ? details : NULL, n_examples, is_chat, n_tokens, err))
            return HTTP_500(r, "%s", err);
        if (store_file_get(st, r->org_id, f.id, &f, err)) return HTTP_500(r, "%s", err);
    }
    return http_reply_json(r, 200, files_object(&f));
}

int files_list(req_t *r)
{
    store_t *st = server_store(r);
    if (!st) return -1;
    const char *purpose = http_query(r, "purpose");
    const char *limit = http_query(r, "limit");
    const char *order = http_query(r, "order");
    store_page_t page = {http_query(r, "after"), limit ? atoi(limit) : 0, order && !strcmp(order, "asc")};
    if (limit && (page.limit < 1 || page.limit > 10000)) return HTTP_400(r, "limit", "limit must be an integer from 1 to 10000.");
    store_file_t *fs = NULL;
    int n = 0, more = 0;
    char err[CORE_ERR_LEN];
    int rc = store_file_list(st, r->org_id, purpose && purpose[0] ? purpose : NULL, &page, &fs, &n, &more, err);
    if (rc) return server_store_error(r, rc, "after", err);
    json_t *data = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(data, files_object(&fs[i]));
    free(fs);
    json_t *o = json_pack("{s:s, s:o, s:b}", "object", "list", "data", data, "has_more", more);
    if (n) {
        json_object_set_new(o, "first_id", json_string(json_string_value(json_object_get(json_array_get(data, 0), "id"))));
        json_object_set_new(o, "last_id", json_string(json_string_value(json_object_get(json_array_get(data, n - 1), "id"))));
    }
    return http_reply_json(r, 200, o);
}

/* Look the path's file id up in the caller's org; 404 in OpenAI's words. */
static int file_lookup(req_t *r, store_t **st, store_file_t *f)
{
    *st = server_store(r);
    if (!*st) return -1;
    char err[CORE_ERR_LEN];
    int rc = store_file_get(*st, r->org_id, r->params[0], f, err);
    if (rc == STORE_ENOTFOUND) {
        HTTP_404(r, "id", "No such File object: %s", r->params[0]);
        return -1;
    }
    if (rc) {
        HTTP_500(r, "%s", err);
        return -1;
    }
    return 0;
}

int files_get(req_t *r)
{
    store_t *st;
    store_file_t f;
    if (file_lookup(r, &st, &f)) return -1;
    return http_reply_json(r, 200, files_object(&f));
}

int files_delete(req_t *r)
{
    store_t *st;
    store_file_t f;
    if (file_lookup(r, &st, &f)) return -1;
    char err[CORE_ERR_LEN];
    int rc = store_file_delete(st, r->org_id, f.id, err);
    if (rc == STORE_ENOTFOUND) return HTTP_404(r, "id", "No such File object: %s", r->params[0]);
    if (rc) return server_store_error(r, rc, "id", err);
    return http_reply_json(r, 200, json_pack("{s:s, s:s, s:b}", "id", f.id, "object", "file", "deleted", 1));
}

int files_content(req_t *r)
{
    store_t *st;
    store_file_t f;
    if (file_lookup(r, &st, &f)) return -1;
    char path[STORE_PATH_LEN];
    store_file_path(st, f.id, path);
    const char *ct = !strcmp(f.purpose, "fine-tune-results") ? "text/csv; charset=utf-8" : "application/octet-stream";
    return http_reply_file(r, ct, path);
}
