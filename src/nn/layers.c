/* layers.c: the non-matmul layers of GPT-2, forward and backward side by side
 * (llm.c style): token + position encoder, LayerNorm, causal multi-head
 * attention, GELU (tanh), residual add, and the fused softmax + weighted
 * cross-entropy of the LM head.
 *
 * Everything that is not a GEMM must be a small fraction of a training step,
 * so each kernel is one or two passes over its data, parallel over rows with
 * OpenMP, with inner loops the compiler vectorises (reductions marked
 * `omp simd`, exp/tanh through the branch-free nn_expf). Parameter gradients
 * that sum over rows (LayerNorm weight/bias, embeddings) are summed by a
 * per-channel loop instead of per-thread partials, so a step gives the same
 * bits whatever the thread count.
 *
 * Shapes: B batch, T time, C channels, NH heads, hs = C / NH.
 */
#include "nn/nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ----------------------------------------------------------------------
 * encoder: out[b,t] = wte[inp[b,t]] + wpe[t]
 * ---------------------------------------------------------------------- */
void encoder_forward(float *out, const int *inp, const float *wte, const float *wpe, int B, int T, int C)
{
    #pragma omp parallel for schedule(static)
    for (int bt = 0; bt < B * T; bt++) {
        float *o = out + (size_t)bt * C;
        const float *we = wte + (size_t)inp[bt] * C;
        const float *pe = wpe + (size_t)(bt % T) * C;
        for (int c = 0; c < C; c++) o[c] = we[c] + pe[c];
    }
}

/* Parallel over channel blocks: tokens repeat within a batch, so rows of dwte
 * would race; channels never do. */
void encoder_backward(float *dwte, float *dwpe, const float *dout, const int *inp, int B, int T, int C)
{
    const int CB = 64;
    int nblk = (C + CB - 1) / CB;
    #pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
        int c0 = blk * CB, c1 = c0 + CB < C ? c0 + CB : C;
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                const float *d = dout + ((size_t)b * T + t) * C;
                float *we = dwte + (size_t)inp[b * T + t] * C;
                float *pe = dwpe + (size_t)t * C;
                for (int c = c0; c < c1; c++) { we[c] += d[c]; pe[c] += d[c]; }
            }
    }
}

/* ----------------------------------------------------------------------
 * LayerNorm (eps 1e-5, biased variance, as torch.nn.LayerNorm)
 * ---------------------------------------------------------------------- */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, int N, int C)
{
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        const float *x = inp + (size_t)i * C;
        float s = 0.0f;
        #pragma omp simd reduction(+:s)
        for (int c = 0; c < C; c++) s += x[c];
        float m = s / C, v = 0.0f;
        #pragma omp simd reduction(+:v)
        for (int c = 0; c < C; c++) { float d = x[c] - m; v += d * d; }
        float r = 1.0f / sqrtf(v / C + 1e-5f);
        float *o = out + (size_t)i * C;
        for (int c = 0; c < C; c++) o[c] = (x[c] - m) * r * weight[c] + bias[c];
        if (mean) mean[i] = m;
        if (rstd) rstd[i] = r;
    }
}

void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                        const float *weight, const float *mean, const float *rstd, int N, int C)
{
    /* dinp, row by row */
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        const float *d = dout + (size_t)i * C, *x = inp + (size_t)i * C;
        float m = mean[i], r = rstd[i];
        float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
        #pragma omp simd reduction(+:dnorm_mean, dnorm_norm_mean)
        for (int c = 0; c < C; c++) {
            float dn = weight[c] * d[c];
            dnorm_mean += dn;
            dnorm_norm_mean += dn * (x[c] - m) * r;
        }
        dnorm_mean /= C;
        dnorm_norm_mean /= C;
        float *di = dinp + (size_t)i * C;
        for (int c = 0; c < C; c++) {
            float norm = (x[c] - m) * r;
            float dn = weight[c] * d[c];
            di[c] += (dn - dnorm_mean - norm * dnorm_norm_mean) * r;
        }
    }
    /* dweight, dbias: column sums, parallel over channel blocks */
    const int CB = 64;
    int nblk = (C + CB - 1) / CB;
    #pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
        int c0 = blk * CB, c1 = c0 + CB < C ? c0 + CB : C;
        float dw[64], db[64];
        for (int c = 0; c < CB; c++) dw[c] = db[c] = 0.0f;
        for (int i = 0; i < N; i++) {
            const float *d = dout + (size_t)i * C, *x = inp + (size_t)i * C;
            float m = mean[i], r = rstd[i];
            for (int c = c0; c < c1; c++) {
                dw[c - c0] += (x[c] - m) * r * d[c];
                db[c - c0] += d[c];
            }
        }
        for (int c = c0; c < c1; c++) { dweight[c] += dw[c - c0]; dbias[c] += db[c - c0]; }
    }
}

/* ----------------------------------------------------------------------
 * GELU, tanh approximation (gelu_new / torch approximate="tanh")
 * tanh(u) = 1 - 2 / (exp(2u) + 1): vectorises, error ~1e-7 absolute.
 * ---------------------------------------------------------------------- */
#define GELU_SCALE 0.7978845608028654f   /* sqrt(2 / pi) */

static inline float fast_tanhf(float u)
{
    return 1.0f - 2.0f / (nn_expf(2.0f * u) + 1.0f);
}

void gelu_forward(float *out, const float *inp, int N)
{
    #pragma omp parallel for simd schedule(static)
    for (int i = 0; i < N; i++) {
        float x = inp[i];
        float u = GELU_SCALE * (x + 0.044715f * x * x * x);
        out[i] = 0.5f * x * (1.0f + fast_tanhf(u));
    }
}

void gelu_backward(float *dinp, const float *inp, const float *dout, int N)
{
    #pragma omp parallel for simd schedule(static)
    for (int i = 0; i < N; i++) {
        float x = inp[i];
        float u = GELU_SCALE * (x + 0.044715f * x * x * x);
        float th = fast_tanhf(u);
        float sech2 = 1.0f - th * th;
        float g = 0.5f * (1.0f + th) + 0.5f * x * sech2 * GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
        dinp[i] = g * dout[i];
    }
}

/* ---------------------------------------------------------------------- */
void residual_forward(float *out, const float *a, const float *b, int N)
{
    #pragma omp parallel for simd schedule(static)
    for (int i = 0; i < N; i++) out[i] = a[i] + b[i];
}

/* ----------------------------------------------------------------------
 * Causal self-attention. Per (b, h) and query t:
 *   s[t2] = q_t . k_t2 / sqrt(hs), t2 <= t;  p = softmax(s);  out_t = sum p[t2] v_t2
 * Forward keeps only lse_t = log sum exp(s); backward recomputes p from it
 * (flash-attention style), so memory is O(B NH T), not O(B NH T^2).
 * ---------------------------------------------------------------------- */
/* Per (b, h) task, K (and in backward V) are packed transposed, (hs, T), so
 * that the scores of one query against all keys are a vector loop over keys
 * (s[0..t] += q_i * KT[i][0..t]) instead of t dot products each ending in a
 * horizontal sum; exp runs vectorised over the row; the weighted sum of V is
 * an axpy per key. Tasks are independent heads: no races, no atomics, and the
 * same bits whatever the thread count. */
void attention_forward(float *out, float *lse, const float *qkv, int B, int T, int C, int NH)
{
    int hs = C / NH;
    size_t C3 = (size_t)3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    #pragma omp parallel
    {
        float *kt = malloc((size_t)hs * T * sizeof(float));
        float *s = malloc((size_t)T * sizeof(float));
        float *acc = malloc((size_t)hs * sizeof(float));
        #pragma omp for collapse(2) schedule(dynamic, 1)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++) {
                const float *base = qkv + (size_t)b * T * C3;
                for (int t2 = 0; t2 < T; t2++) {
                    const float *k = base + t2 * C3 + C + h * hs;
                    for (int i = 0; i < hs; i++) kt[(size_t)i * T + t2] = k[i] * scale;
                }
                for (int t = 0; t < T; t++) {
                    const float *q = base + t * C3 + h * hs;
                    int n = t + 1;
                    for (int t2 = 0; t2 < n; t2++) s[t2] = 0.0f;
                    for (int i = 0; i < hs; i++) {
                        float qi = q[i];
                        const float *kr = kt + (size_t)i * T;
                        for (int t2 = 0; t2 < n; t2++) s[t2] += qi * kr[t2];
                    }
                    float mx = -INFINITY;
                    #pragma omp simd reduction(max:mx)
                    for (int t2 = 0; t2 < n; t2++) mx = s[t2] > mx ? s[t2] : mx;
                    float sum = 0.0f;
                    #pragma omp simd reduction(+:sum)
                    for (int t2 = 0; t2 < n; t2++) { float e = nn_expf(s[t2] - mx); s[t2] = e; sum += e; }
                    for (int i = 0; i < hs; i++) acc[i] = 0.0f;
                    for (int t2 = 0; t2 < n; t2++) {
                        const float *v = base + t2 * C3 + 2 * C + h * hs;
                        float p = s[t2];
                        for (int i = 0; i < hs; i++) acc[i] += p * v[i];
                    }
                    float inv = 1.0f / sum;
                    float *o = out + ((size_t)b * T + t) * C + h * hs;
                    for (int i = 0; i < hs; i++) o[i] = acc[i] * inv;
                    lse[((size_t)b * NH + h) * T + t] = mx + logf(sum);
                }
            }
        free(acc);
        free(s);
        free(kt);
    }
}

/* dq += g k; dk += g q; dv += pr dO (distinct rows: restrict lets it vectorise) */
static inline void attn_axpy3(float *restrict dq, float *restrict dk, float *restrict dv, const float *restrict k,
                              const float *restrict q, const float *restrict dO, float g, float pr, int hs)
{
    for (int i = 0; i < hs; i++) {
        dq[i] += g * k[i];
        dk[i] += g * q[i];
        dv[i] += pr * dO[i];
    }
}

void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out,
                        const float *lse, int B, int T, int C, int NH)
{
    int hs = C / NH;
    size_t C3 = (size_t)3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    #pragma omp parallel
    {
        float *kt = malloc((size_t)hs * T * sizeof(float));
        float *vt = malloc((size_t)hs * T * sizeof(float));
        float *p = malloc((size_t)T * sizeof(float));
        float *dp = malloc((size_t)T * sizeof(float));
        #pragma omp for collapse(2) schedule(dynamic, 1)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++) {
                const float *base = qkv + (size_t)b * T * C3;
                float *dbase = dqkv + (size_t)b * T * C3;
                for (int t2 = 0; t2 < T; t2++) {
                    const float *k = base + t2 * C3 + C + h * hs, *v = base + t2 * C3 + 2 * C + h * hs;
                    for (int i = 0; i < hs; i++) {
                        kt[(size_t)i * T + t2] = k[i] * scale;
                        vt[(size_t)i * T + t2] = v[i];
                    }
                    float *dq = dbase + t2 * C3 + h * hs, *dk = dq + C, *dv = dq + 2 * C;
                    for (int i = 0; i < hs; i++) dq[i] = dk[i] = dv[i] = 0.0f;
                }
                for (int t = 0; t < T; t++) {
                    const float *q = base + t * C3 + h * hs;
                    const float *dO = dout + ((size_t)b * T + t) * C + h * hs;
                    const float *O = out + ((size_t)b * T + t) * C + h * hs;
                    float l = lse[((size_t)b * NH + h) * T + t];
                    int n = t + 1;
                    float D = 0.0f;
                    #pragma omp simd reduction(+:D)
                    for (int i = 0; i < hs; i++) D += dO[i] * O[i];
                    for (int t2 = 0; t2 < n; t2++) p[t2] = dp[t2] = 0.0f;
                    for (int i = 0; i < hs; i++) {
                        float qi = q[i], gi = dO[i];
                        const float *kr = kt + (size_t)i * T, *vr = vt + (size_t)i * T;
                        for (int t2 = 0; t2 < n; t2++) { p[t2] += qi * kr[t2]; dp[t2] += gi * vr[t2]; }
                    }
                    for (int t2 = 0; t2 < n; t2++) {
                        float pr = nn_expf(p[t2] - l);
                        p[t2] = pr;
                        dp[t2] = pr * (dp[t2] - D) * scale;   /* dp now holds ds */
                    }
                    float *dq = dbase + t * C3 + h * hs;
                    for (int t2 = 0; t2 < n; t2++)
                        attn_axpy3(dq, dbase + t2 * C3 + C + h * hs, dbase + t2 * C3 + 2 * C + h * hs,
                                   base + t2 * C3 + C + h * hs, q, dO, dp[t2], p[t2], hs);
                }
            }
        free(dp);
        free(p);
        free(vt);
        free(kt);
    }
}

/* ----------------------------------------------------------------------
 * Fused softmax + weighted cross-entropy, in place over the logits.
 * ---------------------------------------------------------------------- */
double crossentropy_forward(float *logits, float *losses, int *argmax, const int *targets,
                            const float *w, int N, int V, int Vp, double *wsum)
{
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        float *x = logits + (size_t)i * Vp;
        float mx = -INFINITY;
        #pragma omp simd reduction(max:mx)
        for (int j = 0; j < V; j++) mx = x[j] > mx ? x[j] : mx;
        int am = 0;
        while (x[am] != mx && am < V - 1) am++;
        int tg = targets ? targets[i] : -1;
        float wi = tg < 0 ? 0.0f : (w ? w[i] : 1.0f);
        float xt = tg < 0 ? 0.0f : x[tg];
        /* one exp per logit: keep exp(x - max) in place, scale by w / sum after */
        float sum = 0.0f;
        #pragma omp simd reduction(+:sum)
        for (int j = 0; j < V; j++) { float e = nn_expf(x[j] - mx); x[j] = e; sum += e; }
        float lse = mx + logf(sum);
        losses[i] = tg < 0 ? 0.0f : lse - xt;
        if (argmax) argmax[i] = am;
        if (wi == 0.0f) {
            memset(x, 0, (size_t)Vp * sizeof(float));
            continue;
        }
        float f = wi / sum;
        for (int j = 0; j < V; j++) x[j] *= f;
        for (int j = V; j < Vp; j++) x[j] = 0.0f;
        x[tg] -= wi;
    }
    /* summed serially, in row order: the same bits whatever the threads */
    double loss_sum = 0.0, weight_sum = 0.0;
    for (int i = 0; i < N; i++) {
        int tg = targets ? targets[i] : -1;
        double wi = tg < 0 ? 0.0 : (w ? w[i] : 1.0);
        loss_sum += wi * losses[i];
        weight_sum += wi;
    }
    if (wsum) *wsum = weight_sum;
    return loss_sum;
}
