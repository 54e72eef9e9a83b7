/* test_chat_template.c: training and inference render a conversation the
 * same way. For a conversation that ends with an assistant reply, the ids
 * the trainer sees (jsonl.c -> tex_encode) must be exactly the ids the
 * server prompts with (train_chat_encode on the conversation without the
 * reply) followed by the reply's own tokens and <|endoftext|>, and the loss
 * must fall exactly on those reply tokens. */
#include "test.h"
#include "train/train_int.h"

#include <stdlib.h>

/* Training ids of one JSONL line, and the weight-1 count. */
static int train_ids(const tok_t *tk, const char *line, tex_t *x)
{
    char err[CORE_ERR_LEN];
    texample_t e = {0};
    int rc = jsonl_parse_line(line, strlen(line), 1, -1, &e, err);
    CHECKF(rc == 0, "%s", err);
    if (!rc) rc = tex_encode(&e, tk, 0.01, x);
    texample_free(&e);
    return rc;
}

static void check_prefix(const tok_t *tk, const char *line, const train_chat_msg_t *msgs, int n, const char *reply)
{
    char err[CORE_ERR_LEN];
    tex_t x = {0};
    if (train_ids(tk, line, &x)) return;
    tok_ids_t inf = {0}, rep = {0};
    CHECKF(train_chat_encode(tk, msgs, n, &inf, err) == 0, "%s", err);
    tok_encode(tk, reply, strlen(reply), 0, &rep);
    CHECK_EQ_INT(x.n, (int)(inf.len + rep.len + 1));
    int same = x.n == (int)(inf.len + rep.len + 1);
    for (size_t t = 0; same && t < inf.len; t++) {
        CHECKF(x.ids[t] == inf.ids[t], "token %zu: train %d, inference %d", t, x.ids[t], inf.ids[t]);
        CHECK(x.w[t] == 0.0f);   /* nothing the prompt holds is trained on */
    }
    for (size_t t = 0; same && t < rep.len; t++) {
        CHECK_EQ_INT(x.ids[inf.len + t], rep.ids[t]);
        CHECK(x.w[inf.len + t] == 1.0f);
    }
    if (same) {
        CHECK_EQ_INT(x.ids[x.n - 1], tok_eot(tk));
        CHECK(x.w[x.n - 1] == 1.0f);
    }
    tok_ids_free(&inf);
    tok_ids_free(&rep);
    free(x.ids); free(x.w); free(x.is_compl);
}

static void test_training_equals_inference(void)
{
    char err[CORE_ERR_LEN];
    const tok_t *tk = tok_r50k(err);
    CHECKF(tk != NULL, "%s", err);
    if (!tk) return;
    /* one turn */
    train_chat_msg_t a[] = {{"user", "Hi", 2}};
    check_prefix(tk, "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\",\"content\":\"Hello!\"}]}",
                 a, 1, " Hello!");
    /* system prompt, history with an earlier assistant turn (not trained:
     * weight 0), content as text parts, the literal text <|endoftext|> */
    train_chat_msg_t b[] = {
        {"system", "You are terse.", 14}, {"user", "part one two", 12},
        {"assistant", "ok <|endoftext|>", 16}, {"developer", "", 0}, {"tool", "x\ny", 3},
    };
    check_prefix(tk, "{\"messages\":[{\"role\":\"system\",\"content\":\"You are terse.\"},"
                     "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"part one \"},{\"type\":\"text\",\"text\":\"two\"}]},"
                     "{\"role\":\"assistant\",\"content\":\"ok <|endoftext|>\",\"weight\":0},{\"role\":\"developer\",\"content\":\"\"},"
                     "{\"role\":\"tool\",\"content\":\"x\\ny\"},{\"role\":\"assistant\",\"content\":\"  two spaces é\"}]}",
                 b, 5, "   two spaces é");
}

static void test_rendered_text(void)
{
    char err[CORE_ERR_LEN];
    const tok_t *tk = tok_r50k(err);
    if (!tk) return;
    train_chat_msg_t m[] = {{"system", "Be brief.", 9}, {"user", "Hi", 2}, {"assistant", "Hello!", 6}, {"user", "Again", 5}};
    tok_ids_t ids = {0};
    CHECKF(train_chat_encode(tk, m, 4, &ids, err) == 0, "%s", err);
    buf_t txt = {0};
    tok_decode(tk, ids.ids, ids.len, &txt);
    CHECK_EQ_STR(txt.data, "system: Be brief.\nuser: Hi\nassistant: Hello!<|endoftext|>\nuser: Again\nassistant:");
    int eots = 0;
    for (size_t t = 0; t < ids.len; t++) eots += ids.ids[t] == tok_eot(tk);
    CHECK_EQ_INT(eots, 1);   /* the history's assistant turn, not the opened one */
    buf_free(&txt);
    tok_ids_free(&ids);
    /* no messages: just the opened turn */
    CHECK(train_chat_encode(tk, NULL, 0, &ids, err) == 0);
    tok_decode(tk, ids.ids, ids.len, &txt);
    CHECK_EQ_STR(txt.data, "assistant:");
    buf_free(&txt);
    tok_ids_free(&ids);
}

static void test_roles(void)
{
    char err[CORE_ERR_LEN];
    const tok_t *tk = tok_r50k(err);
    if (!tk) return;
    const char *ok[] = {"system", "developer", "user", "assistant", "tool", "function"};
    for (size_t i = 0; i < 6; i++) CHECK(train_chat_role_known(ok[i]));
    CHECK(!train_chat_role_known("robot"));
    CHECK(!train_chat_role_known("User"));
    train_chat_msg_t m[] = {{"user", "a", 1}, {"robot", "b", 1}};
    tok_ids_t ids = {0};
    CHECK(train_chat_encode(tk, m, 2, &ids, err) == -1);
    CHECKF(strstr(err, "messages[1].role") != NULL, "%s", err);
    tok_ids_free(&ids);
}

int main(void)
{
    RUN(test_training_equals_inference);
    RUN(test_rendered_text);
    RUN(test_roles);
    return test_summary();
}
