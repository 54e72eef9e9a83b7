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
 */
#include "core/core.h"
#include <jansson.h>
#include <limits.h>
#include <string.h>

/* 0 found, 1 not in this file (or no file), -1 a broken file. */
static int alias_in(const char *dir, const char *name, char target[CORE_ALIAS_LEN], int *is_chat, char *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/models/aliases.json", dir);
    if (!fs_exists(path)) return 1;
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) return core_errf(err, "%s is not valid JSON (%s, line %d); fix or remove it", path, je.text, je.line);
    json_t *a = json_object_get(json_object_get(root, "aliases"), name);
    int rc = 1;
    if (a) {
        json_t *m = json_object_get(a, "model"), *f = json_object_get(a, "format");
        const char *fmt = json_is_string(f) ? json_string_value(f) : "";
        if (!json_is_string(m) || json_string_length(m) == 0 || json_string_length(m) >= CORE_ALIAS_LEN ||
            (strcmp(fmt, "chat") && strcmp(fmt, "prompt-completion")))
            rc = core_errf(err, "%s: aliases.%s needs {\"model\": \"<name>\", \"format\": \"chat\" or \"prompt-completion\"}", path, name);
        else {
            snprintf(target, CORE_ALIAS_LEN, "%s", json_string_value(m));
            if (is_chat) *is_chat = !strcmp(fmt, "chat");
            rc = 0;
        }
    }
    json_decref(root);
    return rc;
}

int core_model_alias(const char *name, char target[CORE_ALIAS_LEN], int *is_chat, char *err)
{
    if (!name || !*name || strchr(name, '/') || strchr(name, ':')) return 1;
    int rc = alias_in(core_data_dir(), name, target, is_chat, err);
    if (rc <= 0) return rc;
    return alias_in(core_share_dir(), name, target, is_chat, err);
}
