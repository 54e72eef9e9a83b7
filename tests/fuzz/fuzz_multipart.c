/* fuzz_multipart.c: libFuzzer target for the streaming multipart parser.
 * The first byte picks the chunk size; the parser must never crash, and
 * must produce the same parts and bytes whether the body arrives in one
 * piece or in chunks (a mismatch aborts). */
#define TUNERY_SERVER_INTERNAL
#include "server/server.h"
#include <stdlib.h>
#include <string.h>

typedef struct {
    buf_t log;   /* "B<name>|<filename>\n", data bytes, "E\n" */
} fz_t;

static int fz_begin(void *ctx, const char *name, const char *filename, const char *ct)
{
    fz_t *f = ctx;
    buf_printf(&f->log, "B%s|%s\n", name, filename ? filename : "(none)");
    return 0;
}
static int fz_data(void *ctx, const char *d, size_t n) { return buf_append(&((fz_t *)ctx)->log, d, n); }
static int fz_end(void *ctx) { return buf_appends(&((fz_t *)ctx)->log, "E\n"); }

static int run(const uint8_t *data, size_t size, size_t step, fz_t *f)
{
    multipart_cb_t cb = {f, fz_begin, fz_data, fz_end};
    multipart_t *m = multipart_new("XyZ", &cb);
    char err[CORE_ERR_LEN];
    int rc = 0;
    for (size_t i = 0; i < size && !rc; i += step)
        rc = multipart_feed(m, (const char *)data + i, size - i < step ? size - i : step, err);
    if (!rc) rc = multipart_finish(m, err);
    multipart_free(m);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t step = (data[0] % 64) + 1;
    data++;
    size--;
    fz_t a = {{0}}, b = {{0}};
    int ra = run(data, size, size ? size : 1, &a);
    int rb = run(data, size, step, &b);
    if (ra != rb || a.log.len != b.log.len || (a.log.len && memcmp(a.log.data, b.log.data, a.log.len))) abort();
    buf_free(&a.log);
    buf_free(&b.log);
    return 0;
}
