/* chat.c: POST /v1/chat/completions, for models fine-tuned on chat data
 * (and the chat compatibility bases such as gpt-4o-mini).
 *
 * Why it is not a flag on completions.c: the request (messages, logprobs as
 * a boolean plus top_logprobs, max_completion_tokens, stream_options) and
 * every response shape (chat.completion, chat.completion.chunk with deltas,
 * logprobs.content) differ; only the engine is shared. The conversation is
 * rendered into token ids by train_chat_encode, the very code the trainer
 * renders training examples with (train/chat_template.c), with the
 * assistant's turn opened; generation stops at <|endoftext|>, the
 * template's end of turn, and the reply loses the one space the template
 * puts before every content.
 *
 * Like completions.c the work runs on the compute pool (http_defer) while
 * the connection sleeps; a stream is produced there too, chunk by chunk,
 * through http_reply_push.
 */
#define TUNERY_SERVER_INTERNAL
#include "server/params.h"
#include "store/store.h"
#include "train/train.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    gen_request_t g;
    tok_ids_t prompt;
    const int *prompt_ptr;
    int prompt_len;
    params_gen_t own;
    int want_logprobs, include_usage;
    const char *max_param;          /* "max_tokens" or "max_completion_tokens" */
    char model[STORE_NAME_LEN];
    char cache_id[STORE_NAME_LEN];  /* aliases share the entry of their weights */
    char dir[4096];
    char id[48];
    long long created;
    model_ref_t *ref;
    server_t *srv;
    http_push_t *push;
    unsigned char *started;         /* per choice: the leading space is dealt with */
} chat_t;

static void chat_free(chat_t *c)
{
    tok_ids_free(&c->prompt);
    params_gen_free(&c->own);
    free(c->started);
    if (c->ref) model_cache_put(c->srv, c->ref);
    free(c);
}

static const char *piece_fn(void *ctx, int id, size_t *len) { return tok_piece(ctx, id, len); }

/* ---- request ---- */

static const char *const chat_params[] = {
    "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n", "stop", "seed",
    "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "stream",
    "stream_options", "user", NULL,
};

/* messages -> the template's ids. Replies 400 naming messages[i].field. */
static int parse_messages(req_t *r, chat_t *c, const tok_t *tk)
{
    json_t *msgs = json_object_get(r->body, "messages");
    if (!msgs || json_is_null(msgs)) return HTTP_400(r, "messages", "Missing required parameter: 'messages'."), -1;
    if (!json_is_array(msgs)) return HTTP_400(r, "messages", "Invalid type for 'messages': expected an array of message objects."), -1;
    size_t n = json_array_size(msgs);
    if (n == 0) return HTTP_400(r, "messages", "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead."), -1;
    if (n > 100000) return HTTP_400(r, "messages", "Too many messages (%zu).", n), -1;
    train_chat_msg_t *m = calloc(n, sizeof *m);
    buf_t *parts = calloc(n, sizeof *parts);
    int rc = 0;
    if (!m || !parts) rc = -1, HTTP_500(r, "Out of memory.");
    char param[64], err[CORE_ERR_LEN];
    for (size_t i = 0; i < n && !rc; i++) {
        json_t *o = json_array_get(msgs, i);
        if (!json_is_object(o)) {
            snprintf(param, sizeof param, "messages[%zu]", i);
            rc = -1, HTTP_400(r, param, "Invalid type for '%s': expected an object with 'role' and 'content'.", param);
            break;
        }
        json_t *role = json_object_get(o, "role"), *content = json_object_get(o, "content");
        snprintf(param, sizeof param, "messages[%zu].role", i);
        if (!json_is_string(role)) {
            rc = -1, HTTP_400(r, param, "Missing or invalid '%s': expected one of 'system', 'developer', 'user', 'assistant', 'tool' or 'function'.", param);
            break;
        }
        if (!train_chat_role_known(json_string_value(role))) {
            rc = -1, HTTP_400(r, param, "Invalid value: '%.40s'. Supported values are: 'system', 'developer', 'user', 'assistant', 'tool' and 'function'.",
                          json_string_value(role));
            break;
        }
        m[i].role = json_string_value(role);
        snprintf(param, sizeof param, "messages[%zu].content", i);
        if (json_is_string(content)) {
            m[i].content = json_string_value(content);
            m[i].content_len = json_string_length(content);
        } else if ((!content || json_is_null(content)) && !strcmp(m[i].role, "assistant")) {
            m[i].content = "";   /* an assistant turn that only called tools */
        } else if (json_is_array(content)) {
            size_t k;
            json_t *p;
            json_array_foreach(content, k, p) {
                const char *type = json_string_value(json_object_get(p, "type"));
                json_t *text = json_object_get(p, "text");
                if (!type || strcmp(type, "text") || !json_is_string(text)) {
                    snprintf(param, sizeof param, "messages[%zu].content[%zu]", i, k);
                    rc = -1, HTTP_400(r, param, "Invalid content part '%s': this server's models read text only; send {\"type\": \"text\", \"text\": \"...\"}.", param);
                    break;
                }
                if (buf_append(&parts[i], json_string_value(text), json_string_length(text))) {
                    rc = -1, HTTP_500(r, "Out of memory.");
                    break;
                }
            }
            m[i].content = parts[i].data ? parts[i].data : "";
            m[i].content_len = parts[i].len;
        } else {
            rc = -1, HTTP_400(r, param, "Invalid type for '%s': expected a string or an array of text parts.", param);
        }
    }
    if (!rc && train_chat_encode(tk, m, (int)n, &c->prompt, err)) rc = -1, HTTP_500(r, "%s", err);
    for (size_t i = 0; parts && i < n; i++) buf_free(&parts[i]);
    free(parts);
    free(m);
    if (rc) return -1;
    c->prompt_ptr = c->prompt.ids;
    c->prompt_len = (int)c->prompt.len;
    c->g.prompts = &c->prompt_ptr;
    c->g.prompt_lens = &c->prompt_len;
    c->g.n_prompts = 1;
    return 0;
}

/* Everything but the messages (which need the model's tokenizer). */
static int parse_params(req_t *r, chat_t *c, json_t *b)
{
    gen_request_t *g = &c->g;
    long long mt = 0, mct = 0, top = 0;
    int lp = 0, has_mt = 0, has_mct = 0, has_top = 0;
    if (json_opt_int(r, b, "max_tokens", -1000000, 1 << 20, &mt, &has_mt) ||
        json_opt_int(r, b, "max_completion_tokens", -1000000, 1 << 20, &mct, &has_mct) ||
        json_opt_int(r, b, "top_logprobs", -1000, 1000, &top, &has_top) || json_opt_bool(r, b, "logprobs", &lp, NULL) ||
        params_parse_sampling(r, b, g))
        return -1;
    /* max_completion_tokens replaced max_tokens; either bounds the reply,
     * and without one the reply may use the rest of the context */
    c->max_param = has_mct ? "max_completion_tokens" : "max_tokens";
    long long max = has_mct ? mct : has_mt ? mt : GEN_MAX_TOKENS_REST;
    if ((has_mct || has_mt) && max < 1)
        return HTTP_400(r, c->max_param, "Invalid '%s': integer below minimum value. Expected a value >= 1, but got %lld instead.", c->max_param, max), -1;
    if (has_top && !lp)
        return HTTP_400(r, "top_logprobs", "top_logprobs requires logprobs to be true."), -1;
    if (has_top && (top < 0 || top > 20))
        return HTTP_400(r, "top_logprobs", "Invalid 'top_logprobs': %lld; expected an integer from 0 to 20.", top), -1;
    if (top > GEN_MAX_LOGPROBS)
        return HTTP_400(r, "top_logprobs", "top_logprobs is at most %d on this server (asked for %lld).", GEN_MAX_LOGPROBS, top), -1;
    json_t *so = json_object_get(b, "stream_options");
    if (so && !json_is_null(so)) {
        if (!json_is_object(so)) return HTTP_400(r, "stream_options", "Invalid type for 'stream_options': expected an object."), -1;
        if (!g->stream) return HTTP_400(r, "stream_options", "The 'stream_options' parameter is only allowed when 'stream' is enabled."), -1;
        const char *k;
        json_t *v;
        json_object_foreach(so, k, v) {
            if (strcmp(k, "include_usage") || !json_is_boolean(v))
                return HTTP_400(r, "stream_options", "stream_options takes only {\"include_usage\": true|false}; '%s' is not supported.", k), -1;
            c->include_usage = json_is_true(v);
        }
    }
    g->max_tokens = (int)max;
    c->want_logprobs = lp;
    g->logprobs = lp ? (int)top : -1;
    return params_parse_stop_bias(r, b, g, &c->own);
}

/* The model: a chat model of this org, or a 4xx saying what to use instead. */
static int resolve_model(req_t *r, chat_t *c, const char *name)
{
    server_model_t m;
    if (server_model_resolve(r, name, &m, c->cache_id)) return -1;
    if (!m.is_chat)
        return HTTP_400(r, "model", "The model `%s` is a completion model (trained on prompt/completion data), not a chat model: "
                        "call it through /v1/completions, or fine-tune a chat model (e.g. gpt-4o-mini) on {\"messages\": [...]} data.", name), -1;
    snprintf(c->dir, sizeof c->dir, "%s", m.dir);
    return 0;
}

/* ---- response shapes ---- */

static json_t *bytes_json(const char *p, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(a, json_integer((unsigned char)p[i]));
    return a;
}

/* One token as chat logprobs describe it: text (U+FFFD for a partial
 * character; bytes has the truth), logprob, bytes. */
static json_t *token_lp_json(const tok_t *t, int id, float lp)
{
    size_t n = 0;
    const char *p = tok_piece(t, id, &n);
    if (!p) p = "", n = 0;
    return json_pack("{s:o, s:f, s:o}", "token", server_json_text(p, n), "logprob", isnan(lp) ? -9999.0 : (double)lp,
                     "bytes", bytes_json(p, n));
}

static json_t *logprobs_json(const chat_t *c, int n_tokens, const int *tokens, const float *lps, int n_top,
                             const int *top_ids, const float *top_lps)
{
    if (!c->want_logprobs) return json_null();
    json_t *content = json_array();
    for (int i = 0; i < n_tokens; i++) {
        json_t *e = token_lp_json(c->ref->tok, tokens[i], lps[i]);
        json_t *top = json_array();
        for (int k = 0; k < n_top; k++) {
            int id = top_ids[(size_t)i * n_top + k];
            if (id >= 0) json_array_append_new(top, token_lp_json(c->ref->tok, id, top_lps[(size_t)i * n_top + k]));
        }
        json_object_set_new(e, "top_logprobs", top);
        json_array_append_new(content, e);
    }
    return json_pack("{s:o, s:n}", "content", content, "refusal");
}

/* The reply text without the template's leading space. */
static void reply_text(const char **text, size_t *len)
{
    if (*len && (*text)[0] == ' ') {
        (*text)++;
        (*len)--;
    }
}

static json_t *usage_json(const gen_result_t *res)
{
    return json_pack("{s:i, s:i, s:i}", "prompt_tokens", res->prompt_tokens, "completion_tokens", res->completion_tokens,
                     "total_tokens", res->total_tokens);
}

static json_t *completion_json(const chat_t *c, const gen_result_t *res)
{
    json_t *choices = json_array();
    for (int i = 0; i < res->n_choices; i++) {
        const gen_choice_t *ch = &res->choices[i];
        const char *text = ch->text;
        size_t len = ch->text_len;
        reply_text(&text, &len);
        json_t *msg = json_pack("{s:s, s:o, s:n}", "role", "assistant", "content", server_json_text(text, len), "refusal");
        json_array_append_new(choices, json_pack("{s:i, s:o, s:o, s:s}", "index", ch->index, "message", msg, "logprobs",
                                                 logprobs_json(c, ch->n_tokens, ch->tokens, ch->token_logprobs, ch->n_top,
                                                               ch->top_ids, ch->top_logprobs),
                                                 "finish_reason", ch->finish_reason ? ch->finish_reason : "stop"));
    }
    return json_pack("{s:s, s:s, s:I, s:s, s:o, s:o, s:n}", "id", c->id, "object", "chat.completion", "created",
                     (json_int_t)c->created, "model", c->model, "choices", choices, "usage", usage_json(res),
                     "system_fingerprint");
}

/* ---- streaming: chat.completion.chunk events, then [DONE] ---- */

static int push_chunk(chat_t *c, json_t *choices, json_t *usage)
{
    json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:n, s:o}", "id", c->id, "object", "chat.completion.chunk", "created",
                          (json_int_t)c->created, "model", c->model, "system_fingerprint", "choices", choices);
    if (c->include_usage) json_object_set_new(o, "usage", usage ? usage : json_null());
    else if (usage) json_decref(usage);
    char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    int rc = t ? http_push_printf(c->push, "data: %s\n\n", t) : -1;
    free(t);
    return rc;
}

static json_t *delta_choice(int index, json_t *delta, json_t *logprobs, const char *finish)
{
    return json_pack("{s:i, s:o, s:o, s:o}", "index", index, "delta", delta, "logprobs", logprobs ? logprobs : json_null(),
                     "finish_reason", finish ? json_string(finish) : json_null());
}

static int stream_chunk(void *ctx, const gen_chunk_t *ch)
{
    chat_t *c = ctx;
    if (c->srv->stopping) return 1;
    const char *text = ch->text;
    size_t len = ch->text_len;
    if (!c->started[ch->index] && len) {
        reply_text(&text, &len);
        c->started[ch->index] = 1;
    }
    int rc = 0;
    if (len || ch->n_tokens) {
        json_t *delta = json_pack("{s:o}", "content", server_json_text(text, len));
        json_t *lp = logprobs_json(c, ch->n_tokens, ch->tokens, ch->token_logprobs, ch->n_top, ch->top_ids, ch->top_logprobs);
        rc = push_chunk(c, json_pack("[o]", delta_choice(ch->index, delta, lp, NULL)), NULL);
    }
    if (!rc && ch->finish_reason)
        rc = push_chunk(c, json_pack("[o]", delta_choice(ch->index, json_object(), NULL, ch->finish_reason)), NULL);
    return rc ? 1 : http_push_closed(c->push);
}

/* Runs on the compute thread after the 200 went out; owns c. */
static void stream_main(void *arg)
{
    chat_t *c = arg;
    char err[CORE_ERR_LEN] = "";
    int rc = 0;
    for (int i = 0; i < c->g.n && !rc; i++)
        rc = push_chunk(c, json_pack("[o]", delta_choice(i, json_pack("{s:s, s:s, s:n}", "role", "assistant", "content", "", "refusal"),
                                                         NULL, NULL)), NULL);
    gen_result_t res;
    memset(&res, 0, sizeof res);
    if (!rc) rc = gen_complete(&c->ref->model, &c->g, &res, stream_chunk, c, err);
    if (!rc && c->include_usage) push_chunk(c, json_array(), usage_json(&res));
    gen_result_free(&res);
    params_stream_end(c->push, rc, err);
    chat_free(c);
}

/* ---- the request ---- */

/* On the compute pool: load (or share) the model, render the messages,
 * generate, reply (or hand the stream to stream_main). */
static void chat_compute(req_t *r, void *arg, http_then_fn *then, void **then_arg)
{
    chat_t *c = arg;
    char err[CORE_ERR_LEN];
    if (!(c->ref = params_model_get(r, c->cache_id, c->dir, c->model))) goto out;
    if (parse_messages(r, c, c->ref->tok)) goto out;
    c->g.eot_id = tok_eot(c->ref->tok);   /* the template's end of turn */
    c->g.piece = piece_fn;
    c->g.piece_ctx = c->ref->tok;
    const char *param = NULL;
    if (gen_request_check(&c->g, &c->ref->model.config, &param, err)) {
        /* the engine speaks of the prompt and max_tokens; the caller sent messages */
        if (param && !strcmp(param, "prompt")) param = "messages";
        else if (param && !strcmp(param, "max_tokens")) param = c->max_param;
        HTTP_400(r, param, "%s", err);
        goto out;
    }
    if (c->g.stream) {
        if (!(c->started = calloc((size_t)c->g.n, 1))) {
            HTTP_500(r, "Out of memory.");
            goto out;
        }
        if (!(c->push = http_reply_push(r, "text/event-stream"))) goto out;
        *then = stream_main;
        *then_arg = c;
        return;
    }
    gen_result_t res;
    memset(&res, 0, sizeof res);
    int rc = gen_complete(&c->ref->model, &c->g, &res, NULL, NULL, err);
    if (rc == GEN_EINVAL) HTTP_400(r, res.err_param, "%s", err);
    else if (rc) HTTP_500(r, "Generation failed: %s", err);
    else http_reply_json(r, 200, completion_json(c, &res));
    gen_result_free(&res);
out:
    chat_free(c);
}

/* On the HTTP thread: the checks that need no model, then off to the pool. */
int chat_completions_create(req_t *r)
{
    json_t *b = r->body;
    const char *model = NULL;
    if (!b) return HTTP_400(r, "model", "Missing required parameter: 'model'.");
    if (json_check_known(r, b, chat_params) || json_opt_str(r, b, "model", &model)) return -1;
    if (!model || !model[0]) return HTTP_400(r, "model", "Missing required parameter: 'model'.");
    json_t *msgs = json_object_get(b, "messages");
    if (!msgs || json_is_null(msgs)) return HTTP_400(r, "messages", "Missing required parameter: 'messages'.");
    chat_t *c = calloc(1, sizeof *c);
    if (!c) return HTTP_500(r, "Out of memory.");
    c->srv = r->srv;
    gen_request_init(&c->g);
    snprintf(c->model, sizeof c->model, "%s", model);
    id_random(c->id, "chatcmpl-", 29);
    c->created = time_unix();
    if (parse_params(r, c, b) || resolve_model(r, c, model)) {
        chat_free(c);
        return 0;
    }
    return http_defer(r, chat_compute, c);
}
