/* test_dataset.c: the JSONL reader is the spec of what a data file may
 * contain. Every bad-line kind is reported with its 1-based line number;
 * blank lines are skipped; chat examples render with the documented
 * template and loss classes. No model or tokenizer needed. */
#include "test.h"
#include "train/train_int.h"

#include <stdlib.h>
#include <unistd.h>

static char tmpdir[256];

static const char *write_tmp(const char *name, const char *data, size_t len)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, len, f);
    fclose(f);
    return path;
}

/* Two good lines then the bad one on line 3: the error must say "line 3: " and contain want. */
static void expect_bad(const char *bad_line, const char *want)
{
    char data[1024], err[CORE_ERR_LEN] = "";
    int n = snprintf(data, sizeof data, "{\"prompt\":\"a ->\",\"completion\":\" x\"}\n\n%s\n{\"prompt\":\"b\",\"completion\":\" y\"}\n", bad_line);
    /* a blank line 2 is skipped, so the bad line is line 3 */
    const char *p = write_tmp("bad.jsonl", data, (size_t)n);
    int ne = -1, chat = -1;
    CHECKF(train_check_file(p, &ne, &chat, err) == -1, "accepted %s", bad_line);
    CHECKF(strncmp(err, "line 3: ", 8) == 0, "err = %s", err);
    CHECKF(strstr(err, want) != NULL, "err '%s' lacks '%s'", err, want);
}

static void test_bad_lines(void)
{
    expect_bad("{\"prompt\": \"x\", \"completion\": ", "not valid JSON");
    expect_bad("[1, 2]", "found an array");
    expect_bad("\"just a string\"", "found a string");
    expect_bad("{\"completion\": \" x\"}", "missing \"prompt\"");
    expect_bad("{\"prompt\": \"x\"}", "missing \"completion\"");
    expect_bad("{\"prompt\": 3, \"completion\": \" x\"}", "\"prompt\" must be a string, found a number");
    expect_bad("{\"prompt\": \"x\", \"completion\": null}", "\"completion\" must be a string, found null");
    expect_bad("{\"prompt\": \"x\", \"completion\": \"\"}", "\"completion\" is empty");
    expect_bad("{\"prompt\": \"caf\xC3\", \"completion\": \" x\"}", "invalid UTF-8");
    expect_bad("{\"prompt\": \"\xED\xA0\x80\", \"completion\": \" x\"}", "invalid UTF-8"); /* surrogate */
    expect_bad("{\"messages\": [{\"role\": \"assistant\", \"content\": \"hi\"}]}", "one format per file");
}

static void test_bad_chat(void)
{
    char err[CORE_ERR_LEN];
    texample_t e = {0};
    CHECK(jsonl_parse_line("{\"messages\": []}", 16, 7, -1, &e, err) == -1);
    CHECKF(strstr(err, "line 7: \"messages\" is empty"), "%s", err);
    const char *s = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}";
    CHECK(jsonl_parse_line(s, strlen(s), 2, -1, &e, err) == -1);
    CHECKF(strstr(err, "no assistant message"), "%s", err);
    s = "{\"messages\": [{\"role\": \"robot\", \"content\": \"hi\"}]}";
    CHECK(jsonl_parse_line(s, strlen(s), 2, -1, &e, err) == -1);
    CHECKF(strstr(err, "role \"robot\""), "%s", err);
    s = "{\"messages\": [{\"role\": \"assistant\", \"content\": \"hi\", \"weight\": 0.5}]}";
    CHECK(jsonl_parse_line(s, strlen(s), 2, -1, &e, err) == -1);
    CHECKF(strstr(err, "weight must be 0 or 1"), "%s", err);
    s = "{\"messages\": [{\"role\": \"user\", \"content\": 5}, {\"role\": \"assistant\", \"content\": \"x\"}]}";
    CHECK(jsonl_parse_line(s, strlen(s), 2, -1, &e, err) == -1);
    CHECKF(strstr(err, "messages[0].content must be a string"), "%s", err);
    texample_free(&e);
}

static void test_good_file(void)
{
    const char *data =
        "{\"prompt\": \"Hello ->\", \"completion\": \" world\\n\", \"extra\": 1}\r\n"
        "   \n"
        "{\"prompt\": \"\", \"completion\": \" only completion\"}\n"
        "{\"prompt\": \"caf\xC3\xA9 \xF0\x9F\x98\x80 ->\", \"completion\": \" ok\"}";  /* no final newline */
    const char *p = write_tmp("good.jsonl", data, strlen(data));
    char err[CORE_ERR_LEN] = "";
    int n = 0, chat = 1;
    CHECKF(train_check_file(p, &n, &chat, err) == 0, "%s", err);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(chat, 0);
    p = write_tmp("empty.jsonl", "\n\n", 2);
    CHECK(train_check_file(p, &n, &chat, err) == -1);
    CHECKF(strstr(err, "has no examples"), "%s", err);
    CHECK(train_check_file("/nonexistent/x.jsonl", &n, &chat, err) == -1);
    CHECKF(strstr(err, "cannot open"), "%s", err);
}

static void test_legacy_segments(void)
{
    char err[CORE_ERR_LEN];
    texample_t e = {0};
    const char *s = "{\"prompt\": \"Q ->\", \"completion\": \" A\"}";
    CHECK(jsonl_parse_line(s, strlen(s), 1, -1, &e, err) == 0);
    CHECK_EQ_INT(e.nsegs, 3);
    CHECK_EQ_INT(e.segs[0].cls, TW_PROMPT);
    CHECK(e.segs[0].len == 4 && !memcmp(e.text.data + e.segs[0].off, "Q ->", 4));
    CHECK_EQ_INT(e.segs[1].cls, TW_COMPLETION);
    CHECK(e.segs[1].len == 2 && !memcmp(e.text.data + e.segs[1].off, " A", 2));
    CHECK(e.segs[2].eot && e.segs[2].cls == TW_COMPLETION);
    texample_free(&e);
}

/* Render segments as text with the loss class marked: [p:...] [c:...] <eot>. */
static void render(const texample_t *e, char *out, size_t n)
{
    size_t o = 0;
    for (int i = 0; i < e->nsegs && o < n; i++) {
        const tseg_t *g = &e->segs[i];
        const char *tag = g->cls == TW_COMPLETION ? "c" : g->cls == TW_PROMPT ? "p" : "-";
        if (g->eot) o += snprintf(out + o, n - o, "<eot:%s>", tag);
        else o += snprintf(out + o, n - o, "[%s:%.*s]", tag, (int)g->len, e->text.data + g->off);
    }
}

static void test_chat_template(void)
{
    char err[CORE_ERR_LEN], got[1024];
    texample_t e = {0};
    const char *s = "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"},"
                    "{\"role\": \"user\", \"content\": \"Hi\"},"
                    "{\"role\": \"assistant\", \"content\": \"Hello.\", \"weight\": 0},"
                    "{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"Again\"}]},"
                    "{\"role\": \"assistant\", \"content\": \"Hello!\"}]}";
    CHECKF(jsonl_parse_line(s, strlen(s), 1, -1, &e, err) == 0, "%s", err);
    CHECK(e.is_chat);
    render(&e, got, sizeof got);
    CHECK_EQ_STR(got, "[-:system:][-: Be brief.][-:\n][-:user:][-: Hi][-:\n][-:assistant:][-: Hello.]<eot:->[-:\n]"
                      "[-:user:][-: Again][-:\n][-:assistant:][c: Hello!]<eot:c>");
    /* a conversation that ends on a user turn gets a weight-0 end token */
    s = "{\"messages\": [{\"role\": \"assistant\", \"content\": \"A\"}, {\"role\": \"user\", \"content\": \"B\"}]}";
    CHECKF(jsonl_parse_line(s, strlen(s), 1, -1, &e, err) == 0, "%s", err);
    render(&e, got, sizeof got);
    CHECK_EQ_STR(got, "[-:assistant:][c: A]<eot:c>[-:\n][-:user:][-: B][-:\n]<eot:->");
    texample_free(&e);
}

static void test_utf8(void)
{
    CHECK(utf8_first_invalid("abc", 3) == -1);
    CHECK(utf8_first_invalid("\xC3\xA9", 2) == -1);
    CHECK(utf8_first_invalid("a\xC3", 2) == 1);           /* truncated */
    CHECK(utf8_first_invalid("\xC0\x80", 2) == 0);        /* overlong */
    CHECK(utf8_first_invalid("\xE0\x80\x80", 3) == 0);    /* overlong 3-byte */
    CHECK(utf8_first_invalid("\xF4\x90\x80\x80", 4) == 0); /* > U+10FFFF */
    CHECK(utf8_first_invalid("ok\xF0\x9F\x98\x80", 6) == -1);
    CHECK(utf8_first_invalid("ok\xFF", 3) == 2);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tunery-test-dataset-XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    RUN(test_bad_lines);
    RUN(test_bad_chat);
    RUN(test_good_file);
    RUN(test_legacy_segments);
    RUN(test_chat_template);
    RUN(test_utf8);
    char err[CORE_ERR_LEN];
    fs_rm_rf(tmpdir, err);
    return test_summary();
}
