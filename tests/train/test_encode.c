/* test_encode.c: the tokenization policy. Prompt and completion are encoded
 * separately and concatenated, <|endoftext|> ends every example with weight
 * 1, prompt tokens carry prompt_loss_weight, "<|endoftext|>" written in the
 * data is plain text; train_count_tokens counts exactly what training sees;
 * long examples are an error naming the line unless truncated. */
#include "test.h"
#include "train/train_int.h"

#include <stdlib.h>
#include <unistd.h>

static char tmpdir[256];

static const char *write_tmp(const char *name, const char *data)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    fputs(data, f);
    fclose(f);
    return path;
}

static void test_weights(void)
{
    char err[CORE_ERR_LEN];
    const tok_t *tk = tok_r50k(err);
    CHECKF(tk != NULL, "%s", err);
    if (!tk) return;
    texample_t e = {0};
    const char *s = "{\"prompt\": \"The sky is ->\", \"completion\": \" blue\"}";
    CHECK(jsonl_parse_line(s, strlen(s), 1, -1, &e, err) == 0);
    tex_t x = {0};
    CHECK(tex_encode(&e, tk, 0.01, &x) == 0);
    tok_ids_t p = {0}, c = {0};
    tok_encode(tk, "The sky is ->", 13, 0, &p);
    tok_encode(tk, " blue", 5, 0, &c);
    CHECK_EQ_INT(x.n, (int)(p.len + c.len + 1));
    CHECK_EQ_INT(x.prompt_n, (int)p.len);
    for (int t = 0; t < x.n; t++) {
        int want = t < (int)p.len ? p.ids[t] : t < (int)(p.len + c.len) ? c.ids[t - p.len] : tok_eot(tk);
        CHECK_EQ_INT(x.ids[t], want);
        CHECK(x.w[t] == (t < (int)p.len ? 0.01f : 1.0f));
        CHECK(x.is_compl[t] == (t >= (int)p.len));
    }
    CHECK_EQ_INT(x.ids[x.n - 1], 50256);
    free(x.ids); free(x.w); free(x.is_compl);
    /* the literal text "<|endoftext|>" in data is not the special token */
    s = "{\"prompt\": \"a\", \"completion\": \" <|endoftext|>\"}";
    CHECK(jsonl_parse_line(s, strlen(s), 1, -1, &e, err) == 0);
    memset(&x, 0, sizeof x);
    CHECK(tex_encode(&e, tk, 0.5, &x) == 0);
    int eots = 0;
    for (int t = 0; t < x.n; t++) eots += x.ids[t] == 50256;
    CHECK_EQ_INT(eots, 1);
    CHECK(x.w[0] == 0.5f);
    free(x.ids); free(x.w); free(x.is_compl);
    tok_ids_free(&p); tok_ids_free(&c);
    texample_free(&e);
}

static void test_load_and_count(void)
{
    char err[CORE_ERR_LEN] = "";
    const char *path = write_tmp("d.jsonl",
        "{\"prompt\": \"I loved it ->\", \"completion\": \" positive\\n\"}\n"
        "{\"prompt\": \"Awful. ->\", \"completion\": \" negative\\n\"}\n"
        "\n"
        "{\"prompt\": \"Great fun ->\", \"completion\": \" positive\\n\"}\n");
    const tok_t *tk = tok_r50k(err);
    if (!tk) { CHECKF(0, "%s", err); return; }
    tdata_t d;
    CHECKF(tdata_load(&d, path, tk, 0.01, 1024, TRUNC_NONE, err) == 0, "%s", err);
    CHECK_EQ_INT(d.n, 3);
    CHECK_EQ_INT(d.n_classes, 2);
    CHECK_EQ_STR(d.classes[0], " positive\n");
    CHECK_EQ_INT(d.ex[2].class_id, 0);
    CHECK_EQ_INT(d.ex[1].class_id, 1);
    CHECK_EQ_INT(d.ex[2].line, 4);
    CHECK(d.common_suffix && !strcmp(d.common_suffix, "tive\n"));
    CHECK(strlen(d.sha256) == 64);
    long long n = train_count_tokens(path, err);
    CHECK_EQ_INT(n, d.n_tokens);
    /* longer than the context: an error naming the line, or truncation */
    int longest = d.max_len;
    tdata_free(&d);
    CHECK(tdata_load(&d, path, tk, 0.01, longest - 1, TRUNC_NONE, err) == -1);
    CHECKF(strstr(err, "line 1: the example is") || strstr(err, "line 2: the example is") || strstr(err, "line 4: the example is"), "%s", err);
    CHECKF(strstr(err, "--truncate"), "%s", err);
    CHECK(tdata_load(&d, path, tk, 0.01, 4, TRUNC_LEFT, err) == 0);
    CHECK_EQ_INT(d.max_len, 4);
    CHECK_EQ_INT(d.ex[0].ids[3], 50256);  /* left truncation keeps the end */
    tdata_free(&d);
    CHECK(tdata_load(&d, path, tk, 0.01, 2, TRUNC_RIGHT, err) == 0);
    CHECK(d.ex[0].ids[1] != 50256);
    tdata_free(&d);
    CHECK(train_count_tokens(write_tmp("bad.jsonl", "{\"prompt\": 1}\n"), err) == -1);
    CHECKF(strstr(err, "line 1:"), "%s", err);
}

static void test_chat_tokens(void)
{
    char err[CORE_ERR_LEN];
    const tok_t *tk = tok_r50k(err);
    if (!tk) return;
    texample_t e = {0};
    const char *s = "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello\"}]}";
    CHECK(jsonl_parse_line(s, strlen(s), 1, -1, &e, err) == 0);
    tex_t x = {0};
    CHECK(tex_encode(&e, tk, 0.01, &x) == 0);
    /* "user:" " Hi" "\n" "assistant:" -> weight 0; " Hello" <eot> -> weight 1 */
    buf_t txt = {0};
    tok_decode(tk, x.ids, (size_t)x.n, &txt);
    CHECK_EQ_STR(txt.data, "user: Hi\nassistant: Hello<|endoftext|>");
    int nw = 0;
    for (int t = 0; t < x.n; t++) nw += x.w[t] == 1.0f;
    CHECK_EQ_INT(nw, 2);
    CHECK(x.w[x.n - 1] == 1.0f && x.w[x.n - 2] == 1.0f && x.w[x.n - 3] == 0.0f);
    buf_free(&txt);
    free(x.ids); free(x.w); free(x.is_compl);
    texample_free(&e);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tunery-test-encode-XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    RUN(test_weights);
    RUN(test_load_and_count);
    RUN(test_chat_tokens);
    char err[CORE_ERR_LEN];
    fs_rm_rf(tmpdir, err);
    return test_summary();
}
