/* matmul_impl.h: private to the matmul files (matmul*.c, cpu.c, peak.c).
 * The kernel table the dispatcher chooses from, and the CPU flags it reads.
 * Everything here is an implementation detail behind nn.h's matmul_forward /
 * matmul_backward; tests include it to check every path against the portable one. */
#ifndef TUNERY_NN_MATMUL_IMPL_H
#define TUNERY_NN_MATMUL_IMPL_H

#include "nn/nn.h"

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

#endif
