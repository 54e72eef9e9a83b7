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

/* A mapped model's matrices packed for mm_packed_forward (infer.c): each
 * layer's matrix is mm_packed_floats(OC, C) floats after the previous one.
 * All NULL unless the model was loaded by gpt2_load_mapped on an AVX-512 CPU. */
typedef struct {
    const float *wte, *qkvw, *attprojw, *fcw, *fcprojw;
} gpt2_packed_t;

typedef struct {
    gpt2_config_t config;
    gpt2_params_t params;           /* pointers into params_memory */
    gpt2_packed_t packed;           /* inference only, see above */
    size_t param_sizes[GPT2_NUM_PARAM_TENSORS];
    float *params_memory;           /* one allocation (or an mmap of a file: see mapped) */
    size_t num_parameters;          /* including the padded vocabulary rows */
    gpt2_params_t grads;            /* valid after the first gpt2_backward; a clip */
    float *grads_memory;            /* factor may be pending: see gpt2_grads_sync */
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
/* After gpt2_forward with targets == NULL: the logits (B, T, Vp), row stride
 * Vp, of which columns [0, V) are meaningful. With targets the buffer holds
 * the loss gradient instead, so this returns NULL. */
const float *gpt2_logits(const gpt2_t *m);
/* Bytes held by the training state (activations, activation-gradient scratch,
 * AdamW m and v) and, separately, what params + grads take: for the memory
 * line of `tunery bench train`. */
size_t gpt2_train_bytes(const gpt2_t *m);
/* FLOPs of one training step (forward + backward, multiply-add = 2) at B, T,
 * counted from the shapes: every matmul, attention's causal QK^T and AV (and
 * their backward, including the recomputed scores), the LM head. */
double gpt2_step_flops(const gpt2_config_t *c, int B, int T);

/* Where the time of a step goes, for `tunery bench train`. Off by default
 * (a few clock reads per layer when on); seconds accumulate until reset.
 * enabled = NN_PROFILE_WALL counts wall time, NN_PROFILE_CPU the process's
 * CPU time (all threads): on a shared machine the second counts the work,
 * not the neighbours (run with OMP_WAIT_POLICY=PASSIVE so spinning is not work). */
enum { NN_PROFILE_OFF = 0, NN_PROFILE_WALL = 1, NN_PROFILE_CPU = 2 };
typedef struct {
    int enabled;
    double matmul, attention, layernorm, gelu, lmhead_matmul, crossentropy, other, adamw;
} nn_profile_t;
extern nn_profile_t nn_profile;
/* seconds on the profile's clock (wall or process CPU, see above) */
double nn_profile_clock(void);

/* ---- safetensors (safetensors.c) ----
 * The reader checks everything before anything is trusted: the header length
 * against the file size, the header is a JSON object, each tensor has a known
 * dtype, a shape whose byte count matches its data_offsets, offsets inside the
 * data area, and no two tensors overlap. A failure is a sentence in err. */
enum { ST_F32, ST_F16, ST_BF16, ST_F64, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL };
#define ST_MAX_DIMS 8
typedef struct {
    char *name;
    int dtype;                  /* ST_* */
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t nelem;
    const uint8_t *data;        /* into the file's data area (maybe unaligned) */
    size_t nbytes;
} st_tensor_t;
typedef struct {
    st_tensor_t *tensors;       /* sorted by data offset */
    int n;
    void *map;                  /* st_file_open's mmap, or NULL */
    size_t map_len;
} st_file_t;
/* Parse a safetensors image in memory (buf must outlive f). */
int st_file_parse(st_file_t *f, const void *buf, size_t len, char *err);
/* mmap path read-only and parse it. */
int st_file_open(st_file_t *f, const char *path, char *err);
void st_file_close(st_file_t *f);
const st_tensor_t *st_tensor_find(const st_file_t *f, const char *name);
/* Convert a float tensor (F32, F16, BF16, F64) to fp32; -1 for other dtypes. */
int st_tensor_to_f32(const st_tensor_t *t, float *out);
size_t st_dtype_size(int dtype);
const char *st_dtype_name(int dtype);
/* A safetensors writer that streams: declare tensors (fp32 only), then write
 * each one's data in declaration order; the file appears atomically at
 * st_writer_close (temp file, fsync, rename). */
typedef struct st_writer st_writer_t;
int st_writer_open(st_writer_t **w, const char *path, const char *const *names,
                   const int64_t *const *shapes, const int *ndims, int n, char *err);
int st_writer_write(st_writer_t *w, const float *data, size_t nelem, char *err);
int st_writer_close(st_writer_t *w, char *err);   /* commits; frees w */
void st_writer_abort(st_writer_t *w);             /* removes the temp file; frees w */

/* ======================================================================
 * Optimizer and schedules (adamw.c)
 * ====================================================================== */
typedef struct {
    float lr, beta1, beta2, eps, weight_decay; /* decay applies to 2-D tensors only (wte, wpe, the four weight matrices per layer), as nanoGPT and llm.c; never to biases or LayerNorm */
} adamw_config_t;
/* Global L2 norm of all gradients; if max_norm > 0 and the norm exceeds it,
 * scales the gradients by max_norm / (norm + 1e-6) (as torch). Returns the norm
 * before clipping. The scaling is applied lazily, inside gpt2_update's pass
 * (saves a pass over every gradient); gpt2_grads_sync() applies it now for a
 * caller that reads grads_memory in between. */
float gpt2_clip_grad_norm(gpt2_t *m, float max_norm);
void gpt2_grads_sync(gpt2_t *m);
/* One AdamW step (step counts from 1), PyTorch torch.optim.AdamW semantics.
 * It consumes the gradients: they are zero afterwards, so the next
 * gpt2_zero_grad costs nothing. */
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
/* Backward kernels. dweight/dbias and the embedding grads ACCUMULATE, summed
 * in a fixed order whatever the thread count (bit-reproducible steps). */
void encoder_backward(float *dwte, float *dwpe, const float *dout, const int *inp, int B, int T, int C);
/* dinp += ..., dweight += ..., dbias += ... */
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                        const float *weight, const float *mean, const float *rstd, int N, int C);
/* dinp = gelu'(inp) * dout (dinp may alias dout). */
void gelu_backward(float *dinp, const float *inp, const float *dout, int N);
/* Causal multi-head attention over qkv (B, T, 3C) = [q | k | v], heads of
 * C/NH channels: out (B, T, C), lse (B, NH, T) = log-sum-exp of each query's
 * scaled scores, kept instead of the (T, T) probabilities, which backward
 * recomputes (memory O(T) per head, not O(T^2)). */
void attention_forward(float *out, float *lse, const float *qkv, int B, int T, int C, int NH);
/* dqkv = gradient of the loss w.r.t. qkv (overwritten), given dout (B, T, C)
 * and the forward's qkv, out and lse. */
void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out,
                        const float *lse, int B, int T, int C, int NH);
/* Fused softmax + cross-entropy over N rows of logits (row stride Vp, real
 * vocabulary V), in place: each row becomes w_i * (softmax - onehot(target))
 * on [0, V) and 0 on [V, Vp), the loss gradient before grad_scale; a row with
 * w_i == 0 or target < 0 becomes all zeros. losses[i] = unweighted
 * cross-entropy (0 when target < 0; losses required), argmax[i] over [0, V). w NULL = all 1.
 * Returns sum_i w_i * losses[i] (double); *wsum receives sum_i w_i. */
double crossentropy_forward(float *logits, float *losses, int *argmax, const int *targets,
                            const float *w, int N, int V, int Vp, double *wsum);
/* exp(x) to ~1 ulp, branch-free so that loops around it vectorise. */
static inline float nn_expf(float x)
{
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    float t = x * 1.44269504088896341f + 12582912.0f;   /* round(x / ln 2) in the low bits */
    float n = t - 12582912.0f;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { float f; int32_t i; } s;
    s.i = ((int32_t)n + 127) << 23;
    return p * s.f;
}

/* ======================================================================
 * Matrix multiply (matmul.c): the dispatcher. out (N, OC) = inp (N, C) @ weight^T + bias,
 * weight (OC, C) [out][in], bias (OC) or NULL. The implementation (oneDNN fp32/bf16,
 * own AVX-512 / AMX kernels, or portable C) is chosen at run time from the CPU
 * and from measurement; every path is tested against the portable one.
 * ====================================================================== */
void matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC);
/* The same in fp32 whatever the precision setting: inference's decode, whose
 * few rows are bound by reading the weights (in bf16 every call would also
 * convert them: batch-1 decode 19.5 instead of 49.9 tokens/s). */
void matmul_forward_fp32(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC);
/* dinp (N, C) += dout @ weight; dweight (OC, C) += dout^T @ inp; dbias (OC) += sum dout.
 * Any of dinp, dweight, dbias may be NULL (skip that product). */
/* Weights packed once for repeated forward products (inference, matmul_gemm.c):
 * mm_pack_weights turns weight (OC, C) into mm_packed_floats(OC, C) floats;
 * mm_packed_forward(out, inp, packed, bias, N, C, OC) then computes what
 * matmul_forward does, in fp32. -1 (nothing written) without AVX-512. */
#define MM_PACKED_MIN_ROWS 7   /* infer.c: products with more rows use the packed weights */
size_t mm_packed_floats(int OC, int C);
void mm_pack_weights(float *dst, const float *weight, int OC, int C);
int mm_packed_forward(float *out, const float *inp, const float *packed, const float *bias, int N, int C, int OC);
void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int C, int OC);
/* What the CPU reports and which kernel was picked, for bench output: e.g.
 * "Intel Xeon (Sapphire Rapids) avx512f avx512_bf16 amx_bf16; matmul=onednn-fp32". */
const char *nn_cpu_describe(void);
/* Precision of matmul compute. FP32 is the default (parity tests need 1e-4).
 * BF16 rounds both operands to bf16 and accumulates in fp32 into fp32 outputs
 * (master weights stay fp32); used only where the CPU has AVX512_BF16/AMX.
 * The environment variable TUNERY_MATMUL=bf16 (or fp32) sets the initial value;
 * TUNERY_MATMUL=avx512 keeps fp32 and uses our packed GEMM instead of oneDNN,
 * TUNERY_MATMUL=portable the plain C kernels.
 * In bf16, matmul_backward's dinp product reuses the bf16 copy of `weight`
 * made by the last matmul_forward with the same pointer: weights must not
 * change between a forward and its backward (true of any training step). */
typedef enum { NN_PREC_FP32 = 0, NN_PREC_BF16 = 1 } nn_prec_t;
void nn_matmul_set_precision(nn_prec_t prec);
nn_prec_t nn_matmul_get_precision(void);
/* 1 when this CPU and build can run bf16 products (AVX512_BF16 or AMX, oneDNN). */
int nn_matmul_bf16_available(void);

/* Measured peaks of this machine (peak.c), each measured once per process
 * and cached, so bench output can say "achieved / peak". */
/* FMA throughput in GFLOP/s over all OpenMP threads (a register-only loop). */
double nn_peak_fma_gflops(void);
/* Best fp32 GFLOP/s among the matmul paths for out (N, OC) = inp (N, C) @ W^T. */
double nn_peak_sgemm_gflops(int N, int C, int OC);
/* Streaming read bandwidth from DRAM in GB/s, all threads (a 2 GiB buffer,
 * or 4x the reported L3 if larger). Takes ~2 s the first time. */
double nn_read_bandwidth_gbs(void);

/* ======================================================================
 * Inference (infer.c, sample.c, generate.c): KV cache, prefill/decode,
 * sampling, and the completion request engine behind `tunery generate`,
 * /v1/completions and /v1/chat/completions.
 *
 * The split with tok/ (nn must not depend on it): requests carry prompts as
 * token ids (the caller encodes strings with tok_encode) and a piece
 * function that returns the bytes of one token (wrap tok_piece). Everything
 * text-level that needs the model's output (stop strings across token
 * boundaries, echo, text_offset, UTF-8-safe streaming) happens here on those
 * bytes. Logprobs come back as token ids; the caller turns them into strings
 * with tok_piece. A gpt2_t is only read: many gen_complete calls may run on
 * one model at once, each with its own KV cache.
 * ====================================================================== */

/* ---- KV cache and forward (infer.c) ---- */
typedef struct infer infer_t;
/* A KV cache for n_seq sequences of up to max_T positions each (max_T <=
 * config.max_seq_len; 0 means the full context), plus scratch, in one
 * allocation. The model must outlive it. */
int infer_create(infer_t **out, const gpt2_t *m, int n_seq, int max_T, char *err);
void infer_free(infer_t *s);
int infer_pos(const infer_t *s, int seq);           /* tokens in seq's cache */
void infer_reset(infer_t *s, int seq);               /* forget seq's tokens */
void infer_copy_seq(infer_t *s, int dst, int src);   /* dst := src (a shared prompt) */
/* Append tokens[0..T) to sequence seq (causal attention over its cache).
 * logits receives the (real-vocabulary, V) logits of the last position, or
 * of every position (T, V) when all_positions; NULL skips them. */
int infer_prefill(infer_t *s, int seq, const int *tokens, int T, float *logits, int all_positions, char *err);
/* One step of n sequences at once: seqs[i] gets tokens[i]; logits (n, V). */
int infer_decode(infer_t *s, const int *seqs, const int *tokens, int n, float *logits, char *err);

/* Load a model directory for inference, in well under 100 ms after the first
 * time: the first call converts model.safetensors (gpt2_load) and caches the
 * converted fp32 image as <dir>/.tunery-infer.f32 (or under $TUNERY_DATA/cache/
 * when dir is read-only); later calls mmap that image read-only and shared, so
 * processes serving one model share one copy of the weights in the page
 * cache. The image is rebuilt when model.safetensors changes (size, mtime).
 * A mapped model is read-only: inference only, never gpt2_forward/backward. */
int gpt2_load_mapped(gpt2_t *m, const char *dir, char *err);
/* Free a model from gpt2_load_mapped (munmap) or gpt2_load (free). */
void gpt2_unload_mapped(gpt2_t *m);

/* ---- logits processing and sampling (sample.c): pure functions ---- */
/* splitmix64-seeded xoshiro-style generator; one per choice so that n
 * choices are reproducible for a seed whatever the batching. */
typedef struct { uint64_t s[4]; } sample_rng_t;
void sample_rng_init(sample_rng_t *r, uint64_t seed, uint64_t stream);
double sample_rng_uniform(sample_rng_t *r);          /* [0, 1) */
/* out[i] = log softmax(logits)[i] (double accumulation); out may be logits. */
void sample_log_softmax(float *out, const float *logits, int V);
/* The k largest values of x (ids and values, descending, ties by lower id). */
void sample_top_k(const float *x, int V, int k, int *ids, float *vals);
/* OpenAI's penalties: logit[j] -= count[j] * frequency + (count[j] > 0) * presence,
 * count = occurrences of j among the tokens generated so far. */
void sample_penalize(float *logits, int V, const int *counts, float presence, float frequency);
/* logit[ids[i]] += bias[i]; a bias of -100 or less bans the token outright. */
void sample_bias(float *logits, int V, const int *ids, const float *bias, int n);
/* Pick a token from processed logits: temperature 0 = argmax (lowest id on
 * ties); else softmax(logits / temperature) restricted to the smallest set of
 * most likely tokens whose mass reaches top_p. logits is used as scratch. */
int sample_pick(float *logits, int V, float temperature, float top_p, sample_rng_t *rng);
/* Length of the longest prefix of s[0..n) that does not end inside an
 * incomplete UTF-8 sequence (invalid bytes count as complete: they never
 * become valid by waiting). */
size_t sample_utf8_ready(const char *s, size_t n);
/* Earliest position p >= from where one of the stops (each non-empty) starts
 * in text[0..len), or -1. */
long sample_stop_find(const char *text, size_t len, size_t from, const char *const *stops, int n_stop);
/* Length of the longest suffix of text[0..len) that is a proper prefix of a
 * stop: text that must be held back while streaming. */
size_t sample_stop_holdback(const char *text, size_t len, const char *const *stops, int n_stop);

/* ---- the completion request engine (generate.c) ---- */
#define GEN_MAX_N 128          /* n and best_of */
#define GEN_MAX_STOP 4
#define GEN_MAX_LOGPROBS 5
#define GEN_MAX_TOKENS_REST (-1) /* max_tokens: the rest of the context */
#define GEN_EINVAL (-2)        /* the request is invalid: HTTP 400, see res->err_param */
#define GEN_ECANCEL (-3)       /* the stream callback asked to stop */

/* The bytes of token id (not NUL-terminated), NULL if id is out of range.
 * For tok/: static const char *f(void *t, int id, size_t *n) { return tok_piece(t, id, n); } */
typedef const char *(*gen_piece_fn)(void *ctx, int id, size_t *len);

/* Every legacy completions parameter. gen_request_init sets OpenAI's
 * defaults, so a JSON null means "leave the field alone". */
typedef struct {
    const int *const *prompts;  /* n_prompts token-id arrays; n_prompts == 0 = the */
    const int *prompt_lens;     /* default prompt, <|endoftext|> (eot_id) */
    int n_prompts;
    int max_tokens;             /* default 16; GEN_MAX_TOKENS_REST; 0 allowed with echo */
    float temperature;          /* 0..2, default 1; 0 = greedy */
    float top_p;                /* (0, 1], default 1 */
    int n;                      /* 1..128, default 1 */
    int best_of;                /* n..128; 0 = n. Candidates ranked by mean logprob */
    int logprobs;               /* -1 = null; 0..5 */
    int echo;                   /* prompt text (and its logprobs) before the completion */
    int stream;                 /* call the stream callback; refused with best_of > n */
    const char *const *stop;    /* n_stop NUL-terminated strings, at most 4 */
    int n_stop;
    float presence_penalty;     /* -2..2 */
    float frequency_penalty;    /* -2..2 */
    const int *logit_bias_ids;  /* n_logit_bias token ids and biases in -100..100 */
    const float *logit_bias;
    int n_logit_bias;
    int has_seed;
    uint64_t seed;
    const char *suffix;         /* non-empty = refused (insertion is not supported) */
    int eot_id;                 /* generating it ends a choice with "stop"; -1 = none */
    gen_piece_fn piece;         /* required */
    void *piece_ctx;
} gen_request_t;

typedef struct {
    int index;                  /* prompt_index * n + j, OpenAI's order */
    char *text;                 /* NUL-terminated; the echoed prompt first */
    size_t text_len;
    const char *finish_reason;  /* "stop" (stop string or eot) or "length" */
    /* When logprobs >= 0: one entry per token of text (echo: prompt tokens first). */
    int n_tokens;
    int *tokens;
    float *token_logprobs;      /* NAN = JSON null (the first echoed prompt token) */
    size_t *text_offset;        /* byte offset in text where each token starts */
    int n_top;                  /* = logprobs. OpenAI's top_logprobs dict also holds the */
    int *top_ids;               /* sampled token (up to logprobs+1 keys): add tokens[i] with
                                 * token_logprobs[i]. (n_tokens, n_top); a row of -1 = null */
    float *top_logprobs;        /* (n_tokens, n_top) */
    int completion_tokens;      /* tokens generated for this choice */
    double mean_logprob;        /* mean logprob of the generated tokens (best_of's rank) */
} gen_choice_t;

typedef struct {
    gen_choice_t *choices;      /* n_prompts * n, by index */
    int n_choices;
    int prompt_tokens, completion_tokens, total_tokens; /* usage (best_of candidates count) */
    const char *err_param;      /* on GEN_EINVAL: the parameter at fault, for error.param */
} gen_result_t;

/* One streamed piece of one choice. text is whole UTF-8 characters and never
 * part of a stop string; the last chunk of a choice has finish_reason set
 * (text may be empty). The tokens are those whose text starts in this piece. */
typedef struct {
    int index;
    const char *text;
    size_t text_len;
    const char *finish_reason;  /* NULL until the choice ends */
    int n_tokens;
    const int *tokens;
    const float *token_logprobs;
    const size_t *text_offset;  /* offsets into the whole choice text */
    int n_top;
    const int *top_ids;
    const float *top_logprobs;
} gen_chunk_t;
/* Return non-zero to stop generating (client went away): gen_complete then
 * returns GEN_ECANCEL. */
typedef int (*gen_stream_fn)(void *ctx, const gen_chunk_t *chunk);

void gen_request_init(gen_request_t *req);
/* Validate against the model: returns 0, or GEN_EINVAL with *param naming
 * the offending parameter ("temperature", "n", "logprobs", "prompt", ...)
 * and err a sentence saying the allowed range. */
int gen_request_check(const gen_request_t *req, const gpt2_config_t *cfg, const char **param, char *err);
/* Run a request. res is filled (free with gen_result_free, also after an
 * error). cb may be NULL; with req->stream it receives every piece as it is
 * produced. Returns 0, GEN_EINVAL, GEN_ECANCEL, or -1 (out of memory...). */
int gen_complete(const gpt2_t *m, const gen_request_t *req, gen_result_t *res,
                 gen_stream_fn cb, void *cb_ctx, char *err);
void gen_result_free(gen_result_t *res);

/* ======================================================================
 * Model directories (cmd_models.c, gguf.c): `tunery models list | import |
 * export`. GGUF v3 export for llama.cpp (arch "gpt2") and a GGUF reader.
 * ====================================================================== */
/* GGUF metadata value types (ggml docs/gguf.md) */
enum { GGUF_U8, GGUF_I8, GGUF_U16, GGUF_I16, GGUF_U32, GGUF_I32, GGUF_F32, GGUF_BOOL,
       GGUF_STR, GGUF_ARR, GGUF_U64, GGUF_I64, GGUF_F64 };
/* ggml tensor types this code writes and decodes */
enum { GGML_TYPE_F32 = 0, GGML_TYPE_F16 = 1 };
/* llama.cpp token types (tokenizer.ggml.token_type) */
enum { GGUF_TOKEN_NORMAL = 1, GGUF_TOKEN_CONTROL = 3, GGUF_TOKEN_UNUSED = 5 };

/* The tokenizer to embed, as plain strings (nn/ does not depend on tok/):
 * tokens in GPT-2's byte-to-unicode form, as in vocab.json; merges "a b". */
typedef struct {
    int n_tokens;                   /* must equal the model's vocab_size */
    const char *const *tokens;
    const int32_t *token_types;     /* GGUF_TOKEN_* */
    int n_merges;
    const char *const *merges;
    int bos_id, eos_id;
} gguf_vocab_t;
/* Write m as a GGUF v3 file for llama.cpp's GPT-2 loader: metadata, the
 * tokenizer, llama.cpp tensor names (token_embd, position_embd, blk.N.*,
 * output_norm; the tied head has no output.weight unless GGUF_OUTPUT_COPY),
 * F32 tensors (GGUF_F16: the matrices as F16, vectors F32), 32-byte
 * alignment. Atomic (temp + rename). */
enum { GGUF_F16 = 1,            /* matrices F16 (general.file_type 1) */
       GGUF_OUTPUT_COPY = 2 };  /* also write output.weight = token_embd, for llama.cpp
                                 * releases before late 2024, which require it */
int gguf_write_gpt2(const gpt2_t *m, const char *name, const gguf_vocab_t *vocab, int flags,
                    const char *path, char *err);

typedef struct {
    char *key;
    int type;                       /* GGUF_* */
    union { uint64_t u; int64_t i; double f; } v;  /* scalars (bool, unsigned in u) */
    char *str;                      /* GGUF_STR */
    int arr_type;                   /* GGUF_ARR: element type and count */
    uint64_t n;
    char **strs;                    /* string arrays */
    const void *data;               /* numeric arrays: little-endian elements in the file */
} gguf_kv_t;
typedef struct {
    char *name;
    int n_dims;
    uint64_t ne[4];                 /* ne[0] fastest-varying; unused dims 1 */
    int type;                       /* GGML_TYPE_* (others parse; nbytes 0) */
    uint64_t offset, nelem;
    size_t nbytes;
    const uint8_t *data;            /* into the mapping */
} gguf_tensor_info_t;
typedef struct {
    uint32_t version;
    gguf_kv_t *kvs;
    int n_kv;
    gguf_tensor_info_t *tensors;
    int n_tensors;
    size_t alignment, data_offset;
    void *map;
    size_t map_len;
} gguf_file_t;
/* mmap and parse a GGUF v2/v3 file; every length is checked against the file. */
int gguf_open(gguf_file_t *f, const char *path, char *err);
void gguf_close(gguf_file_t *f);
const gguf_kv_t *gguf_find_kv(const gguf_file_t *f, const char *key);
const gguf_tensor_info_t *gguf_find_tensor(const gguf_file_t *f, const char *name);
/* F32 or F16 tensor data to fp32; -1 for other types. */
int gguf_tensor_to_f32(const gguf_tensor_info_t *t, float *out);
size_t gguf_type_size(int ggml_type);
float gguf_f16_to_f32(uint16_t h);

/* Check a Hugging Face GPT-2 directory before anything is installed: the
 * files (config.json, model.safetensors, a tokenizer: tokenizer.json or
 * vocab.json + merges.txt), model_type/architectures, every tensor's presence
 * and shape (naming it and both shapes), a truncated weights file, an untied
 * lm_head, the tokenizer's size against vocab_size. Fills cfg; err says the
 * first thing wrong. (cmd_models.c) */
int models_check_dir(const char *dir, gpt2_config_t *cfg, char *err);
typedef struct {
    int force;                      /* replace an existing DATA/models/NAME */
    double pretrain_lr;             /* written to tunery.json; 0 = 6e-4 */
} models_import_opts_t;
/* models_check_dir, then copy dir into data_dir/models/name atomically (a
 * temp directory, every file fsync'd, one rename) with a tunery.json
 * (source, imported_at, pretrain_learning_rate). Weights keep their dtype. */
int models_import(const char *dir, const char *name, const char *data_dir,
                  const models_import_opts_t *opts, char *err);
/* Export the model called name (resolved with core_model_dir) as GGUF
 * (flags: GGUF_F16, GGUF_OUTPUT_COPY) or as a safetensors directory (a copy
 * of the HF files). */
int models_export_gguf(const char *name, const char *out_path, int flags, char *err);
int models_export_safetensors(const char *name, const char *out_dir, char *err);

#endif
