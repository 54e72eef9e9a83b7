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
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

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

/* One AdamW step over p, g, m, v [i0, i1): torch's formula, the gradient
 * consumed (zeroed, so the next zero_grad is free). The AVX-512 loop does
 * exactly the scalar operations in the same order, each rounded the same way
 * (no fused multiply-add: this file is compiled without contraction, and
 * sqrt and division are IEEE-exact in both), so both paths give the same
 * bits. GCC left the scalar loop scalar (vsqrtss, vdivss): ~8 cycles per
 * parameter, 124M of them a step. */
typedef struct { float gc, b1, b2, c1, c2, decay, step_size, inv_bc2_sqrt, eps; } adamw_k_t;

static inline float adamw_one(float *p, float *g, float *mt, float *vt, const adamw_k_t *k)
{
    float gi = *g * k->gc;
    float mi = k->b1 * *mt + k->c1 * gi;
    float vi = k->b2 * *vt + k->c2 * gi * gi;
    *mt = mi;
    *vt = vi;
    *g = 0.0f;
    return *p * k->decay - k->step_size * mi / (sqrtf(vi) * k->inv_bc2_sqrt + k->eps);
}

static void adamw_range(float *restrict p, float *restrict g, float *restrict mt, float *restrict vt,
                        size_t n, const adamw_k_t *k)
{
    size_t i = 0;
#if defined(__AVX512F__)
    const __m512 gc = _mm512_set1_ps(k->gc), b1 = _mm512_set1_ps(k->b1), b2 = _mm512_set1_ps(k->b2);
    const __m512 c1 = _mm512_set1_ps(k->c1), c2 = _mm512_set1_ps(k->c2), decay = _mm512_set1_ps(k->decay);
    const __m512 ss = _mm512_set1_ps(k->step_size), ib = _mm512_set1_ps(k->inv_bc2_sqrt);
    const __m512 eps = _mm512_set1_ps(k->eps), zero = _mm512_setzero_ps();
    for (; i + 16 <= n; i += 16) {
        __m512 gi = _mm512_mul_ps(_mm512_loadu_ps(g + i), gc);
        __m512 mi = _mm512_add_ps(_mm512_mul_ps(b1, _mm512_loadu_ps(mt + i)), _mm512_mul_ps(c1, gi));
        __m512 vi = _mm512_add_ps(_mm512_mul_ps(b2, _mm512_loadu_ps(vt + i)), _mm512_mul_ps(_mm512_mul_ps(c2, gi), gi));
        _mm512_storeu_ps(mt + i, mi);
        _mm512_storeu_ps(vt + i, vi);
        _mm512_storeu_ps(g + i, zero);
        __m512 den = _mm512_add_ps(_mm512_mul_ps(_mm512_sqrt_ps(vi), ib), eps);
        __m512 upd = _mm512_div_ps(_mm512_mul_ps(ss, mi), den);
        _mm512_storeu_ps(p + i, _mm512_sub_ps(_mm512_mul_ps(_mm512_loadu_ps(p + i), decay), upd));
    }
#endif
    for (; i < n; i++) p[i] = adamw_one(p + i, g + i, mt + i, vt + i, k);
}

/* Blocks of this many parameters are the unit of work: whole vectors, and
 * small enough that both threads get equal shares of every tensor. */
#define ADAMW_BLOCK ((size_t)1 << 14)

void gpt2_update(gpt2_t *m, const adamw_config_t *opt, int step)
{
    if (!m->grads_memory || gpt2_optim_alloc(m)) return;
    gpt2_train_state_t *s = m->train;
    float b1 = opt->beta1, b2 = opt->beta2, lr = opt->lr;
    /* torch: p *= 1 - lr wd; p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps) */
    float bc1 = 1.0f - powf(b1, (float)step), bc2 = 1.0f - powf(b2, (float)step);
    adamw_k_t k = {.gc = s->grad_coef != 0.0f ? s->grad_coef : 1.0f, .b1 = b1, .b2 = b2, .c1 = 1.0f - b1,
                   .c2 = 1.0f - b2, .step_size = lr / bc1, .inv_bc2_sqrt = 1.0f / sqrtf(bc2), .eps = opt->eps};
    double t0 = nn_profile.enabled ? nn_profile_clock() : 0.0;
    /* one parallel region for all tensors: (tensor, block) pairs in order */
    size_t first[GPT2_NUM_PARAM_TENSORS + 1], off[GPT2_NUM_PARAM_TENSORS];
    first[0] = 0;
    for (int t = 0; t < GPT2_NUM_PARAM_TENSORS; t++) {
        off[t] = t ? off[t - 1] + m->param_sizes[t - 1] : 0;
        first[t + 1] = first[t] + (m->param_sizes[t] + ADAMW_BLOCK - 1) / ADAMW_BLOCK;
    }
    size_t nblocks = first[GPT2_NUM_PARAM_TENSORS];
    float wd_decay = 1.0f - lr * opt->weight_decay;
    #pragma omp parallel for schedule(static)
    for (size_t b = 0; b < nblocks; b++) {
        int t = 0;
        while (b >= first[t + 1]) t++;
        size_t i0 = (b - first[t]) * ADAMW_BLOCK, n = m->param_sizes[t] - i0;
        if (n > ADAMW_BLOCK) n = ADAMW_BLOCK;
        adamw_k_t kt = k;
        kt.decay = gpt2_param_is_matrix[t] ? wd_decay : 1.0f;
        size_t at = off[t] + i0;
        adamw_range(m->params_memory + at, m->grads_memory + at, s->m + at, s->v + at, n, &kt);
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
