/* store_files.c: uploaded files. The bytes live in DATA/files/<id>, the row
 * in the files table. Order of writes is what makes kill -9 safe: bytes to
 * .tmp-<id>, fsync, rename, fsync the directory, and only then the row; on
 * delete, the row goes first. So a row always has its complete bytes, and
 * what a crash can leave behind (a temp or an orphan blob) is removed by
 * store_recover_blobs at the next server start. */
#include "store/store_int.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct store_blob {
    int fd;
    int64_t size;
    char id[STORE_ID_LEN];
    char tmp[STORE_PATH_LEN];
    char final[STORE_PATH_LEN];
};

#define FILE_COLS "id, org_id, bytes, created_at, filename, purpose, status, status_details, n_examples, is_chat, n_tokens"

static void file_row(sqlite3_stmt *st, store_file_t *f)
{
    store_col_str(st, 0, f->id, sizeof f->id);
    store_col_str(st, 1, f->org_id, sizeof f->org_id);
    f->bytes = sqlite3_column_int64(st, 2);
    f->created_at = sqlite3_column_int64(st, 3);
    store_col_str(st, 4, f->filename, sizeof f->filename);
    store_col_str(st, 5, f->purpose, sizeof f->purpose);
    store_col_str(st, 6, f->status, sizeof f->status);
    store_col_str(st, 7, f->status_details, sizeof f->status_details);
    f->n_examples = sqlite3_column_int(st, 8);
    f->is_chat = sqlite3_column_int(st, 9);
    f->n_tokens = sqlite3_column_int64(st, 10);
}

void store_file_path(const store_t *s, const char *id, char out[STORE_PATH_LEN])
{
    snprintf(out, STORE_PATH_LEN, "%s/files/%s", s->dir, id);
}

int store_blob_begin(store_t *s, store_blob_t **out, char *err)
{
    *out = NULL;
    store_blob_t *b = calloc(1, sizeof *b);
    if (!b) return core_errf(err, "out of memory");
    id_random(b->id, "file-", 24);
    snprintf(b->tmp, sizeof b->tmp, "%s/files/.tmp-%s", s->dir, b->id);
    store_file_path(s, b->id, b->final);
    b->fd = open(b->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (b->fd < 0) {
        core_errf(err, "cannot create %s: %s", b->tmp, strerror(errno));
        free(b);
        return -1;
    }
    *out = b;
    return 0;
}

int store_blob_write(store_blob_t *b, const void *data, size_t len, char *err)
{
    if (fs_write_full(b->fd, data, len))
        return core_errf(err, "cannot write the upload to %s: %s", b->tmp, strerror(errno));
    b->size += (int64_t)len;
    return 0;
}

int64_t store_blob_size(const store_blob_t *b) { return b->size; }
const char *store_blob_path(const store_blob_t *b) { return b->tmp; }

void store_blob_abort(store_blob_t *b)
{
    if (!b) return;
    if (b->fd >= 0) close(b->fd);
    unlink(b->tmp);
    free(b);
}

static int file_insert(store_t *s, const store_file_t *f, char *err)
{
    sqlite3_stmt *st;
    if (store_prep(s, "INSERT INTO files(" FILE_COLS ") VALUES(?,?,?,?,?,?,?,?,?,?,?)", &st, err)) return -1;
    store_bind_str(st, 1, f->id);
    store_bind_str(st, 2, f->org_id);
    sqlite3_bind_int64(st, 3, f->bytes);
    sqlite3_bind_int64(st, 4, f->created_at);
    store_bind_str(st, 5, f->filename);
    store_bind_str(st, 6, f->purpose);
    store_bind_str(st, 7, f->status);
    store_bind_str(st, 8, f->status_details);
    sqlite3_bind_int(st, 9, f->n_examples);
    sqlite3_bind_int(st, 10, f->is_chat);
    sqlite3_bind_int64(st, 11, f->n_tokens);
    return store_done(s, st, err);
}

int store_blob_commit(store_t *s, store_blob_t *b, const char *org_id, const char *filename,
                      const char *purpose, store_file_t *out, char *err)
{
    int rc = -1;
    if (fsync(b->fd)) {
        core_errf(err, "cannot flush the upload to disk: %s", strerror(errno));
        goto done;
    }
    close(b->fd);
    b->fd = -1;
    if (rename(b->tmp, b->final)) {
        core_errf(err, "cannot move the upload into place (%s): %s", b->final, strerror(errno));
        goto done;
    }
    if (fs_fsync_dir_of(b->final, err)) {
        unlink(b->final);
        goto done;
    }
    store_file_t f;
    memset(&f, 0, sizeof f);
    store_copy(f.id, sizeof f.id, b->id);
    store_copy(f.org_id, sizeof f.org_id, org_id);
    f.bytes = b->size;
    f.created_at = time_unix();
    store_copy(f.filename, sizeof f.filename, filename);
    store_copy(f.purpose, sizeof f.purpose, purpose);
    store_copy(f.status, sizeof f.status, "uploaded");
    if (file_insert(s, &f, err)) {
        unlink(b->final);
        goto done;
    }
    if (out) *out = f;
    rc = 0;
done:
    store_blob_abort(b);   /* closes, unlinks the (already renamed) temp name, frees */
    return rc;
}

int store_file_put(store_t *s, const char *org_id, const char *filename, const char *purpose,
                   const void *data, size_t len, store_file_t *out, char *err)
{
    store_blob_t *b;
    if (store_blob_begin(s, &b, err)) return -1;
    if (store_blob_write(b, data, len, err)) {
        store_blob_abort(b);
        return -1;
    }
    return store_blob_commit(s, b, org_id, filename, purpose, out, err);
}

int store_file_import(store_t *s, const char *org_id, const char *filename, const char *purpose,
                      const char *src_path, store_file_t *out, char *err)
{
    int fd = open(src_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return core_errf(err, "cannot open %s: %s", src_path, strerror(errno));
    store_blob_t *b;
    if (store_blob_begin(s, &b, err)) {
        close(fd);
        return -1;
    }
    char chunk[65536];
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof chunk);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            core_errf(err, "cannot read %s: %s", src_path, strerror(errno));
            close(fd);
            store_blob_abort(b);
            return -1;
        }
        if (r == 0) break;
        if (store_blob_write(b, chunk, (size_t)r, err)) {
            close(fd);
            store_blob_abort(b);
            return -1;
        }
    }
    close(fd);
    return store_blob_commit(s, b, org_id, filename, purpose, out, err);
}

static int not_found(char *err, const char *id)
{
    core_errf(err, "No such File object: %s", id);
    return STORE_ENOTFOUND;
}

int store_file_get(store_t *s, const char *org_id, const char *id, store_file_t *out, char *err)
{
    sqlite3_stmt *st;
    if (store_prep(s, "SELECT " FILE_COLS " FROM files WHERE id=?1 AND (?2 IS NULL OR org_id=?2)", &st, err))
        return -1;
    store_bind_str(st, 1, id);
    store_bind_nullable(st, 2, org_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) file_row(st, out);
    store_finish(s, st);
    if (rc == SQLITE_ROW) return 0;
    if (rc != SQLITE_DONE) return store_sqlerr(s, err, "reading a file");
    return not_found(err, id);
}

int store_file_list(store_t *s, const char *org_id, const char *purpose, const store_page_t *page,
                    store_file_t **out, int *n, int *has_more, char *err)
{
    *out = NULL;
    *n = 0;
    if (has_more) *has_more = 0;
    int asc = page && page->ascending;
    const char *after = page && page->after && *page->after ? page->after : NULL;
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT " FILE_COLS " FROM files WHERE org_id=?1 AND (?2 IS NULL OR purpose=?2) "
             "AND (?3 IS NULL OR seq %s (SELECT seq FROM files WHERE id=?3 AND org_id=?1)) "
             "ORDER BY seq %s LIMIT ?4",
             asc ? ">" : "<", asc ? "ASC" : "DESC");
    sqlite3_stmt *st;
    if (store_prep(s, sql, &st, err)) return -1;
    store_bind_str(st, 1, org_id);
    store_bind_nullable(st, 2, purpose);
    store_bind_nullable(st, 3, after);
    int lim = store_page_limit(page);
    sqlite3_bind_int(st, 4, lim);
    int cap = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (store_grow((void **)out, &cap, *n, sizeof **out)) { rc = SQLITE_NOMEM; break; }
        file_row(st, &(*out)[(*n)++]);
    }
    store_finish(s, st);
    if (rc != SQLITE_DONE) {
        free(*out);
        *out = NULL;
        *n = 0;
        return core_errf(err, "cannot list files: %s", sqlite3_errstr(rc));
    }
    if (lim > 0 && *n == lim) {
        (*n)--;
        if (has_more) *has_more = 1;
    }
    return 0;
}

int store_file_set_status(store_t *s, const char *id, const char *status, const char *details,
                          int n_examples, int is_chat, long long n_tokens, char *err)
{
    sqlite3_stmt *st;
    if (store_prep(s, "UPDATE files SET status=?, status_details=?, n_examples=?, is_chat=?, n_tokens=? WHERE id=?",
                   &st, err))
        return -1;
    store_bind_str(st, 1, status);
    store_bind_str(st, 2, details);
    sqlite3_bind_int(st, 3, n_examples);
    sqlite3_bind_int(st, 4, is_chat);
    sqlite3_bind_int64(st, 5, n_tokens);
    store_bind_str(st, 6, id);
    if (store_done(s, st, err)) return -1;
    if (sqlite3_changes(store_db(s)) == 0) return not_found(err, id);
    return 0;
}

int store_file_delete(store_t *s, const char *org_id, const char *id, char *err)
{
    sqlite3_stmt *st;
    if (store_prep(s, "DELETE FROM files WHERE id=?1 AND (?2 IS NULL OR org_id=?2)", &st, err)) return -1;
    store_bind_str(st, 1, id);
    store_bind_nullable(st, 2, org_id);
    if (store_done(s, st, err)) return -1;
    if (sqlite3_changes(store_db(s)) == 0) return not_found(err, id);
    char p[STORE_PATH_LEN];
    store_file_path(s, id, p);
    unlink(p);   /* a failure leaves an orphan that store_recover_blobs removes */
    return 0;
}
