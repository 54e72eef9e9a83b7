/* tok_stream.c: tokenizing what does not fit in memory, a block at a time
 * (tok_encode_stream does the cutting). Used to price large uploads and by
 * `tunery tokenize` on big inputs. */
#include "tok/tok.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define STREAM_BLOCK (1u << 20)

int tok_count_file(const tok_t *t, const char *path, size_t *count, char *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return core_errf(err, "cannot open %s: %s", path, strerror(errno));
    buf_t b = {0};
    size_t total = 0, used;
    int rc = 0, eof = 0;
    while (!eof) {
        if (buf_reserve(&b, STREAM_BLOCK)) { rc = core_errf(err, "out of memory counting the tokens of %s", path); break; }
        size_t n = fread(b.data + b.len, 1, STREAM_BLOCK, f);
        b.len += n;
        if (n < STREAM_BLOCK) {
            if (ferror(f)) { rc = core_errf(err, "cannot read %s: %s", path, strerror(errno)); break; }
            eof = 1;
        }
        if (tok_encode_stream(t, b.data, b.len, 0, eof, NULL, &total, &used)) {
            rc = core_errf(err, "out of memory counting the tokens of %s", path);
            break;
        }
        memmove(b.data, b.data + used, b.len - used);
        b.len -= used;
    }
    fclose(f);
    buf_free(&b);
    if (rc == 0) *count = total;
    return rc;
}
