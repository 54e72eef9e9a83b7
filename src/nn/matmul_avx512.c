/* matmul_avx512.c: own AVX-512 kernels where a library GEMM loses.
 *
 * Decode (N = 1..8 rows) is a matrix-vector product: 2 flops per weight
 * loaded, so it runs at memory speed, and the only thing that matters is to
 * stream every weight row exactly once for all N rows and keep both cores'
 * loads in flight. oneDNN's GEMM at N <= 8 packs its operands first and
 * reaches less of the bandwidth; this kernel reads the weights in place.
 *
 * Each output element is a dot product over C computed by one thread in a
 * fixed order, so results do not depend on the thread count.
 */
#include "nn/matmul_impl.h"

#include <immintrin.h>

#if defined(__AVX512F__)

/* out[n][o0..o0+1] for NR rows: two weight rows at a time, NR x 2 vector
 * accumulators (<= 16 of the 32 zmm registers), masked tail for C % 16. */
#define GEMV_BODY(NR)                                                                 \
    do {                                                                              \
        __m512 a0[NR], a1[NR];                                                        \
        for (int r = 0; r < NR; r++) a0[r] = a1[r] = _mm512_setzero_ps();              \
        const float *w0 = weight + (size_t)o * C, *w1 = w0 + (two ? C : 0);           \
        int c = 0;                                                                    \
        for (; c + 16 <= C; c += 16) {                                                \
            __m512 v0 = _mm512_loadu_ps(w0 + c), v1 = _mm512_loadu_ps(w1 + c);        \
            for (int r = 0; r < NR; r++) {                                            \
                __m512 x = _mm512_loadu_ps(inp + (size_t)r * C + c);                  \
                a0[r] = _mm512_fmadd_ps(v0, x, a0[r]);                                \
                a1[r] = _mm512_fmadd_ps(v1, x, a1[r]);                                \
            }                                                                         \
        }                                                                             \
        if (c < C) {                                                                  \
            __mmask16 m = (__mmask16)((1u << (C - c)) - 1);                           \
            __m512 v0 = _mm512_maskz_loadu_ps(m, w0 + c), v1 = _mm512_maskz_loadu_ps(m, w1 + c); \
            for (int r = 0; r < NR; r++) {                                            \
                __m512 x = _mm512_maskz_loadu_ps(m, inp + (size_t)r * C + c);         \
                a0[r] = _mm512_fmadd_ps(v0, x, a0[r]);                                \
                a1[r] = _mm512_fmadd_ps(v1, x, a1[r]);                                \
            }                                                                         \
        }                                                                             \
        for (int r = 0; r < NR; r++) {                                                \
            float b0 = bias ? bias[o] : 0.0f;                                         \
            out[(size_t)r * OC + o] = _mm512_reduce_add_ps(a0[r]) + b0;              \
            if (two) out[(size_t)r * OC + o + 1] = _mm512_reduce_add_ps(a1[r]) + (bias ? bias[o + 1] : 0.0f); \
        }                                                                             \
    } while (0)

static void gemv_rows(float *out, const float *inp, const float *weight, const float *bias,
                      int NR, int C, int OC)
{
    int npairs = (OC + 1) / 2;
    #pragma omp parallel for schedule(static)
    for (int p = 0; p < npairs; p++) {
        int o = 2 * p, two = o + 1 < OC;
        switch (NR) {
        case 1: GEMV_BODY(1); break;
        case 2: GEMV_BODY(2); break;
        case 3: GEMV_BODY(3); break;
        case 4: GEMV_BODY(4); break;
        case 5: GEMV_BODY(5); break;
        case 6: GEMV_BODY(6); break;
        case 7: GEMV_BODY(7); break;
        default: GEMV_BODY(8); break;
        }
    }
}

int mm_avx512_gemv(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC)
{
    if (!nn_cpu()->avx512f || N > MM_GEMV_MAX_N) return -1;
    gemv_rows(out, inp, weight, bias, N, C, OC);
    return 0;
}

#else

int mm_avx512_gemv(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC)
{
    (void)out; (void)inp; (void)weight; (void)bias; (void)N; (void)C; (void)OC;
    return -1;
}

#endif
