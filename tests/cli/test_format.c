/* Unit tests for the CLI's output formatting: JSON printed byte for byte as
 * Python's json.dumps(sort_keys=True, indent=2), Python float and str repr,
 * quote_plus of ids in paths, and the flag parser. Expected strings were
 * produced by CPython 3 (json.dumps / repr / urllib.parse.quote_plus). */
#include "cli/cli.h"
#include "test.h"
#include <stdlib.h>

static void check_dump(const char *in, const char *want)
{
    json_t *j = json_loads(in, JSON_DECODE_ANY, NULL);
    CHECKF(j != NULL, "bad test input %s", in);
    if (!j) return;
    buf_t b = {0};
    CHECK(cli_json_dump(j, &b) == 0);
    CHECK_EQ_STR(b.data, want);
    buf_free(&b);
    json_decref(j);
}

static void test_json_dump_like_python(void)
{
    check_dump("{\"b\": 1, \"a\": [1, 2.5, {}], \"c\": {\"z\": null, \"y\": true}, \"d\": []}",
               "{\n  \"a\": [\n    1,\n    2.5,\n    {}\n  ],\n  \"b\": 1,\n  \"c\": {\n    \"y\": true,\n    \"z\": null\n  },\n  \"d\": []\n}");
    /* ensure_ascii: \u escapes, surrogate pairs, control characters */
    check_dump("{\"s\": \"caf\\u00e9 \\ud83c\\udf89 \\u0001\\t\\\"/\"}",
               "{\n  \"s\": \"caf\\u00e9 \\ud83c\\udf89 \\u0001\\t\\\"/\"\n}");
    check_dump("{\"hyperparams\": {\"prompt_loss_weight\": 0.01, \"n_epochs\": 4, \"learning_rate_multiplier\": 0.1}}",
               "{\n  \"hyperparams\": {\n    \"learning_rate_multiplier\": 0.1,\n    \"n_epochs\": 4,\n    \"prompt_loss_weight\": 0.01\n  }\n}");
}

static void test_python_float_repr(void)
{
    static const struct { double d; const char *s; } cases[] = {
        {0.01, "0.01"}, {1.0, "1.0"}, {0.1, "0.1"}, {1e-05, "1e-05"}, {0.0001, "0.0001"}, {1e16, "1e+16"},
        {1e15, "1000000000000000.0"}, {123.456, "123.456"}, {-2.5, "-2.5"}, {0.0, "0.0"}, {1.0 / 3, "0.3333333333333333"},
        {2.48, "2.48"}, {1.5e-7, "1.5e-07"}, {6.02e23, "6.02e+23"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char s[64];
        cli_py_float(cases[i].d, s, sizeof s);
        CHECK_EQ_STR(s, cases[i].s);
    }
}

static void test_python_str_repr(void)
{
    buf_t b = {0};
    cli_py_repr_str("abc", &b);
    buf_appends(&b, " ");
    cli_py_repr_str("it's", &b);
    buf_appends(&b, " ");
    cli_py_repr_str("a'b\"c\n", &b);
    CHECK_EQ_STR(b.data, "'abc' \"it's\" 'a\\'b\"c\\n'");
    buf_free(&b);
}

static void test_quote_plus(void)
{
    char out[256];
    cli_quote_plus("curie:ft-acme:my model-2023-04-18", out, sizeof out);
    CHECK_EQ_STR(out, "curie%3Aft-acme%3Amy+model-2023-04-18");
    cli_quote_plus("data/train.jsonl", out, sizeof out);
    CHECK_EQ_STR(out, "data%2Ftrain.jsonl");
    cli_quote_plus("file-AbC_09.~", out, sizeof out);
    CHECK_EQ_STR(out, "file-AbC_09.~");
}

static void test_flag_parser(void)
{
    cli_flag_t f[] = {
        CLI_FLAG("-t", "--training_file", CLI_STR, 1, "t"),
        CLI_FLAG(NULL, "--n_epochs", CLI_INT, 0, "n"),
        CLI_FLAG(NULL, "--learning_rate_multiplier", CLI_FLOAT, 0, "lr"),
        CLI_FLAG(NULL, "--no_follow", CLI_BOOL, 0, "nf"),
        CLI_FLAG(NULL, "--classification_betas", CLI_FLOATS, 0, "b"),
        CLI_FLAG("-M", "--max-tokens", CLI_INT, 0, "m"),
    };
    char *argv[] = {"x", "-t", "a.jsonl", "--n_epochs=3", "--learning_rate_multiplier", "0.05", "--no_follow",
                    "--classification_betas", "0.5", "1", "2", "--max_tokens", "7"};
    int help = 0;
    CHECK_EQ_INT(cli_flags_parse("x", "s", f, 6, 13, argv, &help), 0);
    CHECK_EQ_STR(f[0].str, "a.jsonl");
    CHECK_EQ_INT(f[1].i, 3);
    CHECK_NEAR(f[2].f, 0.05, 1e-12);
    CHECK(f[3].set);
    CHECK_EQ_INT(f[4].nfloats, 3);
    CHECK_NEAR(f[4].floats[2], 2.0, 0);
    CHECK_EQ_INT(f[5].i, 7);   /* --max_tokens and --max-tokens are one flag */
    cli_flag_t g[] = {CLI_FLAG("-i", "--id", CLI_STR, 1, "id")};
    char *bad[] = {"x", "--n_epochs", "4"};
    FILE *saved = stderr;
    stderr = fopen("/dev/null", "w");
    CHECK_EQ_INT(cli_flags_parse("x", "s", g, 1, 3, bad, &help), 2);    /* unknown flag */
    char *missing[] = {"x"};
    CHECK_EQ_INT(cli_flags_parse("x", "s", g, 1, 1, missing, &help), 2); /* -i is required */
    cli_flag_t h[] = {CLI_FLAG(NULL, "--n_epochs", CLI_INT, 0, "n")};
    char *notint[] = {"x", "--n_epochs", "four"};
    CHECK_EQ_INT(cli_flags_parse("x", "s", h, 1, 3, notint, &help), 2);
    fclose(stderr);
    stderr = saved;
}

static void test_options_and_key_precedence(void)
{
    char err[CORE_ERR_LEN], dir[] = "/tmp/tunery-cli-XXXXXX", path[128];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/key", dir);
    CHECK(fs_write_atomic(path, "sk-fromfile\n", 12, err) == 0);
    setenv("OPENAI_API_BASE", "http://example.test:9/v1/", 1);
    setenv("OPENAI_API_KEY", "sk-env", 1);
    setenv("OPENAI_API_KEY_PATH", path, 1);
    setenv("OPENAI_ORGANIZATION", "org-env", 1);
    cli_opts_t o;
    char *a1[] = {"api", "fine_tunes.list"};
    CHECK_EQ_INT(cli_opts_parse(&o, 2, a1, err), 1);
    CHECK_EQ_STR(o.api_base, "http://example.test:9/v1");   /* trailing slash dropped */
    CHECK_EQ_STR(o.api_key, "sk-fromfile");                 /* the key file wins over OPENAI_API_KEY */
    CHECK_EQ_STR(o.organization, "org-env");
    char *a2[] = {"api", "-v", "-b", "http://h:1/v1", "-k", "sk-flag", "-o", "org-flag", "models.list"};
    CHECK_EQ_INT(cli_opts_parse(&o, 9, a2, err), 8);
    CHECK_EQ_STR(o.api_key, "sk-flag");
    CHECK_EQ_STR(o.api_base, "http://h:1/v1");
    CHECK_EQ_STR(o.organization, "org-flag");
    CHECK_EQ_INT(o.verbose, 1);
    CHECK(fs_write_atomic(path, "not-a-key", 9, err) == 0);
    CHECK(cli_opts_parse(&o, 2, a1, err) < 0);
    CHECK(strstr(err, "Malformed API key in") != NULL);
    unsetenv("OPENAI_API_KEY_PATH");
    CHECK_EQ_INT(cli_opts_parse(&o, 2, a1, err), 1);
    CHECK_EQ_STR(o.api_key, "sk-env");
    unsetenv("OPENAI_API_BASE");
    CHECK_EQ_INT(cli_opts_parse(&o, 2, a1, err), 1);
    CHECK_EQ_STR(o.api_base, "http://127.0.0.1:8080/v1");
    fs_rm_rf(dir, err);
}

static void test_connection_refused_message(void)
{
    /* port 9 on loopback: nothing listens there in the test environment */
    cli_opts_t o = {0};
    snprintf(o.api_base, sizeof o.api_base, "http://127.0.0.1:9/v1");
    cli_resp_t r;
    char err[CORE_ERR_LEN];
    CHECK(cli_http(&o, "GET", "/models", NULL, &r, err) < 0);
    CHECK(strstr(err, "cannot connect to http://127.0.0.1:9/v1: connection refused; is `tunery serve` running?") != NULL);
    cli_resp_free(&r);
}

/* The generation commands' body: every key in the table's order, unset
 * flags as null, a bool as false, as the contract (§2.6) quotes the
 * Python CLI's body for completions.create -m M -p P. */
static void test_gen_body(void)
{
    cli_flag_t f[] = {
        CLI_FLAG("-m", "--model", CLI_STR, 0, ""), CLI_FLAG(NULL, "--stream", CLI_BOOL, 0, ""),
        CLI_FLAG("-p", "--prompt", CLI_STR, 0, ""), CLI_FLAG("-M", "--max-tokens", CLI_INT, 0, ""),
        CLI_FLAG("-t", "--temperature", CLI_FLOAT, 0, ""), CLI_FLAG("-P", "--top_p", CLI_FLOAT, 0, ""),
        CLI_FLAG("-n", "--n", CLI_INT, 0, ""), CLI_FLAG(NULL, "--logprobs", CLI_INT, 0, ""),
        CLI_FLAG(NULL, "--stop", CLI_STR, 0, ""),
    };
    enum { MODEL, STREAM, PROMPT, MAXTOK, TEMP, TOPP, N, LOGPROBS, STOP, NF };
    const cli_gen_key_t keys[] = {{"model", MODEL}, {"n", N}, {"max_tokens", MAXTOK}, {"logprobs", LOGPROBS}, {"prompt", PROMPT},
                                  {"stream", STREAM}, {"temperature", TEMP}, {"top_p", TOPP}, {"stop", STOP}, {NULL, 0}};
    char *argv[] = {"completions.create", "-m", "curie:ft-x", "-p", "Q ->", NULL};
    int help = 0;
    CHECK_EQ_INT(cli_flags_parse("completions.create", "", f, NF, 5, argv, &help), 0);
    json_t *b = json_object();
    cli_gen_body(b, f, keys);
    json_object_set_new(b, "echo", json_true());
    char *t = json_dumps(b, JSON_COMPACT);
    CHECK_EQ_STR(t, "{\"model\":\"curie:ft-x\",\"n\":null,\"max_tokens\":null,\"logprobs\":null,\"prompt\":\"Q ->\","
                    "\"stream\":false,\"temperature\":null,\"top_p\":null,\"stop\":null,\"echo\":true}");
    free(t);
    json_decref(b);
    char *argv2[] = {"completions.create", "-m", "m", "-M", "4", "-t", "0", "--stream", "--stop", "\n", NULL};
    for (int i = 0; i < NF; i++) f[i].set = 0;
    CHECK_EQ_INT(cli_flags_parse("completions.create", "", f, NF, 10, argv2, &help), 0);
    b = json_object();
    cli_gen_body(b, f, keys);
    t = json_dumps(b, JSON_COMPACT);
    CHECK_EQ_STR(t, "{\"model\":\"m\",\"n\":null,\"max_tokens\":4,\"logprobs\":null,\"prompt\":null,"
                    "\"stream\":true,\"temperature\":0.0,\"top_p\":null,\"stop\":\"\\n\"}");
    free(t);
    json_decref(b);
}

int main(void)
{
    RUN(test_json_dump_like_python);
    RUN(test_python_float_repr);
    RUN(test_python_str_repr);
    RUN(test_quote_plus);
    RUN(test_flag_parser);
    RUN(test_options_and_key_precedence);
    RUN(test_connection_refused_message);
    RUN(test_gen_body);
    return test_summary();
}
