/* chat_template.c: the one rendering of a conversation, for training and
 * for inference.
 *
 * Why its own file: a chat fine-tune is only useful if /v1/chat/completions
 * shows the model exactly the token ids it was trained on. Training
 * (jsonl.c, parse_chat) and the server (train_chat_encode) both render
 * through chat_render_turn, and the server's ids come from the same
 * tex_encode the trainer uses, so the two cannot drift apart
 * (tests/train/test_chat_template.c checks that they do not).
 *
 * The template, for base models with no special chat tokens (r50k has only
 * <|endoftext|>), documented in docs/finetune.md:
 *   "<role>:" + " <content>"; a non-assistant turn ends with "\n"; an
 *   assistant turn ends with <|endoftext|>, then "\n" if more follows.
 *   Inference opens the reply with "assistant:" and stops at <|endoftext|>,
 *   the end-of-turn marker; the reply's first byte is the space that
 *   belongs to the content.
 * Each piece is its own segment, encoded on its own (encode.c), so a role
 * header never merges with content into one token.
 */
#include "train/train_int.h"

#include <stdlib.h>
#include <string.h>

static const char *const chat_roles[] = {"system", "developer", "user", "assistant", "tool", "function"};

int train_chat_role_known(const char *role)
{
    for (size_t k = 0; k < sizeof chat_roles / sizeof *chat_roles; k++)
        if (!strcmp(role, chat_roles[k])) return 1;
    return 0;
}

int chat_render_turn(texample_t *e, const char *role, const char *content, size_t len, int weight, int more)
{
    int assistant = !strcmp(role, "assistant");
    int cls = assistant && weight ? TW_COMPLETION : TW_NONE;
    char head[16];
    int hl = snprintf(head, sizeof head, "%s:", role);
    if (hl < 0 || hl >= (int)sizeof head) return -1;
    int rc = texample_seg_add(e, head, (size_t)hl, TW_NONE, 0);
    /* the space belongs to the content, as GPT-2 tokenizes " word" */
    buf_t sp = {0};
    rc |= buf_append(&sp, " ", 1) | buf_append(&sp, content ? content : "", content ? len : 0);
    rc |= texample_seg_add(e, sp.data, sp.len, cls, 0);
    buf_free(&sp);
    if (assistant) {
        rc |= texample_seg_add(e, NULL, 0, cls, 1);
        if (more) rc |= texample_seg_add(e, "\n", 1, TW_NONE, 0);
    } else {
        rc |= texample_seg_add(e, "\n", 1, TW_NONE, 0);
        if (!more) rc |= texample_seg_add(e, NULL, 0, TW_NONE, 1);
    }
    return rc ? -1 : 0;
}

int chat_render_open(texample_t *e)
{
    return texample_seg_add(e, "assistant:", 10, TW_NONE, 0);
}

int train_chat_encode(const tok_t *tk, const train_chat_msg_t *msgs, int n, tok_ids_t *out, char *err)
{
    texample_t e = {0};
    tex_t x = {0};
    int rc = 0;
    e.is_chat = 1;
    for (int i = 0; i < n && !rc; i++) {
        if (!msgs[i].role || !train_chat_role_known(msgs[i].role))
            rc = core_errf(err, "messages[%d].role must be one of system, developer, user, assistant, tool, function", i);
        else if (chat_render_turn(&e, msgs[i].role, msgs[i].content, msgs[i].content_len, 1, 1))
            rc = core_errf(err, "out of memory rendering the conversation");
    }
    if (!rc && chat_render_open(&e)) rc = core_errf(err, "out of memory rendering the conversation");
    if (!rc && tex_encode(&e, tk, 0, &x)) rc = core_errf(err, "out of memory tokenizing the conversation");
    texample_free(&e);
    if (rc) return -1;
    free(x.w);
    free(x.is_compl);
    tok_ids_free(out);
    out->ids = x.ids;
    out->len = out->cap = (size_t)x.n;
    return 0;
}
