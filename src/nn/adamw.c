/* adamw.c: the optimizer side of training: global-norm gradient clipping,
 * AdamW with torch.optim.AdamW semantics (decoupled weight decay, applied to
 * the 2-D tensors only, as nanoGPT and llm.c do), learning-rate schedules,
 * and the optimizer state file that makes resume exact.
 *
 * The state file is a small header followed by m and v as raw fp32:
 *   magic "TNRYADAM", u32 version, u32 reserved, u64 num_parameters,
 *   i32 L, C, V, maxT   then m[num_parameters], v[num_parameters]
 * little-endian (every machine we run on). It is written to a temp file,
 * fsync'd and renamed, so a crash never leaves half of one.
 */
#include "nn/gpt2_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ADAM_MAGIC "TNRYADAM"
#define ADAM_VERSION 1

int gpt2_optim_alloc(gpt2_t *m)
{
    gpt2_train_state_t *s = m->train;
    if (!s) {
        s = m->train = calloc(1, sizeof *m->train);
        if (!s) return -1;
    }
    if (s->m) return 0;
    s->m = gpt2_alloc_big(m->num_parameters * sizeof(float), 1);
    s->v = gpt2_alloc_big(m->num_parameters * sizeof(float), 1);
    if (!s->m || !s->v) {
        free(s->m); free(s->v);
        s->m = s->v = NULL;
        return -1;
    }
    return 0;
}

/* Clipping is applied lazily: the factor is kept in train->grad_coef and
 * folded into gpt2_update's pass over the gradients (one 4-bytes-per-
 * parameter read-modify-write pass less per step; 500 MB at 124M).
 * gpt2_grads_sync() applies it for anyone who reads the gradients between. */
void gpt2_grads_sync(gpt2_t *m)
{
    gpt2_train_state_t *s = m->train;
    if (!s || !m->grads_memory || s->grad_coef == 0.0f || s->grad_coef == 1.0f) {
        if (s) s->grad_coef = 0.0f;
        return;
    }
    float coef = s->grad_coef, *g = m->grads_memory;
    #pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < m->num_parameters; i++) g[i] *= coef;
    s->grad_coef = 0.0f;
}

float gpt2_clip_grad_norm(gpt2_t *m, float max_norm)
{
    if (!m->grads_memory) return 0.0f;
    if (!m->train && !(m->train = calloc(1, sizeof *m->train))) return NAN;
    gpt2_grads_sync(m);
    const float *g = m->grads_memory;
    size_t n = m->num_parameters;
    /* fixed chunks summed in order: the same bits whatever the thread count */
    enum { CHUNK = 1 << 16 };
    size_t nchunk = (n + CHUNK - 1) / CHUNK;
    double *part = malloc(nchunk * sizeof(double));
    if (!part) return NAN;
    #pragma omp parallel for schedule(static)
    for (size_t k = 0; k < nchunk; k++) {
        size_t i0 = k * CHUNK, i1 = i0 + CHUNK < n ? i0 + CHUNK : n;
        float acc = 0.0f;
        #pragma omp simd reduction(+:acc)
        for (size_t i = i0; i < i1; i++) acc += g[i] * g[i];
        part[k] = acc;
    }
    double sum = 0.0;
    for (size_t k = 0; k < nchunk; k++) sum += part[k];
    free(part);
    float norm = (float)sqrt(sum);
    /* torch.nn.utils.clip_grad_norm_: coef = max_norm / (norm + 1e-6) */
    if (max_norm > 0.0f && norm > max_norm) m->train->grad_coef = max_norm / (norm + 1e-6f);
    return norm;
}

void gpt2_update(gpt2_t *m, const adamw_config_t *opt, int step)
{
    if (!m->grads_memory || gpt2_optim_alloc(m)) return;
    gpt2_train_state_t *s = m->train;
    float *mm = s->m, *vv = s->v;
    float b1 = opt->beta1, b2 = opt->beta2, lr = opt->lr, eps = opt->eps;
    float gc = s->grad_coef != 0.0f ? s->grad_coef : 1.0f;
    /* torch: p *= 1 - lr wd; p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps) */
    float bc1 = 1.0f - powf(b1, (float)step), bc2 = 1.0f - powf(b2, (float)step);
    float step_size = lr / bc1, inv_bc2_sqrt = 1.0f / sqrtf(bc2);
    double t0 = nn_profile.enabled ? nn_profile_clock() : 0.0;
    size_t off = 0;
    for (int t = 0; t < GPT2_NUM_PARAM_TENSORS; t++) {
        size_t n = m->param_sizes[t];
        float decay = gpt2_param_is_matrix[t] ? 1.0f - lr * opt->weight_decay : 1.0f;
        float *restrict p = m->params_memory + off, *restrict g = m->grads_memory + off;
        float *restrict mt = mm + off, *restrict vt = vv + off;
        /* the gradients are consumed: zeroed here, so the next zero_grad is free */
        #pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++) {
            float gi = g[i] * gc;
            float mi = b1 * mt[i] + (1.0f - b1) * gi;
            float vi = b2 * vt[i] + (1.0f - b2) * gi * gi;
            mt[i] = mi;
            vt[i] = vi;
            g[i] = 0.0f;
            p[i] = p[i] * decay - step_size * mi / (sqrtf(vi) * inv_bc2_sqrt + eps);
        }
        off += n;
    }
    s->grad_coef = 0.0f;
    s->grads_zero = 1;
    if (nn_profile.enabled) nn_profile.adamw += nn_profile_clock() - t0;
}

float lr_at(const lr_schedule_t *s, int step)
{
    if (s->warmup_steps > 0 && step <= s->warmup_steps)
        return s->max_lr * step / s->warmup_steps;
    if (s->kind == LR_CONSTANT || s->total_steps <= s->warmup_steps) return s->max_lr;
    float frac = (float)(step - s->warmup_steps) / (float)(s->total_steps - s->warmup_steps);
    if (frac > 1.0f) frac = 1.0f;
    if (frac < 0.0f) frac = 0.0f;
    if (s->kind == LR_LINEAR) return s->max_lr + (s->min_lr - s->max_lr) * frac;
    float coeff = 0.5f * (1.0f + cosf((float)M_PI * frac));
    return s->min_lr + coeff * (s->max_lr - s->min_lr);
}

/* ---------------------------------------------------------------------- */
typedef struct {
    char magic[8];
    uint32_t version, reserved;
    uint64_t num_parameters;
    int32_t L, C, V, maxT;
} adam_header_t;

static void adam_header_fill(const gpt2_t *m, adam_header_t *h)
{
    memset(h, 0, sizeof *h);
    memcpy(h->magic, ADAM_MAGIC, 8);
    h->version = ADAM_VERSION;
    h->num_parameters = m->num_parameters;
    h->L = m->config.num_layers;
    h->C = m->config.channels;
    h->V = m->config.vocab_size;
    h->maxT = m->config.max_seq_len;
}


int gpt2_optim_save(const gpt2_t *m, const char *path, char *err)
{
    if (!m->train || !m->train->m)
        return core_errf(err, "no optimizer state to save: run at least one update first");
    adam_header_t h;
    adam_header_fill(m, &h);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return core_errf(err, "cannot create %s: %s", tmp, strerror(errno));
    size_t bytes = m->num_parameters * sizeof(float);
    if (fs_write_full(fd, &h, sizeof h) || fs_write_full(fd, m->train->m, bytes) || fs_write_full(fd, m->train->v, bytes) ||
        fsync(fd)) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return core_errf(err, "cannot write optimizer state %s: %s (disk full?)", path, strerror(e));
    }
    if (close(fd) || rename(tmp, path)) {
        int e = errno;
        unlink(tmp);
        return core_errf(err, "cannot write optimizer state %s: %s", path, strerror(e));
    }
    return fs_fsync_dir_of(path, err);
}

int gpt2_optim_load(gpt2_t *m, const char *path, char *err)
{
    char *data = NULL;
    size_t len = 0;
    if (fs_read_all(path, &data, &len, err)) return -1;
    adam_header_t want, h;
    adam_header_fill(m, &want);
    size_t bytes = m->num_parameters * sizeof(float);
    int rc = 0;
    if (len < sizeof h) {
        rc = core_errf(err, "%s is not an optimizer state file (too short)", path);
        goto done;
    }
    memcpy(&h, data, sizeof h);
    if (memcmp(h.magic, ADAM_MAGIC, 8) || h.version != ADAM_VERSION) {
        rc = core_errf(err, "%s is not a tunery optimizer state file (bad magic or version)", path);
    } else if (h.num_parameters != want.num_parameters || h.L != want.L || h.C != want.C || h.V != want.V ||
               h.maxT != want.maxT) {
        rc = core_errf(err, "optimizer state %s is for another model shape (L=%d C=%d V=%d T=%d, this model L=%d C=%d V=%d T=%d)",
                       path, h.L, h.C, h.V, h.maxT, want.L, want.C, want.V, want.maxT);
    } else if (len != sizeof h + 2 * bytes) {
        rc = core_errf(err, "optimizer state %s is truncated or has trailing bytes (%zu bytes, expected %zu)",
                       path, len, sizeof h + 2 * bytes);
    } else if (gpt2_optim_alloc(m)) {
        rc = core_errf(err, "out of memory for the optimizer state");
    } else {
        memcpy(m->train->m, data + sizeof h, bytes);
        memcpy(m->train->v, data + sizeof h + bytes, bytes);
    }
done:
    free(data);
    return rc;
}
