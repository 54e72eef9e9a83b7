/* generate.c: one legacy completions request, start to finish.
 *
 * This is the layer between the wire (server/, cmd_generate.c) and the
 * forward pass (infer.c): it validates every parameter with OpenAI's ranges
 * and names the one at fault, runs the prompts through the KV cache, decodes
 * the candidates of every prompt (n or best_of each) as one batch, applies the
 * sampling parameters (sample.c), and keeps the text-level promises: a stop
 * string is found even when it spans tokens and is never returned, echo puts
 * the prompt and its logprobs first (the first token's logprob is null), and
 * streamed pieces are whole UTF-8 characters that can never turn out to be
 * the start of a stop string.
 *
 * Token bytes come from the request's piece function, so nn/ stays free of
 * tok/. Logprobs are the model's own distribution (log softmax of the raw
 * logits), before penalties, bias and temperature, as OpenAI reports them.
 */
#include "nn/nn.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define ECHO_CHUNK 64 /* prompt positions scored per prefill call (bounds the logits buffer) */

/* One candidate sequence being generated. */
typedef struct {
    gen_choice_t ch;     /* what is returned (text lives in `text` until the end) */
    buf_t text;
    size_t cap;          /* capacity of ch's token arrays */
    size_t gen_start;    /* where the completion starts in text (after the echo) */
    int n_echo;          /* tokens of the echoed prompt at the front of ch.tokens */
    int max_new;         /* tokens this candidate may generate */
    size_t sent;         /* bytes already streamed */
    int sent_tokens;     /* tokens already streamed */
    int *counts;         /* (V) occurrences among generated tokens, for penalties */
    sample_rng_t rng;
    int done;
    double sum_lp;
} cand_t;

void gen_request_init(gen_request_t *req)
{
    memset(req, 0, sizeof *req);
    req->max_tokens = 16;
    req->temperature = 1.0f;
    req->top_p = 1.0f;
    req->n = 1;
    req->logprobs = -1;
    req->eot_id = -1;
}

static int bad(const char **param, const char *name, char *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int bad(const char **param, const char *name, char *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, CORE_ERR_LEN, fmt, ap);
    va_end(ap);
    *param = name;
    return GEN_EINVAL;
}

int gen_request_check(const gen_request_t *req, const gpt2_config_t *cfg, const char **param, char *err)
{
    int V = cfg->vocab_size, ctx = cfg->max_seq_len;
    *param = NULL;
    if (req->suffix && req->suffix[0])
        return bad(param, "suffix", err, "suffix is not supported: this model only continues a prompt (remove 'suffix')");
    if (!(req->temperature >= 0.0f && req->temperature <= 2.0f))
        return bad(param, "temperature", err, "%g is not valid - 'temperature' must be between 0 and 2", (double)req->temperature);
    if (!(req->top_p >= 0.0f && req->top_p <= 1.0f))
        return bad(param, "top_p", err, "%g is not valid - 'top_p' must be between 0 and 1", (double)req->top_p);
    if (req->n < 1 || req->n > GEN_MAX_N)
        return bad(param, "n", err, "%d is not valid - 'n' must be between 1 and 128", req->n);
    if (req->best_of != 0 && (req->best_of < req->n || req->best_of > GEN_MAX_N))
        return bad(param, "best_of", err, "best_of (%d) must be at least n (%d) and at most 128", req->best_of, req->n);
    if (req->stream && req->best_of > req->n)
        return bad(param, "best_of", err, "best_of (%d) greater than n cannot be streamed: the best candidates are only known at the end", req->best_of);
    if (req->logprobs < -1 || req->logprobs > GEN_MAX_LOGPROBS)
        return bad(param, "logprobs", err, "%d is not valid - 'logprobs' must be between 0 and 5", req->logprobs);
    if (!(req->presence_penalty >= -2.0f && req->presence_penalty <= 2.0f))
        return bad(param, "presence_penalty", err, "%g is not valid - 'presence_penalty' must be between -2 and 2", (double)req->presence_penalty);
    if (!(req->frequency_penalty >= -2.0f && req->frequency_penalty <= 2.0f))
        return bad(param, "frequency_penalty", err, "%g is not valid - 'frequency_penalty' must be between -2 and 2", (double)req->frequency_penalty);
    if (req->n_stop < 0 || req->n_stop > GEN_MAX_STOP)
        return bad(param, "stop", err, "%d stop sequences given - 'stop' takes at most 4", req->n_stop);
    for (int i = 0; i < req->n_stop; i++)
        if (!req->stop[i]) return bad(param, "stop", err, "stop sequence %d is null", i);
    for (int i = 0; i < req->n_logit_bias; i++) {
        if (req->logit_bias_ids[i] < 0 || req->logit_bias_ids[i] >= V)
            return bad(param, "logit_bias", err, "token id %d in logit_bias is not in the model's vocabulary", req->logit_bias_ids[i]);
        if (!(req->logit_bias[i] >= -100.0f && req->logit_bias[i] <= 100.0f))
            return bad(param, "logit_bias", err, "logit_bias value %g is out of range - biases must be between -100 and 100", (double)req->logit_bias[i]);
    }
    if (req->max_tokens < GEN_MAX_TOKENS_REST)
        return bad(param, "max_tokens", err, "%d is less than the minimum of 0 - 'max_tokens'", req->max_tokens);
    if (req->n_prompts == 0 && req->eot_id < 0)
        return bad(param, "prompt", err, "a prompt is required (this model has no end-of-text token to start from)");
    for (int p = 0; p < req->n_prompts; p++) {
        int len = req->prompt_lens[p];
        if (len == 0 && req->eot_id < 0)
            return bad(param, "prompt", err, "prompt %d is empty", p);
        for (int i = 0; i < len; i++) {
            int id = req->prompts[p][i];
            if (id < 0 || id >= V) {
                return bad(param, "prompt", err, "prompt %d contains token id %d, which is not in the model's vocabulary (0..%d)", p, id, V - 1);
            }
        }
        int want = req->max_tokens == GEN_MAX_TOKENS_REST ? 0 : req->max_tokens;
        if (len > ctx || (len == ctx && req->max_tokens != 0)) {
            return bad(param, "prompt", err, "This model's maximum context length is %d tokens, however your prompt is %d tokens. Please reduce your prompt.", ctx, len);
        }
        if (len + want > ctx) {
            return bad(param, "max_tokens", err, "This model's maximum context length is %d tokens, however you requested %d tokens (%d in your prompt; %d for the completion). Please reduce your prompt; or completion length ('max_tokens').",
                       ctx, len + want, len, want);
        }
    }
    if (!req->piece) return core_errf(err, "gen_request_t.piece is required (the bytes of each token)");
    return 0;
}

/* ---------------------------------------------------------------------------
 * candidate bookkeeping */

static int cand_push(cand_t *c, int tok, float lp, size_t off, int k, const int *top_ids, const float *top_lps)
{
    gen_choice_t *ch = &c->ch;
    if ((size_t)ch->n_tokens == c->cap) {
        size_t nc = c->cap ? 2 * c->cap : 64;
        int *t = realloc(ch->tokens, nc * sizeof *t);
        if (t) ch->tokens = t;
        float *l = realloc(ch->token_logprobs, nc * sizeof *l);
        if (l) ch->token_logprobs = l;
        size_t *o = realloc(ch->text_offset, nc * sizeof *o);
        if (o) ch->text_offset = o;
        if (!t || !l || !o) return -1;
        if (k > 0) {
            int *ti = realloc(ch->top_ids, nc * k * sizeof *ti);
            if (ti) ch->top_ids = ti;
            float *tl = realloc(ch->top_logprobs, nc * k * sizeof *tl);
            if (tl) ch->top_logprobs = tl;
            if (!ti || !tl) return -1;
        }
        c->cap = nc;
    }
    int i = ch->n_tokens++;
    ch->tokens[i] = tok;
    ch->token_logprobs[i] = lp;
    ch->text_offset[i] = off;
    for (int j = 0; j < k; j++) {
        ch->top_ids[(size_t)i * k + j] = top_ids ? top_ids[j] : -1;
        ch->top_logprobs[(size_t)i * k + j] = top_ids ? top_lps[j] : NAN;
    }
    return 0;
}

static int cand_append_piece(cand_t *c, const gen_request_t *req, int tok)
{
    size_t n = 0;
    const char *p = req->piece(req->piece_ctx, tok, &n);
    if (!p) n = 0;
    return n ? buf_append(&c->text, p, n) : buf_reserve(&c->text, 1);
}

static void choice_free(gen_choice_t *ch)
{
    free(ch->text);
    free(ch->tokens);
    free(ch->token_logprobs);
    free(ch->text_offset);
    free(ch->top_ids);
    free(ch->top_logprobs);
    memset(ch, 0, sizeof *ch);
}

void gen_result_free(gen_result_t *res)
{
    for (int i = 0; i < res->n_choices; i++) choice_free(&res->choices[i]);
    free(res->choices);
    res->choices = NULL;
    res->n_choices = 0;
}

/* Stream what is safe to show of candidate c: everything when it is done,
 * else up to the last whole character that cannot be part of a stop. */
static int cand_stream(cand_t *c, const gen_request_t *req, gen_stream_fn cb, void *ctx)
{
    size_t len = c->text.len, limit = len;
    if (!c->done) {
        size_t tail = len - c->gen_start;
        size_t hold = sample_stop_holdback(c->text.data + c->gen_start, tail, req->stop, req->n_stop);
        limit = sample_utf8_ready(c->text.data, len - hold);
    }
    if (limit <= c->sent && !c->done) return 0;
    gen_chunk_t k = {0};
    const gen_choice_t *ch = &c->ch;
    int t0 = c->sent_tokens, t1 = t0;
    while (t1 < ch->n_tokens && (c->done || ch->text_offset[t1] < limit)) t1++;
    k.index = ch->index;
    k.text = c->text.data ? c->text.data + c->sent : "";
    k.text_len = limit > c->sent ? limit - c->sent : 0;
    k.finish_reason = c->done ? ch->finish_reason : NULL;
    k.n_tokens = t1 - t0;
    k.n_top = ch->n_top;
    if (k.n_tokens) {
        k.tokens = ch->tokens + t0;
        k.token_logprobs = ch->token_logprobs + t0;
        k.text_offset = ch->text_offset + t0;
        if (ch->n_top > 0) {
            k.top_ids = ch->top_ids + (size_t)t0 * ch->n_top;
            k.top_logprobs = ch->top_logprobs + (size_t)t0 * ch->n_top;
        }
    }
    c->sent = limit > c->sent ? limit : c->sent;
    c->sent_tokens = t1;
    return cb(ctx, &k) ? GEN_ECANCEL : 0;
}

/* Prefill one prompt into sequence seq; with echo, also fill every candidate
 * with the prompt text and (with logprobs) the prompt's scores. last (V)
 * receives the logits after the prompt. */
static int gen_prefill(infer_t *st, int seq, const gen_request_t *req, const int *ids, int P, int V,
                       cand_t *cands, int nc, float *last, char *err)
{
    int k = req->logprobs > 0 ? req->logprobs : 0;
    int score = req->echo && req->logprobs >= 0;
    if (!score) return infer_prefill(st, seq, ids, P, last, 0, err);
    float *lg = malloc((size_t)ECHO_CHUNK * V * sizeof *lg);
    int top_ids[GEN_MAX_LOGPROBS];
    float top_lps[GEN_MAX_LOGPROBS];
    if (!lg) return core_errf(err, "out of memory scoring the prompt");
    /* token 0 has no context: logprob null */
    for (int c = 0; c < nc; c++)
        if (cand_push(&cands[c], ids[0], NAN, 0, k, NULL, NULL)) goto oom;
    for (int done = 0; done < P; done += ECHO_CHUNK) {
        int T = P - done < ECHO_CHUNK ? P - done : ECHO_CHUNK;
        if (infer_prefill(st, seq, ids + done, T, lg, 1, err)) { free(lg); return -1; }
        for (int t = 0; t < T; t++) {
            float *row = lg + (size_t)t * V;
            int pos = done + t;
            if (pos == P - 1) { memcpy(last, row, (size_t)V * sizeof *row); break; }
            sample_log_softmax(row, row, V);
            if (k) sample_top_k(row, V, k, top_ids, top_lps);
            for (int c = 0; c < nc; c++) {
                /* offsets are filled in by the caller once the text is known */
                if (cand_push(&cands[c], ids[pos + 1], row[ids[pos + 1]], 0, k, top_ids, top_lps)) goto oom;
            }
        }
    }
    free(lg);
    return 0;
oom:
    free(lg);
    return core_errf(err, "out of memory scoring the prompt");
}

/* One sampling step for candidate c from its logits row (destroyed). */
static int gen_step(cand_t *c, const gen_request_t *req, float *row, float *lp, int V, int n_gen_max,
                    int room, char *err)
{
    int k = req->logprobs > 0 ? req->logprobs : 0;
    int top_ids[GEN_MAX_LOGPROBS];
    float top_lps[GEN_MAX_LOGPROBS];
    sample_log_softmax(lp, row, V);
    if (c->counts) sample_penalize(row, V, c->counts, req->presence_penalty, req->frequency_penalty);
    if (req->n_logit_bias) sample_bias(row, V, req->logit_bias_ids, req->logit_bias, req->n_logit_bias);
    int tok = sample_pick(row, V, req->temperature, req->top_p, &c->rng);
    c->ch.completion_tokens++;
    c->sum_lp += lp[tok];
    if (tok == req->eot_id) {
        c->done = 1;
        c->ch.finish_reason = "stop";
        return 0;
    }
    if (k) sample_top_k(lp, V, k, top_ids, top_lps);
    size_t old = c->text.len;
    if (cand_push(c, tok, lp[tok], old, k, k ? top_ids : NULL, top_lps) || cand_append_piece(c, req, tok))
        return core_errf(err, "out of memory while generating");
    if (c->counts) c->counts[tok]++;
    if (req->n_stop) {
        size_t maxs = 0;
        for (int i = 0; i < req->n_stop; i++) if (strlen(req->stop[i]) > maxs) maxs = strlen(req->stop[i]);
        size_t from = old + 1 > maxs ? old + 1 - maxs : 0;
        if (from < c->gen_start) from = c->gen_start;
        long p = sample_stop_find(c->text.data, c->text.len, from, req->stop, req->n_stop);
        if (p >= 0) {
            c->text.len = (size_t)p;
            c->text.data[p] = '\0';
            /* tokens that start inside the stop text are not part of the answer */
            while (c->ch.n_tokens > c->n_echo && c->ch.text_offset[c->ch.n_tokens - 1] >= (size_t)p)
                c->ch.n_tokens--;
            c->done = 1;
            c->ch.finish_reason = "stop";
            return 0;
        }
    }
    if (c->ch.completion_tokens >= n_gen_max || room <= 0) {
        c->done = 1;
        c->ch.finish_reason = "length";
    }
    return 0;
}

static int cmp_mean_lp(const void *a, const void *b)
{
    const cand_t *x = *(cand_t *const *)a, *y = *(cand_t *const *)b;
    double mx = x->ch.completion_tokens ? x->sum_lp / x->ch.completion_tokens : 0.0;
    double my = y->ch.completion_tokens ? y->sum_lp / y->ch.completion_tokens : 0.0;
    if (mx != my) return mx > my ? -1 : 1;
    return x->ch.index - y->ch.index;
}

/* Set up prompt pi's nc candidates, sequences [pi*nc, pi*nc + nc): prefill
 * the first, share its cache with the others, lay out the echo. */
static int gen_start_prompt(infer_t *st, const gen_request_t *req, int pi, const int *ids, int P, int ctx, int V,
                            uint64_t seed, cand_t *cands, float *logits, char *err)
{
    int n = req->n, nc = req->best_of > n ? req->best_of : n, s0 = pi * nc;
    int k = req->logprobs > 0 ? req->logprobs : 0;
    int penal = req->presence_penalty != 0.0f || req->frequency_penalty != 0.0f;
    for (int c = 0; c < nc; c++) {
        cand_t *cd = &cands[s0 + c];
        cd->ch.index = pi * n + c;
        cd->ch.n_top = k;
        cd->ch.finish_reason = "length";
        cd->max_new = req->max_tokens == GEN_MAX_TOKENS_REST ? ctx - P : req->max_tokens;
        sample_rng_init(&cd->rng, seed, (uint64_t)pi * GEN_MAX_N + c);
        if (penal && !(cd->counts = calloc((size_t)V, sizeof(int)))) return core_errf(err, "out of memory");
        if (buf_reserve(&cd->text, 64)) return core_errf(err, "out of memory");
        infer_reset(st, s0 + c);
    }
    if (gen_prefill(st, s0, req, ids, P, V, cands + s0, nc, logits + (size_t)s0 * V, err)) return -1;
    for (int c = 0; c < nc; c++) {
        cand_t *cd = &cands[s0 + c];
        if (c) {
            infer_copy_seq(st, s0 + c, s0);
            memcpy(logits + (size_t)(s0 + c) * V, logits + (size_t)s0 * V, (size_t)V * sizeof *logits);
        }
        if (req->echo) {
            int scored = cd->ch.n_tokens == P; /* gen_prefill pushed the prompt's logprobs */
            for (int i = 0; i < P; i++) {
                if (scored) cd->ch.text_offset[i] = cd->text.len;
                else if (cand_push(cd, ids[i], NAN, cd->text.len, k, NULL, NULL)) return core_errf(err, "out of memory");
                if (cand_append_piece(cd, req, ids[i])) return core_errf(err, "out of memory");
            }
            cd->gen_start = cd->text.len;
            cd->n_echo = P;
        }
        if (cd->max_new == 0) cd->done = 1;
    }
    return 0;
}

/* Run every prompt's candidates together: one decode step feeds every
 * unfinished sequence of the request as one batch of rows, so the weights
 * are read once per step whatever n, best_of and the number of prompts. */
static int gen_run(const gpt2_t *m, infer_t *st, int maxT, const gen_request_t *req, const int *const *pids,
                   const int *plens, int np, uint64_t seed, gen_result_t *res, gen_stream_fn cb, void *cb_ctx,
                   char *err)
{
    int V = m->config.vocab_size, ctx = m->config.max_seq_len;
    int n = req->n, nc = req->best_of > n ? req->best_of : n, S = np * nc;
    int rc = -1;
    cand_t *cands = calloc((size_t)S, sizeof *cands);
    cand_t **order = calloc((size_t)nc, sizeof *order);
    float *logits = malloc((size_t)S * V * sizeof *logits);
    float *lp = malloc((size_t)V * sizeof *lp);
    int *seqs = malloc((size_t)S * 2 * sizeof *seqs), *toks = seqs ? seqs + S : NULL;
    if (!cands || !order || !logits || !lp || !seqs) { core_errf(err, "out of memory for %d sequences", S); goto done; }
    for (int p = 0; p < np; p++)
        if (gen_start_prompt(st, req, p, pids[p], plens[p], ctx, V, seed, cands, logits, err)) goto done;
    int streaming = req->stream && cb;
    for (int q = 0; q < S && streaming; q++)
        if (cands[q].done && cand_stream(&cands[q], req, cb, cb_ctx)) { rc = GEN_ECANCEL; goto done; }
    for (;;) {
        int na = 0;
        for (int q = 0; q < S; q++) {
            cand_t *cd = &cands[q];
            if (cd->done) continue;
            int room = maxT - infer_pos(st, q); /* tokens that can still be fed */
            if (gen_step(cd, req, logits + (size_t)q * V, lp, V, cd->max_new, room, err)) goto done;
            if (!cd->done) { seqs[na] = q; toks[na] = cd->ch.tokens[cd->ch.n_tokens - 1]; na++; }
            if (streaming && cand_stream(cd, req, cb, cb_ctx)) { rc = GEN_ECANCEL; goto done; }
        }
        if (na == 0) break;
        /* decode writes (na, V) from row 0; seqs is increasing, so moving
         * rows to their sequences from the last one down never clobbers */
        if (infer_decode(st, seqs, toks, na, logits, err)) goto done;
        for (int i = na - 1; i >= 0; i--)
            if (seqs[i] != i) memmove(logits + (size_t)seqs[i] * V, logits + (size_t)i * V, (size_t)V * sizeof *logits);
    }
    for (int p = 0; p < np; p++) {
        for (int c = 0; c < nc; c++) {
            cand_t *cd = &cands[p * nc + c];
            res->completion_tokens += cd->ch.completion_tokens;
            cd->ch.mean_logprob = cd->ch.completion_tokens ? cd->sum_lp / cd->ch.completion_tokens : 0.0;
            order[c] = cd;
        }
        if (nc > n) qsort(order, (size_t)nc, sizeof *order, cmp_mean_lp);
        for (int j = 0; j < n; j++) {
            gen_choice_t *dst = &res->choices[p * n + j];
            *dst = order[j]->ch;
            dst->index = p * n + j;
            dst->text = order[j]->text.data;
            dst->text_len = order[j]->text.len;
            memset(&order[j]->ch, 0, sizeof order[j]->ch);
            order[j]->text.data = NULL;
        }
    }
    rc = 0;
done:
    if (cands) {
        for (int q = 0; q < S; q++) {
            choice_free(&cands[q].ch);
            buf_free(&cands[q].text);
            free(cands[q].counts);
        }
    }
    free(cands); free(order); free(logits); free(lp); free(seqs);
    return rc;
}

int gen_complete(const gpt2_t *m, const gen_request_t *req, gen_result_t *res,
                 gen_stream_fn cb, void *cb_ctx, char *err)
{
    memset(res, 0, sizeof *res);
    int rc = gen_request_check(req, &m->config, &res->err_param, err);
    if (rc) return rc;
    int np = req->n_prompts ? req->n_prompts : 1;
    int nc = req->best_of > req->n ? req->best_of : req->n;
    int ctx = m->config.max_seq_len, maxT = 0;
    int eot = req->eot_id;
    for (int p = 0; p < np; p++) {
        int P = req->n_prompts && req->prompt_lens[p] ? req->prompt_lens[p] : 1;
        int want = req->max_tokens == GEN_MAX_TOKENS_REST ? ctx : P + req->max_tokens;
        if (want > maxT) maxT = want;
    }
    if (maxT > ctx) maxT = ctx;
    uint64_t seed = req->seed;
    if (!req->has_seed && getrandom(&seed, sizeof seed, 0) != sizeof seed) seed = (uint64_t)(time_mono() * 1e9);
    res->choices = calloc((size_t)np * req->n, sizeof *res->choices);
    if (!res->choices) return core_errf(err, "out of memory");
    res->n_choices = np * req->n;
    const int **pids = calloc((size_t)np, sizeof *pids);
    int *plens = calloc((size_t)np, sizeof *plens);
    infer_t *st = NULL;
    if (!pids || !plens || infer_create(&st, m, np * nc, maxT, err)) {
        free(pids); free(plens);
        return core_errf(err, "out of memory for %d sequences of %d tokens", np * nc, maxT);
    }
    for (int p = 0; p < np; p++) {
        pids[p] = &eot;
        plens[p] = 1;
        if (req->n_prompts && req->prompt_lens[p]) { pids[p] = req->prompts[p]; plens[p] = req->prompt_lens[p]; }
        res->prompt_tokens += plens[p];
    }
    rc = gen_run(m, st, maxT, req, pids, plens, np, seed, res, cb, cb_ctx, err);
    free(pids); free(plens);
    infer_free(st);
    res->total_tokens = res->prompt_tokens + res->completion_tokens;
    if (rc == GEN_ECANCEL) core_errf(err, "generation cancelled by the caller");
    return rc;
}
