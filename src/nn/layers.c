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
#include "nn/matmul_impl.h"   /* transpose16 */

/* -std=c11 (ISO mode) turns GCC's floating-point contraction off, so
 * a += x * k would be a multiply and an add: allow fused multiply-add here
 * (half the instructions in every inner loop; results stay within the tests'
 * bounds and stay independent of the thread count). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#elif defined(__clang__)
#pragma clang fp contract(fast)
#endif

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Below this many elements a kernel runs on one thread: it takes well under
 * 0.1 ms, less than a parallel region costs when the machine is shared and
 * the other thread is descheduled (each region waits for its slowest thread). */
#define NN_PAR_MIN ((size_t)1 << 19)

/* ----------------------------------------------------------------------
 * encoder: out[b,t] = wte[inp[b,t]] + wpe[t]
 * ---------------------------------------------------------------------- */
void encoder_forward(float *out, const int *inp, const float *wte, const float *wpe, int B, int T, int C)
{
    #pragma omp parallel for schedule(static) if ((size_t)B * T * C >= NN_PAR_MIN)
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
    #pragma omp parallel for schedule(static) if ((size_t)B * T * C >= NN_PAR_MIN)
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
    #pragma omp parallel for schedule(static) if ((size_t)N * C >= NN_PAR_MIN)
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
    #pragma omp parallel for schedule(static) if ((size_t)N * C >= NN_PAR_MIN)
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
    #pragma omp parallel for schedule(static) if ((size_t)N * C >= NN_PAR_MIN)
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

#if defined(__AVX512F__)
#include <immintrin.h>
/* nn_expf for 16 lanes, the same steps (GCC does not vectorise the scalar
 * one: the float -> int conversion and the union stay scalar, and GELU ran
 * at ~4 ns per element, 8% of a prefill). */
static inline __m512 exp16(__m512 x)
{
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
    __m512 t = _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(12582912.0f));
    __m512 n = _mm512_sub_ps(t, _mm512_set1_ps(12582912.0f));
    __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x));
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), _mm512_set1_ps(1.0f));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

/* tanh(GELU_SCALE (x + 0.044715 x^3)) for 16 lanes */
static inline __m512 gelu_tanh16(__m512 x)
{
    __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
    __m512 u = _mm512_mul_ps(_mm512_set1_ps(GELU_SCALE), _mm512_fmadd_ps(_mm512_set1_ps(0.044715f), x3, x));
    __m512 e = exp16(_mm512_add_ps(u, u));
    return _mm512_sub_ps(_mm512_set1_ps(1.0f),
                         _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(e, _mm512_set1_ps(1.0f))));
}
#endif

/* The vector loops cover whole blocks of 16 and the scalar code the tail, so
 * each element takes the same path whatever the thread count. */
static inline float gelu_fwd1(float x)
{
    float u = GELU_SCALE * (x + 0.044715f * x * x * x);
    return 0.5f * x * (1.0f + fast_tanhf(u));
}

static inline float gelu_bwd1(float x, float d)
{
    float u = GELU_SCALE * (x + 0.044715f * x * x * x);
    float th = fast_tanhf(u);
    float sech2 = 1.0f - th * th;
    float g = 0.5f * (1.0f + th) + 0.5f * x * sech2 * GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
    return g * d;
}

void gelu_forward(float *out, const float *inp, int N)
{
    int i0 = 0;
#if defined(__AVX512F__)
    int nb = N / 16;
    #pragma omp parallel for schedule(static) if ((size_t)N >= NN_PAR_MIN)
    for (int b = 0; b < nb; b++) {
        __m512 x = _mm512_loadu_ps(inp + 16 * (size_t)b);
        __m512 hx = _mm512_mul_ps(_mm512_set1_ps(0.5f), x);
        _mm512_storeu_ps(out + 16 * (size_t)b, _mm512_fmadd_ps(hx, gelu_tanh16(x), hx));
    }
    i0 = nb * 16;
#endif
    #pragma omp parallel for simd schedule(static) if ((size_t)(N - i0) >= NN_PAR_MIN)
    for (int i = i0; i < N; i++) out[i] = gelu_fwd1(inp[i]);
}

void gelu_backward(float *dinp, const float *inp, const float *dout, int N)
{
    int i0 = 0;
#if defined(__AVX512F__)
    int nb = N / 16;
    #pragma omp parallel for schedule(static) if ((size_t)N >= NN_PAR_MIN)
    for (int b = 0; b < nb; b++) {
        __m512 x = _mm512_loadu_ps(inp + 16 * (size_t)b);
        __m512 th = gelu_tanh16(x);
        __m512 one = _mm512_set1_ps(1.0f), half = _mm512_set1_ps(0.5f);
        __m512 sech2 = _mm512_fnmadd_ps(th, th, one);
        __m512 poly = _mm512_fmadd_ps(_mm512_set1_ps(3.0f * 0.044715f), _mm512_mul_ps(x, x), one);
        __m512 right = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(half, x), sech2),
                                     _mm512_mul_ps(_mm512_set1_ps(GELU_SCALE), poly));
        __m512 g = _mm512_fmadd_ps(half, _mm512_add_ps(one, th), right);
        _mm512_storeu_ps(dinp + 16 * (size_t)b, _mm512_mul_ps(g, _mm512_loadu_ps(dout + 16 * (size_t)b)));
    }
    i0 = nb * 16;
#endif
    #pragma omp parallel for simd schedule(static) if ((size_t)(N - i0) >= NN_PAR_MIN)
    for (int i = i0; i < N; i++) dinp[i] = gelu_bwd1(inp[i], dout[i]);
}

/* ---------------------------------------------------------------------- */
void residual_forward(float *out, const float *a, const float *b, int N)
{
    #pragma omp parallel for simd schedule(static) if ((size_t)N >= NN_PAR_MIN)
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
static void attention_forward_generic(float *out, float *lse, const float *qkv, int B, int T, int C, int NH)
{
    int hs = C / NH;
    size_t C3 = (size_t)3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    #pragma omp parallel if ((size_t)B * C * T * T >= NN_PAR_MIN * 8)
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

static void attention_backward_generic(float *dqkv, const float *dout, const float *qkv, const float *out,
                                       const float *lse, int B, int T, int C, int NH)
{
    int hs = C / NH;
    size_t C3 = (size_t)3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    #pragma omp parallel if ((size_t)B * C * T * T >= NN_PAR_MIN * 8)
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
 * Register-blocked attention for head sizes that are a multiple of 16 (GPT-2:
 * 64): 4 query rows at a time against 16 keys per vector, so each loaded
 * key/value vector feeds 4 FMAs and the accumulators stay in registers.
 * GCC/Clang vector extensions: AVX-512 with -march=native, plain SIMD or
 * scalar code elsewhere. Same math and summation order for every thread count.
 * ---------------------------------------------------------------------- */
typedef float v16f __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4)));   /* unaligned access */
#define QB 4
#define LDV(p) (*(const v16u *)(p))
#define STV(p, v) (*(v16u *)(p) = (v))

/* S[r][0..16*nkb) = sum_i X_r[i] * KT[i][.] for r < QB (KT rows of length Tp).
 * Two key blocks per pass: 2 loads + 4 broadcasts feed 8 FMAs. */
static inline void attn_scores4(float *S, int Tp, const float *const *X, const float *KT, int hs, int nkb)
{
    int kb = 0;
    for (; kb + 1 < nkb; kb += 2) {
        v16f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0};
        const float *kp = KT + kb * 16;
        for (int i = 0; i < hs; i++) {
            v16f k = LDV(kp + (size_t)i * Tp), l = LDV(kp + (size_t)i * Tp + 16);
            float x0 = X[0][i], x1 = X[1][i], x2 = X[2][i], x3 = X[3][i];
            a0 += x0 * k; a1 += x1 * k; a2 += x2 * k; a3 += x3 * k;
            b0 += x0 * l; b1 += x1 * l; b2 += x2 * l; b3 += x3 * l;
        }
        STV(S + kb * 16, a0); STV(S + kb * 16 + 16, b0);
        STV(S + Tp + kb * 16, a1); STV(S + Tp + kb * 16 + 16, b1);
        STV(S + 2 * Tp + kb * 16, a2); STV(S + 2 * Tp + kb * 16 + 16, b2);
        STV(S + 3 * Tp + kb * 16, a3); STV(S + 3 * Tp + kb * 16 + 16, b3);
    }
    for (; kb < nkb; kb++) {
        v16f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        const float *kp = KT + kb * 16;
        for (int i = 0; i < hs; i++) {
            v16f k = LDV(kp + (size_t)i * Tp);
            a0 += X[0][i] * k;
            a1 += X[1][i] * k;
            a2 += X[2][i] * k;
            a3 += X[3][i] * k;
        }
        STV(S + kb * 16, a0);
        STV(S + Tp + kb * 16, a1);
        STV(S + 2 * Tp + kb * 16, a2);
        STV(S + 3 * Tp + kb * 16, a3);
    }
}

/* O_r[0..hs) = sum_{t2 < nk} W[r][t2] * R[t2][.]  (R rows of stride rs).
 * 64 output columns at a time: 16 accumulators, and per key 4 loads + 4
 * broadcasts feed 16 FMAs. */
static inline void attn_wsum4(float *const *O, const float *W, int Tp, const float *R, size_t rs, int nk, int hs)
{
    int j = 0;
    for (; j + 64 <= hs; j += 64) {
        v16f a[4][4] = {{{0}}};
        for (int t2 = 0; t2 < nk; t2++) {
            const float *rp = R + t2 * rs + j;
            v16f v0 = LDV(rp), v1 = LDV(rp + 16), v2 = LDV(rp + 32), v3 = LDV(rp + 48);
            for (int r = 0; r < 4; r++) {
                float w = W[r * Tp + t2];
                a[r][0] += w * v0; a[r][1] += w * v1; a[r][2] += w * v2; a[r][3] += w * v3;
            }
        }
        for (int r = 0; r < 4; r++)
            for (int u = 0; u < 4; u++) STV(O[r] + j + 16 * u, a[r][u]);
    }
    for (; j < hs; j += 16) {
        v16f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        for (int t2 = 0; t2 < nk; t2++) {
            v16f v = LDV(R + t2 * rs + j);
            a0 += W[t2] * v;
            a1 += W[Tp + t2] * v;
            a2 += W[2 * Tp + t2] * v;
            a3 += W[3 * Tp + t2] * v;
        }
        STV(O[0] + j, a0);
        STV(O[1] + j, a1);
        STV(O[2] + j, a2);
        STV(O[3] + j, a3);
    }
}

/* D[t2][.] += sum_r W[r][t2] * X_r[.] for t2 < nk (D rows of length hs);
 * X held in registers 64 columns at a time. */
static inline void attn_rank4(float *D, const float *W, int Tp, const float *const *X, int nk, int hs)
{
    int j = 0;
    for (; j + 64 <= hs; j += 64) {
        v16f x[4][4];
        for (int r = 0; r < 4; r++)
            for (int u = 0; u < 4; u++) x[r][u] = LDV(X[r] + j + 16 * u);
        for (int t2 = 0; t2 < nk; t2++) {
            float w0 = W[t2], w1 = W[Tp + t2], w2 = W[2 * Tp + t2], w3 = W[3 * Tp + t2];
            float *d = D + (size_t)t2 * hs + j;
            for (int u = 0; u < 4; u++)
                STV(d + 16 * u, LDV(d + 16 * u) + w0 * x[0][u] + w1 * x[1][u] + w2 * x[2][u] + w3 * x[3][u]);
        }
    }
    for (; j < hs; j += 16) {
        v16f x0 = LDV(X[0] + j), x1 = LDV(X[1] + j), x2 = LDV(X[2] + j), x3 = LDV(X[3] + j);
        for (int t2 = 0; t2 < nk; t2++) {
            float *d = D + (size_t)t2 * hs + j;
            STV(d, LDV(d) + W[t2] * x0 + W[Tp + t2] * x1 + W[2 * Tp + t2] * x2 + W[3 * Tp + t2] * x3);
        }
    }
}

/* KT[i][t2] = scale * K[t2][i] for t2 < T, i < hs (K's rows ld floats
 * apart), zero for T <= t2 < Tp: 16 x 16 blocks transposed in registers.
 * Read a float per row, these transposes were a fifth of attention's
 * backward (perf, docs/bench.md section 11). Each element is the same one
 * multiplication either way. */
static void attn_transpose(float *KT, int Tp, const float *K, size_t ld, int T, int hs, float scale)
{
    int t0 = 0;
#if defined(__AVX512F__)
    if (hs % 16 == 0) {
        __m512 sc = _mm512_set1_ps(scale);
        for (; t0 + 16 <= T; t0 += 16)
            for (int i0 = 0; i0 < hs; i0 += 16) {
                __m512 r[16];
                for (int j = 0; j < 16; j++) r[j] = _mm512_loadu_ps(K + (size_t)(t0 + j) * ld + i0);
                transpose16(r);
                for (int j = 0; j < 16; j++) _mm512_storeu_ps(KT + (size_t)(i0 + j) * Tp + t0, _mm512_mul_ps(r[j], sc));
            }
    }
#endif
    for (int i = 0; i < hs; i++) {
        for (int t2 = t0; t2 < T; t2++) KT[(size_t)i * Tp + t2] = K[(size_t)t2 * ld + i] * scale;
        for (int t2 = T; t2 < Tp; t2++) KT[(size_t)i * Tp + t2] = 0.0f;
    }
}

static void attention_forward_blocked(float *out, float *lse, const float *qkv, int B, int T, int C, int NH)
{
    int hs = C / NH, Tp = (T + 15) / 16 * 16;
    size_t C3 = (size_t)3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    #pragma omp parallel if ((size_t)B * C * T * T >= NN_PAR_MIN * 8)
    {
        float *KT = malloc((size_t)hs * Tp * sizeof(float));
        float *S = malloc((size_t)QB * Tp * sizeof(float));
        float *junk = malloc((size_t)hs * sizeof(float));
        #pragma omp for collapse(2) schedule(dynamic, 1)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++) {
                const float *base = qkv + (size_t)b * T * C3;
                attn_transpose(KT, Tp, base + C + h * hs, C3, T, hs, scale);
                for (int t0 = 0; t0 < T; t0 += QB) {
                    int nr = T - t0 < QB ? T - t0 : QB, nk = t0 + nr;
                    const float *X[QB];
                    float *O[QB];
                    for (int r = 0; r < QB; r++) {
                        int t = t0 + (r < nr ? r : 0);
                        X[r] = base + t * C3 + h * hs;
                        O[r] = r < nr ? out + ((size_t)b * T + t) * C + h * hs : junk;
                    }
                    attn_scores4(S, Tp, X, KT, hs, (nk + 15) / 16);
                    for (int r = 0; r < QB; r++) {
                        float *sr = S + (size_t)r * Tp;
                        int n = r < nr ? t0 + r + 1 : 0;
                        float mx = -INFINITY, sum = 0.0f;
                        #pragma omp simd reduction(max:mx)
                        for (int t2 = 0; t2 < n; t2++) mx = sr[t2] > mx ? sr[t2] : mx;
                        #pragma omp simd reduction(+:sum)
                        for (int t2 = 0; t2 < n; t2++) { float e = nn_expf(sr[t2] - mx); sr[t2] = e; sum += e; }
                        float inv = n ? 1.0f / sum : 0.0f;
                        for (int t2 = 0; t2 < n; t2++) sr[t2] *= inv;
                        for (int t2 = n; t2 < nk; t2++) sr[t2] = 0.0f;
                        if (n) lse[((size_t)b * NH + h) * T + t0 + r] = mx + logf(sum);
                    }
                    attn_wsum4(O, S, Tp, base + 2 * C + h * hs, C3, nk, hs);
                }
            }
        free(junk);
        free(S);
        free(KT);
    }
}

static void attention_backward_blocked(float *dqkv, const float *dout, const float *qkv, const float *out,
                                       const float *lse, int B, int T, int C, int NH)
{
    int hs = C / NH, Tp = (T + 15) / 16 * 16;
    size_t C3 = (size_t)3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    #pragma omp parallel if ((size_t)B * C * T * T >= NN_PAR_MIN * 8)
    {
        float *KT = malloc((size_t)hs * Tp * sizeof(float)), *VT = malloc((size_t)hs * Tp * sizeof(float));
        float *P = malloc((size_t)QB * Tp * sizeof(float)), *dS = malloc((size_t)QB * Tp * sizeof(float));
        float *dK = malloc((size_t)T * hs * sizeof(float)), *dV = malloc((size_t)T * hs * sizeof(float));
        float *junk = malloc((size_t)hs * sizeof(float));
        #pragma omp for collapse(2) schedule(dynamic, 1)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++) {
                const float *base = qkv + (size_t)b * T * C3;
                float *dbase = dqkv + (size_t)b * T * C3;
                attn_transpose(KT, Tp, base + C + h * hs, C3, T, hs, scale);
                attn_transpose(VT, Tp, base + 2 * C + h * hs, C3, T, hs, 1.0f);
                memset(dK, 0, (size_t)T * hs * sizeof(float));
                memset(dV, 0, (size_t)T * hs * sizeof(float));
                for (int t0 = 0; t0 < T; t0 += QB) {
                    int nr = T - t0 < QB ? T - t0 : QB, nk = t0 + nr, nkb = (nk + 15) / 16;
                    const float *Q[QB], *G[QB];
                    float *DQ[QB];
                    for (int r = 0; r < QB; r++) {
                        int t = t0 + (r < nr ? r : 0);
                        Q[r] = base + t * C3 + h * hs;
                        G[r] = dout + ((size_t)b * T + t) * C + h * hs;
                        DQ[r] = r < nr ? dbase + t * C3 + h * hs : junk;
                    }
                    attn_scores4(P, Tp, Q, KT, hs, nkb);
                    attn_scores4(dS, Tp, G, VT, hs, nkb);
                    for (int r = 0; r < QB; r++) {
                        float *pr = P + (size_t)r * Tp, *dr = dS + (size_t)r * Tp;
                        int n = r < nr ? t0 + r + 1 : 0;
                        float l = n ? lse[((size_t)b * NH + h) * T + t0 + r] : 0.0f, D = 0.0f;
                        const float *o = out + ((size_t)b * T + t0 + (r < nr ? r : 0)) * C + h * hs;
                        #pragma omp simd reduction(+:D)
                        for (int i = 0; i < hs; i++) D += G[r][i] * o[i];
                        for (int t2 = 0; t2 < n; t2++) {
                            float pv = nn_expf(pr[t2] - l);
                            pr[t2] = pv;
                            dr[t2] = pv * (dr[t2] - D) * scale;
                        }
                        for (int t2 = n; t2 < nk; t2++) pr[t2] = dr[t2] = 0.0f;
                    }
                    attn_wsum4(DQ, dS, Tp, base + C + h * hs, C3, nk, hs);   /* dQ = dS K */
                    attn_rank4(dK, dS, Tp, Q, nk, hs);                       /* dK += dS^T Q */
                    attn_rank4(dV, P, Tp, G, nk, hs);                        /* dV += P^T dO */
                }
                for (int t2 = 0; t2 < T; t2++) {
                    memcpy(dbase + t2 * C3 + C + h * hs, dK + (size_t)t2 * hs, hs * sizeof(float));
                    memcpy(dbase + t2 * C3 + 2 * C + h * hs, dV + (size_t)t2 * hs, hs * sizeof(float));
                }
            }
        free(junk); free(dV); free(dK); free(dS); free(P); free(VT); free(KT);
    }
}

/* TUNERY_ATTN_GENERIC=1 forces the generic kernels (tests cover both). */
static int attn_blocked_ok(int hs)
{
    static int generic = -1;
    if (generic < 0) generic = getenv("TUNERY_ATTN_GENERIC") != NULL;
    return hs % 16 == 0 && !generic;
}

void attention_forward(float *out, float *lse, const float *qkv, int B, int T, int C, int NH)
{
    int hs = C / NH;
    if (attn_blocked_ok(hs)) attention_forward_blocked(out, lse, qkv, B, T, C, NH);
    else attention_forward_generic(out, lse, qkv, B, T, C, NH);
}

void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out,
                        const float *lse, int B, int T, int C, int NH)
{
    int hs = C / NH;
    if (attn_blocked_ok(hs)) attention_backward_blocked(dqkv, dout, qkv, out, lse, B, T, C, NH);
    else attention_backward_generic(dqkv, dout, qkv, out, lse, B, T, C, NH);
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
