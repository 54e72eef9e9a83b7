/* peak.c: what this machine can do at best, measured, so that benchmark
 * figures can be quoted as a fraction of it ("achieved / peak") rather than
 * against a datasheet number a shared VM never reaches.
 *
 *   nn_peak_fma_gflops      an FMA loop on every OpenMP thread, enough
 *                           independent accumulators to cover FMA latency
 *   nn_peak_sgemm_gflops    the best of the matmul paths at one shape
 *   nn_read_bandwidth_gbs   streaming read of a buffer larger than the L3
 *
 * Each is measured once per process (best of several repetitions, because a
 * shared machine only ever slows a run down) and cached.
 */
#include "nn/matmul_impl.h"

#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static double peak_now(void) { return time_mono(); }

/* ---- FMA peak ---------------------------------------------------------- */

/* 12 independent accumulators per thread: 2 FMA ports x 4-cycle latency = 8
 * in flight at least; 12 leaves margin and fits in the 32 vector registers. */
#define FMA_ACC 12

#if defined(__AVX512F__)
typedef __m512 fvec_t;
#define FVEC_LANES 16
#define fvec_set1 _mm512_set1_ps
#define fvec_fma _mm512_fmadd_ps
#define fvec_add _mm512_add_ps
#define fvec_sum _mm512_reduce_add_ps
#elif defined(__AVX2__) && defined(__FMA__)
typedef __m256 fvec_t;
#define FVEC_LANES 8
#define fvec_set1 _mm256_set1_ps
#define fvec_fma _mm256_fmadd_ps
#define fvec_add _mm256_add_ps
static float fvec_sum(__m256 v)
{
    float t[8];
    _mm256_storeu_ps(t, v);
    return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}
#endif

#ifdef FVEC_LANES
/* Named accumulators, not an array: an array gets spilled to the stack and
 * the loop measures store-forwarding instead of FMA throughput. */
static float fma_loop(long iters, float seed)
{
    fvec_t a = fvec_set1(0.999999f), b = fvec_set1(seed * 1e-7f);
    fvec_t c0 = fvec_set1(seed), c1 = fvec_set1(seed + 1), c2 = fvec_set1(seed + 2), c3 = fvec_set1(seed + 3);
    fvec_t c4 = fvec_set1(seed + 4), c5 = fvec_set1(seed + 5), c6 = fvec_set1(seed + 6), c7 = fvec_set1(seed + 7);
    fvec_t c8 = fvec_set1(seed + 8), c9 = fvec_set1(seed + 9), c10 = fvec_set1(seed + 10), c11 = fvec_set1(seed + 11);
    for (long it = 0; it < iters; it++) {
        c0 = fvec_fma(c0, a, b); c1 = fvec_fma(c1, a, b); c2 = fvec_fma(c2, a, b); c3 = fvec_fma(c3, a, b);
        c4 = fvec_fma(c4, a, b); c5 = fvec_fma(c5, a, b); c6 = fvec_fma(c6, a, b); c7 = fvec_fma(c7, a, b);
        c8 = fvec_fma(c8, a, b); c9 = fvec_fma(c9, a, b); c10 = fvec_fma(c10, a, b); c11 = fvec_fma(c11, a, b);
        __asm__ volatile("" : "+v"(c0), "+v"(c1), "+v"(c2), "+v"(c3), "+v"(c4), "+v"(c5));
        __asm__ volatile("" : "+v"(c6), "+v"(c7), "+v"(c8), "+v"(c9), "+v"(c10), "+v"(c11));
    }
    c0 = fvec_add(fvec_add(fvec_add(c0, c1), fvec_add(c2, c3)), fvec_add(fvec_add(c4, c5), fvec_add(c6, c7)));
    c0 = fvec_add(c0, fvec_add(fvec_add(c8, c9), fvec_add(c10, c11)));
    return fvec_sum(c0);
}
#endif

static double peak_fma_cached = -1;

double nn_peak_fma_gflops(void)
{
    if (peak_fma_cached >= 0) return peak_fma_cached;
#ifdef FVEC_LANES
    const long iters = 2000000;     /* ~ 24M FMA instructions per thread, ~10 ms at 2 per cycle */
    double best = 0;
    volatile float sink = 0;
    for (int rep = 0; rep < 7; rep++) {
        int nt = 1;
        double t0 = peak_now();
        #pragma omp parallel
        {
            #pragma omp single
            nt = omp_get_num_threads();
            float r = fma_loop(iters, 1.0f + (float)omp_get_thread_num());
            #pragma omp atomic
            sink += r;
        }
        double t = peak_now() - t0;
        double gf = (double)nt * iters * FMA_ACC * FVEC_LANES * 2.0 / t * 1e-9;
        if (gf > best) best = gf;
    }
    (void)sink;
    peak_fma_cached = best;
#else
    peak_fma_cached = 0;
#endif
    return peak_fma_cached;
}

/* ---- memory read bandwidth ---------------------------------------------- */


static double peak_bw_cached = -1;

/* Streams a buffer of max(2 GiB, 4 x the L3 size the OS reports) so the
 * figure is DRAM, not cache (this VM reports a 480 MB L3). The buffer is
 * backed by transparent huge pages where allowed, so filling it costs a
 * thousand page faults instead of half a million. Best of 3 passes, all
 * threads, 4 independent vector sums per thread. */
double nn_read_bandwidth_gbs(void)
{
    if (peak_bw_cached >= 0) return peak_bw_cached;
    long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    size_t bytes = (size_t)2 << 30;
    if (l3 > 0 && (size_t)l3 * 4 > bytes) bytes = (size_t)l3 * 4;
    float *buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) { peak_bw_cached = 0; return 0; }
    madvise(buf, bytes, MADV_HUGEPAGE);
    size_t n = bytes / sizeof(float);
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) buf[i] = (float)(i & 7);
    double best = 0;
    volatile float sink = 0;
    for (int rep = 0; rep < 3; rep++) {
        float total = 0;
        double t0 = peak_now();
        #pragma omp parallel for schedule(static) reduction(+ : total)
        for (size_t blk = 0; blk < n / 4096; blk++) {
            const float *p = buf + blk * 4096;
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#ifdef FVEC_LANES
            fvec_t v0 = fvec_set1(0), v1 = v0, v2 = v0, v3 = v0;
            for (int i = 0; i < 4096; i += 4 * FVEC_LANES) {
                v0 = fvec_add(v0, *(const fvec_t *)(p + i));
                v1 = fvec_add(v1, *(const fvec_t *)(p + i + FVEC_LANES));
                v2 = fvec_add(v2, *(const fvec_t *)(p + i + 2 * FVEC_LANES));
                v3 = fvec_add(v3, *(const fvec_t *)(p + i + 3 * FVEC_LANES));
            }
            s0 = fvec_sum(fvec_add(fvec_add(v0, v1), fvec_add(v2, v3)));
#else
            for (int i = 0; i < 4096; i += 4) { s0 += p[i]; s1 += p[i + 1]; s2 += p[i + 2]; s3 += p[i + 3]; }
#endif
            total += s0 + s1 + s2 + s3;
        }
        double t = peak_now() - t0;
        sink += total;
        double gbs = (double)(n / 4096 * 4096) * sizeof(float) / t * 1e-9;
        if (gbs > best) best = gbs;
    }
    (void)sink;
    munmap(buf, bytes);
    peak_bw_cached = best;
    return best;
}

/* ---- best sgemm at a shape ---------------------------------------------- */

#define SGEMM_CACHE 32
static struct { int n, c, oc; double gf; } sgemm_cache[SGEMM_CACHE];
static int sgemm_ncache;

/* Forward product (N, C) x (C, OC)^T in fp32 through every fast path that
 * runs here; the best path's best time over ~0.2 s of repetitions. Inputs are
 * small deterministic values (no denormals), and are written before timing so
 * first-touch page faults stay outside the measurement. */
double nn_peak_sgemm_gflops(int N, int C, int OC)
{
    if (N <= 0 || C <= 0 || OC <= 0) return 0;
    for (int i = 0; i < sgemm_ncache; i++)
        if (sgemm_cache[i].n == N && sgemm_cache[i].c == C && sgemm_cache[i].oc == OC) return sgemm_cache[i].gf;
    float *inp = malloc((size_t)N * C * sizeof(float)), *w = malloc((size_t)OC * C * sizeof(float));
    float *b = malloc((size_t)OC * sizeof(float)), *out = malloc((size_t)N * OC * sizeof(float));
    if (!inp || !w || !b || !out) { free(inp); free(w); free(b); free(out); return 0; }
    for (size_t i = 0; i < (size_t)N * C; i++) inp[i] = (float)((i * 7919) % 97) * 0.01f - 0.48f;
    for (size_t i = 0; i < (size_t)OC * C; i++) w[i] = (float)((i * 104729) % 89) * 0.01f - 0.44f;
    for (int i = 0; i < OC; i++) b[i] = 0.01f * (float)(i % 7);
    memset(out, 0, (size_t)N * OC * sizeof(float));
    double flops = 2.0 * N * C * OC, best = 0;
    /* the portable kernels only when no faster path runs here: at the LM
     * head's shape they would take seconds to time, and never win */
    static const mm_path_t order[] = {MM_ONEDNN, MM_AVX512, MM_PORTABLE};
    for (int i = 0; i < 3; i++) {
        mm_path_t p = order[i];
        if (p == MM_PORTABLE && best > 0) break;
        if (mm_forward_path(p, NN_PREC_FP32, out, inp, w, b, N, C, OC) != 0) continue; /* + warm-up */
        double tmin = 1e30, spent = 0;
        for (int rep = 0; rep < 50 && (rep < 3 || spent < 0.2); rep++) {
            double t0 = peak_now();
            mm_forward_path(p, NN_PREC_FP32, out, inp, w, b, N, C, OC);
            double t = peak_now() - t0;
            spent += t;
            if (t < tmin) tmin = t;
        }
        if (flops / tmin * 1e-9 > best) best = flops / tmin * 1e-9;
    }
    free(inp); free(w); free(b); free(out);
    if (sgemm_ncache < SGEMM_CACHE) {
        sgemm_cache[sgemm_ncache].n = N;
        sgemm_cache[sgemm_ncache].c = C;
        sgemm_cache[sgemm_ncache].oc = OC;
        sgemm_cache[sgemm_ncache].gf = best;
        sgemm_ncache++;
    }
    return best;
}
