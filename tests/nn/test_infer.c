/* Unit tests for infer.c and generate.c against the PyTorch fixture
 * (scripts/gen_infer_fixtures.py -> tests/nn/fixtures_infer/): greedy parity
 * for 64 steps, logprobs and top-5 within 1e-4, KV-cache decode equal to a
 * full recomputation, and every completions parameter (stop across token
 * boundaries, echo + logprobs layout, n/seed reproducibility, logit_bias
 * bans, penalties, UTF-8-safe streaming, max_tokens/finish_reason, best_of,
 * validation errors naming the parameter).
 *
 * Token bytes come from a synthetic piece table ("<id>,") so that expected
 * texts can be computed here by plain string operations on the fixture's
 * token ids; individual tokens are remapped to split UTF-8 characters. */
#include "nn/nn.h"
#include "nn/matmul_impl.h"
#include "tok/tok.h"
#include "test.h"
#include <jansson.h>
#include <omp.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#define FIX "tests/nn/fixtures_infer"

static gpt2_t model;
static int V, prompt[8], P = 8, greedy[64], G = 64;
static json_t *expected;
static char pieces[1024][16];

static const char *piece_fn(void *ctx, int id, size_t *len)
{
    (void)ctx;
    if (id < 0 || id >= V) return NULL;
    *len = strlen(pieces[id]);
    return pieces[id];
}

static void pieces_reset(void)
{
    for (int i = 0; i < V; i++) snprintf(pieces[i], sizeof pieces[i], "%d,", i);
}

/* ---------------------------------------------------------------------------
 * fixture loading: a small safetensors reader (F32 only) so these tests pin
 * the inference path independently of the loader's own tests */

static int fixture_load(void)
{
    char err[CORE_ERR_LEN], *cfgs, *st;
    size_t n, stn;
    if (fs_read_all(FIX "/config.json", &cfgs, &n, err)) { fprintf(stderr, "%s\n", err); return -1; }
    json_t *cfg = json_loads(cfgs, 0, NULL);
    free(cfgs);
    gpt2_config_t c = {0};
    c.max_seq_len = (int)json_integer_value(json_object_get(cfg, "n_positions"));
    c.vocab_size = (int)json_integer_value(json_object_get(cfg, "vocab_size"));
    c.num_layers = (int)json_integer_value(json_object_get(cfg, "n_layer"));
    c.num_heads = (int)json_integer_value(json_object_get(cfg, "n_head"));
    c.channels = (int)json_integer_value(json_object_get(cfg, "n_embd"));
    json_decref(cfg);
    if (gpt2_create(&model, &c, err)) { fprintf(stderr, "%s\n", err); return -1; }
    if (fs_read_all(FIX "/model.safetensors", &st, &stn, err)) { fprintf(stderr, "%s\n", err); return -1; }
    uint64_t hl;
    memcpy(&hl, st, 8);
    json_t *hdr = json_loadb(st + 8, hl, 0, NULL);
    const float *data = (const float *)(st + 8 + hl);
    int C = c.channels, L = c.num_layers;
    gpt2_params_t *w = &model.params;
#define T_(name) ((const float *)((const char *)data + json_integer_value(json_array_get(json_object_get(json_object_get(hdr, name), "data_offsets"), 0))))
    memcpy(w->wte, T_("wte.weight"), (size_t)c.vocab_size * C * 4);
    memcpy(w->wpe, T_("wpe.weight"), (size_t)c.max_seq_len * C * 4);
    memcpy(w->lnfw, T_("ln_f.weight"), C * 4);
    memcpy(w->lnfb, T_("ln_f.bias"), C * 4);
    struct { const char *n; float *dst; int in, out; int transpose; } per[] = {
        {"ln_1.weight", w->ln1w, 1, C, 0}, {"ln_1.bias", w->ln1b, 1, C, 0},
        {"attn.c_attn.weight", w->qkvw, C, 3 * C, 1}, {"attn.c_attn.bias", w->qkvb, 1, 3 * C, 0},
        {"attn.c_proj.weight", w->attprojw, C, C, 1}, {"attn.c_proj.bias", w->attprojb, 1, C, 0},
        {"ln_2.weight", w->ln2w, 1, C, 0}, {"ln_2.bias", w->ln2b, 1, C, 0},
        {"mlp.c_fc.weight", w->fcw, C, 4 * C, 1}, {"mlp.c_fc.bias", w->fcb, 1, 4 * C, 0},
        {"mlp.c_proj.weight", w->fcprojw, 4 * C, C, 1}, {"mlp.c_proj.bias", w->fcprojb, 1, C, 0},
    };
    for (int l = 0; l < L; l++) {
        for (size_t k = 0; k < sizeof per / sizeof per[0]; k++) {
            char name[64];
            snprintf(name, sizeof name, "h.%d.%s", l, per[k].n);
            const float *src = T_(name);
            size_t sz = (size_t)per[k].in * per[k].out;
            float *dst = per[k].dst + l * sz;
            if (!per[k].transpose) { memcpy(dst, src, sz * 4); continue; }
            for (int i = 0; i < per[k].in; i++)       /* HF Conv1D [in][out] -> [out][in] */
                for (int o = 0; o < per[k].out; o++) dst[(size_t)o * per[k].in + i] = src[(size_t)i * per[k].out + o];
        }
    }
#undef T_
    json_decref(hdr);
    free(st);
    V = c.vocab_size;
    expected = json_load_file(FIX "/expected.json", 0, NULL);
    if (!expected) return -1;
    for (int i = 0; i < P; i++) prompt[i] = (int)json_integer_value(json_array_get(json_object_get(expected, "prompt"), i));
    for (int i = 0; i < G; i++) greedy[i] = (int)json_integer_value(json_array_get(json_object_get(expected, "greedy"), i));
    pieces_reset();
    return 0;
}

static json_t *position(int t) { return json_array_get(json_object_get(expected, "positions"), t); }
static double jnum(json_t *o, const char *k) { return json_number_value(json_object_get(o, k)); }

static const int *prompts1[1] = {prompt};
static int plens1[1] = {8};

static void req_base(gen_request_t *r)
{
    gen_request_init(r);
    r->prompts = prompts1;
    r->prompt_lens = plens1;
    r->n_prompts = 1;
    r->piece = piece_fn;
    r->has_seed = 1;
    r->seed = 42;
}

/* text of greedy[0..n) with the current piece table */
static void greedy_text(char *out, size_t cap, int n)
{
    out[0] = 0;
    for (int i = 0; i < n; i++) strncat(out, pieces[greedy[i]], cap - strlen(out) - 1);
}

/* ---------------------------------------------------------------------------
 * parity */

static void test_greedy_parity(void)
{
    gen_request_t r; gen_result_t res; char err[CORE_ERR_LEN];
    req_base(&r);
    r.temperature = 0; r.max_tokens = 64; r.logprobs = 5;
    CHECK(gen_complete(&model, &r, &res, NULL, NULL, err) == 0);
    CHECK_EQ_INT(res.n_choices, 1);
    gen_choice_t *c = &res.choices[0];
    CHECK_EQ_INT(c->n_tokens, G);
    int same = 0;
    double worst = 0;
    for (int i = 0; i < G && i < c->n_tokens; i++) {
        same += c->tokens[i] == greedy[i];
        json_t *pos = position(P - 1 + i);
        double d = fabs(c->token_logprobs[i] - jnum(pos, "logprob"));
        if (d > worst) worst = d;
        for (int j = 0; j < 5; j++) {
            CHECK_EQ_INT(c->top_ids[i * 5 + j], json_integer_value(json_array_get(json_object_get(pos, "top_ids"), j)));
            double dj = fabs(c->top_logprobs[i * 5 + j] - json_number_value(json_array_get(json_object_get(pos, "top_logprobs"), j)));
            if (dj > worst) worst = dj;
        }
    }
    CHECK_EQ_INT(same, G);
    CHECKF(worst <= 1e-4, "max logprob error %g", worst);
    fprintf(stderr, "  greedy parity: %d/%d tokens, max logprob error %.2g\n", same, G, worst);
    char want[4096];
    greedy_text(want, sizeof want, G);
    CHECK_EQ_STR(c->text, want);
    CHECK_EQ_STR(c->finish_reason, "length");
    CHECK_EQ_INT(res.prompt_tokens, P);
    CHECK_EQ_INT(res.completion_tokens, G);
    CHECK_EQ_INT(res.total_tokens, P + G);
    gen_result_free(&res);
}

static void test_kv_cache_equals_full(void)
{
    char err[CORE_ERR_LEN];
    int N = P + G;
    int *seq = malloc(N * sizeof *seq);
    memcpy(seq, prompt, P * sizeof *seq);
    memcpy(seq + P, greedy, G * sizeof *seq);
    float *full = malloc((size_t)N * V * 4), *step = malloc((size_t)3 * V * 4);
    infer_t *a = NULL, *b = NULL;
    CHECK(infer_create(&a, &model, 1, 0, err) == 0);
    CHECK(infer_prefill(a, 0, seq, N, full, 1, err) == 0);
    /* b: three sequences decoding together, each started at a different point */
    CHECK(infer_create(&b, &model, 3, 0, err) == 0);
    int start[3] = {P, 1, 30};
    for (int q = 0; q < 3; q++) CHECK(infer_prefill(b, q, seq, start[q], NULL, 0, err) == 0);
    double worst = 0;
    for (int t = 0; t < 40; t++) {
        int seqs[3] = {0, 1, 2}, toks[3];
        for (int q = 0; q < 3; q++) toks[q] = seq[start[q] + t];
        CHECK(infer_decode(b, seqs, toks, 3, step, err) == 0);
        for (int q = 0; q < 3; q++) {
            const float *ref = full + (size_t)(start[q] + t) * V;
            for (int v = 0; v < V; v++) {
                double d = fabs(step[(size_t)q * V + v] - ref[v]);
                if (d > worst) worst = d;
            }
        }
    }
    CHECKF(worst < 1e-4, "decode vs full recomputation: max logit diff %g", worst);
    /* a full-context prefill (128 rows: enough work for the threaded
     * attention path) equals 128 single-token decodes (serial path) */
    {
        int T = model.config.max_seq_len;
        int *tk = malloc(T * sizeof *tk);
        for (int i = 0; i < T; i++) tk[i] = seq[i % N];
        float *pf = malloc((size_t)T * V * 4), *one = malloc((size_t)V * 4);
        infer_t *c = NULL;
        CHECK(infer_create(&c, &model, 2, 0, err) == 0);
        CHECK(infer_prefill(c, 0, tk, T, pf, 1, err) == 0);
        double w2 = 0;
        for (int t = 0; t < T; t++) {
            int q = 1;
            CHECK(infer_decode(c, &q, &tk[t], 1, one, err) == 0);
            for (int v = 0; v < V; v++) {
                double d = fabs(one[v] - pf[(size_t)t * V + v]);
                if (d > w2) w2 = d;
            }
        }
        CHECKF(w2 < 1e-4, "threaded prefill vs decode: max logit diff %g", w2);
        infer_free(c);
        free(tk); free(pf); free(one);
    }
    fprintf(stderr, "  KV decode vs full recomputation: max logit diff %.2g\n", worst);
    /* the full pass agrees with PyTorch at every position */
    double wl = 0;
    float *lp = malloc(V * 4);
    for (int t = 0; t < N - 1; t++) {
        sample_log_softmax(lp, full + (size_t)t * V, V);
        double d = fabs(lp[seq[t + 1]] - jnum(position(t), "logprob"));
        if (d > wl) wl = d;
    }
    CHECKF(wl < 1e-4, "full pass logprob error %g", wl);
    /* cache copy and overflow */
    infer_copy_seq(b, 1, 0);
    CHECK_EQ_INT(infer_pos(b, 1), infer_pos(b, 0));
    int q0 = 0;
    infer_reset(a, 0);
    CHECK(infer_prefill(a, 0, seq, 129, NULL, 0, err) < 0);
    CHECK(strstr(err, "context") != NULL);
    int bad = V;
    CHECK(infer_decode(b, &q0, &bad, 1, step, err) < 0);
    CHECK(strstr(err, "vocabulary") != NULL);
    infer_free(a); infer_free(b);
    free(seq); free(full); free(step); free(lp);
}

/* ---------------------------------------------------------------------------
 * parameters */

/* In bf16 mode, decode-sized products (<= 8 rows) stay fp32: they are bound
 * by reading the weights, and converting the weights to bf16 on every call
 * made batch-1 decode 2.5x slower. So bf16 decode gives fp32's bits, and a
 * long prefill (bf16 products) stays within bf16's error of fp32. */
static void test_bf16_decode_is_fp32(void)
{
    if (!nn_matmul_bf16_available()) { fprintf(stderr, "  (no bf16 on this CPU: skipped)\n"); return; }
    char err[CORE_ERR_LEN];
    float *l32 = malloc((size_t)2 * V * 4), *l16 = malloc((size_t)2 * V * 4);
    float *f32 = malloc((size_t)64 * V * 4), *f16 = malloc((size_t)64 * V * 4);
    int toks[64];
    for (int i = 0; i < 64; i++) toks[i] = (int)((i * 7919u + 13) % (unsigned)V);
    nn_prec_t prec0 = nn_matmul_get_precision();
    for (int pass = 0; pass < 2; pass++) {
        nn_matmul_set_precision(pass ? NN_PREC_BF16 : NN_PREC_FP32);
        infer_t *s = NULL;
        CHECK(infer_create(&s, &model, 2, 0, err) == 0);
        if (!s) break;
        /* two sequences of 5 prompt tokens, then one decode step of both */
        int seqs[2] = {0, 1}, next[2] = {toks[5], toks[6]};
        CHECK(infer_prefill(s, 0, toks, 5, NULL, 0, err) == 0);
        CHECK(infer_prefill(s, 1, toks + 1, 5, NULL, 0, err) == 0);
        CHECK(infer_decode(s, seqs, next, 2, pass ? l16 : l32, err) == 0);
        infer_reset(s, 0);
        CHECK(infer_prefill(s, 0, toks, 64, pass ? f16 : f32, 1, err) == 0);
        infer_free(s);
    }
    nn_matmul_set_precision(prec0);
    CHECK(memcmp(l32, l16, (size_t)2 * V * 4) == 0);
    double worst = 0, mag = 0;
    for (size_t i = 0; i < (size_t)64 * V; i++) {
        if (fabs(f16[i] - f32[i]) > worst) worst = fabs(f16[i] - f32[i]);
        if (fabs(f32[i]) > mag) mag = fabs(f32[i]);
    }
    /* the 64-row prefill really ran bf16 products (fp32 would match to ~1e-6)
     * and stayed within a few percent of the logits' scale */
    CHECKF(worst > 1e-5 && worst < 0.05 * mag, "bf16 prefill vs fp32: max logit diff %g (scale %g)", worst, mag);
    free(l32); free(l16); free(f32); free(f16);
}

static void test_echo_logprobs_layout(void)
{
    gen_request_t r; gen_result_t res; char err[CORE_ERR_LEN];
    req_base(&r);
    r.temperature = 0; r.max_tokens = 3; r.logprobs = 2; r.echo = 1;
    CHECK(gen_complete(&model, &r, &res, NULL, NULL, err) == 0);
    gen_choice_t *c = &res.choices[0];
    CHECK_EQ_INT(c->n_tokens, P + 3);
    CHECK(isnan(c->token_logprobs[0]));
    CHECK_EQ_INT(c->top_ids[0], -1);
    size_t off = 0;
    for (int i = 0; i < c->n_tokens; i++) {
        int want = i < P ? prompt[i] : greedy[i - P];
        CHECK_EQ_INT(c->tokens[i], want);
        CHECK_EQ_INT(c->text_offset[i], off);
        off += strlen(pieces[want]);
        if (i > 0) {
            json_t *pos = position(i - 1);
            CHECK_NEAR(c->token_logprobs[i], jnum(pos, "logprob"), 1e-4);
            CHECK_EQ_INT(c->top_ids[i * 2], json_integer_value(json_array_get(json_object_get(pos, "top_ids"), 0)));
        }
    }
    CHECK_EQ_INT(c->text_len, off);
    CHECK_EQ_INT(res.completion_tokens, 3);
    gen_result_free(&res);
    /* echo with max_tokens 0 scores the prompt only */
    r.max_tokens = 0;
    CHECK(gen_complete(&model, &r, &res, NULL, NULL, err) == 0);
    CHECK_EQ_INT(res.choices[0].n_tokens, P);
    CHECK_EQ_INT(res.completion_tokens, 0);
    CHECK_EQ_STR(res.choices[0].finish_reason, "length");
    gen_result_free(&res);
}

static void test_stop_across_tokens(void)
{
    gen_request_t r; gen_result_t res; char err[CORE_ERR_LEN], full[4096];
    greedy_text(full, sizeof full, G);
    /* the last two bytes of token 5's piece + the first two of token 6's */
    char stop[8];
    size_t l5 = strlen(pieces[greedy[5]]);
    snprintf(stop, sizeof stop, "%s", pieces[greedy[5]] + l5 - 2);
    strncat(stop, pieces[greedy[6]], 2);
    const char *at = strstr(full, stop);
    CHECK(at != NULL);
    size_t want_len = (size_t)(at - full);
    const char *stops[2] = {"never-appears", stop};
    req_base(&r);
    r.temperature = 0; r.max_tokens = 64; r.stop = stops; r.n_stop = 2; r.logprobs = 0;
    CHECK(gen_complete(&model, &r, &res, NULL, NULL, err) == 0);
    gen_choice_t *c = &res.choices[0];
    CHECK_EQ_INT(c->text_len, want_len);
    CHECK(strncmp(c->text, full, want_len) == 0);
    CHECK(strstr(c->text, stop) == NULL);
    CHECK_EQ_STR(c->finish_reason, "stop");
    for (int i = 0; i < c->n_tokens; i++) CHECK(c->text_offset[i] < c->text_len);
    CHECK(res.completion_tokens < G);
    gen_result_free(&res);
}

static void test_max_tokens_and_eot(void)
{
    gen_request_t r; gen_result_t res; char err[CORE_ERR_LEN], want[4096];
    req_base(&r);
    r.temperature = 0; r.max_tokens = 5;
    CHECK(gen_complete(&model, &r, &res, NULL, NULL, err) == 0);
    greedy_text(want, sizeof want, 5);
    CHECK_EQ_STR(res.choices[0].text, want);
    CHECK_EQ_STR(res.choices[0].finish_reason, "length");
    CHECK_EQ_INT(res.completion_tokens, 5);
    gen_result_free(&res);
    /* the end-of-text token stops with "stop" and is not in the text */
    int k = 10;
    while (k < G) { int seen = 0; for (int j = 0; j < k; j++) seen |= greedy[j] == greedy[k]; if (!seen) break; k++; }
    CHECK(k < G);
    r.eot_id = greedy[k]; r.max_tokens = 64;
    CHECK(gen_complete(&model, &r, &res, NULL, NULL, err) == 0);
    greedy_text(want, sizeof want, k);
    CHECK_EQ_STR(res.choices[0].text, want);
    CHECK_EQ_STR(res.choices[0].finish_reason, "stop");
    gen_result_free(&res);
    /* max_tokens = rest of the context */
    r.eot_id = -1; r.max_tokens = GEN_MAX_TOKENS_REST;
    CHECK(gen_complete(&model, &r, &res, NULL, NULL, err) == 0);
    CHECK_EQ_INT(res.completion_tokens, model.config.max_seq_len - P);
    CHECK_EQ_STR(res.choices[0].finish_reason, "length");
    gen_result_free(&res);
}

static void test_n_seed_reproducible(void)
{
    gen_request_t r; gen_result_t a, b, c; char err[CORE_ERR_LEN];
    req_base(&r);
    r.n = 3; r.max_tokens = 20; r.temperature = 1.0f;
    CHECK(gen_complete(&model, &r, &a, NULL, NULL, err) == 0);
    CHECK(gen_complete(&model, &r, &b, NULL, NULL, err) == 0);
    r.seed = 43;
    CHECK(gen_complete(&model, &r, &c, NULL, NULL, err) == 0);
    CHECK_EQ_INT(a.n_choices, 3);
    int differ_seed = 0;
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(a.choices[i].index, i);
        CHECK_EQ_STR(a.choices[i].text, b.choices[i].text);
        differ_seed += strcmp(a.choices[i].text, c.choices[i].text) != 0;
    }
    CHECK(strcmp(a.choices[0].text, a.choices[1].text) || strcmp(a.choices[1].text, a.choices[2].text));
    CHECK(differ_seed > 0);
    CHECK_EQ_INT(a.completion_tokens, 60);
    CHECK_EQ_INT(a.prompt_tokens, P);
    /* choice j is the same whether it runs alone or in a batch of n */
    r.seed = 42; r.n = 1;
    gen_result_t one;
    CHECK(gen_complete(&model, &r, &one, NULL, NULL, err) == 0);
    CHECK_EQ_STR(one.choices[0].text, a.choices[0].text);
    gen_result_free(&a); gen_result_free(&b); gen_result_free(&c); gen_result_free(&one);
}

static void test_best_of(void)
{
    gen_request_t r; gen_result_t all, best; char err[CORE_ERR_LEN];
    req_base(&r);
    r.n = 4; r.max_tokens = 12; r.temperature = 1.5f;
    CHECK(gen_complete(&model, &r, &all, NULL, NULL, err) == 0);
    r.n = 1; r.best_of = 4;
    CHECK(gen_complete(&model, &r, &best, NULL, NULL, err) == 0);
    int arg = 0;
    for (int i = 1; i < 4; i++) if (all.choices[i].mean_logprob > all.choices[arg].mean_logprob) arg = i;
    CHECK_EQ_INT(best.n_choices, 1);
    CHECK_EQ_STR(best.choices[0].text, all.choices[arg].text);
    CHECK_EQ_INT(best.choices[0].index, 0);
    CHECK_EQ_INT(best.completion_tokens, 48); /* every candidate is counted */
    gen_result_free(&all); gen_result_free(&best);
}

static void test_logit_bias_ban(void)
{
    gen_request_t r; gen_result_t res; char err[CORE_ERR_LEN];
    int ban[2] = {greedy[0], greedy[1]};
    float bias[2] = {-100, -100};
    req_base(&r);
    r.logit_bias_ids = ban; r.logit_bias = bias; r.n_logit_bias = 2;
    r.temperature = 0; r.max_tokens = 64;
    CHECK(gen_complete(&model, &r, &res, NULL, NULL, err) == 0);
    /* greedy now starts with the runner-up */
    CHECK_EQ_INT(res.choices[0].tokens[0], json_integer_value(json_array_get(json_object_get(position(P - 1), "top_ids"), 1)));
    for (int i = 0; i < res.choices[0].n_tokens; i++) CHECK(res.choices[0].tokens[i] != ban[0] && res.choices[0].tokens[i] != ban[1]);
    gen_result_free(&res);
    r.temperature = 2.0f; r.n = 8; r.max_tokens = 40;
    CHECK(gen_complete(&model, &r, &res, NULL, NULL, err) == 0);
    int hits = 0;
    for (int c = 0; c < 8; c++)
        for (int i = 0; i < res.choices[c].n_tokens; i++) hits += res.choices[c].tokens[i] == ban[0] || res.choices[c].tokens[i] == ban[1];
    CHECK_EQ_INT(hits, 0);
    gen_result_free(&res);
    /* +100 forces a token */
    int force = 7; float fb = 100;
    r.logit_bias_ids = &force; r.logit_bias = &fb; r.n_logit_bias = 1; r.n = 1; r.max_tokens = 5;
    CHECK(gen_complete(&model, &r, &res, NULL, NULL, err) == 0);
    CHECK_EQ_STR(res.choices[0].text, "7,7,7,7,7,");
    gen_result_free(&res);
}

static void count_stats(const gen_choice_t *c, int *maxrep, int *distinct)
{
    int *cnt = calloc(V, sizeof *cnt);
    *maxrep = 0; *distinct = 0;
    for (int i = 0; i < c->n_tokens; i++) {
        if (cnt[c->tokens[i]]++ == 0) (*distinct)++;
        if (cnt[c->tokens[i]] > *maxrep) *maxrep = cnt[c->tokens[i]];
    }
    free(cnt);
}

static void test_penalties(void)
{
    gen_request_t r; gen_result_t base, freq, pres, neg; char err[CORE_ERR_LEN];
    req_base(&r);
    r.temperature = 0; r.max_tokens = 64;
    CHECK(gen_complete(&model, &r, &base, NULL, NULL, err) == 0);
    r.frequency_penalty = 2.0f;
    CHECK(gen_complete(&model, &r, &freq, NULL, NULL, err) == 0);
    r.frequency_penalty = 0; r.presence_penalty = 2.0f;
    CHECK(gen_complete(&model, &r, &pres, NULL, NULL, err) == 0);
    r.presence_penalty = -2.0f; r.frequency_penalty = -2.0f;
    CHECK(gen_complete(&model, &r, &neg, NULL, NULL, err) == 0);
    int bm, bd, fm, fd, pm, pd, nm, nd;
    count_stats(&base.choices[0], &bm, &bd);
    count_stats(&freq.choices[0], &fm, &fd);
    count_stats(&pres.choices[0], &pm, &pd);
    count_stats(&neg.choices[0], &nm, &nd);
    fprintf(stderr, "  max repeats / distinct: base %d/%d, frequency+2 %d/%d, presence+2 %d/%d, both-2 %d/%d\n",
            bm, bd, fm, fd, pm, pd, nm, nd);
    CHECK(fm < bm && fd > bd);
    CHECK(pm < bm && pd > bd);
    CHECK(nm > bm && nd < bd);
    gen_result_free(&base); gen_result_free(&freq); gen_result_free(&pres); gen_result_free(&neg);
}

/* ---------------------------------------------------------------------------
 * streaming */

typedef struct {
    buf_t all;
    int chunks, finished, bad_utf8, tokens, cancel_after;
    const char *stop;
    int stop_seen;
} sink_t;

static int utf8_valid(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!k || i + k > n) return 0;
        for (size_t j = 1; j < k; j++) if (((unsigned char)s[i + j] & 0xC0) != 0x80) return 0;
        i += k;
    }
    return 1;
}

static int sink_cb(void *ctx, const gen_chunk_t *k)
{
    sink_t *s = ctx;
    s->chunks++;
    s->tokens += k->n_tokens;
    if (!utf8_valid(k->text, k->text_len)) s->bad_utf8++;
    buf_append(&s->all, k->text, k->text_len);
    if (s->stop && s->all.data && strstr(s->all.data, s->stop)) s->stop_seen++;
    if (k->finish_reason) s->finished++;
    return s->cancel_after && s->chunks >= s->cancel_after;
}

/* Pairs (a, b) of greedy tokens where a is always followed by b and b always
 * preceded by a in the run, so a character split between their pieces is
 * whole in the final text. */
static int find_pairs(int *pairs, int max)
{
    int n = 0;
    for (int i = 0; i + 1 < G && n < max; i++) {
        int a = greedy[i], b = greedy[i + 1], ok = a != b && greedy[G - 1] != a && greedy[0] != b;
        for (int j = 0; j + 1 < G && ok; j++) ok = (greedy[j] == a) == (greedy[j + 1] == b);
        for (int k = 0; k < n && ok; k++) ok = pairs[2 * k] != a && pairs[2 * k] != b && pairs[2 * k + 1] != a && pairs[2 * k + 1] != b;
        if (ok) { pairs[2 * n] = a; pairs[2 * n + 1] = b; n++; }
    }
    return n;
}

static void test_stream_utf8(void)
{
    int pairs[6];
    CHECK(find_pairs(pairs, 3) == 3);
    strcpy(pieces[pairs[0]], "\xf0\x9f");      /* U+1F600 split 2 + 2 */
    strcpy(pieces[pairs[1]], "\x98\x80");
    strcpy(pieces[pairs[2]], "x\xe2");         /* U+20AC split 1 + 2, after ASCII */
    strcpy(pieces[pairs[3]], "\x82\xac,");
    strcpy(pieces[pairs[4]], "\xc3");          /* U+00E9 split 1 + 1 */
    strcpy(pieces[pairs[5]], "\xa9");
    gen_request_t r; gen_result_t res; char err[CORE_ERR_LEN];
    req_base(&r);
    r.temperature = 0; r.max_tokens = 64; r.stream = 1; r.logprobs = 1;
    sink_t s = {0};
    CHECK(gen_complete(&model, &r, &res, sink_cb, &s, err) == 0);
    CHECK_EQ_INT(s.bad_utf8, 0);
    CHECK(s.chunks > 10);
    CHECKF(s.chunks == G - 2, "%d chunks", s.chunks); /* two tokens were pure fragments: held back */
    CHECK_EQ_INT(s.finished, 1);
    CHECK_EQ_INT(s.tokens, G);
    CHECK_EQ_INT(s.all.len, res.choices[0].text_len);
    CHECK(s.all.data && memcmp(s.all.data, res.choices[0].text, s.all.len) == 0);
    CHECK(utf8_valid(res.choices[0].text, res.choices[0].text_len));
    CHECK(strstr(res.choices[0].text, "\xf0\x9f\x98\x80") != NULL);
    CHECK(strstr(res.choices[0].text, "x\xe2\x82\xac,") != NULL);
    CHECK(strstr(res.choices[0].text, "\xc3\xa9") != NULL);
    gen_result_free(&res);
    buf_free(&s.all);
    pieces_reset();
}

static void test_stream_stop_and_cancel(void)
{
    char full[4096];
    greedy_text(full, sizeof full, G);
    char stop[8];
    size_t l = strlen(pieces[greedy[20]]);
    snprintf(stop, sizeof stop, "%s", pieces[greedy[20]] + l - 1);
    strncat(stop, pieces[greedy[21]], 3);
    const char *stops[1] = {stop};
    gen_request_t r; gen_result_t res; char err[CORE_ERR_LEN];
    req_base(&r);
    r.temperature = 0; r.max_tokens = 64; r.stream = 1; r.stop = stops; r.n_stop = 1;
    r.n = 2; r.echo = 1;
    sink_t s = {0};
    s.stop = stop;
    CHECK(gen_complete(&model, &r, &res, sink_cb, &s, err) == 0);
    CHECK_EQ_INT(s.finished, 2);
    CHECK_EQ_INT(s.stop_seen, 0);
    CHECK_EQ_INT(s.all.len, res.choices[0].text_len + res.choices[1].text_len);
    CHECK_EQ_STR(res.choices[0].finish_reason, "stop");
    /* the echoed prompt comes first */
    char pt[256] = "";
    for (int i = 0; i < P; i++) strcat(pt, pieces[prompt[i]]);
    CHECK(strncmp(res.choices[0].text, pt, strlen(pt)) == 0);
    gen_result_free(&res);
    buf_free(&s.all);
    /* a callback returning non-zero cancels */
    sink_t c = {0};
    c.cancel_after = 3;
    r.n_stop = 0;
    CHECK(gen_complete(&model, &r, &res, sink_cb, &c, err) == GEN_ECANCEL);
    CHECK_EQ_INT(c.chunks, 3);
    gen_result_free(&res);
    buf_free(&c.all);
}

static void test_multiple_prompts(void)
{
    /* the second prompt is the first one plus 3 greedy tokens: decoded in
     * the same batch at other positions, it must continue the same run */
    int p2[11];
    memcpy(p2, prompt, sizeof prompt);
    memcpy(p2 + P, greedy, 3 * sizeof *greedy);
    const int *ps[2] = {prompt, p2};
    int pl[2] = {P, P + 3};
    gen_request_t r; gen_result_t res; char err[CORE_ERR_LEN];
    req_base(&r);
    r.prompts = ps; r.prompt_lens = pl; r.n_prompts = 2; r.n = 2; r.temperature = 0; r.max_tokens = 4;
    CHECK(gen_complete(&model, &r, &res, NULL, NULL, err) == 0);
    CHECK_EQ_INT(res.n_choices, 4);
    for (int i = 0; i < 4; i++) CHECK_EQ_INT(res.choices[i].index, i);
    char want[256];
    greedy_text(want, sizeof want, 4);
    CHECK_EQ_STR(res.choices[0].text, want);
    CHECK_EQ_STR(res.choices[1].text, want);
    char want2[256] = "";
    for (int i = 3; i < 7; i++) strcat(want2, pieces[greedy[i]]);
    CHECK_EQ_STR(res.choices[2].text, want2);
    CHECK_EQ_STR(res.choices[3].text, want2);
    CHECK_EQ_INT(res.prompt_tokens, P + P + 3);
    CHECK_EQ_INT(res.completion_tokens, 16);
    gen_result_free(&res);
}

static void expect_invalid(gen_request_t *r, const char *param)
{
    gen_result_t res; char err[CORE_ERR_LEN] = "";
    int rc = gen_complete(&model, r, &res, NULL, NULL, err);
    CHECKF(rc == GEN_EINVAL, "%s: rc %d", param, rc);
    CHECKF(res.err_param && !strcmp(res.err_param, param), "want param %s, got %s (%s)", param, res.err_param ? res.err_param : "NULL", err);
    CHECKF(strstr(err, param) || !strcmp(param, "prompt"), "message does not name %s: %s", param, err);
    CHECK(err[0] != 0);
    gen_result_free(&res);
}

static void test_validation(void)
{
    gen_request_t r;
    req_base(&r); r.temperature = 3; expect_invalid(&r, "temperature");
    req_base(&r); r.top_p = 1.5f; expect_invalid(&r, "top_p");
    req_base(&r); r.n = 0; expect_invalid(&r, "n");
    req_base(&r); r.n = 129; expect_invalid(&r, "n");
    req_base(&r); r.logprobs = 6; expect_invalid(&r, "logprobs");
    req_base(&r); r.n = 3; r.best_of = 2; expect_invalid(&r, "best_of");
    req_base(&r); r.best_of = 3; r.stream = 1; expect_invalid(&r, "best_of");
    req_base(&r); r.presence_penalty = 2.5f; expect_invalid(&r, "presence_penalty");
    req_base(&r); r.frequency_penalty = -3; expect_invalid(&r, "frequency_penalty");
    req_base(&r); r.suffix = "x"; expect_invalid(&r, "suffix");
    req_base(&r); r.max_tokens = -5; expect_invalid(&r, "max_tokens");
    const char *five[5] = {"a", "b", "c", "d", "e"};
    req_base(&r); r.stop = five; r.n_stop = 5; expect_invalid(&r, "stop");
    int bid = V; float bv = 1;
    req_base(&r); r.logit_bias_ids = &bid; r.logit_bias = &bv; r.n_logit_bias = 1; expect_invalid(&r, "logit_bias");
    bid = 3; bv = 101;
    req_base(&r); r.logit_bias_ids = &bid; r.logit_bias = &bv; r.n_logit_bias = 1; expect_invalid(&r, "logit_bias");
    /* unknown token ids, a prompt longer than the context, prompt + max_tokens too long */
    int badp[2] = {1, V + 5};
    const int *bp[1] = {badp};
    int bl[1] = {2};
    req_base(&r); r.prompts = bp; r.prompt_lens = bl; expect_invalid(&r, "prompt");
    int *longp = calloc(200, sizeof *longp);
    const int *lp[1] = {longp};
    int ll[1] = {129};
    req_base(&r); r.prompts = lp; r.prompt_lens = ll; expect_invalid(&r, "prompt");
    ll[0] = 120;
    req_base(&r); r.prompts = lp; r.prompt_lens = ll; r.max_tokens = 16; expect_invalid(&r, "max_tokens");
    r.max_tokens = 8;
    gen_result_t ok; char err[CORE_ERR_LEN];
    CHECK(gen_complete(&model, &r, &ok, NULL, NULL, err) == 0); /* exactly fills the context */
    CHECK_EQ_INT(ok.completion_tokens, 8);
    gen_result_free(&ok);
    free(longp);
    /* no prompt and no end-of-text token */
    req_base(&r); r.n_prompts = 0; expect_invalid(&r, "prompt");
    req_base(&r); r.n_prompts = 0; r.eot_id = 5; r.max_tokens = 2;
    CHECK(gen_complete(&model, &r, &ok, NULL, NULL, err) == 0);
    CHECK_EQ_INT(ok.prompt_tokens, 1);
    gen_result_free(&ok);
}

static int params_equal(const gpt2_t *a, const gpt2_t *b)
{
    const gpt2_params_t *x = &a->params, *y = &b->params;
    size_t C = a->config.channels, L = a->config.num_layers;
    return a->config.vocab_size == b->config.vocab_size && a->config.channels == b->config.channels &&
           !memcmp(x->wte, y->wte, (size_t)a->config.vocab_size * C * 4) &&
           !memcmp(x->qkvw, y->qkvw, L * 3 * C * C * 4) && !memcmp(x->fcprojw, y->fcprojw, L * 4 * C * C * 4) &&
           !memcmp(x->lnfb, y->lnfb, C * 4) && !memcmp(x->wpe, y->wpe, (size_t)a->config.max_seq_len * C * 4);
}

static void test_load_mapped(void)
{
    char err[CORE_ERR_LEN], dir[] = "/tmp/tunery-test-infer-XXXXXX", cmd[512], cache[600];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(cmd, sizeof cmd, "cp %s/config.json %s/model.safetensors %s/", FIX, FIX, dir);
    CHECK(system(cmd) == 0);
    snprintf(cache, sizeof cache, "%s/.tunery-infer.f32", dir);
    gpt2_t a, b, c;
    CHECK(gpt2_load(&a, dir, err) == 0);        /* the engine's loader agrees with ours */
    CHECK(params_equal(&a, &model));
    CHECK(gpt2_load_mapped(&b, dir, err) == 0); /* first time: converts and writes the image */
    CHECK(fs_exists(cache));
    CHECK(params_equal(&b, &model));
    gpt2_unload_mapped(&b);
    double t0 = time_mono();
    CHECK(gpt2_load_mapped(&c, dir, err) == 0); /* then: a mapping */
    double dt = time_mono() - t0;
    CHECK(dt < 0.1);
    CHECK(params_equal(&c, &model));
    /* generation on the mapped model is the same */
    gen_request_t r; gen_result_t res;
    req_base(&r);
    r.temperature = 0; r.max_tokens = 16;
    CHECK(gen_complete(&c, &r, &res, NULL, NULL, err) == 0);
    char want[512];
    greedy_text(want, sizeof want, 16);
    CHECK_EQ_STR(res.choices[0].text, want);
    gen_result_free(&res);
    /* the packed matrices of the image (AVX-512 CPUs): a prefill of more than
     * MM_PACKED_MIN_ROWS rows runs on them, every position's logits (the
     * packed LM head too) within 1e-4 of the plain model's */
    if (nn_cpu()->avx512f) {
        CHECK(c.packed.wte && c.packed.qkvw && c.packed.attprojw && c.packed.fcw && c.packed.fcprojw);
        int N = P + G;
        CHECK(N > MM_PACKED_MIN_ROWS);
        int *seq = malloc(N * sizeof *seq);
        memcpy(seq, prompt, P * sizeof *seq);
        memcpy(seq + P, greedy, G * sizeof *seq);
        float *lp = malloc((size_t)N * V * 4), *lm = malloc((size_t)N * V * 4);
        infer_t *ip = NULL, *im = NULL;
        CHECK(infer_create(&ip, &model, 1, 0, err) == 0 && infer_create(&im, &c, 1, 0, err) == 0);
        CHECK(infer_prefill(ip, 0, seq, N, lp, 1, err) == 0 && infer_prefill(im, 0, seq, N, lm, 1, err) == 0);
        double worst = 0;
        for (size_t i = 0; i < (size_t)N * V; i++) worst = fmax(worst, fabs(lp[i] - lm[i]));
        CHECKF(worst < 1e-4, "packed (mapped) vs plain prefill: max logit diff %g", worst);
        infer_free(ip); infer_free(im);
        free(seq); free(lp); free(lm);
    }
    gpt2_unload_mapped(&c);
    CHECK(c.params_memory == NULL);
    /* a changed safetensors file invalidates the image */
    snprintf(cmd, sizeof cmd, "touch -d '2001-01-01' %s/model.safetensors", dir);
    CHECK(system(cmd) == 0);
    struct stat before, after;
    stat(cache, &before);
    CHECK(gpt2_load_mapped(&c, dir, err) == 0);
    stat(cache, &after);
    CHECK(before.st_ino != after.st_ino);
    CHECK(params_equal(&c, &model));
    gpt2_unload_mapped(&c);
    gpt2_unload_mapped(&a);                     /* a copied model is freed too */
    CHECK(fs_rm_rf(dir, err) == 0);
}

/* A strong reference (cmds.h declares it weak, which would not pull
 * cmd_generate.o out of the library into this binary). */
int cmd_generate(int argc, char **argv);

/* Run `tunery generate ARGS` in-process with stdout/stderr captured. */
static int run_generate(char *out, size_t outcap, char *errout, size_t errcap, int argc, char **argv)
{
    char po[] = "/tmp/tunery-gen-out-XXXXXX", pe[] = "/tmp/tunery-gen-err-XXXXXX";
    int fo = mkstemp(po), fe = mkstemp(pe);
    fflush(stdout); fflush(stderr);
    int so = dup(1), se = dup(2);
    dup2(fo, 1); dup2(fe, 2);
    int rc = cmd_generate(argc, argv);
    fflush(stdout); fflush(stderr);
    dup2(so, 1); dup2(se, 2);
    close(so); close(se);
    ssize_t n = pread(fo, out, outcap - 1, 0);
    out[n > 0 ? n : 0] = 0;
    n = pread(fe, errout, errcap - 1, 0);
    errout[n > 0 ? n : 0] = 0;
    close(fo); close(fe);
    unlink(po); unlink(pe);
    return rc;
}

static const char *tpiece(void *t, int id, size_t *len) { return tok_piece(t, id, len); }

static void test_cmd_generate(void)
{
    char err[CORE_ERR_LEN], dir[] = "/tmp/tunery-test-gen-XXXXXX", out[8192], eout[2048], cache[600];
    CHECK(mkdtemp(dir) != NULL);
    gpt2_config_t cfg = {64, 50257, 0, 1, 2, 16}; /* r50k vocabulary, tiny everything else */
    gpt2_t m;
    CHECK(gpt2_create(&m, &cfg, err) == 0);
    gpt2_init_random(&m, 7);
    CHECK(gpt2_save(&m, dir, err) == 0);
    const tok_t *tok = tok_r50k(err);
    CHECK(tok != NULL);
    if (!tok) { gpt2_free(&m); return; }
    /* the expected greedy text, straight from the engine */
    tok_ids_t ids = {0};
    CHECK(tok_encode(tok, "Hello world", 11, 1, &ids) == 0);
    const int *ps[1] = {ids.ids};
    int pl[1] = {(int)ids.len};
    gen_request_t r; gen_result_t res;
    gen_request_init(&r);
    r.prompts = ps; r.prompt_lens = pl; r.n_prompts = 1;
    r.temperature = 0; r.max_tokens = 6; r.eot_id = tok_eot(tok);
    r.piece = tpiece; r.piece_ctx = (void *)tok;
    CHECK(gen_complete(&m, &r, &res, NULL, NULL, err) == 0);
    char *a1[] = {"generate", "--model", dir, "-p", "Hello world", "-M", "6", "-t", "0", NULL};
    CHECK_EQ_INT(run_generate(out, sizeof out, eout, sizeof eout, 9, a1), 0);
    CHECK_EQ_STR(out, res.choices[0].text);
    snprintf(cache, sizeof cache, "%s/.tunery-infer.f32", dir);
    CHECK(fs_exists(cache));                       /* loaded through the mapped path */
    /* --stream prints the same text; --echo puts the prompt first */
    char *a2[] = {"generate", "-m", dir, "-p", "Hello world", "-M", "6", "-t", "0", "--stream", "--echo", NULL};
    CHECK_EQ_INT(run_generate(out, sizeof out, eout, sizeof eout, 11, a2), 0);
    CHECK(!strncmp(out, "Hello world", 11) && !strcmp(out + 11, res.choices[0].text));
    /* n > 1: the OpenAI CLI's headers */
    char *a3[] = {"generate", "--model", dir, "-p", "Hi", "-n", "2", "--seed", "3", "-M", "3", NULL};
    CHECK_EQ_INT(run_generate(out, sizeof out, eout, sizeof eout, 11, a3), 0);
    CHECK(!strncmp(out, "===== Completion 0 =====\n", 25));
    CHECK(strstr(out, "\n===== Completion 1 =====\n") != NULL);
    /* errors name the parameter; exit status non-zero */
    char *a4[] = {"generate", "--model", dir, "-p", "Hi", "--temperature", "3", NULL};
    CHECK(run_generate(out, sizeof out, eout, sizeof eout, 7, a4) != 0);
    CHECK(strstr(eout, "temperature") != NULL);
    char *a5[] = {"generate", "--model", "/nonexistent/model", NULL};
    CHECK(run_generate(out, sizeof out, eout, sizeof eout, 3, a5) != 0);
    CHECK(strstr(eout, "not found") != NULL || strstr(eout, "nonexistent") != NULL);
    gen_result_free(&res);
    tok_ids_free(&ids);
    gpt2_free(&m);
    CHECK(fs_rm_rf(dir, err) == 0);
}

int main(void)
{
    setenv("TUNERY_SHARE", "data", 0); /* the r50k vocabulary, when run from the repository root */
    if (fixture_load()) { fprintf(stderr, "cannot load %s (run from the repository root)\n", FIX); return 1; }
    RUN(test_greedy_parity);
    RUN(test_kv_cache_equals_full);
    RUN(test_bf16_decode_is_fp32);
    /* The parity tests above ran with every thread. The parameter tests below
     * exercise generate.c's bookkeeping over ~1000 tiny forward steps, where
     * thread fork/join on a shared, loaded machine costs far more than the
     * work: one thread keeps the suite fast without changing what is tested. */
    omp_set_num_threads(1);
    RUN(test_echo_logprobs_layout);
    RUN(test_stop_across_tokens);
    RUN(test_max_tokens_and_eot);
    RUN(test_n_seed_reproducible);
    RUN(test_best_of);
    RUN(test_logit_bias_ban);
    RUN(test_penalties);
    RUN(test_stream_utf8);
    RUN(test_stream_stop_and_cancel);
    RUN(test_multiple_prompts);
    RUN(test_validation);
    RUN(test_load_mapped);
    RUN(test_cmd_generate);
    gpt2_free(&model);
    json_decref(expected);
    return test_summary();
}
