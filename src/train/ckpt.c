/* ckpt.c: checkpoints that survive kill -9 and resume bit-exactly.
 *
 * A checkpoint is a directory work_dir/ckpt-step-N/ holding
 *   model.safetensors + config.json   the weights (gpt2_save)
 *   optimizer.bin                     AdamW m and v (gpt2_optim_save)
 *   state.json                        step, resolved hyper-parameters, seed,
 *                                     data hashes, counters; the data order is
 *                                     not stored because it is a pure function
 *                                     of (seed, epoch), see trainer.c
 *   compiled_results.csv              every results row up to step N
 * It is written as ckpt-step-N.tmp/, each file fsync'd, then renamed to
 * ckpt-step-N and the work directory fsync'd: a directory named ckpt-step-N
 * is always complete. Older checkpoints are deleted only after the new one is
 * in place, keeping the newest CKPT_KEEP.
 */
#include "train/train_ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CKPT_KEEP 3

static int fsync_path(const char *path, char *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return core_errf(err, "cannot open %s to sync it: %s", path, strerror(errno));
    int rc = fsync(fd);
    close(fd);
    return rc ? core_errf(err, "cannot sync %s: %s", path, strerror(errno)) : 0;
}

int ckpt_state_write(const char *path, const ckpt_state_t *s, char *err)
{
    json_t *o = json_pack("{s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:s, s:s, s:I, s:I, s:s}",
                          "version", 1, "step", s->step, "total_steps", s->total_steps,
                          "n_epochs", s->n_epochs, "batch_size", s->batch_size,
                          "learning_rate", s->learning_rate, "learning_rate_multiplier", s->learning_rate_multiplier,
                          "prompt_loss_weight", s->prompt_loss_weight, "pretrain_learning_rate", s->pretrain_learning_rate,
                          "train_sha256", s->train_sha256, "valid_sha256", s->valid_sha256,
                          "elapsed_tokens", (json_int_t)s->elapsed_tokens, "elapsed_examples", (json_int_t)s->elapsed_examples,
                          "data_order", "per-epoch Fisher-Yates shuffle seeded by splitmix64(seed, epoch)");
    if (!o) return core_errf(err, "out of memory writing checkpoint state");
    /* the seed is a uint64: as a string, JSON numbers are doubles to many readers */
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)s->seed);
    json_object_set_new(o, "seed", json_string(seed));
    json_object_set_new(o, "matmul_precision", json_string(s->bf16 ? "bf16" : "fp32"));
    int rc = fs_write_json(path, o, JSON_INDENT(2) | JSON_REAL_PRECISION(17), err);
    json_decref(o);
    return rc;
}

int ckpt_state_read(const char *path, ckpt_state_t *s, char *err)
{
    json_error_t je;
    json_t *o = json_load_file(path, 0, &je);
    if (!o) return core_errf(err, "cannot read checkpoint state %s: %s", path, je.text);
    memset(s, 0, sizeof *s);
    json_int_t et = 0, ee = 0;
    const char *ts = "", *vs = "", *seed = "0";
    int rc = json_unpack_ex(o, &je, 0, "{s:i, s:i, s:i, s:i, s:F, s:F, s:F, s:F, s:s, s:s, s:I, s:I, s:s}",
                            "step", &s->step, "total_steps", &s->total_steps, "n_epochs", &s->n_epochs,
                            "batch_size", &s->batch_size, "learning_rate", &s->learning_rate,
                            "learning_rate_multiplier", &s->learning_rate_multiplier,
                            "prompt_loss_weight", &s->prompt_loss_weight, "pretrain_learning_rate", &s->pretrain_learning_rate,
                            "train_sha256", &ts, "valid_sha256", &vs,
                            "elapsed_tokens", &et, "elapsed_examples", &ee, "seed", &seed);
    if (rc == 0) {
        snprintf(s->train_sha256, sizeof s->train_sha256, "%s", ts);
        snprintf(s->valid_sha256, sizeof s->valid_sha256, "%s", vs);
        s->elapsed_tokens = et;
        s->elapsed_examples = ee;
        s->seed = strtoull(seed, NULL, 10);
        json_t *mp = json_object_get(o, "matmul_precision");
        s->bf16 = json_is_string(mp) && !strcmp(json_string_value(mp), "bf16");
    }
    json_decref(o);
    return rc ? core_errf(err, "checkpoint state %s is damaged: %s", path, je.text) : 0;
}

/* Newest complete checkpoint: the largest N with ckpt-step-N/state.json. */
int ckpt_find_latest(const char *work_dir, char *out, size_t outlen)
{
    DIR *d = opendir(work_dir);
    if (!d) return -1;
    struct dirent *de;
    int best = -1;
    while ((de = readdir(d))) {
        int n;
        char tail;
        if (sscanf(de->d_name, "ckpt-step-%d%c", &n, &tail) != 1 || n <= best) continue;
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s/state.json", work_dir, de->d_name);
        if (fs_exists(p)) best = n;
    }
    closedir(d);
    if (best >= 0) snprintf(out, outlen, "%s/ckpt-step-%d", work_dir, best);
    return best;
}

/* Delete every ckpt-step-N older than the newest CKPT_KEEP, and stale .tmp dirs. */
static void ckpt_prune(const char *work_dir, int newest)
{
    DIR *d = opendir(work_dir);
    if (!d) return;
    int steps[4096], n = 0;
    struct dirent *de;
    char p[PATH_MAX], err[CORE_ERR_LEN];
    while ((de = readdir(d))) {
        int s, k = 0;
        if (sscanf(de->d_name, "ckpt-step-%d%n", &s, &k) != 1) continue;
        if (!strcmp(de->d_name + k, ".tmp") && s != newest) {
            snprintf(p, sizeof p, "%s/%s", work_dir, de->d_name);
            fs_rm_rf(p, err);
        } else if (!de->d_name[k] && n < 4096) {
            steps[n++] = s;
        }
    }
    closedir(d);
    for (int i = 0; i < n; i++) {
        int newer = 0;
        for (int j = 0; j < n; j++) newer += steps[j] > steps[i];
        if (newer >= CKPT_KEEP) {
            snprintf(p, sizeof p, "%s/ckpt-step-%d", work_dir, steps[i]);
            fs_rm_rf(p, err);
        }
    }
}

int ckpt_write(const char *work_dir, const gpt2_t *m, const ckpt_state_t *s, const buf_t *csv, char *out_dir, char *err)
{
    char tmp[PATH_MAX], fin[PATH_MAX], p[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s/ckpt-step-%d.tmp", work_dir, s->step);
    snprintf(fin, sizeof fin, "%s/ckpt-step-%d", work_dir, s->step);
    if (fs_exists(tmp) && fs_rm_rf(tmp, err)) return -1;
    if (fs_mkdir_p(tmp, 0755, err)) return -1;
    if (gpt2_save(m, tmp, err)) return -1;
    snprintf(p, sizeof p, "%s/optimizer.bin", tmp);
    if (gpt2_optim_save(m, p, err)) return -1;
    snprintf(p, sizeof p, "%s/compiled_results.csv", tmp);
    if (fs_write_atomic(p, csv->data ? csv->data : "", csv->len, err)) return -1;
    snprintf(p, sizeof p, "%s/state.json", tmp);
    if (ckpt_state_write(p, s, err)) return -1;
    if (fsync_path(tmp, err)) return -1;
    if (fs_exists(fin) && fs_rm_rf(fin, err)) return -1;  /* same step written again (re-run after resume) */
    if (rename(tmp, fin)) return core_errf(err, "cannot rename %s to %s: %s", tmp, fin, strerror(errno));
    if (fsync_path(work_dir, err)) return -1;
    ckpt_prune(work_dir, s->step);
    if (out_dir) snprintf(out_dir, PATH_MAX, "%s", fin);
    return 0;
}
