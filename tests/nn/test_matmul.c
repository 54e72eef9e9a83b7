/* test_matmul.c: every matmul path against a naive triple loop in double.
 * Odd shapes (not multiples of any block or vector width), NULL bias, NULL
 * dinp/dweight/dbias, and the += contract of the backward pass. */
#include "test.h"
#include "nn/matmul_impl.h"

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

    double *rdi = malloc((size_t)N * C * sizeof(double));
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            double s = di0[(size_t)n * C + c];
            if (mask & 1)
                for (int o = 0; o < OC; o++) s += (double)dout[(size_t)n * OC + o] * w[(size_t)o * C + c];
            rdi[(size_t)n * C + c] = s;
        }
    double *rdw = malloc((size_t)OC * C * sizeof(double));
    for (int o = 0; o < OC; o++)
        for (int c = 0; c < C; c++) {
            double s = dw0[(size_t)o * C + c];
            if (mask & 2)
                for (int n = 0; n < N; n++) s += (double)dout[(size_t)n * OC + o] * inp[(size_t)n * C + c];
            rdw[(size_t)o * C + c] = s;
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

/* fp32 with fp32 accumulation over C <= 3072 terms in [-1,1]: 1e-4 relative
 * (to |x|+1) is loose enough for any summation order, tight enough to catch
 * a wrong index. */
static void test_portable_forward(void) { run_forward(matmul_forward_portable, 1e-4); }
static void test_portable_backward(void) { run_backward(matmul_backward_portable, 1e-4); }
static void test_dispatch_forward(void) { run_forward(matmul_forward, 1e-4); }
static void test_dispatch_backward(void) { run_backward(matmul_backward, 1e-4); }

static void test_describe(void)
{
    const char *d = nn_cpu_describe();
    CHECK(d != NULL && strstr(d, "matmul=") != NULL);
}

int main(void)
{
    RUN(test_portable_forward);
    RUN(test_portable_backward);
    RUN(test_dispatch_forward);
    RUN(test_dispatch_backward);
    RUN(test_describe);
    return test_summary();
}
