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

static const cli_gen_style_t style = {"completions", "Completion", NULL, NULL, 1};

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

    /* the original's key order; -e goes in the path, not the body */
    const cli_gen_key_t keys[] = {{"model", MODEL}, {"n", N}, {"max_tokens", MAXTOK}, {"logprobs", LOGPROBS}, {"prompt", PROMPT},
                                  {"stream", STREAM}, {"temperature", TEMP}, {"top_p", TOPP}, {"stop", STOP}, {NULL, 0}};
    json_t *b = json_object();
    cli_gen_body(b, f, keys);
    json_object_set_new(b, "echo", json_true());
    char *body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    return cli_gen_post(o, &style, f[ENGINE].set ? f[ENGINE].str : NULL, f[STREAM].set, body);
}
