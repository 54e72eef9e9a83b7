/* matmul.c: the matrix-multiply dispatcher and the portable kernels.
 *
 * Every Linear layer of the engine (and the tied LM head) goes through
 * matmul_forward / matmul_backward, so this is where the training step spends
 * most of its time. The portable kernels here are the reference every faster
 * path is tested against: plain C11 + OpenMP, cache-blocked so that the
 * compiler's vectoriser (-O3 -march=native) does the SIMD, and deterministic
 * (each output element is summed by one thread in a fixed order, whatever the
 * thread count).
 *
 * Layout: inp (N, C), weight (OC, C) [out][in], out (N, OC).
 */
#include "nn/matmul_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------- */
/* portable forward                                                         */
/* ---------------------------------------------------------------------- */

/* Columns per block: a block of weight rows is transposed into a (C, OB)
 * panel so the inner loop is a broadcast-multiply-add over OB contiguous
 * floats (no horizontal reduction, which -O3 without -ffast-math would not
 * vectorise). OB*C*4 bytes = 192 KB at C=768, 768 KB at C=3072: L2-resident. */
#define FWD_OB 64
/* Rows handled together against one panel, so each panel load feeds RB rows. */
#define FWD_RB 4

void matmul_forward_portable(float *out, const float *inp, const float *weight, const float *bias,
                             int N, int C, int OC)
{
    int nblk = (OC + FWD_OB - 1) / FWD_OB;
    #pragma omp parallel
    {
        float *panel = malloc((size_t)C * FWD_OB * sizeof(float));
        #pragma omp for schedule(static)
        for (int bo = 0; bo < nblk; bo++) {
            int o0 = bo * FWD_OB;
            int ob = OC - o0 < FWD_OB ? OC - o0 : FWD_OB;
            for (int j = 0; j < ob; j++)
                for (int c = 0; c < C; c++)
                    panel[(size_t)c * FWD_OB + j] = weight[(size_t)(o0 + j) * C + c];
            for (int j = ob; j < FWD_OB; j++)
                for (int c = 0; c < C; c++)
                    panel[(size_t)c * FWD_OB + j] = 0.0f;
            for (int n0 = 0; n0 < N; n0 += FWD_RB) {
                int rb = N - n0 < FWD_RB ? N - n0 : FWD_RB;
                float acc[FWD_RB][FWD_OB];
                for (int r = 0; r < FWD_RB; r++)
                    for (int j = 0; j < FWD_OB; j++)
                        acc[r][j] = (bias && j < ob) ? bias[o0 + j] : 0.0f;
                if (rb == FWD_RB) {
                    const float *x0 = inp + (size_t)(n0 + 0) * C, *x1 = inp + (size_t)(n0 + 1) * C;
                    const float *x2 = inp + (size_t)(n0 + 2) * C, *x3 = inp + (size_t)(n0 + 3) * C;
                    for (int c = 0; c < C; c++) {
                        const float *w = panel + (size_t)c * FWD_OB;
                        float a0 = x0[c], a1 = x1[c], a2 = x2[c], a3 = x3[c];
                        for (int j = 0; j < FWD_OB; j++) {
                            acc[0][j] += a0 * w[j];
                            acc[1][j] += a1 * w[j];
                            acc[2][j] += a2 * w[j];
                            acc[3][j] += a3 * w[j];
                        }
                    }
                } else {
                    for (int r = 0; r < rb; r++) {
                        const float *x = inp + (size_t)(n0 + r) * C;
                        for (int c = 0; c < C; c++) {
                            const float *w = panel + (size_t)c * FWD_OB;
                            float a = x[c];
                            for (int j = 0; j < FWD_OB; j++) acc[r][j] += a * w[j];
                        }
                    }
                }
                for (int r = 0; r < rb; r++)
                    memcpy(out + (size_t)(n0 + r) * OC + o0, acc[r], (size_t)ob * sizeof(float));
            }
        }
        free(panel);
    }
}

/* ---------------------------------------------------------------------- */
/* portable backward                                                        */
/* ---------------------------------------------------------------------- */

#define BWD_RB 8   /* rows of dinp (or dweight) sharing one streamed operand row */

void matmul_backward_portable(float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *weight, int N, int C, int OC)
{
    /* dinp (N, C) += dout (N, OC) @ weight (OC, C): for a block of rows, stream
     * weight once and axpy each of its rows into the block's rows. */
    if (dinp) {
        int nblk = (N + BWD_RB - 1) / BWD_RB;
        #pragma omp parallel for schedule(static)
        for (int bn = 0; bn < nblk; bn++) {
            int n0 = bn * BWD_RB, rb = N - n0 < BWD_RB ? N - n0 : BWD_RB;
            for (int o = 0; o < OC; o++) {
                const float *w = weight + (size_t)o * C;
                for (int r = 0; r < rb; r++) {
                    float g = dout[(size_t)(n0 + r) * OC + o];
                    float *di = dinp + (size_t)(n0 + r) * C;
                    for (int c = 0; c < C; c++) di[c] += g * w[c];
                }
            }
        }
    }
    /* dweight (OC, C) += dout^T @ inp: each thread owns a block of weight rows
     * (no atomics), and streams inp once per block. */
    if (dweight || dbias) {
        int oblk = (OC + BWD_RB - 1) / BWD_RB;
        #pragma omp parallel for schedule(static)
        for (int bo = 0; bo < oblk; bo++) {
            int o0 = bo * BWD_RB, ob = OC - o0 < BWD_RB ? OC - o0 : BWD_RB;
            for (int n = 0; n < N; n++) {
                const float *x = inp + (size_t)n * C;
                const float *g = dout + (size_t)n * OC + o0;
                for (int r = 0; r < ob; r++) {
                    if (dbias) dbias[o0 + r] += g[r];
                    if (dweight) {
                        float *dw = dweight + (size_t)(o0 + r) * C;
                        float gr = g[r];
                        for (int c = 0; c < C; c++) dw[c] += gr * x[c];
                    }
                }
            }
        }
    }
}

/* ---------------------------------------------------------------------- */
/* dispatcher                                                               */
/* ---------------------------------------------------------------------- */

static int mm_prec = -1;   /* -1: not read from the environment yet */

nn_prec_t nn_matmul_get_precision(void)
{
    if (mm_prec < 0) {
        const char *e = getenv("TUNERY_MATMUL");
        mm_prec = (e && strcmp(e, "bf16") == 0 && (nn_cpu()->avx512_bf16 || nn_cpu()->amx_bf16))
                      ? NN_PREC_BF16 : NN_PREC_FP32;
    }
    return (nn_prec_t)mm_prec;
}

int nn_matmul_bf16_available(void)
{
    return (nn_cpu()->avx512_bf16 || nn_cpu()->amx_bf16) && mm_onednn_available();
}

void nn_matmul_set_precision(nn_prec_t prec)
{
    int p = prec == NN_PREC_BF16 ? NN_PREC_BF16 : NN_PREC_FP32;
    if (p != mm_prec) mm_onednn_wcache_clear();   /* bf16 weight copies belong to one bf16 stretch */
    mm_prec = p;
}

/* Path names, for bench output and test messages. */
const char *mm_path_name(mm_path_t path)
{
    static const char *names[MM_NPATHS] = {"auto", "portable", "onednn", "avx512", "amx"};
    return path >= 0 && path < MM_NPATHS ? names[path] : "?";
}

/* The row-count dimension of each product, left to run time only under
 * TUNERY_MATMUL_RT=1 (a measurement switch); bf16 keeps fixed shapes (its
 * run-time-shape implementation is a slow reference one). */
static int mm_rt(nn_prec_t prec, int which)
{
    return prec == NN_PREC_FP32 ? which : MM_RT_NONE;
}

/* TUNERY_MATMUL=portable forces the portable kernels; TUNERY_MATMUL=avx512
 * sends fp32 products with more than 8 rows to our packed GEMM instead of
 * oneDNN (for comparisons, and for machines where a path misbehaves). */
static int mm_env_is(const char *what)
{
    const char *e = getenv("TUNERY_MATMUL");
    return e && strcmp(e, what) == 0;
}

static int mm_force_portable(void)
{
    static int v = -1;
    if (v < 0) v = mm_env_is("portable");
    return v;
}

/* fp32 products with more than MM_GEMV_MAX_N rows go to our packed GEMM
 * only when asked (see the rule below). */
static int mm_own_gemm(void)
{
    static int v = -1;
    if (v < 0) v = nn_cpu()->avx512f && (mm_env_is("avx512") || !mm_onednn_available());
    return v;
}

/* One product goes to our packed GEMM even beside oneDNN: fp32 dinp of a
 * layer with a narrow input (C <= 1024, OC <= 4096: GPT-2's qkv, attproj and
 * fc). Measured on one core (Sapphire Rapids, B8T128, docs/bench.md section
 * 10), ours vs oneDNN: 23.9 vs 30.8 ms (qkv), 7.7 vs 8.7 (attproj), 32.8 vs
 * 39.6 (fc). fcproj's (C = 3072) and the LM head's dinp, and the forward and
 * dweight products, stay on oneDNN: sending all C <= 1024 products to ours
 * was 5% faster at B8T128 and 0-5% slower at B4T64 (one core). By shape
 * only, so a resumed run computes the same bits. TUNERY_MATMUL=onednn sends
 * every product with more than 8 rows to oneDNN (for comparisons). */
static int mm_own_dinp(int C, int OC)
{
    static int off = -1;
    if (off < 0) off = mm_env_is("onednn") || !nn_cpu()->avx512f;
    return !off && C <= 1024 && OC <= 4096;
}

/* bf16 products with more than 8 rows run on our AMX GEMM (matmul_amx.c)
 * where the CPU has AMX: measured (Sapphire Rapids, B8T128 shapes,
 * docs/bench.md section 11), conversion included, one layer's 12 products
 * and the LM head's 3 take 211 ms against oneDNN's 292 on two threads (416
 * against 582 on one), every product faster. TUNERY_MATMUL=onednn keeps
 * them on oneDNN (comparisons). */
static int mm_own_amx(void)
{
    static int v = -1;
    if (v < 0) v = !mm_env_is("onednn") && mm_amx_available();
    return v;
}

const char *nn_matmul_describe(void)
{
    static char d[96];
    if (mm_force_portable()) return "portable";
    if (mm_own_gemm() && nn_matmul_get_precision() == NN_PREC_FP32)
        return "avx512-fp32 (own packed gemm; gemv for N<=8)";
    if (!mm_onednn_available()) return "portable";
    if (nn_matmul_get_precision() == NN_PREC_BF16 && mm_own_amx())
        snprintf(d, sizeof d, "amx-bf16 (own tile gemm; fp32 avx512 gemv for N<=8)");
    else if (nn_matmul_get_precision() == NN_PREC_BF16)
        snprintf(d, sizeof d, "onednn-bf16%s", nn_cpu()->avx512f ? " (avx512 gemv for N<=8)" : "");
    else if (mm_own_dinp(0, 0))
        snprintf(d, sizeof d, "onednn-fp32 (avx512 gemv for N<=8, own gemm for narrow dinp)");
    else
        snprintf(d, sizeof d, "onednn-fp32%s", nn_cpu()->avx512f ? " (avx512 gemv for N<=8)" : "");
    return d;
}

/* Our own kernels: the GEMV for N <= 8 rows, the packed GEMM above. */
static int mm_avx512_forward(float *out, const float *inp, const float *weight, const float *bias,
                             int N, int C, int OC)
{
    if (N <= MM_GEMV_MAX_N) return mm_avx512_gemv(out, inp, weight, bias, N, C, OC);
    return mm_avx512_gemm(out, inp, weight, bias, N, C, OC, C, 1, 1, C, OC, 0);
}

/* The rule, from measurements on a 2-core Sapphire Rapids-class VM (see
 * docs/bench.md): at N <= 8 (decode) the product is bound by reading the
 * weights; our GEMV reads each weight once for all rows without packing.
 * Above that, fp32 goes to oneDNN (75-88% of the FMA peak at the GPT-2
 * shapes, two weak backward products split, see below); our packed GEMM
 * (matmul_gemm.c) is within +-15% of it product by product but measured
 * 4-14% slower inside a whole step (docs/bench.md section 9), so it runs
 * the forward only under TUNERY_MATMUL=avx512 or without oneDNN (and the
 * layers' dinp, see mm_own_dinp). bf16 above 8 rows goes to our AMX GEMM
 * where there is AMX (mm_own_amx), else (and at 8 rows or fewer) to oneDNN
 * (AVX512_BF16). matmul_forward_fp32 keeps a product fp32
 * whatever the precision (inference's decode). */
int mm_forward_path(mm_path_t path, nn_prec_t prec, float *out, const float *inp, const float *weight,
                    const float *bias, int N, int C, int OC)
{
    if (path == MM_AUTO) {
        if (mm_force_portable()) path = MM_PORTABLE;
        else if (prec == NN_PREC_FP32 && (N <= MM_GEMV_MAX_N || mm_own_gemm()) &&
                 mm_avx512_forward(out, inp, weight, bias, N, C, OC) == 0)
            return 0;
        else if (prec == NN_PREC_BF16 && N > MM_GEMV_MAX_N && mm_own_amx() &&
                 mm_amx_gemm(out, inp, weight, bias, N, C, OC, C, 1, 1, C, OC, 0) == 0)
            return 0;
        else if (mm_onednn_gemm(prec, out, inp, weight, bias, N, C, OC, C, 1, 1, C, 0, MM_WCACHE_STORE,
                                mm_rt(prec, MM_RT_M)) == 0)
            return 0;
        else path = MM_PORTABLE;
    }
    switch (path) {
    case MM_PORTABLE:
        if (prec != NN_PREC_FP32) return -1;
        matmul_forward_portable(out, inp, weight, bias, N, C, OC);
        return 0;
    case MM_ONEDNN:
        return mm_onednn_gemm(prec, out, inp, weight, bias, N, C, OC, C, 1, 1, C, 0, MM_WCACHE_STORE,
                              mm_rt(prec, MM_RT_M));
    case MM_AVX512:
        return prec == NN_PREC_FP32 ? mm_avx512_forward(out, inp, weight, bias, N, C, OC) : -1;
    case MM_AMX:
        return prec == NN_PREC_BF16 ? mm_amx_gemm(out, inp, weight, bias, N, C, OC, C, 1, 1, C, OC, 0) : -1;
    default:
        return -1;
    }
}

/* Splits measured to help oneDNN 2.6 fp32 (docs/bench.md): its brgemm
 * matmul is ~2x slower when the output is wider than ~1536 columns with a
 * row-major (k, n) right operand (fcproj's dinp and dweight at C = 3072), and
 * ~1.5x slower with a 50304-long reduction (the LM head's dinp). Cutting the
 * output into column panels, or the reduction into chunks that accumulate,
 * gives both back their full speed. Each piece is its own cached primitive.
 * bf16 operands are converted per call, so bf16 is never split. Whether a
 * product is split depends on its shape only (see onednn_acquire: same shape,
 * same kernels, same bits). */
#define MM_SPLIT_COLS 1536
#define MM_SPLIT_K 16384

static int mm_chunk(int total, int target)
{
    int pieces = (total + target - 1) / target;
    int chunk = (total + pieces - 1) / pieces;
    return (chunk + 15) / 16 * 16;
}

/* dinp (N, C) += dout (N, OC) @ weight (OC, C) */
static int mm_onednn_dinp(nn_prec_t prec, float *dinp, const float *dout, const float *weight, int N, int C, int OC)
{
    if (prec != NN_PREC_FP32 || (C <= MM_SPLIT_COLS && OC <= MM_SPLIT_K))
        return mm_onednn_gemm(prec, dinp, dout, weight, NULL, N, OC, C, OC, 1, C, 1, 1, MM_WCACHE_USE,
                              mm_rt(prec, MM_RT_M));
    int cb = C > MM_SPLIT_COLS ? mm_chunk(C, MM_SPLIT_COLS) : C;
    int kb = OC > MM_SPLIT_K ? mm_chunk(OC, MM_SPLIT_K) : OC;
    /* all pieces or nothing: every piece's primitive is created before the first accumulates */
    for (int pass = 0; pass < 2; pass++)
        for (int k0 = 0; k0 < OC; k0 += kb)
            for (int c0 = 0; c0 < C; c0 += cb) {
                int kn = OC - k0 < kb ? OC - k0 : kb, cn = C - c0 < cb ? C - c0 : cb;
                if (pass == 0 && mm_onednn_prepare(prec, N, kn, cn, OC, 1, C, 1, C, 1, 0, 1) != 0) return -1;
                if (pass == 1 && mm_onednn_gemm_strided(prec, dinp + c0, dout + k0, weight + (size_t)k0 * C + c0,
                                                        NULL, N, kn, cn, OC, 1, C, 1, C, 1, 1) != 0)
                    return -1;   /* not reached: primitives exist */
            }
    return 0;
}

/* dweight (OC, C) += dout^T (OC, N) @ inp (N, C) */
static int mm_onednn_dweight(nn_prec_t prec, float *dweight, const float *dout, const float *inp, int N, int C, int OC)
{
    if (prec != NN_PREC_FP32 || C <= MM_SPLIT_COLS)
        return mm_onednn_gemm(prec, dweight, dout, inp, NULL, OC, N, C, 1, OC, C, 1, 1, MM_WCACHE_NONE,
                              mm_rt(prec, MM_RT_K));
    int cb = mm_chunk(C, MM_SPLIT_COLS);
    for (int pass = 0; pass < 2; pass++)
        for (int c0 = 0; c0 < C; c0 += cb) {
            int cn = C - c0 < cb ? C - c0 : cb;
            if (pass == 0 && mm_onednn_prepare(prec, OC, N, cn, 1, OC, C, 1, C, 1, 0, 1) != 0) return -1;
            if (pass == 1 && mm_onednn_gemm_strided(prec, dweight + c0, dout, inp + c0, NULL, OC, N, cn,
                                                    1, OC, C, 1, C, 1, 1) != 0)
                return -1;
        }
    return 0;
}

/* dbias (OC) += column sums of dout (N, OC). Each thread takes blocks of 64
 * columns and walks the rows in order, adding whole row pieces (contiguous,
 * vectorised) into 64 running sums: every sum still adds n = 0 .. N-1 in
 * order, the bits of the plain loop. Summing one column at a time read dout
 * with a stride of OC floats and cost a third as much as the products
 * themselves in a bf16 step (perf, docs/bench.md section 11). */
#define DBIAS_BLOCK 64

static void mm_dbias(float *dbias, const float *dout, int N, int OC)
{
    int nblk = (OC + DBIAS_BLOCK - 1) / DBIAS_BLOCK;
    #pragma omp parallel for schedule(static)
    for (int bo = 0; bo < nblk; bo++) {
        int o0 = bo * DBIAS_BLOCK, ob = OC - o0 < DBIAS_BLOCK ? OC - o0 : DBIAS_BLOCK;
        float s[DBIAS_BLOCK] = {0};
        for (int n = 0; n < N; n++) {
            const float *d = dout + (size_t)n * OC + o0;
            if (ob == DBIAS_BLOCK)
                for (int j = 0; j < DBIAS_BLOCK; j++) s[j] += d[j];
            else
                for (int j = 0; j < ob; j++) s[j] += d[j];
        }
        for (int j = 0; j < ob; j++) dbias[o0 + j] += s[j];
    }
}

int mm_backward_path(mm_path_t path, nn_prec_t prec, float *dinp, float *dweight, float *dbias,
                     const float *dout, const float *inp, const float *weight, int N, int C, int OC)
{
    if (path == MM_AUTO && prec == NN_PREC_FP32 && !mm_force_portable() && !mm_own_gemm() && dinp &&
        mm_own_dinp(C, OC) && mm_backward_path(MM_AVX512, prec, dinp, NULL, NULL, dout, inp, weight, N, C, OC) == 0)
        dinp = NULL;   /* done; the rest on oneDNN */
    if (path == MM_AUTO)
        path = mm_force_portable() ? MM_PORTABLE
               : prec == NN_PREC_FP32 && mm_own_gemm() ? MM_AVX512
               : prec == NN_PREC_BF16 && mm_own_amx() && N > MM_GEMV_MAX_N ? MM_AMX : MM_ONEDNN;
    if (path == MM_AMX) {
        /* as MM_AVX512 below, in bf16; the GEMM fails only before it writes
         * (no AMX), so a refused product goes to oneDNN untouched */
        if (prec != NN_PREC_BF16 || !mm_amx_available()) return -1;
        if (dinp && mm_amx_gemm(dinp, dout, weight, NULL, N, OC, C, OC, 1, C, 1, C, 1) != 0 &&
            mm_onednn_dinp(prec, dinp, dout, weight, N, C, OC) != 0)
            matmul_backward_portable(dinp, NULL, NULL, dout, inp, weight, N, C, OC);
        if (dweight && mm_amx_gemm(dweight, dout, inp, NULL, OC, N, C, 1, OC, C, 1, C, 1) != 0 &&
            mm_onednn_dweight(prec, dweight, dout, inp, N, C, OC) != 0)
            matmul_backward_portable(NULL, dweight, NULL, dout, inp, weight, N, C, OC);
        if (dbias) mm_dbias(dbias, dout, N, OC);
        return 0;
    }
    if (path == MM_PORTABLE) {
        if (prec != NN_PREC_FP32) return -1;
        matmul_backward_portable(dinp, dweight, dbias, dout, inp, weight, N, C, OC);
        return 0;
    }
    if (path == MM_AVX512) {
        /* dinp (N, C) += dout (N, OC) @ weight (OC, C); dweight (OC, C) += dout^T @ inp.
         * The GEMM fails only before it writes anything (no AVX-512, no memory). */
        if (prec != NN_PREC_FP32 || !nn_cpu()->avx512f) return -1;
        if (dinp && mm_avx512_gemm(dinp, dout, weight, NULL, N, OC, C, OC, 1, C, 1, C, 1) != 0)
            matmul_backward_portable(dinp, NULL, NULL, dout, inp, weight, N, C, OC);
        if (dweight && mm_avx512_gemm(dweight, dout, inp, NULL, OC, N, C, 1, OC, C, 1, C, 1) != 0)
            matmul_backward_portable(NULL, dweight, NULL, dout, inp, weight, N, C, OC);
        if (dbias) mm_dbias(dbias, dout, N, OC);
        return 0;
    }
    if (path != MM_ONEDNN) return -1;
    /* Once a product has started accumulating there is no going back, so a
     * product oneDNN refuses in bf16 is retried in fp32, then portable. */
    if (dinp && mm_onednn_dinp(prec, dinp, dout, weight, N, C, OC) != 0 &&
        (prec == NN_PREC_FP32 || mm_onednn_dinp(NN_PREC_FP32, dinp, dout, weight, N, C, OC) != 0))
        matmul_backward_portable(dinp, NULL, NULL, dout, inp, weight, N, C, OC);
    if (dweight && mm_onednn_dweight(prec, dweight, dout, inp, N, C, OC) != 0 &&
        (prec == NN_PREC_FP32 || mm_onednn_dweight(NN_PREC_FP32, dweight, dout, inp, N, C, OC) != 0))
        matmul_backward_portable(NULL, dweight, NULL, dout, inp, weight, N, C, OC);
    if (dbias) mm_dbias(dbias, dout, N, OC);
    return 0;
}

static void mm_forward_prec(nn_prec_t prec, float *out, const float *inp, const float *weight, const float *bias,
                            int N, int C, int OC)
{
    if (N <= 0 || OC <= 0) return;
    if (mm_forward_path(MM_AUTO, prec, out, inp, weight, bias, N, C, OC) != 0)
        matmul_forward_portable(out, inp, weight, bias, N, C, OC);
}

void matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC)
{
    mm_forward_prec(nn_matmul_get_precision(), out, inp, weight, bias, N, C, OC);
}

void matmul_forward_fp32(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC)
{
    mm_forward_prec(NN_PREC_FP32, out, inp, weight, bias, N, C, OC);
}

void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int C, int OC)
{
    if (N <= 0 || OC <= 0 || C <= 0) return;
    if (mm_backward_path(MM_AUTO, nn_matmul_get_precision(), dinp, dweight, dbias, dout, inp, weight, N, C, OC) != 0)
        matmul_backward_portable(dinp, dweight, dbias, dout, inp, weight, N, C, OC);
}
