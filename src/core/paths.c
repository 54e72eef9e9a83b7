/* paths.c: finds tunery's shipped data (data/ in the source tree, or an
 * installed share directory), so the binary works from any working directory. */
#include "core/core.h"
#include <limits.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *core_share_dir(void)
{
    static char dir[PATH_MAX];
    if (dir[0]) return dir;
    const char *env = getenv("TUNERY_SHARE");
    if (env && *env) {
        snprintf(dir, sizeof dir, "%s", env);
        return dir;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *d = dirname(exe);
        /* ./tunery and build/tunery both sit beside or below the repo's data/. */
        const char *cands[] = {"%s/data", "%s/../data", "%s/../share/tunery"};
        for (size_t i = 0; i < sizeof cands / sizeof *cands; i++) {
            char p[PATH_MAX + 32];
            snprintf(p, sizeof p, cands[i], d);
            char probe[PATH_MAX + 64];
            snprintf(probe, sizeof probe, "%s/README.md", p);
            if (fs_exists(probe)) {
                snprintf(dir, sizeof dir, "%s", p);
                return dir;
            }
        }
    }
    snprintf(dir, sizeof dir, "/usr/local/share/tunery");
    return dir;
}

const char *core_data_dir(void)
{
    const char *env = getenv("TUNERY_DATA");
    return env && *env ? env : "./tunery-data";
}

int core_model_dir(const char *name, char *out, char *err)
{
    char probe[PATH_MAX + 32];
    if (!name || !*name) return core_errf(err, "no model name given");
    snprintf(probe, sizeof probe, "%s/config.json", name);
    if (strchr(name, '/') || fs_exists(probe)) {
        if (!fs_exists(probe)) return core_errf(err, "model directory %s has no config.json", name);
        snprintf(out, PATH_MAX, "%s", name);
        return 0;
    }
    if (strstr(name, "..")) return core_errf(err, "invalid model name '%s'", name);
    snprintf(out, PATH_MAX, "%s/models/%s", core_data_dir(), name);
    snprintf(probe, sizeof probe, "%s/config.json", out);
    if (fs_exists(probe)) return 0;
    snprintf(out, PATH_MAX, "%s/models/%s", core_share_dir(), name);
    snprintf(probe, sizeof probe, "%s/config.json", out);
    if (fs_exists(probe)) return 0;
    /* a compatibility name (aliases.json): one level, to a real name */
    char target[CORE_ALIAS_LEN], t2[CORE_ALIAS_LEN];
    int arc = core_model_alias(name, target, NULL, err);
    if (arc < 0) return -1;
    if (arc == 0 && strcmp(target, name) && core_model_alias(target, t2, NULL, err) == 1) {
        char e2[CORE_ERR_LEN];
        if (core_model_dir(target, out, e2) == 0) return 0;
        return core_errf(err, "'%s' is a compatibility name for '%s': %s", name, target, e2);
    }
    return core_errf(err, "model '%s' not found (looked in %s/models and %s/models); "
                     "give a model directory, or run 'tunery models list'", name, core_data_dir(), core_share_dir());
}
