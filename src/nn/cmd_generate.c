/* cmd_generate.c: `tunery generate`, a completion from a local model with no
 * server, printed the way `openai api completions.create` prints one.
 *
 * This is a front-end, so unlike the engine it may use tok/: it resolves the
 * model name, loads the tokenizer from the model directory, encodes the
 * prompt, and hands gen_complete token ids plus tok_piece for the bytes.
 */
#include "cmds.h"
#include "nn/nn.h"
#include "tok/tok.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
        "usage: tunery generate --model NAME|DIR [-p PROMPT] [options]\n"
        "  -m, --model NAME|DIR        a model name (fine-tuned, imported or built-in) or a model directory\n"
        "  -p, --prompt TEXT           the prompt (default: <|endoftext|>)\n"
        "  -M, --max-tokens N          tokens to generate (default 16; -1 = the rest of the context)\n"
        "  -t, --temperature T         0..2 (default 1; 0 = greedy)\n"
        "  -P, --top-p P               nucleus sampling mass, 0..1 (default 1)\n"
        "  -n, --n N                   completions to return (default 1)\n"
        "      --best-of N             candidates to generate; the n best by mean logprob are returned\n"
        "      --stop TEXT             stop before this text (repeat up to 4 times)\n"
        "      --logprobs N            also print each token's logprob and the N most likely (0..5)\n"
        "      --echo                  print the prompt before the completion\n"
        "      --presence-penalty X    -2..2\n"
        "      --frequency-penalty X   -2..2\n"
        "      --logit-bias ID:BIAS    add BIAS (-100..100) to token ID's logit (repeatable; -100 bans it)\n"
        "      --seed N                make sampling reproducible\n"
        "      --stream                print the text as it is generated\n");
}

static const char *piece(void *t, int id, size_t *len) { return tok_piece(t, id, len); }

static int on_chunk(void *ctx, const gen_chunk_t *k)
{
    (void)ctx;
    fwrite(k->text, 1, k->text_len, stdout);
    fflush(stdout);
    return ferror(stdout) ? 1 : 0;
}

/* `openai api completions.create` prints no logprobs; ours adds one line per
 * token after the text when --logprobs is given. */
static void print_logprobs(const tok_t *t, const gen_choice_t *c)
{
    for (int i = 0; i < c->n_tokens; i++) {
        size_t n = 0;
        const char *p = tok_piece(t, c->tokens[i], &n);
        printf("\n%6zu  %-16.*s", c->text_offset[i], (int)n, p ? p : "");
        if (isnan(c->token_logprobs[i])) printf("  null");
        else printf("  %9.5f", c->token_logprobs[i]);
        for (int j = 0; j < c->n_top; j++) {
            int id = c->top_ids[(size_t)i * c->n_top + j];
            if (id < 0) break;
            p = tok_piece(t, id, &n);
            printf("  %.*s=%.4f", (int)n, p ? p : "", c->top_logprobs[(size_t)i * c->n_top + j]);
        }
    }
    printf("\n");
}

static int num_arg(const char *opt, const char *v, double lo, double hi, double *out)
{
    char *end;
    double x = v ? strtod(v, &end) : 0;
    if (!v || end == v || *end || !(x >= lo && x <= hi)) {
        fprintf(stderr, "tunery generate: %s needs a number between %g and %g (got %s)\n", opt, lo, hi, v ? v : "nothing");
        return -1;
    }
    *out = x;
    return 0;
}

int cmd_generate(int argc, char **argv)
{
    const char *model = NULL, *prompt = NULL, *stops[GEN_MAX_STOP + 1];
    int bias_ids[64];
    float bias_vals[64];
    gen_request_t req;
    gen_request_init(&req);
    req.stop = stops;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        double x;
#define OPT(s, l) (!strcmp(a, s) || !strcmp(a, l))
        if (OPT("-h", "--help")) { usage(stdout); return 0; }
        else if (OPT("--echo", "--echo")) { req.echo = 1; continue; }
        else if (OPT("--stream", "--stream")) { req.stream = 1; continue; }
        if (!v) { fprintf(stderr, "tunery generate: %s needs a value (see tunery generate --help)\n", a); return 2; }
        i++;
        if (OPT("-m", "--model")) model = v;
        else if (OPT("-p", "--prompt")) prompt = v;
        else if (OPT("-M", "--max-tokens")) { if (num_arg(a, v, -1, 1 << 20, &x)) return 2; req.max_tokens = (int)x; }
        else if (OPT("-t", "--temperature")) { if (num_arg(a, v, -1e9, 1e9, &x)) return 2; req.temperature = (float)x; }
        else if (OPT("-P", "--top-p")) { if (num_arg(a, v, -1e9, 1e9, &x)) return 2; req.top_p = (float)x; }
        else if (OPT("-n", "--n")) { if (num_arg(a, v, -1e9, 1e9, &x)) return 2; req.n = (int)x; }
        else if (OPT("--best-of", "--best_of")) { if (num_arg(a, v, -1e9, 1e9, &x)) return 2; req.best_of = (int)x; }
        else if (OPT("--logprobs", "--logprobs")) { if (num_arg(a, v, -1e9, 1e9, &x)) return 2; req.logprobs = (int)x; }
        else if (OPT("--presence-penalty", "--presence_penalty")) { if (num_arg(a, v, -1e9, 1e9, &x)) return 2; req.presence_penalty = (float)x; }
        else if (OPT("--frequency-penalty", "--frequency_penalty")) { if (num_arg(a, v, -1e9, 1e9, &x)) return 2; req.frequency_penalty = (float)x; }
        else if (OPT("--seed", "--seed")) { if (num_arg(a, v, 0, 1.8e19, &x)) return 2; req.seed = (uint64_t)x; req.has_seed = 1; }
        else if (OPT("--stop", "--stop")) {
            if (req.n_stop > GEN_MAX_STOP - 1) { fprintf(stderr, "tunery generate: at most 4 --stop sequences\n"); return 2; }
            stops[req.n_stop++] = v;
        } else if (OPT("--logit-bias", "--logit_bias")) {
            int id; float b; char extra;
            if (sscanf(v, "%d:%f%c", &id, &b, &extra) != 2 || req.n_logit_bias == 64) {
                fprintf(stderr, "tunery generate: --logit-bias takes TOKEN_ID:BIAS, e.g. 50256:-100 (at most 64)\n");
                return 2;
            }
            bias_ids[req.n_logit_bias] = id;
            bias_vals[req.n_logit_bias++] = b;
        } else { fprintf(stderr, "tunery generate: unknown option %s (see tunery generate --help)\n", a); return 2; }
#undef OPT
    }
    req.logit_bias_ids = bias_ids;
    req.logit_bias = bias_vals;
    if (!model) { fprintf(stderr, "tunery generate: --model NAME|DIR is required\n"); usage(stderr); return 2; }

    char err[CORE_ERR_LEN], dir[PATH_MAX];
    if (core_model_dir(model, dir, err)) { fprintf(stderr, "tunery generate: %s\n", err); return 1; }
    tok_t *tok = NULL;
    if (tok_load_dir(&tok, dir, err)) { fprintf(stderr, "tunery generate: %s\n", err); return 1; }
    gpt2_t m;
    if (gpt2_load_mapped(&m, dir, err)) { fprintf(stderr, "tunery generate: %s\n", err); tok_free(tok); return 1; }
    tok_ids_t ids = {0};
    const int *prompts[1];
    int plen[1];
    if (prompt) {
        if (tok_encode(tok, prompt, strlen(prompt), 1, &ids)) { fprintf(stderr, "tunery generate: out of memory\n"); return 1; }
        prompts[0] = ids.ids;
        plen[0] = (int)ids.len;
        req.prompts = prompts;
        req.prompt_lens = plen;
        req.n_prompts = 1;
    }
    req.eot_id = tok_eot(tok);
    req.piece = piece;
    req.piece_ctx = tok;
    gen_result_t res;
    int rc = gen_complete(&m, &req, &res, req.stream ? on_chunk : NULL, NULL, err);
    if (rc) {
        if (rc == GEN_EINVAL && res.err_param) fprintf(stderr, "tunery generate: invalid %s: %s\n", res.err_param, err);
        else fprintf(stderr, "tunery generate: %s\n", err);
    } else {
        for (int i = 0; i < res.n_choices; i++) {
            const gen_choice_t *c = &res.choices[i];
            if (!req.stream) {
                if (res.n_choices > 1) printf("===== Completion %d =====\n", c->index);
                fwrite(c->text, 1, c->text_len, stdout);
                if (res.n_choices > 1) putchar('\n');
            }
            if (req.logprobs >= 0) print_logprobs(tok, c);
        }
        fflush(stdout);
    }
    gen_result_free(&res);
    tok_ids_free(&ids);
    gpt2_unload_mapped(&m);
    tok_free(tok);
    return rc ? 1 : 0;
}
