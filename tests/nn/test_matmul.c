/* test_matmul.c: every matmul path against a naive triple loop in double.
 * Odd shapes (not multiples of any block or vector width), NULL bias, NULL
 * dinp/dweight/dbias, and the += contract of the backward pass. */
#include "test.h"
#include "nn/matmul_impl.h"

#include <omp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static float frand(void)
{
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}
static float *rand_buf(size_t n)
{
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = frand();
    return p;
}
static float *copy_buf(const float *a, size_t n)
{
    float *p = malloc(n * sizeof(float));
    memcpy(p, a, n * sizeof(float));
    return p;
}

/* max |a-b| / (|b| + 1): relative for big values, absolute near zero */
static double max_err(const float *a, const double *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]) / (fabs(b[i]) + 1.0);
        if (e > m || e != e) m = e != e ? 1e30 : e;
    }
    return m;
}

typedef void (*fwd_fn)(float *, const float *, const float *, const float *, int, int, int);
typedef void (*bwd_fn)(float *, float *, float *, const float *, const float *, const float *, int, int, int);

static void check_forward(fwd_fn f, int N, int C, int OC, int with_bias, double tol)
{
    float *inp = rand_buf((size_t)N * C), *w = rand_buf((size_t)OC * C), *b = rand_buf(OC);
    float *out = rand_buf((size_t)N * OC);   /* garbage: forward must overwrite */
    double *ref = malloc((size_t)N * OC * sizeof(double));
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = with_bias ? b[o] : 0.0;
            for (int c = 0; c < C; c++) s += (double)inp[(size_t)n * C + c] * w[(size_t)o * C + c];
            ref[(size_t)n * OC + o] = s;
        }
    f(out, inp, w, with_bias ? b : NULL, N, C, OC);
    double e = max_err(out, ref, (size_t)N * OC);
    CHECKF(e <= tol, "forward N=%d C=%d OC=%d bias=%d: max err %.3g > %.3g", N, C, OC, with_bias, e, tol);
    free(inp); free(w); free(b); free(out); free(ref);
}

/* mask bit 0: dinp, bit 1: dweight, bit 2: dbias */
static void check_backward(bwd_fn f, int N, int C, int OC, int mask, double tol)
{
    float *inp = rand_buf((size_t)N * C), *w = rand_buf((size_t)OC * C), *dout = rand_buf((size_t)N * OC);
    float *di0 = rand_buf((size_t)N * C), *dw0 = rand_buf((size_t)OC * C), *db0 = rand_buf(OC);
    float *di = copy_buf(di0, (size_t)N * C), *dw = copy_buf(dw0, (size_t)OC * C), *db = copy_buf(db0, OC);
    f((mask & 1) ? di : NULL, (mask & 2) ? dw : NULL, (mask & 4) ? db : NULL, dout, inp, w, N, C, OC);

    /* loops ordered so every inner loop is sequential in memory */
    double *rdi = malloc((size_t)N * C * sizeof(double));
    for (size_t i = 0; i < (size_t)N * C; i++) rdi[i] = di0[i];
    if (mask & 1)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) {
                double g = dout[(size_t)n * OC + o];
                for (int c = 0; c < C; c++) rdi[(size_t)n * C + c] += g * w[(size_t)o * C + c];
            }
    double *rdw = malloc((size_t)OC * C * sizeof(double));
    for (size_t i = 0; i < (size_t)OC * C; i++) rdw[i] = dw0[i];
    if (mask & 2)
        for (int o = 0; o < OC; o++)
            for (int n = 0; n < N; n++) {
                double g = dout[(size_t)n * OC + o];
                for (int c = 0; c < C; c++) rdw[(size_t)o * C + c] += g * inp[(size_t)n * C + c];
            }
    double *rdb = malloc((size_t)OC * sizeof(double));
    for (int o = 0; o < OC; o++) {
        double s = db0[o];
        if (mask & 4)
            for (int n = 0; n < N; n++) s += dout[(size_t)n * OC + o];
        rdb[o] = s;
    }
    double e1 = max_err(di, rdi, (size_t)N * C), e2 = max_err(dw, rdw, (size_t)OC * C), e3 = max_err(db, rdb, OC);
    CHECKF(e1 <= tol, "dinp N=%d C=%d OC=%d mask=%d: max err %.3g", N, C, OC, mask, e1);
    CHECKF(e2 <= tol, "dweight N=%d C=%d OC=%d mask=%d: max err %.3g", N, C, OC, mask, e2);
    CHECKF(e3 <= tol, "dbias N=%d C=%d OC=%d mask=%d: max err %.3g", N, C, OC, mask, e3);
    free(inp); free(w); free(dout); free(di0); free(dw0); free(db0); free(di); free(dw); free(db);
    free(rdi); free(rdw); free(rdb);
}

static const int shapes[][3] = {
    {37, 96, 291}, {1, 96, 291}, {3, 17, 5}, {8, 768, 130}, {64, 65, 64}, {5, 3072, 33}, {129, 128, 1},
};
#define NSHAPES (int)(sizeof shapes / sizeof shapes[0])

static void run_forward(fwd_fn f, double tol)
{
    for (int i = 0; i < NSHAPES; i++) {
        check_forward(f, shapes[i][0], shapes[i][1], shapes[i][2], 1, tol);
        check_forward(f, shapes[i][0], shapes[i][1], shapes[i][2], 0, tol);
    }
}
static void run_backward(bwd_fn f, double tol)
{
    for (int i = 0; i < NSHAPES; i++)
        for (int mask = 0; mask < 8; mask++)
            check_backward(f, shapes[i][0], shapes[i][1], shapes[i][2], mask, tol);
}

/* Paths forced through mm_*_path, so each one is compared with the naive
 * loop on its own (the dispatcher's choice would hide a broken path). */
static mm_path_t cur_path;
static nn_prec_t cur_prec;
static int path_ok;
static void fwd_path(float *out, const float *inp, const float *w, const float *b, int N, int C, int OC)
{
    if (mm_forward_path(cur_path, cur_prec, out, inp, w, b, N, C, OC) != 0) {
        path_ok = 0;
        matmul_forward_portable(out, inp, w, b, N, C, OC);
    }
}
static void bwd_path(float *di, float *dw, float *db, const float *dout, const float *inp, const float *w,
                     int N, int C, int OC)
{
    if (mm_backward_path(cur_path, cur_prec, di, dw, db, dout, inp, w, N, C, OC) != 0) {
        path_ok = 0;
        matmul_backward_portable(di, dw, db, dout, inp, w, N, C, OC);
    }
}

/* fp32 with fp32 accumulation over C <= 3072 terms in [-1,1]: 1e-4 relative
 * (to |x|+1) is loose enough for any summation order, tight enough to catch
 * a wrong index. */
static void test_portable_forward(void) { run_forward(matmul_forward_portable, 1e-4); }
static void test_portable_backward(void) { run_backward(matmul_backward_portable, 1e-4); }
static void test_dispatch_forward(void) { run_forward(matmul_forward, 1e-4); }
static void test_dispatch_backward(void) { run_backward(matmul_backward, 1e-4); }

static void test_onednn_fp32(void)
{
    if (!mm_onednn_available()) { fprintf(stderr, "  (oneDNN unavailable: skipped)\n"); return; }
    cur_path = MM_ONEDNN; cur_prec = NN_PREC_FP32; path_ok = 1;
    run_forward(fwd_path, 1e-4);
    run_backward(bwd_path, 1e-4);
    /* the split products: a reduction longer than MM_SPLIT_K, outputs wider than MM_SPLIT_COLS */
    check_backward(bwd_path, 3, 40, 16500, 7, 1e-4);
    check_backward(bwd_path, 5, 1600, 20, 7, 1e-4);
    check_backward(bwd_path, 2, 1700, 16900, 3, 1e-4);
    CHECK(path_ok);
}

/* More distinct row counts than the primitive table holds (fine-tuning and
 * prefill vary them): once full, the least recently used primitive is
 * evicted; every call still runs in oneDNN and stays correct, splits too. */
static void test_onednn_eviction(void)
{
    if (!mm_onednn_available()) return;
    cur_path = MM_ONEDNN; cur_prec = NN_PREC_FP32; path_ok = 1;
    for (int N = 1; N <= 300; N++) check_forward(fwd_path, N, 8, 3, N & 1, 1e-4);
    check_forward(fwd_path, 1, 8, 3, 1, 1e-4);
    check_backward(bwd_path, 5, 1600, 20, 7, 1e-4);
    check_backward(bwd_path, 3, 40, 16500, 7, 1e-4);
    CHECK(path_ok);
    if (nn_cpu()->avx512_bf16 || nn_cpu()->amx_bf16) {
        cur_prec = NN_PREC_BF16;
        for (int N = 1; N <= 20; N++) check_forward(fwd_path, N, 8, 3, 1, 2e-2);
        CHECK(path_ok);
    }
}

/* The kernel for a product must depend only on its shape (and the CPU), never
 * on what ran before in the process: a resumed fine-tune, starting with an
 * empty primitive table, must compute bit-identical steps to the process it
 * replaces. Same shapes before and after filling the table with 300 others
 * (more than it holds): identical bits, forward and every backward product,
 * including the split ones (output wider than 1536, reduction longer than
 * 16384). */
static void run_fixed_products(float **outs)
{
    static const int sh[][3] = {{40, 768, 96}, {24, 3072, 64}, {16, 40, 16500}};
    uint64_t saved = rng_state;
    rng_state = 0x2545F4914F6CDD1Dull;
    for (int s = 0; s < 3; s++) {
        int N = sh[s][0], C = sh[s][1], OC = sh[s][2];
        float *inp = rand_buf((size_t)N * C), *w = rand_buf((size_t)OC * C), *b = rand_buf(OC);
        float *dout = rand_buf((size_t)N * OC);
        float *out = outs[4 * s], *dinp = outs[4 * s + 1], *dw = outs[4 * s + 2], *db = outs[4 * s + 3];
        memset(dinp, 0, (size_t)N * C * sizeof(float));
        memset(dw, 0, (size_t)OC * C * sizeof(float));
        memset(db, 0, (size_t)OC * sizeof(float));
        matmul_forward(out, inp, w, b, N, C, OC);
        matmul_backward(dinp, dw, db, dout, inp, w, N, C, OC);
        free(inp); free(w); free(b); free(dout);
    }
    rng_state = saved;
}

static void test_kernel_choice_by_shape(void)
{
    static const int sh[][3] = {{40, 768, 96}, {24, 3072, 64}, {16, 40, 16500}};
    float *before[12], *after[12];
    size_t len[12];
    for (int s = 0; s < 3; s++) {
        int N = sh[s][0], C = sh[s][1], OC = sh[s][2];
        len[4 * s] = (size_t)N * OC; len[4 * s + 1] = (size_t)N * C;
        len[4 * s + 2] = (size_t)OC * C; len[4 * s + 3] = (size_t)OC;
    }
    for (int i = 0; i < 12; i++) {
        before[i] = malloc(len[i] * sizeof(float));
        after[i] = malloc(len[i] * sizeof(float));
    }
    mm_onednn_table_clear();   /* as a freshly started (or resumed) process */
    run_fixed_products(before);
    float *x = rand_buf(400 * 8), *w = rand_buf(3 * 8), *o = malloc(400 * 3 * sizeof(float));
    for (int N = 100; N < 400; N++) matmul_forward(o, x, w, NULL, N, 8, 3);
    run_fixed_products(after);
    for (int i = 0; i < 12; i++)
        CHECKF(memcmp(before[i], after[i], len[i] * sizeof(float)) == 0,
               "shape %d product %d: different bits after the primitive table filled up", i / 4, i % 4);
    for (int i = 0; i < 12; i++) { free(before[i]); free(after[i]); }
    free(x); free(w); free(o);
}

/* Our AVX-512 kernels: the GEMV (N <= 8) and the packed GEMM (all other N),
 * at odd shapes that cut every block: N, C, OC not multiples of the 8 x 48
 * tile, reductions longer than one KC slice (C = 3072, OC = 16500 in dinp),
 * more rows than one MC block (dweight with OC = 16500). */
static void test_avx512_kernels(void)
{
    cur_path = MM_AVX512; cur_prec = NN_PREC_FP32; path_ok = 1;
    for (int N = 1; N <= MM_GEMV_MAX_N; N++) {
        check_forward(fwd_path, N, 96, 291, 1, 1e-4);
        check_forward(fwd_path, N, 17, 5, 0, 1e-4);
        check_forward(fwd_path, N, 3072, 33, 1, 1e-4);
    }
    run_forward(fwd_path, 1e-4);
    run_backward(bwd_path, 1e-4);
    check_backward(bwd_path, 3, 40, 16500, 7, 1e-4);
    check_backward(bwd_path, 97, 1600, 20, 7, 1e-4);
    check_forward(fwd_path, 1100, 50, 61, 1, 1e-4);
    if (nn_cpu()->avx512f) CHECK(path_ok);
    else CHECK(!path_ok);   /* without AVX-512 the path must refuse, not compute something */
    /* bias with accumulation is not a product the GEMM offers: refused, output untouched */
    float a[9 * 4] = {0}, b[4 * 2] = {0}, bias[2] = {1, 1}, c[9 * 2] = {5};
    CHECK(mm_avx512_gemm(c, a, b, bias, 9, 4, 2, 4, 1, 2, 1, 2, 1) != 0 && c[0] == 5);
}

/* The GEMM splits columns between threads, never a reduction: the bits of
 * every product are the same with 1 thread as with 2. */
static void test_avx512_gemm_thread_count(void)
{
    if (!nn_cpu()->avx512f) return;
    int N = 37, C = 800, OC = 291;
    float *inp = rand_buf((size_t)N * C), *w = rand_buf((size_t)OC * C), *b = rand_buf(OC), *dout = rand_buf((size_t)N * OC);
    float *o1 = malloc((size_t)N * OC * 4), *o2 = malloc((size_t)N * OC * 4);
    float *di1 = calloc((size_t)N * C, 4), *di2 = calloc((size_t)N * C, 4);
    float *dw1 = calloc((size_t)OC * C, 4), *dw2 = calloc((size_t)OC * C, 4);
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    CHECK(mm_forward_path(MM_AVX512, NN_PREC_FP32, o1, inp, w, b, N, C, OC) == 0);
    CHECK(mm_backward_path(MM_AVX512, NN_PREC_FP32, di1, dw1, NULL, dout, inp, w, N, C, OC) == 0);
    omp_set_num_threads(nt > 1 ? nt : 2);
    CHECK(mm_forward_path(MM_AVX512, NN_PREC_FP32, o2, inp, w, b, N, C, OC) == 0);
    CHECK(mm_backward_path(MM_AVX512, NN_PREC_FP32, di2, dw2, NULL, dout, inp, w, N, C, OC) == 0);
    omp_set_num_threads(nt);
    CHECK(memcmp(o1, o2, (size_t)N * OC * 4) == 0);
    CHECK(memcmp(di1, di2, (size_t)N * C * 4) == 0);
    CHECK(memcmp(dw1, dw2, (size_t)OC * C * 4) == 0);
    free(inp); free(w); free(b); free(dout); free(o1); free(o2); free(di1); free(di2); free(dw1); free(dw2);
}

/* The server runs products on pool threads that come and go: a thread's GEMM
 * buffers are freed when it exits (LeakSanitizer checks it under make asan). */
static void *gemm_on_thread(void *arg)
{
    float *o = arg;
    float x[20 * 30], w[30 * 50];
    for (int i = 0; i < 20 * 30; i++) x[i] = (float)(i % 7);
    for (int i = 0; i < 30 * 50; i++) w[i] = (float)(i % 5);
    return (void *)(intptr_t)mm_avx512_gemm(o, x, w, NULL, 20, 30, 50, 30, 1, 50, 1, 50, 0);
}

static void test_avx512_gemm_thread_exit(void)
{
    if (!nn_cpu()->avx512f) return;
    float o[20 * 50];
    pthread_t th;
    void *rc = (void *)1;
    CHECK(pthread_create(&th, NULL, gemm_on_thread, o) == 0);
    CHECK(pthread_join(th, &rc) == 0);
    CHECK(rc == NULL);
    int bad = 0;   /* small integers: the product is exact in fp32 */
    for (int m = 0; m < 20; m++)
        for (int n = 0; n < 50; n++) {
            float ref = 0;
            for (int k = 0; k < 30; k++) ref += (float)((m * 30 + k) % 7) * (float)((k * 50 + n) % 5);
            bad += o[m * 50 + n] != ref;
        }
    CHECK(bad == 0);
}

/* Weights packed once (inference): mm_packed_forward on mm_pack_weights'
 * panels computes matmul_forward, at row counts from decode's 1 to a block's
 * worth, columns that are not a multiple of the 48-wide panel, and a
 * reduction longer than one slice. */
static void packed_fwd(float *out, const float *inp, const float *w, const float *b, int N, int C, int OC)
{
    float *wp = aligned_alloc(64, (mm_packed_floats(OC, C) * sizeof(float) + 63) / 64 * 64);
    mm_pack_weights(wp, w, OC, C);
    if (mm_packed_forward(out, inp, wp, b, N, C, OC) != 0) {
        path_ok = 0;
        matmul_forward_portable(out, inp, w, b, N, C, OC);
    }
    free(wp);
}

static void test_packed_forward(void)
{
    path_ok = 1;
    run_forward(packed_fwd, 1e-4);
    static const int sh[][3] = {{1, 768, 100}, {8, 800, 48}, {9, 1000, 97}, {130, 64, 2304}};
    for (int i = 0; i < 4; i++) check_forward(packed_fwd, sh[i][0], sh[i][1], sh[i][2], i & 1, 1e-4);
    CHECK(path_ok == (nn_cpu()->avx512f != 0));
}

/* bf16 keeps 8 significant bits: each operand is off by up to 2^-9
 * relatively, so a dot product is off by ~2^-8 of the magnitude of its terms.
 * Stated bound: relative Frobenius error <= 1e-2 against the exact product
 * (about 3x what rounding alone gives, so a wrong index still fails by far). */
static double frob_err(const float *a, const double *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) { num += (a[i] - b[i]) * (a[i] - b[i]); den += b[i] * b[i]; }
    return sqrt(num / (den > 0 ? den : 1));
}

static void check_bf16(int N, int C, int OC)
{
    float *inp = rand_buf((size_t)N * C), *w = rand_buf((size_t)OC * C), *b = rand_buf(OC);
    float *out = rand_buf((size_t)N * OC), *dout = rand_buf((size_t)N * OC);
    float *di = calloc((size_t)N * C, sizeof(float)), *dw = calloc((size_t)OC * C, sizeof(float));
    double *r = malloc((size_t)N * OC * sizeof(double)), *rdi = malloc((size_t)N * C * sizeof(double));
    double *rdw = malloc((size_t)OC * C * sizeof(double));
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = b[o];
            for (int c = 0; c < C; c++) s += (double)inp[(size_t)n * C + c] * w[(size_t)o * C + c];
            r[(size_t)n * OC + o] = s;
        }
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            double s = 0;
            for (int o = 0; o < OC; o++) s += (double)dout[(size_t)n * OC + o] * w[(size_t)o * C + c];
            rdi[(size_t)n * C + c] = s;
        }
    for (int o = 0; o < OC; o++)
        for (int c = 0; c < C; c++) {
            double s = 0;
            for (int n = 0; n < N; n++) s += (double)dout[(size_t)n * OC + o] * inp[(size_t)n * C + c];
            rdw[(size_t)o * C + c] = s;
        }
    nn_matmul_set_precision(NN_PREC_BF16);
    /* a forward with other weights at the same address first: the bf16 copy
     * it leaves must be refreshed by the next forward, not reused */
    for (size_t i = 0; i < (size_t)OC * C; i++) w[i] = -w[i];
    matmul_forward(out, inp, w, b, N, C, OC);
    for (size_t i = 0; i < (size_t)OC * C; i++) w[i] = -w[i];
    matmul_forward(out, inp, w, b, N, C, OC);
    matmul_backward(di, dw, NULL, dout, inp, w, N, C, OC);
    nn_matmul_set_precision(NN_PREC_FP32);
    double e1 = frob_err(out, r, (size_t)N * OC), e2 = frob_err(di, rdi, (size_t)N * C);
    double e3 = frob_err(dw, rdw, (size_t)OC * C);
    CHECKF(e1 <= 1e-2, "bf16 forward N=%d C=%d OC=%d: rel err %.3g", N, C, OC, e1);
    CHECKF(e2 <= 1e-2, "bf16 dinp N=%d C=%d OC=%d: rel err %.3g", N, C, OC, e2);
    CHECKF(e3 <= 1e-2, "bf16 dweight N=%d C=%d OC=%d: rel err %.3g", N, C, OC, e3);
    /* and it really ran in bf16: fp32 would be ~1e-7 off */
    CHECKF(e1 > 1e-5, "bf16 forward N=%d C=%d OC=%d looks like fp32 (rel err %.3g)", N, C, OC, e1);
    free(inp); free(w); free(b); free(out); free(dout); free(di); free(dw); free(r); free(rdi); free(rdw);
}

static void test_bf16(void)
{
    if (!mm_onednn_available() || !(nn_cpu()->avx512_bf16 || nn_cpu()->amx_bf16)) {
        fprintf(stderr, "  (no bf16 on this CPU: skipped)\n");
        return;
    }
    const char *forced = getenv("TUNERY_MATMUL");
    if (forced && strcmp(forced, "portable") == 0) {
        fprintf(stderr, "  (TUNERY_MATMUL=portable: bf16 skipped)\n");
        return;
    }
    CHECK(nn_matmul_get_precision() == NN_PREC_FP32);
    check_bf16(37, 96, 291);
    check_bf16(64, 768, 130);
    check_bf16(3, 3072, 65);
    /* dweight's transposed left operand converted in whole 16 x 16 blocks
     * only; then a reduction long enough for dinp to run in accumulating
     * pieces (matmul_onednn.c), with edge blocks on both sides */
    check_bf16(32, 48, 64);
    check_bf16(33, 64, 9000);
    CHECK(nn_matmul_get_precision() == NN_PREC_FP32);
}

/* Our AMX bf16 GEMM (matmul_amx.c) against an fp64 product of the same
 * operands rounded to bf16, so only the fp32 accumulation differs: each
 * element within 1e-5 of sum |a||b| (K <= 5000 fp32 additions). Every
 * packing case: A row-major, column-major (dweight's dout^T) and strided; B
 * row-major, column-major (the forward's W^T) and strided; edges in M, N
 * and K; a reduction longer than one slice (K > 4096); C four times taller
 * than wide (split by rows); accumulate; bias; and the same bits on one
 * thread as on two. */
static float bf16_rounded(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fff + ((u >> 16) & 1);
    u &= 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}

static void check_amx(int M, int K, int N, int a_layout, int b_layout, int accumulate, int with_bias)
{
    /* layouts: 0 row-major, 1 column-major, 2 strided (every other element) */
    size_t sam = a_layout == 0 ? (size_t)K : a_layout == 1 ? 1 : (size_t)2 * K, sak = a_layout == 0 ? 1 : a_layout == 1 ? (size_t)M : 2;
    size_t sbk = b_layout == 0 ? (size_t)N : b_layout == 1 ? 1 : (size_t)2 * N, sbn = b_layout == 0 ? 1 : b_layout == 1 ? (size_t)K : 2;
    size_t alen = (size_t)(M - 1) * sam + (size_t)(K - 1) * sak + 1, blen = (size_t)(K - 1) * sbk + (size_t)(N - 1) * sbn + 1;
    float *a = rand_buf(alen), *b = rand_buf(blen), *bias = with_bias ? rand_buf(N) : NULL;
    float *c = rand_buf((size_t)M * N), *c0 = copy_buf(c, (size_t)M * N), *c1 = copy_buf(c, (size_t)M * N);
    int threads = omp_get_max_threads();
    omp_set_num_threads(threads > 1 ? threads : 2);
    CHECK(mm_amx_gemm(c, a, b, bias, M, K, N, sam, sak, sbk, sbn, N, accumulate) == 0);
    omp_set_num_threads(1);
    CHECK(mm_amx_gemm(c1, a, b, bias, M, K, N, sam, sak, sbk, sbn, N, accumulate) == 0);
    omp_set_num_threads(threads);
    CHECKF(memcmp(c, c1, (size_t)M * N * sizeof(float)) == 0, "amx M=%d K=%d N=%d: other bits on one thread", M, K, N);
    double worst = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double ref = accumulate ? c0[(size_t)i * N + j] : with_bias ? bias[j] : 0.0, mag = fabs(ref);
            for (int k = 0; k < K; k++) {
                double p = (double)bf16_rounded(a[i * sam + k * sak]) * bf16_rounded(b[k * sbk + j * sbn]);
                ref += p;
                mag += fabs(p);
            }
            double e = fabs(c[(size_t)i * N + j] - ref) / mag;
            if (e > worst) worst = e;
        }
    CHECKF(worst <= 1e-5, "amx M=%d K=%d N=%d layouts %d/%d acc %d bias %d: rel err %.3g", M, K, N, a_layout,
           b_layout, accumulate, with_bias, worst);
    free(a); free(b); free(bias); free(c); free(c0); free(c1);
}

static void test_amx_gemm(void)
{
    if (!mm_amx_available()) {
        fprintf(stderr, "  (no AMX on this CPU or kernel: skipped)\n");
        CHECK(mm_amx_gemm(NULL, NULL, NULL, NULL, 16, 16, 16, 16, 1, 16, 1, 16, 0) == -1);
        return;
    }
    for (int al = 0; al < 3; al++)
        for (int bl = 0; bl < 3; bl++) check_amx(37, 45, 50, al, bl, 0, 0);
    check_amx(64, 96, 64, 1, 1, 0, 0);        /* whole tiles everywhere */
    check_amx(64, 96, 64, 0, 0, 0, 1);        /* bias, whole tiles: loaded with stride 0 */
    check_amx(33, 70, 40, 0, 1, 0, 1);        /* bias at the edges */
    check_amx(48, 64, 96, 0, 0, 1, 0);        /* accumulate */
    check_amx(40, 4200, 48, 0, 0, 0, 0);      /* two slices of the reduction */
    check_amx(40, 4200, 48, 1, 0, 1, 0);
    check_amx(300, 40, 33, 1, 0, 0, 0);       /* taller than 4x wide: threads split rows */
    check_amx(1100, 64, 96, 0, 1, 1, 1);      /* more rows than one block */
}

/* Two threads running AMX products at once (the server computes completions
 * on several threads): each has its own packed operands and tile state, so
 * each result equals the same product computed alone. */
typedef struct { int M, K, N; float *a, *b, *c; const float *solo; int rc, differ; } amx_job_t;

static void *amx_on_thread(void *arg)
{
    amx_job_t *j = arg;
    for (int rep = 0; rep < 200 && !j->rc; rep++) {
        j->rc = mm_amx_gemm(j->c, j->a, j->b, NULL, j->M, j->K, j->N, j->K, 1, j->N, 1, j->N, 0);
        j->differ += memcmp(j->c, j->solo, (size_t)j->M * j->N * sizeof(float)) != 0;
    }
    return NULL;
}

static void test_amx_gemm_concurrent(void)
{
    if (!mm_amx_available()) return;
    amx_job_t jobs[2] = {{.M = 200, .K = 300, .N = 96}, {.M = 64, .K = 1000, .N = 160}};
    float *solo[2];
    for (int i = 0; i < 2; i++) {
        amx_job_t *j = &jobs[i];
        j->a = rand_buf((size_t)j->M * j->K);
        j->b = rand_buf((size_t)j->K * j->N);
        j->c = rand_buf((size_t)j->M * j->N);
        solo[i] = rand_buf((size_t)j->M * j->N);
        CHECK(mm_amx_gemm(solo[i], j->a, j->b, NULL, j->M, j->K, j->N, j->K, 1, j->N, 1, j->N, 0) == 0);
        j->solo = solo[i];
    }
    pthread_t th[2];
    for (int i = 0; i < 2; i++) CHECK(pthread_create(&th[i], NULL, amx_on_thread, &jobs[i]) == 0);
    for (int i = 0; i < 2; i++) CHECK(pthread_join(th[i], NULL) == 0);
    for (int i = 0; i < 2; i++) {
        amx_job_t *j = &jobs[i];
        CHECK(j->rc == 0);
        CHECKF(j->differ == 0, "amx product %d: other bits in %d of 200 runs beside another thread's", i, j->differ);
        free(j->a); free(j->b); free(j->c); free(solo[i]);
    }
}

/* The peaks are measurements, so only their sanity is testable, and on a
 * shared machine two measurements taken a moment apart can differ 10x. So
 * each is checked against a hard physical ceiling (every thread retiring two
 * 16-lane FMAs per cycle at 6 GHz) and for being positive: a wrong flop count
 * or a broken timer fails, a busy neighbour does not. The bandwidth figure
 * needs a 2 GiB buffer and is left to `tunery bench`. */
static void test_peaks(void)
{
    double ceiling = omp_get_max_threads() * 2.0 * 16 * 2 * 6.0;
    double fma = nn_peak_fma_gflops();
    CHECKF(fma > 0.5 && fma < ceiling, "FMA peak %.1f GFLOP/s (ceiling %.0f)", fma, ceiling);
    CHECK(nn_peak_fma_gflops() == fma);  /* cached */
    double g = nn_peak_sgemm_gflops(64, 256, 192);
    CHECKF(g > 0.1 && g < ceiling, "sgemm %.1f GFLOP/s (ceiling %.0f)", g, ceiling);
    CHECK(nn_peak_sgemm_gflops(64, 256, 192) == g);
    CHECK(nn_peak_sgemm_gflops(0, 256, 192) == 0);
}

static void test_describe(void)
{
    const char *d = nn_cpu_describe();
    CHECK(d != NULL && strstr(d, "matmul=") != NULL);
}

int main(void)
{
    /* the dispatcher tests are of the fp32 default, whatever TUNERY_MATMUL says */
    nn_matmul_set_precision(NN_PREC_FP32);
    RUN(test_portable_forward);
    RUN(test_portable_backward);
    RUN(test_dispatch_forward);
    RUN(test_dispatch_backward);
    RUN(test_onednn_fp32);
    RUN(test_onednn_eviction);
    RUN(test_kernel_choice_by_shape);
    RUN(test_avx512_kernels);
    RUN(test_avx512_gemm_thread_count);
    RUN(test_avx512_gemm_thread_exit);
    RUN(test_packed_forward);
    RUN(test_bf16);
    RUN(test_amx_gemm);
    RUN(test_amx_gemm_concurrent);
    RUN(test_peaks);
    RUN(test_describe);
    return test_summary();
}
