/* json.c: writing a JSON document to a file the way every tunery file is
 * written (atomically, see fs.c), so model directories, checkpoints and
 * tokenizer files share one path from json_t to disk. */
#include "core/core.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

int fs_write_json(const char *path, const struct json_t *j, size_t flags, char *err)
{
    char *s = j ? json_dumps(j, flags) : NULL;
    if (!s) return core_errf(err, "out of memory writing %s", path);
    int rc = fs_write_atomic(path, s, strlen(s), err);
    free(s);
    return rc;
}
