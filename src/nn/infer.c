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

/* Attention of R query rows against their sequences' caches, positions
 * 0..row_pos[r] inclusive (causal). qkv (R, 3C) -> att (R, C). */
static void infer_attention(infer_t *s, int l, int R)
{
    int C = s->C, NH = s->NH, hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    /* threads only when there is real work: a parallel region costs more
     * than a short context's attention, worse on a busy machine */
    size_t work = 0;
    for (int r = 0; r < R; r++) work += (size_t)(s->row_pos[r] + 1) * C;
    #pragma omp parallel for collapse(2) schedule(dynamic, 1) if (work >= 65536)
    for (int r = 0; r < R; r++) {
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
                for (int i = 0; i < hs; i++) o[i] += w * v[i];
            }
        }
    }
}

/* Forward R rows (tokens[r] for row_seq[r] at row_pos[r]); leaves the final
 * LayerNorm output in s->ln. Writes each row's K/V into the cache first, so
 * prompt rows of one sequence see each other causally. */
static void infer_forward_rows(infer_t *s, const int *tokens, int R)
{
    const gpt2_params_t *w = &s->m->params;
    int C = s->C, C3 = 3 * C, C4 = 4 * C;
    for (int r = 0; r < R; r++) {
        const float *te = w->wte + (size_t)tokens[r] * C;
        const float *pe = w->wpe + (size_t)s->row_pos[r] * C;
        float *x = s->x + (size_t)r * C;
        for (int i = 0; i < C; i++) x[i] = te[i] + pe[i];
    }
    for (int l = 0; l < s->L; l++) {
        layernorm_forward(s->ln, s->mean, s->rstd, s->x, w->ln1w + (size_t)l * C, w->ln1b + (size_t)l * C, R, C);
        matmul_forward(s->qkv, s->ln, w->qkvw + (size_t)l * C3 * C, w->qkvb + (size_t)l * C3, R, C, C3);
        for (int r = 0; r < R; r++) {
            size_t at = kv_index(s, l, s->row_seq[r], s->row_pos[r]);
            memcpy(s->kc + at, s->qkv + (size_t)r * C3 + C, (size_t)C * sizeof(float));
            memcpy(s->vc + at, s->qkv + (size_t)r * C3 + 2 * C, (size_t)C * sizeof(float));
        }
        infer_attention(s, l, R);
        matmul_forward(s->tmp, s->att, w->attprojw + (size_t)l * C * C, w->attprojb + (size_t)l * C, R, C, C);
        residual_forward(s->x, s->x, s->tmp, R * C);
        layernorm_forward(s->ln, s->mean, s->rstd, s->x, w->ln2w + (size_t)l * C, w->ln2b + (size_t)l * C, R, C);
        matmul_forward(s->fch, s->ln, w->fcw + (size_t)l * C4 * C, w->fcb + (size_t)l * C4, R, C, C4);
        gelu_forward(s->fchg, s->fch, R * C4);
        matmul_forward(s->tmp, s->fchg, w->fcprojw + (size_t)l * C * C4, w->fcprojb + (size_t)l * C, R, C4, C);
        residual_forward(s->x, s->x, s->tmp, R * C);
    }
    layernorm_forward(s->ln, s->mean, s->rstd, s->x, w->lnfw, w->lnfb, R, C);
}

/* LM head (tied to wte) for n rows of s->ln starting at row r0, real
 * vocabulary only, into out (n, V). */
static void infer_logits(infer_t *s, int r0, int n, float *out)
{
    int C = s->C;
    matmul_forward(s->logits, s->ln + (size_t)r0 * C, s->m->params.wte, NULL, n, C, s->Vp);
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
        infer_forward_rows(s, tokens + done, R);
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
    infer_forward_rows(s, tokens, n);
    for (int r = 0; r < n; r++) s->pos[seqs[r]]++;
    if (logits) infer_logits(s, 0, n, logits);
    return 0;
}
