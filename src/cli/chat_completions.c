/* chat_completions.c: `tunery api chat_completions.create`, to talk to a chat
 * model (gpt-4o-mini and fine-tunes of it) the way openai-python 0.27/0.28's
 * `openai api chat_completions.create -m MODEL -g ROLE CONTENT ...` did.
 *
 * Kept from the original on purpose:
 *  - `-g/--message ROLE CONTENT` is argparse's append + nargs=2: repeatable,
 *    required, and the role is not checked here: the server answers an
 *    unknown role with a 400, printed as every API error is;
 *  - `-e` and `-m` exclude each other; with neither, the client refuses
 *    before sending ("Must provide an 'engine' or 'model' ...");
 *  - every option goes into the JSON body, unset ones as null;
 *  - output: each choice's message content with no newline after it; with
 *    more than one choice, "===== Chat Completion i =====" before and a newline
 *    after each; streamed, each chunk's delta content as it arrives, and
 *    --stream with -n > 1 is refused.
 * -g is parsed here (the shared parser knows one value per flag); the rest of
 * the flags go through cli_flags_parse, so errors look like the other commands.
 */
#include "cli/cli.h"
#include <stdlib.h>
#include <string.h>

#define CMD "chat_completions.create"
#define SUMMARY \
    "Send a conversation to a chat model (POST /v1/chat/completions) and print the reply: the\n" \
    "assistant's content, without a newline after it; with -n > 1 each reply gets a header."

static const struct { const char *names, *help; } usage_rows[] = {
    {"-g, --message ROLE CONTENT", "A message in `{role} {content}` format. Use this argument multiple times to add multiple messages. (required)"},
    {"-e, --engine", "The engine to use (sent as POST /v1/engines/ENGINE/chat/completions). Not with -m."},
    {"-m, --model", "The model to use, e.g. gpt-4o-mini or a fine-tune of it. Not with -e."},
    {"-n, --n", "How many completions to generate for the conversation."},
    {"-M, --max-tokens", "The maximum number of tokens to generate."},
    {"-t, --temperature", "What sampling temperature to use; 0 for argmax. Mutually exclusive with `top_p`."},
    {"-P, --top_p", "Nucleus sampling: only tokens in the top_p probability mass are considered. Mutually exclusive with `temperature`."},
    {"--stop", "A stop sequence at which to stop generating tokens for the message."},
    {"--stream", "Stream messages as they're ready."},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: tunery api " CMD " -g ROLE CONTENT [-g ROLE CONTENT ...] [-e ENGINE | -m MODEL] [-n N]\n"
               "       [-M MAX_TOKENS] [-t TEMPERATURE] [-P TOP_P] [--stop STOP] [--stream]\n\n" SUMMARY "\n\noptions:\n");
    for (size_t i = 0; i < sizeof usage_rows / sizeof *usage_rows; i++)
        fprintf(f, "  %-36s %s\n", usage_rows[i].names, usage_rows[i].help);
}

/* argparse's test of whether a string is an option rather than a value:
 * a leading '-', not "-" alone, not a negative number, no space inside. */
static int looks_like_option(const char *s)
{
    if (s[0] != '-' || !s[1] || strchr(s, ' ')) return 0;
    char *end;
    (void)strtod(s, &end);
    return *end != 0;
}

/* Does this flag (not -g) take the next argument as its value? */
static int takes_value(const char *a)
{
    if (a[0] != '-' || !a[1]) return 0;
    if (a[1] != '-') return !a[2] && strchr("emnMtP", a[1]) != NULL;
    return !strchr(a, '=') && strcmp(a, "--stream") != 0;
}

static const cli_gen_style_t style = {"chat/completions", "Chat Completion", "message", "delta", 0};

/* Take the -g pairs out of argv into msgs; the other arguments go to rest
 * (rest[0] = argv[0]). Returns 0, 1 after --help, or 2 after a usage error. */
static int take_messages(int argc, char **argv, json_t *msgs, char **rest, int *nrest)
{
    *nrest = 0;
    rest[(*nrest)++] = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 1; }
        if (strcmp(a, "-g") && strcmp(a, "--message") && strncmp(a, "--message=", 10)) {
            rest[(*nrest)++] = argv[i];
            if (takes_value(a) && i + 1 < argc) rest[(*nrest)++] = argv[++i];   /* even if it reads "-g" */
            continue;
        }
        const char *role = NULL, *content = NULL;   /* --message=X is one value: an error, as in argparse */
        if (strncmp(a, "--message=", 10) && i + 1 < argc && !looks_like_option(argv[i + 1])) role = argv[++i];
        if (role && i + 1 < argc && !looks_like_option(argv[i + 1])) content = argv[++i];
        if (!role || !content) {
            fprintf(stderr, "tunery api " CMD ": argument -g/--message: expected 2 arguments (ROLE CONTENT), e.g. -g user \"Hello\"\n");
            return 2;
        }
        json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", role, "content", content));
    }
    return 0;
}

int cli_chat_completions(const cli_opts_t *o, const char *op, int argc, char **argv)
{
    if (strcmp(op, "create")) {
        fprintf(stderr, "tunery api: unknown command 'chat_completions.%s'; the only one is " CMD "\n", op);
        return 2;
    }
    cli_flag_t f[] = {
        CLI_FLAG("-e", "--engine", CLI_STR, 0, ""),
        CLI_FLAG("-m", "--model", CLI_STR, 0, ""),
        CLI_FLAG("-n", "--n", CLI_INT, 0, ""),
        CLI_FLAG("-M", "--max-tokens", CLI_INT, 0, ""),
        CLI_FLAG("-t", "--temperature", CLI_FLOAT, 0, ""),
        CLI_FLAG("-P", "--top_p", CLI_FLOAT, 0, ""),
        CLI_FLAG(NULL, "--stop", CLI_STR, 0, ""),
        CLI_FLAG(NULL, "--stream", CLI_BOOL, 0, ""),
    };
    enum { ENGINE, MODEL, N, MAXTOK, TEMP, TOPP, STOP, STREAM, NF };
    json_t *msgs = json_array();
    char **rest = malloc(sizeof *rest * (size_t)(argc + 1));
    int nrest, help, rc = rest ? take_messages(argc, argv, msgs, rest, &nrest) : 2;
    if (!rc) rc = cli_flags_parse(CMD, SUMMARY, f, NF, nrest, rest, &help);
    free(rest);
    if (rc == 1 || (!rc && help)) { json_decref(msgs); return 0; }
    if (!rc && !json_array_size(msgs)) {
        fprintf(stderr, "tunery api " CMD ": the following arguments are required: -g/--message\n");
        rc = 2;
    }
    if (!rc && f[ENGINE].set && f[MODEL].set) {
        fprintf(stderr, "tunery api " CMD ": argument -m/--model: not allowed with argument -e/--engine\n");
        rc = 2;
    }
    if (rc) { json_decref(msgs); return rc; }
    if (f[N].set && f[N].i > 1 && f[STREAM].set) {
        json_decref(msgs);
        return cli_print_error("Can't stream chat completions with n>1 with the current CLI");
    }
    if (!f[ENGINE].set && !f[MODEL].set) {
        json_decref(msgs);
        return cli_print_error("Must provide an 'engine' or 'model' parameter to create a ChatCompletion");
    }

    const cli_gen_key_t keys[] = {{"n", N}, {"max_tokens", MAXTOK}, {"temperature", TEMP}, {"top_p", TOPP},
                                  {"stop", STOP}, {"stream", STREAM}, {NULL, 0}};
    json_t *b = json_object();
    json_object_set_new(b, "model", f[MODEL].set ? json_string(f[MODEL].str) : json_null());
    json_object_set_new(b, "messages", msgs);
    cli_gen_body(b, f, keys);
    char *body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    return cli_gen_post(o, &style, f[ENGINE].set ? f[ENGINE].str : NULL, f[STREAM].set, body);
}
