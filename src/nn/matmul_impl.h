/* matmul_impl.h: private to the matmul files (matmul*.c, cpu.c, peak.c;
 * layers.c borrows transpose16).
 * The kernel table the dispatcher chooses from, and the CPU flags it reads.
 * Everything here is an implementation detail behind nn.h's matmul_forward /
 * matmul_backward; tests include it to check every path against the portable one. */
#ifndef TUNERY_NN_MATMUL_IMPL_H
#define TUNERY_NN_MATMUL_IMPL_H

#include "nn/nn.h"

#include <string.h>

typedef struct {
    char vendor[13];
    char brand[49];
    char family_name[32];
    int avx2, avx512f, avx512bw, avx512vl, avx512_bf16, avx512_fp16, amx_tile, amx_bf16;
} nn_cpu_t;

const nn_cpu_t *nn_cpu(void);
/* "portable" / "onednn-fp32" / ... : what matmul_forward uses now. */
const char *nn_matmul_describe(void);

/* The portable reference kernels (plain C, OpenMP, vectorised by the compiler). */
void matmul_forward_portable(float *out, const float *inp, const float *weight, const float *bias,
                             int N, int C, int OC);
void matmul_backward_portable(float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *weight, int N, int C, int OC);

/* oneDNN path (matmul_onednn.c). dst (m, n) [+]= src (m, k) @ wei (k, n) [+ bias]
 * with element strides (sm, sk), (wk, wn); dst dense. 0, or -1 = not possible here. */
int mm_onednn_available(void);
/* destroy every cached primitive not in use (as in a fresh process) */
void mm_onednn_table_clear(void);
/* wcache (bf16 only): MM_WCACHE_STORE keeps the bf16 copy of wei for a later
 * MM_WCACHE_USE with the same pointer and extent (forward -> backward dinp). */
enum { MM_WCACHE_NONE = 0, MM_WCACHE_STORE = 1, MM_WCACHE_USE = 2 };
void mm_onednn_wcache_clear(void);
int mm_onednn_gemm(int prec, float *dst, const float *src, const float *wei, const float *bias,
                   int64_t m, int64_t k, int64_t n, int64_t sm, int64_t sk, int64_t wk, int64_t wn,
                   int accumulate, int wcache, int rt);
/* rt: the row-count dimension, left to run time in the primitive under TUNERY_MATMUL_RT=1 */
enum { MM_RT_NONE = 0, MM_RT_M = 1, MM_RT_K = 2 };
/* The same with dst strides (dm, dn): lets a product be computed transposed. */
int mm_onednn_gemm_strided(int prec, float *dst, const float *src, const float *wei, const float *bias,
                           int64_t m, int64_t k, int64_t n, int64_t sm, int64_t sk, int64_t wk, int64_t wn,
                           int64_t dm, int64_t dn, int accumulate);
int mm_onednn_prepare(int prec, int64_t m, int64_t k, int64_t n, int64_t sm, int64_t sk, int64_t wk, int64_t wn,
                      int64_t dm, int64_t dn, int bias, int accumulate);

/* Own AVX-512 kernels (matmul_avx512.c); -1 when the CPU or shape does not fit. */
#define MM_GEMV_MAX_N 8
int mm_avx512_gemv(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC);
/* Own packed GEMM (matmul_gemm.c): c (M, N; row stride ldc) = [c +] a (M, K) @ b (K, N) [+ bias],
 * a and b through element strides; bias only when not accumulating. */
int mm_avx512_gemm(float *c, const float *a, const float *b, const float *bias, int M, int K, int N,
                   size_t sam, size_t sak, size_t sbk, size_t sbn, size_t ldc, int accumulate);

/* Own AMX bf16 GEMM (matmul_amx.c), the same contract as mm_avx512_gemm with
 * the operands rounded to bf16 and fp32 accumulation; -1 when this CPU or its
 * kernel has no AMX (nothing written). */
int mm_amx_available(void);
int mm_amx_gemm(float *c, const float *a, const float *b, const float *bias, int M, int K, int N,
                size_t sam, size_t sak, size_t sbk, size_t sbn, size_t ldc, int accumulate);
/* This thread's scratch buffer number slot (0-3, see matmul_gemm.c), at least
 * bytes long, 64-byte aligned; NULL when out of memory. */
void *mm_scratch(int slot, size_t bytes);

/* fp32 -> bf16, round to nearest even (NaN stays NaN): the scalar edges of
 * the bf16 conversions (matmul_onednn.c, matmul_amx.c). */
static inline uint16_t mm_bf16_round(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

/* The paths the dispatcher chooses between. MM_AUTO is the measured rule in
 * matmul.c; the others force one path (tests, benchmarks, peak.c) and return
 * -1 when that path cannot run here (no oneDNN, no AVX-512, shape not handled). */
typedef enum { MM_AUTO = 0, MM_PORTABLE, MM_ONEDNN, MM_AVX512, MM_AMX, MM_NPATHS } mm_path_t;
const char *mm_path_name(mm_path_t path);
int mm_forward_path(mm_path_t path, nn_prec_t prec, float *out, const float *inp, const float *weight,
                    const float *bias, int N, int C, int OC);
int mm_backward_path(mm_path_t path, nn_prec_t prec, float *dinp, float *dweight, float *dbias,
                     const float *dout, const float *inp, const float *weight, int N, int C, int OC);

#if defined(__AVX512F__)
#include <immintrin.h>
/* 16 x 16 transpose in registers: r[i] holds row i; afterwards r[j] holds
 * column j (packing transposed weights, converting transposed operands). */
static inline void transpose16(__m512 r[16])
{
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
        r[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
        r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xDD);
    }
}

#if defined(__AVX512BF16__)
/* Columns 0 .. cols-1 of src (16 consecutive floats each, ld apart; zeros
 * for the rest of 16) become rows 0 .. 15 of dst (16 bf16 each, dst_ld
 * apart), transposed and rounded to nearest even: a transposed operand
 * converted 16 x 16 at a time (oneDNN's dweight rows, AMX's A tiles). */
static inline void mm_bf16_transposed16(uint16_t *dst, size_t dst_ld, const float *src, size_t ld, int cols)
{
    __m512 r[16];
    for (int j = 0; j < 16; j++) r[j] = j < cols ? _mm512_loadu_ps(src + (size_t)j * ld) : _mm512_setzero_ps();
    transpose16(r);
    for (int i = 0; i < 16; i++)
        _mm256_storeu_si256((__m256i *)(dst + (size_t)i * dst_ld), (__m256i)_mm512_cvtneps_pbh(r[i]));
}
#endif
#endif

#endif
