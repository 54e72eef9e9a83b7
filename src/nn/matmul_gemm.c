/* matmul_gemm.c: our own packed fp32 GEMM for AVX-512.
 *
 * oneDNN 2.6's fp32 matmul reaches 60-75% of the FMA peak inside a training
 * step or a prefill (docs/bench.md): its kernels are good, but for every call
 * with the weights as the transposed right operand it re-lays the weights out
 * in a separate pass, and weights that come cold from DRAM are not overlapped
 * with the arithmetic. This is the classic Goto/BLIS structure instead, sized
 * for these machines (48 KB L1d, 2 MB L2 per core, 32 zmm registers):
 *
 *   for each KC-long slice of the reduction:
 *     for each MC-row block of A:   pack it once, shared by the threads (L2)
 *       each thread, for its own NR-wide column panels of B:
 *         pack the KC x NR panel (L1), then run the 8 x 48 micro-kernel down
 *         every 8-row sliver of the A block, accumulating into C.
 *
 * The micro-kernel keeps an 8 x 48 tile of C in 24 zmm registers; per step
 * of the reduction it loads 3 vectors of B and broadcasts 8 values of A, 24
 * FMAs. The threads split the columns of C, never the reduction, so every
 * output element is summed in the same order whatever the thread count:
 * results depend on the shape only.
 *
 * Operands are read through element strides, so the three products of a
 * linear layer (forward inp @ W^T, dinp = dout @ W, dW = dout^T @ inp) are all
 * C (M, N) [+]= A (M, K) @ B (K, N): no transposed copies outside packing.
 * Packing a transposed B (the forward's weights) uses 16 x 16 in-register
 * transposes.
 *
 * Measured (docs/bench.md section 9): product by product within +-15% of
 * oneDNN, ahead at 128-256 rows with cold weights, behind on the LM head;
 * inside a whole training step 4-14% slower, so the dispatcher keeps oneDNN
 * and uses this for the layers' dinp (where it measured 10-22% faster,
 * section 10), under TUNERY_MATMUL=avx512, or without oneDNN. With
 * weights packed once (inference, the second half of this file) it makes
 * batch-8 decode 17% faster and runs every prefill product.
 */
#include "nn/matmul_impl.h"

#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Per-thread scratch buffers by slot, grown, never shrunk, freed when the
 * thread exits (the server's pool threads come and go). Slots: 0 the packed
 * A block of this GEMM, shared by the threads of one product, belongs to
 * the calling thread (the server runs products on several threads at once);
 * 1 each thread's own packed B panel; 2 and 3 the AMX GEMM's packed A and B
 * (matmul_amx.c), both the calling thread's. */
#define MM_SLOTS 4
typedef struct {
    void *p[MM_SLOTS];
    size_t len[MM_SLOTS];
} mm_scratch_t;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p)
{
    mm_scratch_t *g = p;
    for (int i = 0; i < MM_SLOTS; i++) free(g->p[i]);
    free(g);
}

static void scratch_key_init(void) { pthread_key_create(&scratch_key, scratch_free); }

void *mm_scratch(int slot, size_t bytes)
{
    if (slot < 0 || slot >= MM_SLOTS) return NULL;
    pthread_once(&scratch_once, scratch_key_init);
    mm_scratch_t *g = pthread_getspecific(scratch_key);
    if (!g) {
        if (!(g = calloc(1, sizeof *g))) return NULL;
        if (pthread_setspecific(scratch_key, g)) { free(g); return NULL; }
    }
    if (bytes <= g->len[slot]) return g->p[slot];
    void *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p) return NULL;
    free(g->p[slot]);
    g->p[slot] = p;
    g->len[slot] = bytes;
    return p;
}

#if defined(__AVX512F__)
#include <immintrin.h>

#define MR 8
#define NR 48
#ifndef KC
#define KC 768          /* training products (mm_avx512_gemm) */
#endif
#ifndef MC
#define MC 256
#endif
#ifndef KC_PACKED
#define KC_PACKED 384   /* inference (mm_packed_forward): 768 and 192 measured slower */
#endif

/* Packed A: per 8-row sliver, kc steps of 8 values (a[k * 8 + i]).
 * Packed B: kc steps of 48 values (b[k * 48 + j]). Both zero-padded. */

/* ------------------------------------------------------------------------ */
/* packing                                                                  */
/* ------------------------------------------------------------------------ */

/* Rows i0..i0+mr of A, columns k0..k0+kc -> ap (zero rows up to 8). */
static void pack_a_sliver(float *ap, const float *a, size_t sam, size_t sak, int i0, int mr, int k0, int kc)
{
    if (sam == 1 && mr == MR) {          /* A^T stored: 8 consecutive rows are contiguous */
        for (int k = 0; k < kc; k++)
            _mm256_storeu_ps(ap + (size_t)k * MR, _mm256_loadu_ps(a + (size_t)(k0 + k) * sak + i0));
        return;
    }
    int k0v = 0;
    if (sak == 1 && mr == MR) {          /* row-major A, 8 rows: 8 x 8 transposes */
        const float *r[MR];
        for (int i = 0; i < MR; i++) r[i] = a + (size_t)(i0 + i) * sam + k0;
        for (; k0v + 8 <= kc; k0v += 8) {
            __m256 x[8], t[8];
            for (int i = 0; i < 8; i++) x[i] = _mm256_loadu_ps(r[i] + k0v);
            for (int i = 0; i < 8; i += 2) {
                t[i] = _mm256_unpacklo_ps(x[i], x[i + 1]);
                t[i + 1] = _mm256_unpackhi_ps(x[i], x[i + 1]);
            }
            for (int i = 0; i < 8; i += 4) {
                x[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
                x[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
                x[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
                x[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
            }
            /* x[0..3]: columns 0,1,2,3 of rows 0-3 | 4-7 halves; x[4..7] the same for rows 4-7 */
            for (int i = 0; i < 4; i++) {
                _mm256_storeu_ps(ap + (size_t)(k0v + i) * MR, _mm256_permute2f128_ps(x[i], x[i + 4], 0x20));
                _mm256_storeu_ps(ap + (size_t)(k0v + i + 4) * MR, _mm256_permute2f128_ps(x[i], x[i + 4], 0x31));
            }
        }
    }
    for (int i = 0; i < MR; i++) {
        if (i >= mr) {
            for (int k = 0; k < kc; k++) ap[(size_t)k * MR + i] = 0.0f;
            continue;
        }
        const float *row = a + (size_t)(i0 + i) * sam + (size_t)k0 * sak;
        if (sak == 1)
            for (int k = k0v; k < kc; k++) ap[(size_t)k * MR + i] = row[k];
        else
            for (int k = 0; k < kc; k++) ap[(size_t)k * MR + i] = row[(size_t)k * sak];
    }
}

/* Rows k0..k0+kc of B, columns j0..j0+nr -> bp (zero columns up to 48). */
static void pack_b_panel(float *bp, const float *b, size_t sbk, size_t sbn, int k0, int kc, int j0, int nr)
{
    if (sbn == 1) {                      /* row-major B: 48 contiguous values per step */
        if (nr == NR) {
            for (int k = 0; k < kc; k++) {
                const float *src = b + (size_t)(k0 + k) * sbk + j0;
                float *dst = bp + (size_t)k * NR;
                _mm512_store_ps(dst, _mm512_loadu_ps(src));
                _mm512_store_ps(dst + 16, _mm512_loadu_ps(src + 16));
                _mm512_store_ps(dst + 32, _mm512_loadu_ps(src + 32));
            }
            return;
        }
        for (int k = 0; k < kc; k++) {
            const float *src = b + (size_t)(k0 + k) * sbk + j0;
            float *dst = bp + (size_t)k * NR;
            for (int j = 0; j < NR; j++) dst[j] = j < nr ? src[j] : 0.0f;
        }
        return;
    }
    if (sbk == 1) {                      /* B^T stored (the forward's weights): transpose 16 x 16 blocks */
        int k = 0;
        for (; k + 16 <= kc; k += 16)
            for (int jb = 0; jb < NR; jb += 16) {
                __m512 r[16];
                for (int j = 0; j < 16; j++)
                    r[j] = jb + j < nr ? _mm512_loadu_ps(b + (size_t)(j0 + jb + j) * sbn + k0 + k) : _mm512_setzero_ps();
                transpose16(r);
                for (int i = 0; i < 16; i++) _mm512_store_ps(bp + (size_t)(k + i) * NR + jb, r[i]);
            }
        for (; k < kc; k++)
            for (int j = 0; j < NR; j++) bp[(size_t)k * NR + j] = j < nr ? b[(size_t)(j0 + j) * sbn + k0 + k] : 0.0f;
        return;
    }
    for (int k = 0; k < kc; k++)
        for (int j = 0; j < NR; j++)
            bp[(size_t)k * NR + j] = j < nr ? b[(size_t)(k0 + k) * sbk + (size_t)(j0 + j) * sbn] : 0.0f;
}

/* ------------------------------------------------------------------------ */
/* the micro-kernel                                                         */
/* ------------------------------------------------------------------------ */

/* Software prefetch of the next B panel's source while this one is in use:
 * `left` cache lines, `lpr` per row, rows `stride` bytes apart. Weights that
 * come cold from DRAM otherwise stall the packing of every panel. */
typedef struct {
    const char *row;
    size_t stride;
    int lpr, line, left, per;   /* per: lines per call of prefetch_next (0 = 1) */
} prefetch_t;

static inline void prefetch_next(prefetch_t *pf)
{
    int n = pf->per > 1 ? pf->per : 1;
    for (int i = 0; i < n && pf->left > 0; i++) {
        _mm_prefetch(pf->row + 64 * pf->line, _MM_HINT_T1);
        pf->left--;
        if (++pf->line == pf->lpr) { pf->line = 0; pf->row += pf->stride; }
    }
}

/* c (8 x 48, row stride ldc) = [c +] ap (8 x kc) @ bp (kc x 48) [+ bias].
 * init: 0 = add this slice's sum to c, 1 = start from bias (or zero). One
 * line of pf every 4 steps. */
static void kernel_8x48(int kc, const float *ap, const float *bp, float *c, size_t ldc, int init, const float *bias,
                        prefetch_t *pf)
{
#define ROW(i) __m512 c##i##0, c##i##1, c##i##2;
    ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5) ROW(6) ROW(7)
#undef ROW
    if (init) {
        __m512 b0 = bias ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();
        __m512 b1 = bias ? _mm512_loadu_ps(bias + 16) : _mm512_setzero_ps();
        __m512 b2 = bias ? _mm512_loadu_ps(bias + 32) : _mm512_setzero_ps();
#define ROW(i) c##i##0 = b0; c##i##1 = b1; c##i##2 = b2;
        ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5) ROW(6) ROW(7)
#undef ROW
    } else {
#define ROW(i) c##i##0 = c##i##1 = c##i##2 = _mm512_setzero_ps();
        ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5) ROW(6) ROW(7)
#undef ROW
    }
#define ROW(i)                                                        \
    {                                                                 \
        __m512 a = _mm512_set1_ps(ap[i]);                             \
        c##i##0 = _mm512_fmadd_ps(a, b0, c##i##0);                    \
        c##i##1 = _mm512_fmadd_ps(a, b1, c##i##1);                    \
        c##i##2 = _mm512_fmadd_ps(a, b2, c##i##2);                    \
    }
#define STEP                                                                                   \
    {                                                                                          \
        __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16), b2 = _mm512_load_ps(bp + 32); \
        ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5) ROW(6) ROW(7)                                \
        ap += MR;                                                                              \
        bp += NR;                                                                              \
    }
    prefetch_t q = *pf;   /* in registers for the loop */
    int k = 0;
    for (; k + 4 <= kc; k += 4) {
        prefetch_next(&q);
        STEP STEP STEP STEP
    }
    for (; k < kc; k++) {
        if ((k & 3) == 0) prefetch_next(&q);
        STEP
    }
    *pf = q;
#undef STEP
#undef ROW
    if (!init) {   /* the slice's sum is added to c: blocked summation, not one long chain */
#define ROW(i)                                                                          \
    c##i##0 = _mm512_add_ps(_mm512_loadu_ps(c + (size_t)(i) * ldc), c##i##0);           \
    c##i##1 = _mm512_add_ps(_mm512_loadu_ps(c + (size_t)(i) * ldc + 16), c##i##1);      \
    c##i##2 = _mm512_add_ps(_mm512_loadu_ps(c + (size_t)(i) * ldc + 32), c##i##2);
        ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5) ROW(6) ROW(7)
#undef ROW
    }
#define ROW(i)                                                        \
    _mm512_storeu_ps(c + (size_t)(i) * ldc, c##i##0);                 \
    _mm512_storeu_ps(c + (size_t)(i) * ldc + 16, c##i##1);            \
    _mm512_storeu_ps(c + (size_t)(i) * ldc + 32, c##i##2);
    ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5) ROW(6) ROW(7)
#undef ROW
}

/* An edge tile (mr < 8 rows or nr < 48 columns): run the kernel on a local
 * tile and copy the part that exists. */
static void kernel_edge(int kc, const float *ap, const float *bp, float *c, size_t ldc, int init,
                        const float *bias, int mr, int nr, prefetch_t *pf)
{
    float tile[MR * NR] __attribute__((aligned(64)));
    float bb[NR];
    if (init && bias) {
        for (int j = 0; j < NR; j++) bb[j] = j < nr ? bias[j] : 0.0f;
    }
    if (!init)
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++) tile[i * NR + j] = i < mr && j < nr ? c[(size_t)i * ldc + j] : 0.0f;
    kernel_8x48(kc, ap, bp, tile, NR, init, init && bias ? bb : NULL, pf);
    for (int i = 0; i < mr; i++) memcpy(c + (size_t)i * ldc, tile + i * NR, (size_t)nr * sizeof(float));
}

/* Pack rows i0..i0+8*nsl of A (columns k0..k0+kc) as nsl slivers, sliver s at
 * dst + s * stride; the slivers are shared out among the threads of the
 * enclosing parallel region (an orphaned omp for: call it from every thread). */
static void pack_a_block(float *dst, size_t stride, const float *a, size_t sam, size_t sak, int i0, int M, int nsl,
                         int k0, int kc)
{
    #pragma omp for schedule(static)
    for (int s = 0; s < nsl; s++) {
        int r0 = i0 + s * MR, mr = M - r0 < MR ? M - r0 : MR;
        pack_a_sliver(dst + (size_t)s * stride, a, sam, sak, r0, mr, k0, kc);
    }
}

/* One B panel slice (nr columns from j0) times every sliver of a packed A
 * block (sliver s at ap + s * stride, rows from i0), into c. */
static void kernel_slivers(int kc, const float *ap, size_t stride, int i0, int M, int nsl, const float *bp, float *c,
                           size_t ldc, int j0, int nr, int init, const float *bias, prefetch_t *pf)
{
    for (int s = 0; s < nsl; s++) {
        int r0 = i0 + s * MR, mr = M - r0 < MR ? M - r0 : MR;
        float *cp = c + (size_t)r0 * ldc + j0;
        const float *as = ap + (size_t)s * stride;
        if (mr == MR && nr == NR) kernel_8x48(kc, as, bp, cp, ldc, init, bias, pf);
        else kernel_edge(kc, as, bp, cp, ldc, init, bias, mr, nr, pf);
    }
}

/* ------------------------------------------------------------------------ */
/* the blocked product                                                      */
/* ------------------------------------------------------------------------ */

/* Blocking, by shape only: the packed A block (mc x kc) and one B panel
 * (kc x 48) should sit in L2 together (2 MB per core here). KC 768 with MC
 * 256 was measured best for the training products (one core, B8T128, every
 * product of a step: 5-6% less time than KC 384 / MC 1024, mostly the LM
 * head's, whose 50304-wide output was summed twice; KC 512-1024 and MC
 * 256-512 within 3% of each other, MC 128 worse). TUNERY_GEMM_KC and
 * TUNERY_GEMM_MC override both, for measuring. */
static void gemm_blocking(int M, int K, int kc_default, int *kc, int *mc)
{
    static int env_kc = -1, env_mc = -1;
    if (env_kc < 0) {
        const char *e = getenv("TUNERY_GEMM_KC"), *f = getenv("TUNERY_GEMM_MC");
        env_kc = e ? atoi(e) : 0;
        env_mc = f ? atoi(f) : 0;
    }
    *kc = env_kc > 0 ? env_kc : kc_default;
    *mc = env_mc > 0 ? env_mc : MC;
    if (*kc > K) *kc = K;
    if (*mc > M) *mc = M;
}

/* Where the next panel's source lies (for prefetch_next). */
static void prefetch_panel(prefetch_t *pf, const float *b, size_t sbk, size_t sbn, int k0, int kc, int j0, int nr)
{
    pf->line = 0;
    if (sbk == 1) {          /* nr rows of kc floats */
        pf->row = (const char *)(b + (size_t)j0 * sbn + k0);
        pf->stride = sbn * sizeof(float);
        pf->lpr = (kc * (int)sizeof(float) + 63) / 64;
        pf->left = nr * pf->lpr;
    } else if (sbn == 1) {   /* kc rows of nr floats */
        pf->row = (const char *)(b + (size_t)k0 * sbk + j0);
        pf->stride = sbk * sizeof(float);
        pf->lpr = (nr * (int)sizeof(float) + 63) / 64;
        pf->left = kc * pf->lpr;
    } else {
        pf->left = 0;
    }
}


/* c (M, N; row stride ldc) = [c +] a (M, K) @ b (K, N) [+ bias (N)], a and b
 * read through element strides (sam, sak) and (sbk, sbn). bias only when not
 * accumulating. 0, or -1 when this path cannot run (no AVX-512, no memory);
 * c is untouched then. */
int mm_avx512_gemm(float *c, const float *a, const float *b, const float *bias, int M, int K, int N,
                   size_t sam, size_t sak, size_t sbk, size_t sbn, size_t ldc, int accumulate)
{
    if (!nn_cpu()->avx512f || M <= 0 || N <= 0 || K <= 0 || (accumulate && bias)) return -1;
    int KCb, MCb;
    gemm_blocking(M, K, KC, &KCb, &MCb);
    float *ablock = (float *)mm_scratch(0, sizeof(float) * (size_t)((MCb + MR - 1) / MR) * MR * KCb);
    if (!ablock) return -1;
    int npanels = (N + NR - 1) / NR;
    int fail = 0;
    #pragma omp parallel
    {
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
        float *bp = (float *)mm_scratch(1, sizeof(float) * (size_t)KCb * NR);
        if (!bp) {
            #pragma omp atomic write
            fail = 1;
        }
        #pragma omp barrier
        /* columns: contiguous panel ranges per thread */
        int p0 = (int)((long)npanels * t / nt), p1 = (int)((long)npanels * (t + 1) / nt);
        for (int k0 = 0; k0 < K && !fail; k0 += KCb) {
            int kc = K - k0 < KCb ? K - k0 : KCb;
            int init = k0 == 0 && !accumulate;
            for (int i0 = 0; i0 < M; i0 += MCb) {
                int mcur = M - i0 < MCb ? M - i0 : MCb;
                int nsl = (mcur + MR - 1) / MR;
                #pragma omp barrier
                pack_a_block(ablock, (size_t)MR * kc, a, sam, sak, i0, M, nsl, k0, kc);
                for (int p = p0; p < p1; p++) {
                    int j0 = p * NR, nr = N - j0 < NR ? N - j0 : NR;
                    pack_b_panel(bp, b, sbk, sbn, k0, kc, j0, nr);
                    prefetch_t pf = {0};
                    if (p + 1 < p1) prefetch_panel(&pf, b, sbk, sbn, k0, kc, j0 + NR, N - j0 - NR < NR ? N - j0 - NR : NR);
                    kernel_slivers(kc, ablock, (size_t)MR * kc, i0, M, nsl, bp, c, ldc, j0, nr, init,
                                   bias && init ? bias + j0 : NULL, &pf);
                }
            }
        }
    }
    return fail ? -1 : 0;
}

/* ------------------------------------------------------------------------ */
/* weights packed once (inference)                                          */
/* ------------------------------------------------------------------------ */

/* Inference multiplies by the same weights on every call, so the mapped model
 * image (infer.c) stores each matrix already cut into the panels the kernel
 * reads: no packing per call, and each panel is one contiguous stream that
 * the prefetchers follow from DRAM. W (N, K) row-major becomes ceil(N/48)
 * panels of K steps x 48 values (zero columns past N). */
size_t mm_packed_floats(int N, int K)
{
    return (size_t)((N + NR - 1) / NR) * NR * (size_t)K;
}

void mm_pack_weights(float *dst, const float *w, int N, int K)
{
    int np = (N + NR - 1) / NR;
    #pragma omp parallel for schedule(static)
    for (int p = 0; p < np; p++)
        pack_b_panel(dst + (size_t)p * K * NR, w, 1, (size_t)K, 0, K, p * NR, N - p * NR < NR ? N - p * NR : NR);
}

/* out (M, N) = inp (M, K) @ W^T [+ bias] with W packed by mm_pack_weights.
 * The whole A is packed first (one barrier: inference runs at most 128 rows
 * at a time, 1.5 MB at K = 3072); then, slice by slice of the reduction,
 * each thread runs its own panels' KC-long slices down every sliver of A,
 * the next slice prefetched meanwhile. Slices outside panels keep one A slice
 * (128 x KC) in L2 for all of a thread's panels: panels outside slices needed
 * the whole packed A beside each panel, 2.1 MB at K = 3072, more than L2, and
 * ran at 62% of the FMA peak instead of 77% (one core, docs/bench.md). Each
 * thread owns its output columns, so no barrier between slices. */
int mm_packed_forward(float *out, const float *inp, const float *wp, const float *bias, int M, int K, int N)
{
    if (!nn_cpu()->avx512f || M <= 0 || N <= 0 || K <= 0) return -1;
    int nsl = (M + MR - 1) / MR;
    float *ablock = (float *)mm_scratch(0, sizeof(float) * (size_t)nsl * MR * K);
    if (!ablock) return -1;
    int npanels = (N + NR - 1) / NR, KCp, MCp;
    gemm_blocking(M, K, KC_PACKED, &KCp, &MCp);
    #pragma omp parallel
    {
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
        int p0 = (int)((long)npanels * t / nt), p1 = (int)((long)npanels * (t + 1) / nt);
        /* A sliver s, slice k0: ablock + s * 8 * K + k0 * 8 (slices of one sliver back to back) */
        pack_a_block(ablock, (size_t)MR * K, inp, (size_t)K, 1, 0, M, nsl, 0, K);
        for (int k0 = 0; k0 < K; k0 += KCp) {
            int kc = K - k0 < KCp ? K - k0 : KCp, init = k0 == 0;
            for (int p = p0; p < p1; p++) {
                int j0 = p * NR, nr = N - j0 < NR ? N - j0 : NR;
                const float *slice = wp + (size_t)p * K * NR + (size_t)k0 * NR;
                /* the next slice this thread reads: the next panel's, or the first panel's next one */
                const float *next = p + 1 < p1 ? slice + (size_t)K * NR
                                  : k0 + kc < K ? wp + (size_t)p0 * K * NR + (size_t)(k0 + kc) * NR : NULL;
                int next_kc = p + 1 < p1 ? kc : K - k0 - kc < KCp ? K - k0 - kc : KCp;
                prefetch_t pf = {0};
                if (next) {   /* spread over this slice's kernel calls */
                    pf.row = (const char *)next;
                    pf.lpr = 1 << 30;
                    pf.left = next_kc * NR * (int)sizeof(float) / 64;
                    int slots = nsl * ((kc + 3) / 4);
                    pf.per = (pf.left + slots - 1) / slots;
                }
                kernel_slivers(kc, ablock + (size_t)k0 * MR, (size_t)MR * K, 0, M, nsl, slice, out, (size_t)N, j0, nr,
                               init, bias && init ? bias + j0 : NULL, &pf);
            }
        }
    }
    return 0;
}

#else

size_t mm_packed_floats(int N, int K)
{
    (void)N; (void)K;
    return 0;
}

void mm_pack_weights(float *dst, const float *w, int N, int K)
{
    (void)dst; (void)w; (void)N; (void)K;
}

int mm_packed_forward(float *out, const float *inp, const float *wp, const float *bias, int M, int K, int N)
{
    (void)out; (void)inp; (void)wp; (void)bias; (void)M; (void)K; (void)N;
    return -1;
}

int mm_avx512_gemm(float *c, const float *a, const float *b, const float *bias, int M, int K, int N,
                   size_t sam, size_t sak, size_t sbk, size_t sbn, size_t ldc, int accumulate)
{
    (void)c; (void)a; (void)b; (void)bias; (void)M; (void)K; (void)N;
    (void)sam; (void)sak; (void)sbk; (void)sbn; (void)ldc; (void)accumulate;
    return -1;
}

#endif
