/* infer.c: the GPT-2 forward pass for inference, with a KV cache.
 *
 * Training's gpt2_forward recomputes every position and keeps every
 * activation for backward; generating one token that way costs T times too
 * much. Here each sequence keeps the keys and values of the tokens it has
 * seen, so prefill runs a block of prompt tokens through the model once and
 * decode runs ONE new row per sequence. Several sequences (n / best_of
 * choices, or several prompts) decode together as one batch of rows, so the
 * weights are streamed from memory once per step for all of them: decode is
 * bound by memory bandwidth, and batching is how to spend it well.
 *
 * The layer kernels (layers.c) and matmul_forward (matmul.c) are shared with
 * training; only attention over the cache is written here. Rows in one call
 * may belong to different sequences at different positions.
 *
 * Cache layout: k and v are (L, n_seq, max_T, C), heads interleaved along C
 * exactly as the qkv projection produces them, so storing a row is a memcpy.
 */
#include "nn/nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define INFER_CHUNK 128 /* prompt rows per forward: bounds scratch, keeps matmuls wide */

struct infer {
    const gpt2_t *m;
    int n_seq, max_T, rows;     /* rows: most rows one forward handles */
    int L, C, NH, V, Vp;
    int *pos;                   /* (n_seq) tokens in each sequence's cache */
    float *kc, *vc;             /* (L, n_seq, max_T, C) */
    /* scratch for `rows` rows */
    float *x, *ln, *qkv, *att, *tmp, *fch, *fchg, *mean, *rstd, *scores, *logits;
    int *row_seq, *row_pos;
    void *mem;
};

static size_t kv_index(const infer_t *s, int l, int seq, int t)
{
    return (((size_t)l * s->n_seq + seq) * s->max_T + t) * s->C;
}

int infer_create(infer_t **out, const gpt2_t *m, int n_seq, int max_T, char *err)
{
    const gpt2_config_t *c = &m->config;
    *out = NULL;
    if (max_T <= 0 || max_T > c->max_seq_len) max_T = c->max_seq_len;
    if (n_seq <= 0) return core_errf(err, "infer_create: n_seq must be at least 1 (got %d)", n_seq);
    infer_t *s = calloc(1, sizeof *s);
    if (!s) return core_errf(err, "out of memory for the inference state");
    s->m = m;
    s->n_seq = n_seq; s->max_T = max_T;
    s->L = c->num_layers; s->C = c->channels; s->NH = c->num_heads;
    s->V = c->vocab_size; s->Vp = c->padded_vocab_size > 0 ? c->padded_vocab_size : c->vocab_size;
    s->rows = n_seq > INFER_CHUNK ? n_seq : INFER_CHUNK;
    size_t R = (size_t)s->rows, C = (size_t)s->C;
    size_t kv = (size_t)s->L * n_seq * max_T * C;
    size_t nf = 2 * kv + R * C * 4 + R * 3 * C + R * 4 * C * 2 + 2 * R
              + R * s->NH * (size_t)max_T + R * (size_t)s->Vp;
    size_t bytes = nf * sizeof(float) + (size_t)n_seq * sizeof(int) + 2 * R * sizeof(int);
    s->mem = malloc(bytes);
    if (!s->mem) {
        free(s);
        return core_errf(err, "out of memory: the KV cache for %d sequences of %d tokens needs %.1f MB",
                         n_seq, max_T, (double)bytes / 1e6);
    }
    float *p = s->mem;
    s->kc = p; p += kv;
    s->vc = p; p += kv;
    s->x = p; p += R * C;
    s->ln = p; p += R * C;
    s->att = p; p += R * C;
    s->tmp = p; p += R * C;
    s->qkv = p; p += R * 3 * C;
    s->fch = p; p += R * 4 * C;
    s->fchg = p; p += R * 4 * C;
    s->mean = p; p += R;
    s->rstd = p; p += R;
    s->scores = p; p += R * s->NH * (size_t)max_T;
    s->logits = p; p += R * (size_t)s->Vp;
    s->pos = (int *)p;
    s->row_seq = s->pos + n_seq;
    s->row_pos = s->row_seq + R;
    memset(s->pos, 0, (size_t)n_seq * sizeof(int));
    *out = s;
    return 0;
}

void infer_free(infer_t *s)
{
    if (!s) return;
    free(s->mem);
    free(s);
}

int infer_pos(const infer_t *s, int seq) { return s->pos[seq]; }
void infer_reset(infer_t *s, int seq) { s->pos[seq] = 0; }

void infer_copy_seq(infer_t *s, int dst, int src)
{
    if (dst == src) return;
    size_t n = (size_t)s->pos[src] * s->C * sizeof(float);
    for (int l = 0; l < s->L; l++) {
        memcpy(s->kc + kv_index(s, l, dst, 0), s->kc + kv_index(s, l, src, 0), n);
        memcpy(s->vc + kv_index(s, l, dst, 0), s->vc + kv_index(s, l, src, 0), n);
    }
    s->pos[dst] = s->pos[src];
}

/* Attention of query rows r0..R-1 against their sequences' caches, positions
 * 0..row_pos[r] inclusive (causal). qkv (R, 3C) -> att (R, C). */
static void infer_attention(infer_t *s, int l, int r0, int R)
{
    int C = s->C, NH = s->NH, hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    /* threads only when there is real work: a parallel region costs more
     * than a short context's attention, worse on a busy machine */
    size_t work = 0;
    for (int r = r0; r < R; r++) work += (size_t)(s->row_pos[r] + 1) * C;
    #pragma omp parallel for collapse(2) schedule(dynamic, 1) if (work >= (1u << 19))
    for (int r = r0; r < R; r++) {
        for (int h = 0; h < NH; h++) {
            const float *q = s->qkv + (size_t)r * 3 * C + h * hs;
            const float *kb = s->kc + kv_index(s, l, s->row_seq[r], 0) + h * hs;
            const float *vb = s->vc + kv_index(s, l, s->row_seq[r], 0) + h * hs;
            float *sc = s->scores + ((size_t)r * NH + h) * s->max_T;
            int T = s->row_pos[r] + 1;
            float maxv = -INFINITY;
            for (int t = 0; t < T; t++) {
                const float *k = kb + (size_t)t * C;
                float d = 0.0f;
                /* simd reduction: without it C's strict float order makes
                 * this a chain of dependent FMAs, the hot spot of decode */
                #pragma omp simd reduction(+ : d)
                for (int i = 0; i < hs; i++) d += q[i] * k[i];
                d *= scale;
                sc[t] = d;
                if (d > maxv) maxv = d;
            }
            float sum = 0.0f;
            for (int t = 0; t < T; t++) { sc[t] = expf(sc[t] - maxv); sum += sc[t]; }
            float inv = 1.0f / sum;
            float *o = s->att + (size_t)r * C + h * hs;
            for (int i = 0; i < hs; i++) o[i] = 0.0f;
            for (int t = 0; t < T; t++) {
                const float *v = vb + (size_t)t * C;
                float w = sc[t] * inv;
                #pragma omp simd
                for (int i = 0; i < hs; i++) o[i] += w * v[i];
            }
        }
    }
}

/* Decode runs a handful of rows; forking threads for a 768-float LayerNorm
 * costs more than the work, and on a busy machine every barrier can wait a
 * whole scheduler slice for a descheduled thread. So small steps use these
 * serial versions of the shared kernels (same arithmetic) and keep threads
 * for the matmuls, where the work is. */
#define INFER_SERIAL_ROWS 8

static void ln_rows(float *out, const float *inp, const float *w, const float *b, int R, int C, infer_t *s)
{
    if (R > INFER_SERIAL_ROWS) { layernorm_forward(out, s->mean, s->rstd, inp, w, b, R, C); return; }
    for (int i = 0; i < R; i++) {
        const float *x = inp + (size_t)i * C;
        float sum = 0.0f, v = 0.0f;
        for (int c = 0; c < C; c++) sum += x[c];
        float m = sum / C;
        for (int c = 0; c < C; c++) { float d = x[c] - m; v += d * d; }
        float r = 1.0f / sqrtf(v / C + 1e-5f);
        float *o = out + (size_t)i * C;
        for (int c = 0; c < C; c++) o[c] = (x[c] - m) * r * w[c] + b[c];
    }
}

static void gelu_rows(float *out, const float *inp, int N, int R)
{
    if (R > INFER_SERIAL_ROWS) { gelu_forward(out, inp, N); return; }
    for (int i = 0; i < N; i++) {
        float x = inp[i];
        float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
        out[i] = 0.5f * x * (1.0f + tanhf(u));
    }
}

static void add_rows(float *x, const float *y, int N, int R)
{
    if (R > INFER_SERIAL_ROWS) { residual_forward(x, x, y, N); return; }
    for (int i = 0; i < N; i++) x[i] += y[i];
}

/* A weight product: through the packed copy of a mapped model (no per-call
 * packing, weights streamed as contiguous panels) when there is one and the
 * product is fp32 with more rows than TUNERY_PACKED_MIN_ROWS (default 7),
 * else matmul_forward. Measured (docs/bench.md): decode at batch 8 +17%
 * tokens/s; batch 1 -18% (the GEMV on the plain weights stays there);
 * prefill of 128 rows the same as oneDNN's per-call packing. */
static int packed_min_rows(void)
{
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("TUNERY_PACKED_MIN_ROWS");
        v = e ? atoi(e) : MM_PACKED_MIN_ROWS;
    }
    return v;
}

static void infer_matmul(float *out, const float *inp, const float *w, const float *wp, const float *bias,
                         int R, int C, int OC)
{
    /* decode-sized products stay fp32 in bf16 mode too (weight-read bound:
     * converting the weights every call made bf16 decode 2.5x slower) */
    int fp32 = nn_matmul_get_precision() == NN_PREC_FP32 || R <= INFER_SERIAL_ROWS;
    if (wp && R > packed_min_rows() && fp32 && mm_packed_forward(out, inp, wp, bias, R, C, OC) == 0) return;
    if (fp32) matmul_forward_fp32(out, inp, w, bias, R, C, OC);
    else matmul_forward(out, inp, w, bias, R, C, OC);
}

/* Layer l's packed matrix (rows OC, columns C), or NULL. */
static const float *packed_layer(const float *base, int l, int OC, int C)
{
    return base ? base + (size_t)l * mm_packed_floats(OC, C) : NULL;
}

/* Forward R rows (tokens[r] for row_seq[r] at row_pos[r]); leaves the final
 * LayerNorm output of rows first_out..R-1 in s->ln. Writes each row's K/V
 * into the cache first, so prompt rows of one sequence see each other
 * causally. Rows before first_out only fill the cache: in the last layer,
 * nothing after K/V is computed for them (a prompt needs its last row's
 * logits only; for T = 128 that skips three of the last layer's four
 * products for 127 rows, ~5% of a prefill). */
static void infer_forward_rows(infer_t *s, const int *tokens, int R, int first_out)
{
    const gpt2_params_t *w = &s->m->params;
    const gpt2_packed_t *pk = &s->m->packed;
    int C = s->C, C3 = 3 * C, C4 = 4 * C;
    /* A prompt starting an empty sequence is one causal block: the training
     * kernel (blocked, vectorised exp) does its attention, 3-4x faster than
     * the per-row cache walk that decode needs. */
    int block = R > INFER_SERIAL_ROWS && s->row_pos[0] == 0;
    for (int r = 0; r < R && block; r++) block = s->row_seq[r] == s->row_seq[0] && s->row_pos[r] == r;
    for (int r = 0; r < R; r++) {
        const float *te = w->wte + (size_t)tokens[r] * C;
        const float *pe = w->wpe + (size_t)s->row_pos[r] * C;
        float *x = s->x + (size_t)r * C;
        for (int i = 0; i < C; i++) x[i] = te[i] + pe[i];
    }
    for (int l = 0; l < s->L; l++) {
        ln_rows(s->ln, s->x, w->ln1w + (size_t)l * C, w->ln1b + (size_t)l * C, R, C, s);
        infer_matmul(s->qkv, s->ln, w->qkvw + (size_t)l * C3 * C, packed_layer(pk->qkvw, l, C3, C),
                     w->qkvb + (size_t)l * C3, R, C, C3);
        #pragma omp parallel for schedule(static) if (R > INFER_SERIAL_ROWS)
        for (int r = 0; r < R; r++) {
            size_t at = kv_index(s, l, s->row_seq[r], s->row_pos[r]);
            memcpy(s->kc + at, s->qkv + (size_t)r * C3 + C, (size_t)C * sizeof(float));
            memcpy(s->vc + at, s->qkv + (size_t)r * C3 + 2 * C, (size_t)C * sizeof(float));
        }
        int r0 = l == s->L - 1 ? first_out : 0, n = R - r0;   /* rows going on past the cache */
        if (n <= 0) return;
        if (block && r0 == 0) attention_forward(s->att, s->scores, s->qkv, 1, R, C, s->NH); /* scores: lse scratch */
        else infer_attention(s, l, r0, R);
        size_t o = (size_t)r0 * C, o4 = (size_t)r0 * C4;
        infer_matmul(s->tmp + o, s->att + o, w->attprojw + (size_t)l * C * C, packed_layer(pk->attprojw, l, C, C),
                     w->attprojb + (size_t)l * C, n, C, C);
        add_rows(s->x + o, s->tmp + o, n * C, n);
        ln_rows(s->ln + o, s->x + o, w->ln2w + (size_t)l * C, w->ln2b + (size_t)l * C, n, C, s);
        infer_matmul(s->fch + o4, s->ln + o, w->fcw + (size_t)l * C4 * C, packed_layer(pk->fcw, l, C4, C),
                     w->fcb + (size_t)l * C4, n, C, C4);
        gelu_rows(s->fchg + o4, s->fch + o4, n * C4, n);
        infer_matmul(s->tmp + o, s->fchg + o4, w->fcprojw + (size_t)l * C * C4, packed_layer(pk->fcprojw, l, C, C4),
                     w->fcprojb + (size_t)l * C, n, C4, C);
        add_rows(s->x + o, s->tmp + o, n * C, n);
    }
    size_t o = (size_t)first_out * C;
    ln_rows(s->ln + o, s->x + o, w->lnfw, w->lnfb, R - first_out, C, s);
}

/* LM head (tied to wte) for n rows of s->ln starting at row r0, real
 * vocabulary only, into out (n, V). */
static void infer_logits(infer_t *s, int r0, int n, float *out)
{
    int C = s->C;
    infer_matmul(s->logits, s->ln + (size_t)r0 * C, s->m->params.wte, s->m->packed.wte, NULL, n, C, s->Vp);
    if (s->Vp == s->V) { memcpy(out, s->logits, (size_t)n * s->V * sizeof(float)); return; }
    for (int r = 0; r < n; r++)
        memcpy(out + (size_t)r * s->V, s->logits + (size_t)r * s->Vp, (size_t)s->V * sizeof(float));
}

static int check_tokens(const infer_t *s, const int *tokens, int n, char *err)
{
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= s->V)
            return core_errf(err, "token id %d is out of range: the model's vocabulary has %d tokens", tokens[i], s->V);
    return 0;
}

int infer_prefill(infer_t *s, int seq, const int *tokens, int T, float *logits, int all_positions, char *err)
{
    if (seq < 0 || seq >= s->n_seq) return core_errf(err, "infer_prefill: no sequence %d", seq);
    if (T <= 0) return core_errf(err, "infer_prefill: no tokens to process");
    if (s->pos[seq] + T > s->max_T)
        return core_errf(err, "%d tokens do not fit: the context holds %d and %d are used", T, s->max_T, s->pos[seq]);
    if (check_tokens(s, tokens, T, err)) return -1;
    for (int done = 0; done < T;) {
        int R = T - done < s->rows ? T - done : s->rows;
        for (int r = 0; r < R; r++) { s->row_seq[r] = seq; s->row_pos[r] = s->pos[seq] + r; }
        /* rows whose output is used: all of them for every position's
         * logits, the last one of the prompt for its logits, else none */
        int first_out = logits && all_positions ? 0 : logits && done + R == T ? R - 1 : R;
        infer_forward_rows(s, tokens + done, R, first_out);
        s->pos[seq] += R;
        if (logits && all_positions) infer_logits(s, 0, R, logits + (size_t)done * s->V);
        else if (logits && done + R == T) infer_logits(s, R - 1, 1, logits);
        done += R;
    }
    return 0;
}

int infer_decode(infer_t *s, const int *seqs, const int *tokens, int n, float *logits, char *err)
{
    if (n <= 0 || n > s->rows) return core_errf(err, "infer_decode: %d rows (1..%d allowed)", n, s->rows);
    if (check_tokens(s, tokens, n, err)) return -1;
    for (int r = 0; r < n; r++) {
        int q = seqs[r];
        if (q < 0 || q >= s->n_seq) return core_errf(err, "infer_decode: no sequence %d", q);
        if (s->pos[q] >= s->max_T) return core_errf(err, "sequence %d is full: the context holds %d tokens", q, s->max_T);
        for (int j = 0; j < r; j++)
            if (seqs[j] == q) return core_errf(err, "infer_decode: sequence %d appears twice in one step", q);
        s->row_seq[r] = q;
        s->row_pos[r] = s->pos[q];
    }
    infer_forward_rows(s, tokens, n, 0);
    for (int r = 0; r < n; r++) s->pos[seqs[r]]++;
    if (logits) infer_logits(s, 0, n, logits);
    return 0;
}

/* ----------------------------------------------------------------------------
 * memory-mapped loading for inference
 *
 * gpt2_load converts every tensor (HF Conv1D [in][out] -> [out][in], any float
 * dtype -> fp32), which for 124M parameters costs far more than 100 ms. The
 * first gpt2_load_mapped of a directory does that once and writes the
 * converted image next to the weights; later loads mmap it read-only and
 * shared, so loading is a page-table operation and every server or worker
 * process serving that model shares one copy in the page cache. */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Version 2 appends the five matrices packed for mm_packed_forward (wte, then
 * each layer's qkv, attproj, fc, fcproj), num_packed floats starting at a
 * multiple of 16 floats, when the CPU has AVX-512; the plain tensors stay
 * (embedding rows, bf16 and other paths). */
#define MAP_MAGIC "TNRYF32"
#define MAP_VERSION 2
#define MAP_HDR 4096 /* data starts page-aligned */

typedef struct {
    char magic[8];
    uint32_t version, pad;
    int32_t maxT, V, Vp, L, NH, C;
    uint64_t num_parameters;
    uint64_t src_size;
    int64_t src_mtime_sec, src_mtime_nsec;
    uint64_t num_packed;
} map_header_t;

/* The packed matrices: which plain tensor (index in map_ptrs), rows, columns. */
#define MAP_NPACKED 5
#define MAP_PACKED_AT(nparams) (((nparams) + 15) / 16 * 16)   /* in floats from the data start */
typedef struct {
    int tensor;     /* index in map_ptrs */
    int oc, ic;     /* one layer's matrix: rows (outputs), columns (inputs) */
    int layers;     /* matrices of that shape, one after the other */
} map_packed_t;

static void map_packed_shapes(const gpt2_config_t *c, map_packed_t pk[MAP_NPACKED])
{
    int C = c->channels, L = c->num_layers;
    map_packed_t v[MAP_NPACKED] = {
        {0, c->padded_vocab_size, C, 1}, {4, 3 * C, C, L}, {6, C, C, L}, {10, 4 * C, C, L}, {12, C, 4 * C, L}};
    memcpy(pk, v, sizeof v);
}

static uint64_t map_packed_total(const gpt2_config_t *c)
{
    map_packed_t pk[MAP_NPACKED];
    map_packed_shapes(c, pk);
    uint64_t n = 0;
    for (int i = 0; i < MAP_NPACKED; i++) n += (uint64_t)pk[i].layers * mm_packed_floats(pk[i].oc, pk[i].ic);
    return n;
}

/* Pack each layer's matrix and append it to f. */
static int map_write_packed(const gpt2_t *m, FILE *f, float **ptr[GPT2_NUM_PARAM_TENSORS])
{
    map_packed_t pk[MAP_NPACKED];
    map_packed_shapes(&m->config, pk);
    size_t most = 0;
    for (int i = 0; i < MAP_NPACKED; i++)
        if (mm_packed_floats(pk[i].oc, pk[i].ic) > most) most = mm_packed_floats(pk[i].oc, pk[i].ic);
    float *buf = aligned_alloc(64, (most * sizeof(float) + 63) / 64 * 64);
    int ok = buf != NULL;
    for (int i = 0; i < MAP_NPACKED && ok; i++)
        for (int l = 0; l < pk[i].layers && ok; l++) {
            size_t n = mm_packed_floats(pk[i].oc, pk[i].ic);
            mm_pack_weights(buf, *ptr[pk[i].tensor] + (size_t)l * pk[i].oc * pk[i].ic, pk[i].oc, pk[i].ic);
            ok = fwrite(buf, sizeof(float), n, f) == n;
        }
    free(buf);
    return ok;
}

/* mapped models, so that gpt2_unload_mapped knows munmap from free */
static struct { void *base; size_t len; } map_reg[64];
static pthread_mutex_t map_mu = PTHREAD_MUTEX_INITIALIZER;

static void map_sizes(const gpt2_config_t *c, size_t s[GPT2_NUM_PARAM_TENSORS])
{
    size_t C = c->channels, L = c->num_layers, Vp = c->padded_vocab_size, T = c->max_seq_len;
    size_t v[GPT2_NUM_PARAM_TENSORS] = {Vp * C, T * C, L * C, L * C, L * 3 * C * C, L * 3 * C, L * C * C, L * C,
                                        L * C, L * C, L * 4 * C * C, L * 4 * C, L * C * 4 * C, L * C, C, C};
    memcpy(s, v, sizeof v);
}

static void map_ptrs(gpt2_params_t *p, float **out[GPT2_NUM_PARAM_TENSORS])
{
    float **v[GPT2_NUM_PARAM_TENSORS] = {&p->wte, &p->wpe, &p->ln1w, &p->ln1b, &p->qkvw, &p->qkvb, &p->attprojw,
                                         &p->attprojb, &p->ln2w, &p->ln2b, &p->fcw, &p->fcb, &p->fcprojw,
                                         &p->fcprojb, &p->lnfw, &p->lnfb};
    memcpy(out, v, sizeof v);
}

/* A writer killed mid-write (kill -9, the OOM killer) leaves its temp image,
 * as big as the model, beside the weights for good. Before writing, remove
 * the temp images (path.tmp.<pid>) of writers that are gone; a live one's,
 * another process converting the same model right now, is left alone. A pid
 * reused since is taken for alive: its file goes on a later write. */
static void map_sweep_stale(const char *path)
{
    char dir[PATH_MAX], prefix[NAME_MAX + 8];
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    snprintf(prefix, sizeof prefix, "%s.tmp.", slash ? slash + 1 : path);
    fs_sweep_dead(dir, prefix);
}

static int map_write(const gpt2_t *m, const char *path, const struct stat *src, char *err)
{
    map_sweep_stale(path);
    char tmp[PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return core_errf(err, "cannot write %s: %s", tmp, strerror(errno));
    char hdr[MAP_HDR] = {0};
    map_header_t h = {0};
    memcpy(h.magic, MAP_MAGIC, 8);
    h.version = MAP_VERSION;
    h.maxT = m->config.max_seq_len; h.V = m->config.vocab_size; h.Vp = m->config.padded_vocab_size;
    h.L = m->config.num_layers; h.NH = m->config.num_heads; h.C = m->config.channels;
    h.src_size = (uint64_t)src->st_size;
    h.src_mtime_sec = src->st_mtim.tv_sec; h.src_mtime_nsec = src->st_mtim.tv_nsec;
    size_t sz[GPT2_NUM_PARAM_TENSORS];
    map_sizes(&m->config, sz);
    float **ptr[GPT2_NUM_PARAM_TENSORS];
    map_ptrs((gpt2_params_t *)&m->params, ptr);
    for (int i = 0; i < GPT2_NUM_PARAM_TENSORS; i++) h.num_parameters += sz[i];
    h.num_packed = map_packed_total(&m->config);
    memcpy(hdr, &h, sizeof h);
    int ok = fwrite(hdr, 1, MAP_HDR, f) == MAP_HDR;
    for (int i = 0; i < GPT2_NUM_PARAM_TENSORS && ok; i++) ok = fwrite(*ptr[i], sizeof(float), sz[i], f) == sz[i];
    if (ok && h.num_packed) {   /* packed panels start 64-byte aligned (the kernel's aligned loads) */
        static const float zero[16];
        size_t pad = MAP_PACKED_AT(h.num_parameters) - h.num_parameters;
        ok = fwrite(zero, sizeof(float), pad, f) == pad && map_write_packed(m, f, ptr);
    }
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return core_errf(err, "cannot write %s: %s", path, strerror(e));
    }
    return 0;
}

/* mmap path if it is a current image of src; 1 = absent or stale. */
static int map_open(gpt2_t *m, const char *path, const struct stat *src, char *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 1;
    struct stat st;
    map_header_t h;
    if (fstat(fd, &st) || st.st_size < MAP_HDR || pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h ||
        memcmp(h.magic, MAP_MAGIC, 8) || h.version != MAP_VERSION || h.src_size != (uint64_t)src->st_size ||
        h.src_mtime_sec != src->st_mtim.tv_sec || h.src_mtime_nsec != src->st_mtim.tv_nsec ||
        (h.num_packed && h.num_packed != map_packed_total(&(gpt2_config_t){.padded_vocab_size = h.Vp,
                                                                                .num_layers = h.L, .channels = h.C})) ||
        (uint64_t)st.st_size != MAP_HDR + ((h.num_packed ? MAP_PACKED_AT(h.num_parameters) : h.num_parameters) +
                                           h.num_packed) * sizeof(float)) {
        close(fd);
        return 1;
    }
    void *base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (base == MAP_FAILED) return core_errf(err, "cannot map %s: %s", path, strerror(errno));
    memset(m, 0, sizeof *m);
    gpt2_config_t *c = &m->config;
    c->max_seq_len = h.maxT; c->vocab_size = h.V; c->padded_vocab_size = h.Vp;
    c->num_layers = h.L; c->num_heads = h.NH; c->channels = h.C;
    map_sizes(c, m->param_sizes);
    float **ptr[GPT2_NUM_PARAM_TENSORS];
    map_ptrs(&m->params, ptr);
    float *p = (float *)((char *)base + MAP_HDR);
    m->params_memory = p;
    for (int i = 0; i < GPT2_NUM_PARAM_TENSORS; i++) { *ptr[i] = p; p += m->param_sizes[i]; m->num_parameters += m->param_sizes[i]; }
    map_packed_t pk[MAP_NPACKED];
    int packed_of[GPT2_NUM_PARAM_TENSORS] = {0};
    map_packed_shapes(c, pk);
    if (h.num_packed) {
        p = (float *)((char *)base + MAP_HDR) + MAP_PACKED_AT(h.num_parameters);
        const float **dst[MAP_NPACKED] = {&m->packed.wte, &m->packed.qkvw, &m->packed.attprojw, &m->packed.fcw,
                                          &m->packed.fcprojw};
        for (int i = 0; i < MAP_NPACKED; i++) {
            *dst[i] = p;
            p += (size_t)pk[i].layers * mm_packed_floats(pk[i].oc, pk[i].ic);
            packed_of[pk[i].tensor] = 1;
        }
    }
    pthread_mutex_lock(&map_mu);
    int slot = -1;
    for (int i = 0; i < 64 && slot < 0; i++) if (!map_reg[i].base) slot = i;
    if (slot >= 0) { map_reg[slot].base = base; map_reg[slot].len = (size_t)st.st_size; }
    pthread_mutex_unlock(&map_mu);
    if (slot < 0) { munmap(base, (size_t)st.st_size); memset(m, 0, sizeof *m); return core_errf(err, "more than 64 models mapped at once"); }
    /* read ahead what inference reads: not the plain copies of packed matrices
     * (only the embedding rows of wte are looked up, page by page) */
    if (!h.num_packed) madvise(base, (size_t)st.st_size, MADV_WILLNEED);
    else {
        for (int i = 0; i < GPT2_NUM_PARAM_TENSORS; i++) {
            if (packed_of[i]) continue;
            uintptr_t a = (uintptr_t)*ptr[i] & ~(uintptr_t)4095, e = (uintptr_t)(*ptr[i] + m->param_sizes[i]);
            madvise((void *)a, e - a, MADV_WILLNEED);
        }
        uintptr_t a = (uintptr_t)m->packed.wte & ~(uintptr_t)4095;
        madvise((void *)a, (uintptr_t)base + (size_t)st.st_size - a, MADV_WILLNEED);
    }
    return 0;
}

int gpt2_load_mapped(gpt2_t *m, const char *dir, char *err)
{
    char src[PATH_MAX], cache[PATH_MAX], alt[PATH_MAX];
    struct stat st;
    snprintf(src, sizeof src, "%s/model.safetensors", dir);
    if (stat(src, &st)) return core_errf(err, "cannot read %s: %s", src, strerror(errno));
    snprintf(cache, sizeof cache, "%s/.tunery-infer.f32", dir);
    /* a read-only model directory (a system-wide install) caches under the data dir */
    char real[PATH_MAX], hex[65];
    if (!realpath(dir, real)) snprintf(real, sizeof real, "%s", dir);
    sha256_hex(real, strlen(real), hex);
    snprintf(alt, sizeof alt, "%s/cache/%.32s.f32", core_data_dir(), hex);
    int rc = map_open(m, cache, &st, err);
    if (rc <= 0) return rc;
    if ((rc = map_open(m, alt, &st, err)) <= 0) return rc;
    if (gpt2_load(m, dir, err)) return -1;
    size_t sz[GPT2_NUM_PARAM_TENSORS];
    map_sizes(&m->config, sz);
    if (memcmp(sz, m->param_sizes, sizeof sz)) return 0; /* unexpected layout: serve the copy */
    char e2[CORE_ERR_LEN], dirbuf[PATH_MAX];
    const char *target = cache;
    if (map_write(m, cache, &st, e2)) {
        snprintf(dirbuf, sizeof dirbuf, "%s/cache", core_data_dir());
        if (fs_mkdir_p(dirbuf, 0755, e2) || map_write(m, alt, &st, e2)) return 0; /* no cache: the copy works */
        target = alt;
    }
    gpt2_t mapped;
    if (map_open(&mapped, target, &st, e2) != 0) return 0;
    gpt2_free(m);
    *m = mapped;
    return 0;
}

void gpt2_unload_mapped(gpt2_t *m)
{
    void *base = (char *)m->params_memory - MAP_HDR;
    size_t len = 0;
    pthread_mutex_lock(&map_mu);
    for (int i = 0; i < 64; i++)
        if (m->params_memory && map_reg[i].base == base) { len = map_reg[i].len; map_reg[i].base = NULL; break; }
    pthread_mutex_unlock(&map_mu);
    if (len) { munmap(base, len); memset(m, 0, sizeof *m); }
    else gpt2_free(m);
}
