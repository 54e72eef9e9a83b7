/* completions.c: POST /v1/completions and /v1/engines/{engine}/completions.
 *
 * The request is parsed here (prompt as string, strings, token ids or lists
 * of them; stop as a string or up to four; JSON null = default, as the
 * Python CLI sends), the model comes from the cache (model_cache.c) and
 * nn/'s gen_complete does the sampling. The parameters are checked on the
 * HTTP thread; loading the model and generating run on the compute pool
 * (pool.c) while the connection sleeps (http_defer), so a long generation
 * never holds an event-loop thread. stream:true pushes each chunk to the
 * connection as an SSE "data:" line as it is made, then "data: [DONE]".
 */
#define TUNERY_SERVER_INTERNAL
#include "server/params.h"
#include "store/store.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A token as OpenAI printed it: its text, or "bytes:\xNN..." when not UTF-8. */
static json_t *token_json(const tok_t *t, int id)
{
    size_t n;
    const char *p = tok_piece(t, id, &n);
    if (!p) return json_string("");
    json_t *j = json_stringn(p, n);
    if (j) return j;
    buf_t b = {0};
    buf_appends(&b, "bytes:");
    for (size_t i = 0; i < n; i++) buf_printf(&b, "\\x%02x", (unsigned char)p[i]);
    j = json_string(b.data);
    buf_free(&b);
    return j;
}

static json_t *lp_or_null(float x) { return isnan(x) ? json_null() : json_real(x); }

static json_t *logprobs_json(const tok_t *t, int n_tokens, const int *tokens, const float *lps,
                             const size_t *offs, int n_top, const int *top_ids, const float *top_lps)
{
    json_t *tk = json_array(), *tl = json_array(), *top = json_array(), *off = json_array();
    for (int i = 0; i < n_tokens; i++) {
        json_array_append_new(tk, token_json(t, tokens[i]));
        json_array_append_new(tl, lp_or_null(lps[i]));
        json_array_append_new(off, json_integer((json_int_t)offs[i]));
        if (!n_top || top_ids[(size_t)i * n_top] < 0) {
            json_array_append_new(top, json_null());
            continue;
        }
        json_t *o = json_object();
        for (int k = 0; k < n_top; k++) {
            int id = top_ids[(size_t)i * n_top + k];
            if (id < 0) continue;
            json_t *key = token_json(t, id);
            json_object_set_new(o, json_string_value(key), json_real(top_lps[(size_t)i * n_top + k]));
            json_decref(key);
        }
        json_array_append_new(top, o);
    }
    return json_pack("{s:o, s:o, s:o, s:o}", "tokens", tk, "token_logprobs", tl, "top_logprobs", top, "text_offset", off);
}

static const char *piece_fn(void *ctx, int id, size_t *len) { return tok_piece(ctx, id, len); }

/* Everything a request owns while it runs (prompts, stops, biases). */
typedef struct {
    gen_request_t g;
    tok_ids_t *prompts;
    const int **prompt_ptrs;
    int *prompt_lens;
    int n_prompts;
    params_gen_t own;
    char model[STORE_NAME_LEN];
    char cache_id[STORE_NAME_LEN];  /* aliases share the entry of their weights */
    char dir[4096];
    char id[40];
    long long created;
    model_ref_t *ref;
    server_t *srv;
} creq_t;

static void creq_free(creq_t *c)
{
    for (int i = 0; i < c->n_prompts; i++) tok_ids_free(&c->prompts[i]);
    free(c->prompts);
    free(c->prompt_ptrs);
    free(c->prompt_lens);
    params_gen_free(&c->own);
    if (c->ref) model_cache_put(c->srv, c->ref);
    free(c);
}

/* Token ids of one prompt element: a string (encoded) or an array of ints. */
static int prompt_one(req_t *r, const tok_t *t, json_t *v, tok_ids_t *out)
{
    if (json_is_string(v)) {
        if (tok_encode(t, json_string_value(v), json_string_length(v), 1, out)) return HTTP_500(r, "Out of memory."), -1;
        return 0;
    }
    if (!json_is_array(v)) return HTTP_400(r, "prompt", "prompt must be a string, an array of strings, an array of token ids or an array of arrays of token ids."), -1;
    size_t i;
    json_t *x;
    int V = tok_vocab_size(t);
    json_array_foreach(v, i, x) {
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) >= V)
            return HTTP_400(r, "prompt", "Token ids in prompt must be integers from 0 to %d.", V - 1), -1;
        if (out->len == out->cap) {
            size_t cap = out->cap ? out->cap * 2 : 64;
            int *p = realloc(out->ids, cap * sizeof *p);
            if (!p) return HTTP_500(r, "Out of memory."), -1;
            out->ids = p;
            out->cap = cap;
        }
        out->ids[out->len++] = (int)json_integer_value(x);
    }
    return 0;
}

static int parse_prompts(req_t *r, creq_t *c, const tok_t *t, json_t *p)
{
    if (!p || json_is_null(p)) return 0;   /* default: <|endoftext|> */
    json_t *items = p;
    int single = json_is_string(p) || (json_is_array(p) && (json_array_size(p) == 0 || json_is_integer(json_array_get(p, 0))));
    size_t n = single ? 1 : json_array_size(p);
    if (!single && !json_is_array(p)) return HTTP_400(r, "prompt", "prompt must be a string or an array."), -1;
    if (n > 128) return HTTP_400(r, "prompt", "At most 128 prompts per request."), -1;
    c->prompts = calloc(n ? n : 1, sizeof *c->prompts);
    c->prompt_ptrs = calloc(n ? n : 1, sizeof *c->prompt_ptrs);
    c->prompt_lens = calloc(n ? n : 1, sizeof *c->prompt_lens);
    if (!c->prompts || !c->prompt_ptrs || !c->prompt_lens) return HTTP_500(r, "Out of memory."), -1;
    for (size_t i = 0; i < n; i++) {
        c->n_prompts++;
        if (prompt_one(r, t, single ? items : json_array_get(p, i), &c->prompts[i])) return -1;
        c->prompt_ptrs[i] = c->prompts[i].ids;
        c->prompt_lens[i] = (int)c->prompts[i].len;
    }
    c->g.prompts = c->prompt_ptrs;
    c->g.prompt_lens = c->prompt_lens;
    c->g.n_prompts = (int)n;
    return 0;
}

static const char *const completion_params[] = {
    "model", "prompt", "suffix", "max_tokens", "temperature", "top_p", "n", "stream", "logprobs", "echo",
    "stop", "presence_penalty", "frequency_penalty", "best_of", "logit_bias", "user", "seed", "stream_options", NULL,
};

/* Parse everything but the prompt (which needs the model's tokenizer). */
static int parse_params(req_t *r, creq_t *c, json_t *b)
{
    gen_request_t *g = &c->g;
    long long mt = 16, best = 0, lp = -1;
    int echo = 0, has_mt = 0;
    const char *suffix = NULL;
    if (json_opt_int(r, b, "max_tokens", -1, 1 << 20, &mt, &has_mt) ||
        json_opt_int(r, b, "best_of", -1000, 1000000, &best, NULL) || json_opt_int(r, b, "logprobs", -1000, 1000, &lp, NULL) ||
        json_opt_bool(r, b, "echo", &echo, NULL) || json_opt_str(r, b, "suffix", &suffix) || params_parse_sampling(r, b, g))
        return -1;
    g->max_tokens = has_mt ? (int)mt : 16;
    g->best_of = (int)best;
    g->logprobs = (int)lp;
    g->echo = echo;
    /* a non-empty suffix is refused before any stream starts, so this
     * pointer into the body never outlives it */
    g->suffix = suffix && suffix[0] ? suffix : NULL;
    return params_parse_stop_bias(r, b, g, &c->own);
}

static json_t *choice_json(const creq_t *c, const gen_choice_t *ch)
{
    json_t *lp = json_null();
    if (c->g.logprobs >= 0)
        lp = logprobs_json(c->ref->tok, ch->n_tokens, ch->tokens, ch->token_logprobs, ch->text_offset,
                           ch->n_top, ch->top_ids, ch->top_logprobs);
    return json_pack("{s:o, s:i, s:o, s:s}", "text", server_json_text(ch->text, ch->text_len), "index", ch->index,
                     "logprobs", lp, "finish_reason", ch->finish_reason ? ch->finish_reason : "stop");
}

/* ---- streaming: the compute thread pushes each chunk ---- */
typedef struct {
    creq_t *c;
    http_push_t *push;
} cstream_t;

static int stream_chunk(void *ctx, const gen_chunk_t *ch)
{
    cstream_t *s = ctx;
    creq_t *c = s->c;
    if (c->srv->stopping) return 1;
    json_t *lp = json_null();
    if (c->g.logprobs >= 0)
        lp = logprobs_json(c->ref->tok, ch->n_tokens, ch->tokens, ch->token_logprobs, ch->text_offset,
                           ch->n_top, ch->top_ids, ch->top_logprobs);
    json_t *choice = json_pack("{s:o, s:i, s:o, s:o}", "text", server_json_text(ch->text, ch->text_len), "index", ch->index,
                               "logprobs", lp, "finish_reason", ch->finish_reason ? json_string(ch->finish_reason) : json_null());
    json_t *o = json_pack("{s:s, s:s, s:I, s:[o], s:s}", "id", c->id, "object", "text_completion",
                          "created", (json_int_t)c->created, "choices", choice, "model", c->model);
    char *t = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    int stop = t ? http_push_printf(s->push, "data: %s\n\n", t) != 0 : 0;   /* -1: the client left */
    free(t);
    return stop;
}

/* Runs after the 200 has gone out, on the same compute thread. */
static void stream_run(void *arg)
{
    cstream_t *s = arg;
    gen_result_t res;
    memset(&res, 0, sizeof res);
    char err[CORE_ERR_LEN] = "";
    int rc = gen_complete(&s->c->ref->model, &s->c->g, &res, stream_chunk, s, err);
    gen_result_free(&res);
    params_stream_end(s->push, rc, err);
    creq_free(s->c);
    free(s);
}

/* On the compute pool: load (or share) the model, encode the prompts,
 * generate, reply. */
static void completions_compute(req_t *r, void *arg, http_then_fn *then, void **then_arg)
{
    creq_t *c = arg;
    json_t *b = r->body;
    char err[CORE_ERR_LEN];
    if (!(c->ref = params_model_get(r, c->cache_id, c->dir, c->model))) goto out;
    if (parse_prompts(r, c, c->ref->tok, json_object_get(b, "prompt"))) goto out;
    c->g.eot_id = tok_eot(c->ref->tok);
    c->g.piece = piece_fn;
    c->g.piece_ctx = c->ref->tok;
    const char *param = NULL;
    if (gen_request_check(&c->g, &c->ref->model.config, &param, err)) {
        HTTP_400(r, param, "%s", err);
        goto out;
    }
    if (c->g.stream) {
        cstream_t *s = calloc(1, sizeof *s);
        if (!s) {
            HTTP_500(r, "Out of memory.");
            goto out;
        }
        s->c = c;
        s->push = http_reply_push(r, "text/event-stream");
        if (!s->push) {
            free(s);
            goto out;
        }
        *then = stream_run;
        *then_arg = s;
        return;
    }
    gen_result_t res;
    memset(&res, 0, sizeof res);
    int rc = gen_complete(&c->ref->model, &c->g, &res, NULL, NULL, err);
    if (rc == GEN_EINVAL) {
        HTTP_400(r, res.err_param, "%s", err);
    } else if (rc) {
        HTTP_500(r, "Generation failed: %s", err);
    } else {
        json_t *choices = json_array();
        for (int i = 0; i < res.n_choices; i++) json_array_append_new(choices, choice_json(c, &res.choices[i]));
        json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:o, s:{s:i, s:i, s:i}}", "id", c->id, "object", "text_completion",
                              "created", (json_int_t)c->created, "model", c->model, "choices", choices, "usage",
                              "prompt_tokens", res.prompt_tokens, "completion_tokens", res.completion_tokens,
                              "total_tokens", res.total_tokens);
        http_reply_json(r, 200, o);
    }
    gen_result_free(&res);
out:
    creq_free(c);
}

/* On the HTTP thread: the checks that need no model, then off to the pool. */
static int completions_run(req_t *r, const char *model)
{
    json_t *b = r->body;
    if (!model || !model[0]) return HTTP_400(r, "model", "Missing required parameter: 'model'.");
    if (json_check_known(r, b, completion_params)) return -1;
    creq_t *c = calloc(1, sizeof *c);
    if (!c) return HTTP_500(r, "Out of memory.");
    c->srv = r->srv;
    gen_request_init(&c->g);
    snprintf(c->model, sizeof c->model, "%s", model);
    id_random(c->id, "cmpl-", 29);
    c->created = time_unix();
    server_model_t m;   /* any model: a chat model is still a language model */
    if (parse_params(r, c, b) || server_model_resolve(r, model, &m, c->cache_id)) {
        creq_free(c);
        return 0;
    }
    snprintf(c->dir, sizeof c->dir, "%s", m.dir);
    return http_defer(r, completions_compute, c);
}

int completions_create(req_t *r)
{
    const char *model = NULL;
    if (!r->body) return HTTP_400(r, "model", "Missing required parameter: 'model'.");
    if (json_opt_str(r, r->body, "model", &model)) return -1;
    return completions_run(r, model);
}

int completions_engine(req_t *r)
{
    if (!r->body) r->body = json_object();
    json_object_del(r->body, "model");
    return completions_run(r, r->params[0]);
}
