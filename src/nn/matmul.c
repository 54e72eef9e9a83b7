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

const char *nn_matmul_describe(void)
{
    return "portable";
}

void matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC)
{
    if (N <= 0 || OC <= 0) return;
    matmul_forward_portable(out, inp, weight, bias, N, C, OC);
}

void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int C, int OC)
{
    if (N <= 0 || OC <= 0 || C <= 0) return;
    matmul_backward_portable(dinp, dweight, dbias, dout, inp, weight, N, C, OC);
}
