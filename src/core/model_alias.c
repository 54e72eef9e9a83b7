/* model_alias.c: compatibility model names ("gpt-4o-mini", "babbage-002")
 * that select local weights and a data format.
 *
 * Why in core: every place that turns a model name into a directory
 * (core_model_dir: `tunery train`, `generate`, the worker; the server through
 * server_base_model_dir) must agree on what an alias means, and the
 * server must also know whether it is a chat model. The table is data, not
 * code: <share dir>/models/aliases.json, overridden name by name by
 * <data dir>/models/aliases.json, so a site can add or repoint names without
 * a rebuild. A real model directory of the same name always wins (the
 * lookups in core_model_dir come first).
 *
 * The server asks on every request (GET /v1/models lists every alias), so a
 * parsed table is kept per file and reparsed only when the file's size or
 * mtime changes: a lookup costs one stat per table, not a JSON parse.
 */
#include "core/core.h"
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    char path[PATH_MAX];
    struct timespec mtime;
    off_t size;
    ino_t ino;
    json_t *aliases;      /* the "aliases" object, or NULL when the file is broken */
    char err[CORE_ERR_LEN];
} table_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static table_t tables[4];   /* data and share dirs; a test may use a few */

/* Validate one entry: 0 and target/format filled, or -1 with err. */
static int entry_read(const char *path, const char *name, json_t *a, char target[CORE_ALIAS_LEN], int *is_chat, char *err)
{
    json_t *m = json_object_get(a, "model"), *f = json_object_get(a, "format");
    const char *fmt = json_is_string(f) ? json_string_value(f) : "";
    if (!json_is_string(m) || json_string_length(m) == 0 || json_string_length(m) >= CORE_ALIAS_LEN ||
        (strcmp(fmt, "chat") && strcmp(fmt, "prompt-completion")))
        return core_errf(err, "%s: aliases.%s needs {\"model\": \"<name>\", \"format\": \"chat\" or \"prompt-completion\"}", path, name);
    if (target) snprintf(target, CORE_ALIAS_LEN, "%s", json_string_value(m));
    if (is_chat) *is_chat = !strcmp(fmt, "chat");
    return 0;
}

/* The table of dir (lock held): NULL with *missing = 1 when there is no
 * file, NULL with err when it is broken. Borrowed: valid while mu is held. */
static json_t *table_get(const char *dir, int *missing, char *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/models/aliases.json", dir);
    *missing = 0;
    struct stat st;
    if (stat(path, &st)) {
        *missing = 1;
        return NULL;
    }
    table_t *t = NULL, *free_slot = NULL;
    for (int i = 0; i < (int)(sizeof tables / sizeof *tables); i++) {
        if (!strcmp(tables[i].path, path)) t = &tables[i];
        else if (!tables[i].path[0] && !free_slot) free_slot = &tables[i];
    }
    if (t && t->size == st.st_size && t->ino == st.st_ino && t->mtime.tv_sec == st.st_mtim.tv_sec &&
        t->mtime.tv_nsec == st.st_mtim.tv_nsec) {
        if (!t->aliases) core_errf(err, "%s", t->err);
        return t->aliases;
    }
    if (!t) t = free_slot ? free_slot : &tables[0];   /* more tables than slots: reuse one */
    json_decref(t->aliases);
    memset(t, 0, sizeof *t);
    snprintf(t->path, sizeof t->path, "%s", path);
    t->size = st.st_size;
    t->ino = st.st_ino;
    t->mtime = st.st_mtim;
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) {
        core_errf(t->err, "%s is not valid JSON (%s, line %d); fix or remove it", path, je.text, je.line);
    } else if (!json_is_object(json_object_get(root, "aliases"))) {
        core_errf(t->err, "%s has no \"aliases\" object; see docs/models.md", path);
    } else {
        t->aliases = json_incref(json_object_get(root, "aliases"));
        const char *name;
        json_t *a;
        json_object_foreach(t->aliases, name, a) {
            if (entry_read(path, name, a, NULL, NULL, t->err)) {
                json_decref(t->aliases);
                t->aliases = NULL;
                break;
            }
        }
    }
    json_decref(root);
    if (!t->aliases) core_errf(err, "%s", t->err);
    return t->aliases;
}

int core_model_alias(const char *name, char target[CORE_ALIAS_LEN], int *is_chat, char *err)
{
    if (!name || !*name || strchr(name, '/') || strchr(name, ':')) return 1;
    const char *dirs[2] = {core_data_dir(), core_share_dir()};
    int rc = 1;
    pthread_mutex_lock(&mu);
    for (int d = 0; d < 2 && rc == 1; d++) {
        int missing;
        json_t *tab = table_get(dirs[d], &missing, err);
        if (missing) continue;
        if (!tab) {
            rc = -1;
            break;
        }
        json_t *a = json_object_get(tab, name);
        if (a) rc = entry_read(dirs[d], name, a, target, is_chat, err);
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

int core_model_alias_list(core_alias_t **out, int *n, char *err)
{
    *out = NULL;
    *n = 0;
    const char *dirs[2] = {core_data_dir(), core_share_dir()};
    int rc = 0, cap = 0;
    pthread_mutex_lock(&mu);
    for (int d = 0; d < 2 && !rc; d++) {
        int missing;
        json_t *tab = table_get(dirs[d], &missing, err);
        if (missing) continue;
        if (!tab) {
            rc = -1;
            break;
        }
        const char *name;
        json_t *a;
        json_object_foreach(tab, name, a) {
            int seen = strlen(name) >= CORE_ALIAS_LEN;
            for (int i = 0; i < *n && !seen; i++) seen = !strcmp((*out)[i].name, name);
            if (seen) continue;
            if (*n == cap) {
                cap = cap ? cap * 2 : 16;
                core_alias_t *p = realloc(*out, (size_t)cap * sizeof *p);
                if (!p) { rc = core_errf(err, "out of memory"); break; }
                *out = p;
            }
            core_alias_t *e = &(*out)[*n];
            snprintf(e->name, sizeof e->name, "%s", name);
            if ((rc = entry_read(dirs[d], name, a, e->target, &e->is_chat, err))) break;
            (*n)++;
        }
    }
    pthread_mutex_unlock(&mu);
    if (rc) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}
