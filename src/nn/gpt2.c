/* gpt2.c: the GPT-2 model: parameters in one allocation, the training
 * forward and backward as straight-line calls to the layer kernels
 * (layers.c) and the matmul dispatcher (matmul.c), llm.c style.
 *
 * Memory is allocated once and reused (first touch of a fresh page costs
 * ~60x a rewrite on these VMs): activations are sized for the largest B*T
 * seen and kept; backward needs only one layer's worth of activation
 * gradients because it walks the layers one at a time; the LM head's
 * (B, T, Vp) logits buffer is turned into the loss gradient in place and is
 * the only vocabulary-sized activation.
 *
 * Checkpoint I/O lives in st_gpt2.c, AdamW in adamw.c.
 */
#include "nn/gpt2_impl.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

nn_profile_t nn_profile;

double nn_profile_clock(void)
{
    if (nn_profile.enabled != NN_PROFILE_CPU) return omp_get_wtime();
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void *gpt2_alloc_big(size_t bytes, int zero)
{
    const size_t huge = (size_t)2 << 20;
    void *p = NULL;
    if (bytes < huge) return zero ? calloc(1, bytes ? bytes : 1) : malloc(bytes ? bytes : 1);
    if (posix_memalign(&p, huge, bytes)) return NULL;
    madvise(p, bytes, MADV_HUGEPAGE);   /* advice only: fine if refused */
    if (zero) memset(p, 0, bytes);
    return p;
}

/* wte wpe ln1w ln1b qkvw qkvb attprojw attprojb ln2w ln2b fcw fcb fcprojw fcprojb lnfw lnfb */
const int gpt2_param_is_matrix[GPT2_NUM_PARAM_TENSORS] = {1, 1, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0};

size_t gpt2_param_sizes(gpt2_t *m)
{
    const gpt2_config_t *c = &m->config;
    size_t Vp = c->padded_vocab_size, C = c->channels, L = c->num_layers, maxT = c->max_seq_len;
    size_t *s = m->param_sizes;
    s[0] = Vp * C;     s[1] = maxT * C;
    s[2] = L * C;      s[3] = L * C;
    s[4] = L * 3 * C * C; s[5] = L * 3 * C;
    s[6] = L * C * C;  s[7] = L * C;
    s[8] = L * C;      s[9] = L * C;
    s[10] = L * 4 * C * C; s[11] = L * 4 * C;
    s[12] = L * C * 4 * C; s[13] = L * C;
    s[14] = C;         s[15] = C;
    size_t n = 0;
    for (int i = 0; i < GPT2_NUM_PARAM_TENSORS; i++) n += s[i];
    return n;
}

static void gpt2_point_params(gpt2_params_t *p, float *mem, const size_t *sizes)
{
    float **ptrs[GPT2_NUM_PARAM_TENSORS] = {
        &p->wte, &p->wpe, &p->ln1w, &p->ln1b, &p->qkvw, &p->qkvb, &p->attprojw, &p->attprojb,
        &p->ln2w, &p->ln2b, &p->fcw, &p->fcb, &p->fcprojw, &p->fcprojb, &p->lnfw, &p->lnfb};
    for (int i = 0; i < GPT2_NUM_PARAM_TENSORS; i++) {
        *ptrs[i] = mem;
        mem += sizes[i];
    }
}

int gpt2_create(gpt2_t *m, const gpt2_config_t *cfg, char *err)
{
    memset(m, 0, sizeof *m);
    if (cfg->num_layers < 1 || cfg->num_heads < 1 || cfg->channels < 1 || cfg->vocab_size < 1 ||
        cfg->max_seq_len < 1)
        return core_errf(err, "invalid GPT-2 configuration: layers, heads, channels, vocabulary and context must all be positive");
    if (cfg->channels % cfg->num_heads)
        return core_errf(err, "invalid GPT-2 configuration: %d channels do not split into %d heads",
                         cfg->channels, cfg->num_heads);
    if (cfg->num_layers > 1024 || cfg->channels > 65536 || cfg->vocab_size > (1 << 24) ||
        cfg->max_seq_len > (1 << 20))
        return core_errf(err, "GPT-2 configuration too large (layers %d, channels %d, vocabulary %d, context %d)",
                         cfg->num_layers, cfg->channels, cfg->vocab_size, cfg->max_seq_len);
    m->config = *cfg;
    m->config.padded_vocab_size = (cfg->vocab_size + 127) / 128 * 128;
    m->num_parameters = gpt2_param_sizes(m);
    m->params_memory = gpt2_alloc_big(m->num_parameters * sizeof(float), 1);
    if (!m->params_memory)
        return core_errf(err, "out of memory allocating %zu parameters (%.1f MB)", m->num_parameters,
                         m->num_parameters * 4.0 / 1e6);
    gpt2_point_params(&m->params, m->params_memory, m->param_sizes);
    return 0;
}

/* splitmix64 (core) + Box-Muller: deterministic for a seed, independent of threads. */
static void fill_normal(float *x, size_t n, float std, uint64_t *s)
{
    for (size_t i = 0; i < n; i += 2) {
        double u1 = ((core_splitmix64(s) >> 11) + 1.0) * 0x1.0p-53;
        double u2 = (core_splitmix64(s) >> 11) * 0x1.0p-53;
        double r = sqrt(-2.0 * log(u1)), a = 6.283185307179586 * u2;
        x[i] = (float)(std * r * cos(a));
        if (i + 1 < n) x[i + 1] = (float)(std * r * sin(a));
    }
}

void gpt2_init_random(gpt2_t *m, uint64_t seed)
{
    const gpt2_config_t *c = &m->config;
    gpt2_params_t *p = &m->params;
    uint64_t s = seed;
    memset(m->params_memory, 0, m->num_parameters * sizeof(float));
    float resid_std = 0.02f / sqrtf(2.0f * c->num_layers);
    fill_normal(p->wte, (size_t)c->vocab_size * c->channels, 0.02f, &s); /* padded rows stay 0 */
    fill_normal(p->wpe, m->param_sizes[1], 0.01f, &s);
    fill_normal(p->qkvw, m->param_sizes[4], 0.02f, &s);
    fill_normal(p->attprojw, m->param_sizes[6], resid_std, &s);
    fill_normal(p->fcw, m->param_sizes[10], 0.02f, &s);
    fill_normal(p->fcprojw, m->param_sizes[12], resid_std, &s);
    for (size_t i = 0; i < m->param_sizes[2]; i++) p->ln1w[i] = p->ln2w[i] = 1.0f;
    for (int i = 0; i < c->channels; i++) p->lnfw[i] = 1.0f;
}

static void gpt2_train_free(gpt2_train_state_t *s)
{
    if (!s) return;
    free(s->acts_memory);
    free(s->dacts_memory);
    free(s->inputs);
    free(s->live_rows);
    free(s->m);
    free(s->v);
    free(s);
}

void gpt2_free(gpt2_t *m)
{
    free(m->params_memory);
    free(m->grads_memory);
    if (m->train) {
        free(m->out_losses);
        free(m->out_argmax);
        gpt2_train_free(m->train);
    }
    memset(m, 0, sizeof *m);
}

/* Size the activations for B*T rows (only ever grows). 0 or -1 on OOM. */
static int gpt2_acts_reserve(gpt2_t *m, size_t BT)
{
    if (!m->train) {
        m->train = calloc(1, sizeof *m->train);
        if (!m->train) return -1;
    }
    gpt2_train_state_t *s = m->train;
    if (BT <= s->cap_bt) return 0;
    const gpt2_config_t *c = &m->config;
    size_t L = c->num_layers, C = c->channels, NH = c->num_heads, Vp = c->padded_vocab_size;
    size_t sizes[] = {
        BT * C,                                   /* encoded */
        L * BT * C, L * BT, L * BT,               /* ln1, mean, rstd */
        L * BT * 3 * C, L * BT * C, L * NH * BT,  /* qkv, atty, att_lse */
        L * BT * C,                               /* residual2 */
        L * BT * C, L * BT, L * BT,               /* ln2, mean, rstd */
        L * BT * 4 * C, L * BT * 4 * C,           /* fch, fch_gelu */
        L * BT * C,                               /* residual3 */
        BT * C, BT, BT,                           /* lnf, mean, rstd */
        BT * Vp, BT * C,                          /* logits, scratch */
    };
    float **ptrs[] = {&s->encoded, &s->ln1, &s->ln1_mean, &s->ln1_rstd, &s->qkv, &s->atty, &s->att_lse,
                      &s->residual2, &s->ln2, &s->ln2_mean, &s->ln2_rstd, &s->fch, &s->fch_gelu,
                      &s->residual3, &s->lnf, &s->lnf_mean, &s->lnf_rstd, &s->logits, &s->scratch};
    size_t n = sizeof sizes / sizeof *sizes, total = 0;
    for (size_t i = 0; i < n; i++) total += sizes[i];
    size_t dsizes[] = {BT * C, BT * C, BT * C, BT * 3 * C, BT * 4 * C};
    float **dptrs[] = {&s->dresidual, &s->dln, &s->datty, &s->dqkv, &s->dfch};
    size_t dn = sizeof dsizes / sizeof *dsizes, dtotal = 0;
    for (size_t i = 0; i < dn; i++) dtotal += dsizes[i];

    float *acts = gpt2_alloc_big(total * sizeof(float), 0);
    float *dacts = gpt2_alloc_big(dtotal * sizeof(float), 0);
    int *inputs = malloc(BT * sizeof(int)), *live = malloc(BT * sizeof(int));
    float *losses = malloc(BT * sizeof(float));
    int *argmax = malloc(BT * sizeof(int));
    if (!acts || !dacts || !inputs || !losses || !argmax || !live) {
        free(acts); free(dacts); free(inputs); free(losses); free(argmax); free(live);
        return -1;
    }
    free(s->acts_memory); free(s->dacts_memory); free(s->inputs); free(s->live_rows);
    s->live_rows = live;
    free(m->out_losses); free(m->out_argmax);
    s->acts_memory = acts; s->acts_floats = total;
    s->dacts_memory = dacts; s->dacts_floats = dtotal;
    s->inputs = inputs;
    m->out_losses = losses;
    m->out_argmax = argmax;
    for (size_t i = 0; i < n; i++) { *ptrs[i] = acts; acts += sizes[i]; }
    for (size_t i = 0; i < dn; i++) { *dptrs[i] = dacts; dacts += dsizes[i]; }
    s->cap_bt = BT;
    s->has_targets = 0;
    return 0;
}

static int gpt2_grads_alloc(gpt2_t *m)
{
    if (m->grads_memory) return 0;
    m->grads_memory = gpt2_alloc_big(m->num_parameters * sizeof(float), 1);
    if (!m->grads_memory) return -1;
    gpt2_point_params(&m->grads, m->grads_memory, m->param_sizes);
    return 0;
}

void gpt2_zero_grad(gpt2_t *m)
{
    if (!m->grads_memory) {
        gpt2_grads_alloc(m);
        return;
    }
    if (m->train) {
        m->train->grad_coef = 0.0f;
        if (m->train->grads_zero) return;
    }
    memset(m->grads_memory, 0, m->num_parameters * sizeof(float));
    if (m->train) m->train->grads_zero = 1;
}

const float *gpt2_logits(const gpt2_t *m)
{
    if (!m->train || m->train->has_targets || !m->train->B) return NULL;
    return m->train->logits;
}

size_t gpt2_train_bytes(const gpt2_t *m)
{
    const gpt2_train_state_t *s = m->train;
    if (!s) return 0;
    size_t n = (s->acts_floats + s->dacts_floats) * sizeof(float) + s->cap_bt * 2 * sizeof(int) +
               s->cap_bt * sizeof(float);
    if (s->m) n += 2 * m->num_parameters * sizeof(float);
    return n;
}

double gpt2_step_flops(const gpt2_config_t *c, int B, int T)
{
    double BT = (double)B * T, C = c->channels, L = c->num_layers, V = c->vocab_size;
    double linear = 6.0 * BT * 12.0 * C * C * L;          /* qkv, attproj, fc, fcproj: fwd + 2 bwd */
    double head = 6.0 * BT * C * V;                       /* tied LM head, real vocabulary */
    double attn = 7.0 * B * (double)T * (T + 1) * C * L;  /* fwd QK,AV; bwd QK again, dP, dQ, dK, dV */
    return linear + head + attn;
}

/* profiling: a clock read around each kernel, only when enabled */
#define PROF_START() double prof_t0_ = nn_profile.enabled ? nn_profile_clock() : 0.0
#define PROF_END(field) do { if (nn_profile.enabled) { double t1_ = nn_profile_clock(); \
    nn_profile.field += t1_ - prof_t0_; prof_t0_ = t1_; } } while (0)

float gpt2_forward(gpt2_t *m, const int *inputs, const int *targets, const float *loss_weights, int B, int T)
{
    const gpt2_config_t *c = &m->config;
    int L = c->num_layers, C = c->channels, NH = c->num_heads, V = c->vocab_size, Vp = c->padded_vocab_size;
    if (B < 1 || T < 1 || T > c->max_seq_len) return NAN;
    for (int i = 0; i < B * T; i++)
        if (inputs[i] < 0 || inputs[i] >= V || (targets && targets[i] >= V)) return NAN;
    if (gpt2_acts_reserve(m, (size_t)B * T)) return NAN;
    gpt2_train_state_t *s = m->train;
    const gpt2_params_t *p = &m->params;
    size_t BT = (size_t)B * T;
    s->B = B;
    s->T = T;
    memcpy(s->inputs, inputs, BT * sizeof(int));

    PROF_START();
    encoder_forward(s->encoded, inputs, p->wte, p->wpe, B, T, C);
    PROF_END(other);
    for (int l = 0; l < L; l++) {
        const float *residual = l == 0 ? s->encoded : s->residual3 + (l - 1) * BT * C;
        float *ln1 = s->ln1 + l * BT * C, *ln1_mean = s->ln1_mean + l * BT, *ln1_rstd = s->ln1_rstd + l * BT;
        float *qkv = s->qkv + l * BT * 3 * C, *atty = s->atty + l * BT * C;
        float *lse = s->att_lse + l * BT * NH, *residual2 = s->residual2 + l * BT * C;
        float *ln2 = s->ln2 + l * BT * C, *ln2_mean = s->ln2_mean + l * BT, *ln2_rstd = s->ln2_rstd + l * BT;
        float *fch = s->fch + l * BT * 4 * C, *fch_gelu = s->fch_gelu + l * BT * 4 * C;
        float *residual3 = s->residual3 + l * BT * C;
        size_t lC = (size_t)l * C, lCC = (size_t)l * C * C;

        layernorm_forward(ln1, ln1_mean, ln1_rstd, residual, p->ln1w + lC, p->ln1b + lC, BT, C);
        PROF_END(layernorm);
        matmul_forward(qkv, ln1, p->qkvw + 3 * lCC, p->qkvb + 3 * lC, BT, C, 3 * C);
        PROF_END(matmul);
        attention_forward(atty, lse, qkv, B, T, C, NH);
        PROF_END(attention);
        matmul_forward(s->scratch, atty, p->attprojw + lCC, p->attprojb + lC, BT, C, C);
        PROF_END(matmul);
        residual_forward(residual2, residual, s->scratch, BT * C);
        PROF_END(other);
        layernorm_forward(ln2, ln2_mean, ln2_rstd, residual2, p->ln2w + lC, p->ln2b + lC, BT, C);
        PROF_END(layernorm);
        matmul_forward(fch, ln2, p->fcw + 4 * lCC, p->fcb + 4 * lC, BT, C, 4 * C);
        PROF_END(matmul);
        gelu_forward(fch_gelu, fch, BT * 4 * C);
        PROF_END(gelu);
        matmul_forward(s->scratch, fch_gelu, p->fcprojw + 4 * lCC, p->fcprojb + lC, BT, 4 * C, C);
        PROF_END(matmul);
        residual_forward(residual3, residual2, s->scratch, BT * C);
        PROF_END(other);
    }
    layernorm_forward(s->lnf, s->lnf_mean, s->lnf_rstd, s->residual3 + (L - 1) * BT * C, p->lnfw, p->lnfb, BT, C);
    PROF_END(layernorm);
    matmul_forward(s->logits, s->lnf, p->wte, NULL, BT, C, Vp);
    PROF_END(lmhead_matmul);

    s->has_targets = targets != NULL;
    m->mean_loss = 0.0f;
    if (!targets) return 0.0f;
    double wsum = 0.0;
    double lsum = crossentropy_forward(s->logits, m->out_losses, m->out_argmax, targets, loss_weights,
                                       BT, V, Vp, &wsum);
    PROF_END(crossentropy);
    m->mean_loss = wsum > 0.0 ? (float)(lsum / wsum) : 0.0f;
    s->n_live = 0;
    s->lm_compacted = 0;
    for (size_t i = 0; i < BT; i++)
        if (targets[i] >= 0 && (!loss_weights || loss_weights[i] != 0.0f)) s->live_rows[s->n_live++] = (int)i;
    return m->mean_loss;
}

void gpt2_backward(gpt2_t *m, float grad_scale)
{
    gpt2_train_state_t *s = m->train;
    if (!s || !s->has_targets || gpt2_grads_alloc(m)) return;
    gpt2_grads_sync(m);
    s->grads_zero = 0;
    const gpt2_config_t *c = &m->config;
    int L = c->num_layers, C = c->channels, NH = c->num_heads, Vp = c->padded_vocab_size;
    int B = s->B, T = s->T;
    size_t BT = (size_t)B * T;
    const gpt2_params_t *p = &m->params;
    gpt2_params_t *g = &m->grads;

    PROF_START();
    /* LM head. dlogits holds w_i (p - y) unscaled; rows with weight 0
     * (padding, ignored targets) are all zero, so the live rows are moved to
     * the front and only they go through the two GEMMs. grad_scale goes on
     * the (rows, C) side, not the (rows, Vp) one: dwte += dlogits^T (scale
     * lnf), dlnf = scale (dlogits wte). */
    int nl = s->n_live;
    size_t rowb = (size_t)Vp * sizeof(float);
    if (!s->lm_compacted)
        for (int k = 0; k < nl; k++)
            if (s->live_rows[k] != k) memcpy(s->logits + (size_t)k * Vp, s->logits + (size_t)s->live_rows[k] * Vp, rowb);
    s->lm_compacted = 1;
    float *scaled = s->scratch, *dlive = s->datty, *dlnf = s->dln;
    int par = (size_t)BT * C >= ((size_t)1 << 19);   /* small: one thread (see layers.c) */
    #pragma omp parallel for schedule(static) if (par)
    for (int k = 0; k < nl; k++) {
        const float *x = s->lnf + (size_t)s->live_rows[k] * C;
        for (int c = 0; c < C; c++) { scaled[(size_t)k * C + c] = grad_scale * x[c]; dlive[(size_t)k * C + c] = 0.0f; }
    }
    if (nl) matmul_backward(dlive, g->wte, NULL, s->logits, scaled, p->wte, nl, C, Vp);
    #pragma omp parallel for simd schedule(static) if (par)
    for (size_t i = 0; i < BT * C; i++) { dlnf[i] = 0.0f; s->dresidual[i] = 0.0f; }
    #pragma omp parallel for schedule(static) if (par)
    for (int k = 0; k < nl; k++) {
        float *d = dlnf + (size_t)s->live_rows[k] * C;
        for (int c = 0; c < C; c++) d[c] = grad_scale * dlive[(size_t)k * C + c];
    }
    PROF_END(lmhead_matmul);
    layernorm_backward(s->dresidual, g->lnfw, g->lnfb, dlnf, s->residual3 + (L - 1) * BT * C, p->lnfw,
                       s->lnf_mean, s->lnf_rstd, BT, C);
    PROF_END(layernorm);

    for (int l = L - 1; l >= 0; l--) {
        const float *residual = l == 0 ? s->encoded : s->residual3 + (l - 1) * BT * C;
        const float *ln1 = s->ln1 + l * BT * C, *ln1_mean = s->ln1_mean + l * BT, *ln1_rstd = s->ln1_rstd + l * BT;
        const float *qkv = s->qkv + l * BT * 3 * C, *atty = s->atty + l * BT * C;
        const float *lse = s->att_lse + l * BT * NH, *residual2 = s->residual2 + l * BT * C;
        const float *ln2 = s->ln2 + l * BT * C, *ln2_mean = s->ln2_mean + l * BT, *ln2_rstd = s->ln2_rstd + l * BT;
        const float *fch = s->fch + l * BT * 4 * C, *fch_gelu = s->fch_gelu + l * BT * 4 * C;
        size_t lC = (size_t)l * C, lCC = (size_t)l * C * C;

        /* residual3 = residual2 + fcproj(gelu(fc(ln2(residual2)))) */
        memset(s->dfch, 0, BT * 4 * C * sizeof(float));
        PROF_END(other);
        matmul_backward(s->dfch, g->fcprojw + 4 * lCC, g->fcprojb + lC, s->dresidual, fch_gelu,
                        p->fcprojw + 4 * lCC, BT, 4 * C, C);
        PROF_END(matmul);
        gelu_backward(s->dfch, fch, s->dfch, BT * 4 * C);
        memset(s->dln, 0, BT * C * sizeof(float));
        PROF_END(gelu);
        matmul_backward(s->dln, g->fcw + 4 * lCC, g->fcb + 4 * lC, s->dfch, ln2, p->fcw + 4 * lCC, BT, C, 4 * C);
        PROF_END(matmul);
        layernorm_backward(s->dresidual, g->ln2w + lC, g->ln2b + lC, s->dln, residual2, p->ln2w + lC,
                           ln2_mean, ln2_rstd, BT, C);
        PROF_END(layernorm);
        /* residual2 = residual + attproj(attention(qkv(ln1(residual)))) */
        memset(s->datty, 0, BT * C * sizeof(float));
        PROF_END(other);
        matmul_backward(s->datty, g->attprojw + lCC, g->attprojb + lC, s->dresidual, atty,
                        p->attprojw + lCC, BT, C, C);
        PROF_END(matmul);
        attention_backward(s->dqkv, s->datty, qkv, atty, lse, B, T, C, NH);
        memset(s->dln, 0, BT * C * sizeof(float));
        PROF_END(attention);
        matmul_backward(s->dln, g->qkvw + 3 * lCC, g->qkvb + 3 * lC, s->dqkv, ln1, p->qkvw + 3 * lCC, BT, C, 3 * C);
        PROF_END(matmul);
        layernorm_backward(s->dresidual, g->ln1w + lC, g->ln1b + lC, s->dln, residual, p->ln1w + lC,
                           ln1_mean, ln1_rstd, BT, C);
        PROF_END(layernorm);
    }
    encoder_backward(g->wte, g->wpe, s->dresidual, s->inputs, B, T, C);
    PROF_END(other);
}
