/* completions.c: `tunery api completions.create`, to try a fine-tuned model.
 *
 * The quirk of the original (contract §2.6) is kept on purpose: every option
 * goes into the JSON body, unset ones as null, and echo is always true, so the
 * printed text is the prompt followed by the completion. Servers must read
 * null as "default"; ours does, and so did OpenAI's.
 */
#include "cli/cli.h"
#include <stdlib.h>
#include <string.h>

static void print_choices(json_t *choices)
{
    size_t n = json_array_size(choices);
    /* sorted by index, as the original did */
    for (size_t want = 0, printed = 0; printed < n && want < n + 1024; want++) {
        for (size_t i = 0; i < n; i++) {
            json_t *c = json_array_get(choices, i);
            json_t *idx = json_object_get(c, "index");
            if ((json_is_integer(idx) ? (size_t)json_integer_value(idx) : i) != want) continue;
            if (n > 1) printf("===== Completion %zu =====\n", printed);
            const char *t = json_string_value(json_object_get(c, "text"));
            if (t) fputs(t, stdout);
            if (n > 1) putchar('\n');
            fflush(stdout);
            printed++;
        }
    }
}

static int on_chunk(const char *data, size_t len, void *ud)
{
    json_t *j = json_loadb(data, len, 0, NULL);
    if (!j) return 0;
    json_t *e = json_object_get(j, "error");
    if (e) {
        const char *m = json_string_value(json_object_get(e, "message"));
        snprintf((char *)ud, CORE_ERR_LEN, "%s (Error occurred while streaming.)", m ? m : "<empty message>");
        json_decref(j);
        return 1;
    }
    print_choices(json_object_get(j, "choices"));
    json_decref(j);
    return 0;
}

int cli_completions(const cli_opts_t *o, const char *op, int argc, char **argv)
{
    if (strcmp(op, "create")) {
        fprintf(stderr, "tunery api: unknown command 'completions.%s'; the only one is completions.create\n", op);
        return 2;
    }
    cli_flag_t f[] = {
        CLI_FLAG("-e", "--engine", CLI_STR, 0, "The engine to use (sent as POST /v1/engines/ENGINE/completions)"),
        CLI_FLAG("-m", "--model", CLI_STR, 0, "The model to use, e.g. curie:ft-personal-2023-04-18-09-48-38. At most one of `engine` or `model` should be specified."),
        CLI_FLAG(NULL, "--stream", CLI_BOOL, 0, "Stream tokens as they're ready."),
        CLI_FLAG("-p", "--prompt", CLI_STR, 0, "An optional prompt to complete from"),
        CLI_FLAG("-M", "--max-tokens", CLI_INT, 0, "The maximum number of tokens to generate"),
        CLI_FLAG("-t", "--temperature", CLI_FLOAT, 0, "What sampling temperature to use; 0 for argmax. Mutually exclusive with `top_p`."),
        CLI_FLAG("-P", "--top_p", CLI_FLOAT, 0, "Nucleus sampling: only tokens in the top_p probability mass are considered. Mutually exclusive with `temperature`."),
        CLI_FLAG("-n", "--n", CLI_INT, 0, "How many sub-completions to generate for each prompt."),
        CLI_FLAG(NULL, "--logprobs", CLI_INT, 0, "Include the log probabilities of the `logprobs` most likely tokens, as well the chosen tokens."),
        CLI_FLAG(NULL, "--stop", CLI_STR, 0, "A stop sequence at which to stop generating tokens."),
    };
    enum { ENGINE, MODEL, STREAM, PROMPT, MAXTOK, TEMP, TOPP, N, LOGPROBS, STOP, NF };
    int help, rc = cli_flags_parse("completions.create",
        "Complete a prompt with a model (POST /v1/completions). Prints the prompt followed by the\n"
        "completion (echo is always on, as in the original CLI); with -n > 1 each completion gets a header.",
        f, NF, argc, argv, &help);
    if (rc || help) return rc;
    if (f[N].set && f[N].i > 1 && f[STREAM].set)
        return cli_print_error("Can't stream completions with n>1 with the current CLI");
    if (!f[ENGINE].set && !f[MODEL].set)
        return cli_print_error("Must provide an 'engine' or 'model' parameter to create a Completion");
    if (f[ENGINE].set && f[MODEL].set)
        fprintf(stderr, "UserWarning: In most cases, you should not be specifying both engine and model.\n");

    json_t *b = json_object();
    if (f[MODEL].set) json_object_set_new(b, "model", json_string(f[MODEL].str));
    else json_object_set_new(b, "model", json_null());
    json_object_set_new(b, "n", f[N].set ? json_integer(f[N].i) : json_null());
    json_object_set_new(b, "max_tokens", f[MAXTOK].set ? json_integer(f[MAXTOK].i) : json_null());
    json_object_set_new(b, "logprobs", f[LOGPROBS].set ? json_integer(f[LOGPROBS].i) : json_null());
    json_object_set_new(b, "prompt", f[PROMPT].set ? json_string(f[PROMPT].str) : json_null());
    json_object_set_new(b, "stream", json_boolean(f[STREAM].set));
    json_object_set_new(b, "temperature", f[TEMP].set ? json_real(f[TEMP].f) : json_null());
    json_object_set_new(b, "top_p", f[TOPP].set ? json_real(f[TOPP].f) : json_null());
    json_object_set_new(b, "stop", f[STOP].set ? json_string(f[STOP].str) : json_null());
    json_object_set_new(b, "echo", json_true());
    char *body = json_dumps(b, JSON_COMPACT);
    json_decref(b);

    char path[1200];
    if (f[ENGINE].set) {
        char q[1024];
        cli_quote_plus(f[ENGINE].str, q, sizeof q);
        snprintf(path, sizeof path, "/engines/%s/completions", q);
    } else {
        snprintf(path, sizeof path, "/completions");
    }
    if (!f[STREAM].set) {
        json_t *r;
        rc = cli_call(o, "POST", path, body, &r);
        free(body);
        if (rc) return rc;
        print_choices(json_object_get(r, "choices"));
        json_decref(r);
        return 0;
    }
    char err[CORE_ERR_LEN] = "", serr[CORE_ERR_LEN] = "";
    cli_resp_t r;
    rc = cli_http_sse(o, "POST", path, body, on_chunk, serr, NULL, &r, err);
    free(body);
    if (rc < 0) { cli_resp_free(&r); return cli_print_error(err); }
    if (r.status < 200 || r.status >= 300) { rc = cli_print_api_error(&r); cli_resp_free(&r); return rc; }
    cli_resp_free(&r);
    if (serr[0]) return cli_print_error(serr);
    return 0;
}
