/* nn: the engine. GPT-2 forward, backward and AdamW on CPU, in the style of
 * llm.c: each layer's forward and backward side by side, flat loops over
 * contiguous arrays, all parameters in one allocation. Also checkpoint I/O
 * (safetensors with Hugging Face GPT-2 names), the matrix-multiply dispatcher
 * (picked at run time from what the CPU reports), and inference (KV cache,
 * sampling) for `tunery generate` and /v1/completions.
 *
 * Shapes: B = batch size, T = sequence length, C = channels, NH = heads,
 * L = layers, V = vocabulary, Vp = V padded up to a multiple of 128 (invisible
 * outside nn/: logits past V are never exposed, never sampled, and weigh
 * nothing in the loss).
 *
 * Weight layout inside nn/ is [out][in] (PyTorch nn.Linear, llm.c). Hugging
 * Face GPT-2 stores Conv1D weights as [in][out]; the safetensors loader and
 * saver transpose, so files on disk are always HF layout.
 *
 * nn depends only on core/. It never touches HTTP, SQL or JSON-over-HTTP.
 * Sections below are owned by different files; keep each section's API there.
 */
#ifndef TUNERY_NN_H
#define TUNERY_NN_H

#include "core/core.h"
#include <stddef.h>
#include <stdint.h>

/* ======================================================================
 * Model configuration and parameters (gpt2.c)
 * ====================================================================== */
typedef struct {
    int max_seq_len;        /* n_positions (n_ctx) */
    int vocab_size;         /* V, e.g. 50257 */
    int padded_vocab_size;  /* Vp, filled by gpt2_create */
    int num_layers;         /* L */
    int num_heads;          /* NH */
    int channels;           /* C (n_embd) */
} gpt2_config_t;

#define GPT2_NUM_PARAM_TENSORS 16
typedef struct {
    float *wte;       /* (Vp, C) token embeddings; also the tied LM head */
    float *wpe;       /* (maxT, C) position embeddings */
    float *ln1w;      /* (L, C) */
    float *ln1b;      /* (L, C) */
    float *qkvw;      /* (L, 3C, C) */
    float *qkvb;      /* (L, 3C) */
    float *attprojw;  /* (L, C, C) */
    float *attprojb;  /* (L, C) */
    float *ln2w;      /* (L, C) */
    float *ln2b;      /* (L, C) */
    float *fcw;       /* (L, 4C, C) */
    float *fcb;       /* (L, 4C) */
    float *fcprojw;   /* (L, C, 4C) */
    float *fcprojb;   /* (L, C) */
    float *lnfw;      /* (C) */
    float *lnfb;      /* (C) */
} gpt2_params_t;

typedef struct gpt2_train_state gpt2_train_state_t; /* activations, grads, AdamW m/v: private to gpt2.c */

typedef struct {
    gpt2_config_t config;
    gpt2_params_t params;           /* pointers into params_memory */
    size_t param_sizes[GPT2_NUM_PARAM_TENSORS];
    float *params_memory;           /* one allocation (or an mmap of a file: see mapped) */
    size_t num_parameters;          /* including the padded vocabulary rows */
    gpt2_params_t grads;            /* valid after the first gpt2_backward */
    float *grads_memory;
    gpt2_train_state_t *train;      /* NULL until the first training forward */
    /* outputs of the last gpt2_forward with targets, each (B, T): */
    float *out_losses;              /* per-position cross-entropy (unweighted) */
    int *out_argmax;                /* per-position argmax over the real vocabulary */
    float mean_loss;                /* weighted mean loss of that forward, see gpt2_forward */
} gpt2_t;

/* Allocate a model of this shape with zeroed parameters. */
int gpt2_create(gpt2_t *m, const gpt2_config_t *cfg, char *err);
/* GPT-2's initialisation: N(0, 0.02), residual projections N(0, 0.02/sqrt(2L)),
 * biases 0, LayerNorm weights 1. Deterministic for a seed. */
void gpt2_init_random(gpt2_t *m, uint64_t seed);
/* Load a Hugging Face GPT-2 directory (config.json + model.safetensors; fp32,
 * fp16 or bf16 tensors; "transformer." prefixes accepted). */
int gpt2_load(gpt2_t *m, const char *dir, char *err);
/* Write model.safetensors (fp32, HF names and Conv1D layout) + config.json
 * into dir (created if missing), each atomically. */
int gpt2_save(const gpt2_t *m, const char *dir, char *err);
void gpt2_free(gpt2_t *m);

/* Training forward over inputs (B, T). With targets (B, T) it computes the
 * loss: per position i, loss_i = -log softmax(logits_i)[targets_i], and
 *   mean_loss = sum_i w_i * loss_i / sum_i w_i
 * where w = loss_weights (B, T) (NULL means all 1; 0 ignores a position; a
 * target < 0 is also ignored). Returns mean_loss (or 0 when sum w == 0 or
 * targets == NULL). Fills out_losses and out_argmax. */
float gpt2_forward(gpt2_t *m, const int *inputs, const int *targets, const float *loss_weights, int B, int T);
void gpt2_zero_grad(gpt2_t *m);
/* Backward of the last forward, ACCUMULATING into grads. The gradient of
 * position i's loss is scaled by w_i * grad_scale. For one micro-batch use
 * grad_scale = 1 / sum(w); for gradient accumulation over micro-batches use
 * 1 / (sum of w over all micro-batches of the step), which makes the
 * accumulated gradient that of the weighted mean over the whole batch. */
void gpt2_backward(gpt2_t *m, float grad_scale);

/* ======================================================================
 * Optimizer and schedules (adamw.c)
 * ====================================================================== */
typedef struct {
    float lr, beta1, beta2, eps, weight_decay; /* decay applies to 2-D tensors only (wte, wpe, the four weight matrices per layer), as nanoGPT and llm.c; never to biases or LayerNorm */
} adamw_config_t;
/* Global L2 norm of all gradients; if max_norm > 0 and the norm exceeds it,
 * scales the gradients by max_norm / norm. Returns the norm before clipping. */
float gpt2_clip_grad_norm(gpt2_t *m, float max_norm);
/* One AdamW step (step counts from 1), PyTorch torch.optim.AdamW semantics. */
void gpt2_update(gpt2_t *m, const adamw_config_t *opt, int step);
/* Optimizer state (m, v) for exact resume; a separate file from the weights. */
int gpt2_optim_save(const gpt2_t *m, const char *path, char *err);
int gpt2_optim_load(gpt2_t *m, const char *path, char *err);

typedef enum { LR_CONSTANT = 0, LR_LINEAR = 1, LR_COSINE = 2 } lr_kind_t;
typedef struct {
    lr_kind_t kind;
    float max_lr, min_lr;
    int warmup_steps, total_steps;
} lr_schedule_t;
/* Learning rate for step (1-based): linear warm-up over warmup_steps, then
 * constant, linear or cosine decay from max_lr to min_lr at total_steps. */
float lr_at(const lr_schedule_t *s, int step);

/* ======================================================================
 * Layer kernels (layers.c): llm.c signatures, fp32, OpenMP over B*T rows.
 * Exposed because inference (infer.c) reuses them with a KV cache.
 * ====================================================================== */
void encoder_forward(float *out, const int *inp, const float *wte, const float *wpe, int B, int T, int C);
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight, const float *bias, int N, int C);
void gelu_forward(float *out, const float *inp, int N);
void residual_forward(float *out, const float *a, const float *b, int N);

/* ======================================================================
 * Matrix multiply (matmul.c): the dispatcher. out (N, OC) = inp (N, C) @ weight^T + bias,
 * weight (OC, C) [out][in], bias (OC) or NULL. The implementation (oneDNN fp32/bf16,
 * own AVX-512 / AMX kernels, or portable C) is chosen at run time from the CPU
 * and from measurement; every path is tested against the portable one.
 * ====================================================================== */
void matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC);
/* dinp (N, C) += dout @ weight; dweight (OC, C) += dout^T @ inp; dbias (OC) += sum dout.
 * Any of dinp, dweight, dbias may be NULL (skip that product). */
void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int C, int OC);
/* What the CPU reports and which kernel was picked, for bench output: e.g.
 * "Intel Xeon (Sapphire Rapids) avx512f avx512_bf16 amx_bf16; matmul=onednn-fp32". */
const char *nn_cpu_describe(void);

/* ======================================================================
 * Inference (infer.c, sample.c): KV cache, prefill/decode, sampling.
 * ====================================================================== */
/* (owned by infer.c / sample.c; declared here when written) */

#endif
