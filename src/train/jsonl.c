/* jsonl.c: reading a fine-tune data file, one JSON object per line.
 *
 * Why its own file: upload validation (train_check_file) must reject a bad
 * file with the exact line and problem before a job is ever queued, and must
 * do it in bounded memory for any file size; the trainer reads the same
 * lines through the same code so that "it validated" means "it trains".
 *
 * Two formats, one per file (the first example line decides):
 *   legacy   {"prompt": "...", "completion": "..."}   (extra keys ignored)
 *   chat     {"messages": [{"role": "...", "content": "...", "weight": 0|1}, ...]}
 * Blank lines (empty or only spaces/tabs/CR) are skipped: editors leave a
 * trailing one and the OpenAI tools tolerated them. Everything else that is
 * not a valid example is an error naming the 1-based line.
 *
 * Chat template for base (non-chat) models, documented in docs/finetune.md
 * and rendered by chat_template.c (the server renders with the same code):
 *   every message renders as "<role>:" + " <content>"; a non-assistant turn
 *   ends with "\n", an assistant turn ends with <|endoftext|> (then "\n" if
 *   more turns follow). Loss weight 1 on assistant content and its
 *   <|endoftext|> (0 if the message has "weight": 0), 0 on everything else.
 *   An example that does not end on an assistant turn gets a final
 *   <|endoftext|> of weight 0.
 */
#include "train/train_int.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

void texample_reset(texample_t *e)
{
    e->text.len = 0;
    if (e->text.data) e->text.data[0] = 0;
    e->nsegs = 0;
    e->is_chat = 0;
    e->prompt_off = e->prompt_len = e->compl_off = e->compl_len = 0;
}

void texample_free(texample_t *e)
{
    buf_free(&e->text);
    free(e->segs);
    memset(e, 0, sizeof *e);
}

int texample_seg_add(texample_t *e, const char *s, size_t len, int cls, int eot)
{
    if (e->nsegs == e->cap) {
        int cap = e->cap ? e->cap * 2 : 16;
        tseg_t *p = realloc(e->segs, (size_t)cap * sizeof *p);
        if (!p) return -1;
        e->segs = p;
        e->cap = cap;
    }
    tseg_t *g = &e->segs[e->nsegs++];
    g->off = e->text.len;
    g->len = eot ? 0 : len;
    g->cls = cls;
    g->eot = eot;
    if (!eot && len && buf_append(&e->text, s, len)) return -1;
    return 0;
}

long utf8_first_invalid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        if (c < 0x80) { i++; continue; }
        int n;
        unsigned min;
        if (c >= 0xC2 && c <= 0xDF) { n = 1; min = 0x80; }
        else if (c >= 0xE0 && c <= 0xEF) { n = 2; min = 0x800; }
        else if (c >= 0xF0 && c <= 0xF4) { n = 3; min = 0x10000; }
        else return (long)i;
        if (i + n >= len) return (long)i;
        unsigned cp = c & (0x3F >> n);
        for (int k = 1; k <= n; k++) {
            if ((p[i + k] & 0xC0) != 0x80) return (long)i;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return (long)i;
        i += n + 1;
    }
    return -1;
}

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: case JSON_REAL: return "a number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

static int parse_legacy(json_t *o, long ln, texample_t *e, char *err)
{
    json_t *p = json_object_get(o, "prompt"), *c = json_object_get(o, "completion");
    if (!p) return core_errf(err, "line %ld: missing \"prompt\"; every line needs {\"prompt\": \"...\", \"completion\": \"...\"}", ln);
    if (!c) return core_errf(err, "line %ld: missing \"completion\"; every line needs {\"prompt\": \"...\", \"completion\": \"...\"}", ln);
    if (!json_is_string(p)) return core_errf(err, "line %ld: \"prompt\" must be a string, found %s", ln, json_kind(p));
    if (!json_is_string(c)) return core_errf(err, "line %ld: \"completion\" must be a string, found %s", ln, json_kind(c));
    size_t cl = json_string_length(c), pl = json_string_length(p);
    if (cl == 0) return core_errf(err, "line %ld: \"completion\" is empty; every example needs a completion to learn (remove the line or fill it in)", ln);
    e->prompt_off = e->text.len;
    e->prompt_len = pl;
    if (pl && texample_seg_add(e, json_string_value(p), pl, TW_PROMPT, 0)) return core_errf(err, "out of memory");
    e->compl_off = e->text.len;
    e->compl_len = cl;
    if (texample_seg_add(e, json_string_value(c), cl, TW_COMPLETION, 0) || texample_seg_add(e, NULL, 0, TW_COMPLETION, 1))
        return core_errf(err, "out of memory");
    return 0;
}

/* content: a string, or a list of {"type":"text","text":"..."} parts. */
static int chat_content(json_t *m, long ln, int i, buf_t *out, char *err)
{
    json_t *c = json_object_get(m, "content");
    if (!c) return core_errf(err, "line %ld: messages[%d] has no \"content\"", ln, i);
    if (json_is_string(c)) return buf_append(out, json_string_value(c), json_string_length(c)) ? core_errf(err, "out of memory") : 0;
    if (!json_is_array(c)) return core_errf(err, "line %ld: messages[%d].content must be a string, found %s", ln, i, json_kind(c));
    size_t k;
    json_t *part;
    json_array_foreach(c, k, part) {
        json_t *t = json_object_get(part, "text");
        if (!json_is_object(part) || !json_is_string(t))
            return core_errf(err, "line %ld: messages[%d].content[%zu] must be {\"type\": \"text\", \"text\": \"...\"}; only text parts can be trained on", ln, i, k);
        if (buf_append(out, json_string_value(t), json_string_length(t))) return core_errf(err, "out of memory");
    }
    return 0;
}

static int parse_chat(json_t *o, long ln, texample_t *e, char *err)
{
    json_t *msgs = json_object_get(o, "messages");
    if (!json_is_array(msgs)) return core_errf(err, "line %ld: \"messages\" must be a list of {\"role\", \"content\"} objects, found %s", ln, json_kind(msgs));
    size_t n = json_array_size(msgs);
    if (n == 0) return core_errf(err, "line %ld: \"messages\" is empty; an example needs at least one assistant message", ln);
    int trained = 0;
    buf_t content = {0};
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(msgs, i);
        if (!json_is_object(m)) { buf_free(&content); return core_errf(err, "line %ld: messages[%zu] must be an object, found %s", ln, i, json_kind(m)); }
        json_t *r = json_object_get(m, "role");
        if (!json_is_string(r)) { buf_free(&content); return core_errf(err, "line %ld: messages[%zu] needs a \"role\" string (system, user or assistant)", ln, i); }
        const char *role = json_string_value(r);
        if (!train_chat_role_known(role)) { buf_free(&content); return core_errf(err, "line %ld: messages[%zu] has role \"%.40s\"; use system, user, assistant or tool", ln, i, role); }
        int assistant = !strcmp(role, "assistant");
        double weight = 1;
        json_t *w = json_object_get(m, "weight");
        if (w) {
            if (!json_is_number(w) || (json_number_value(w) != 0 && json_number_value(w) != 1)) {
                buf_free(&content);
                return core_errf(err, "line %ld: messages[%zu].weight must be 0 or 1", ln, i);
            }
            if (!assistant) { buf_free(&content); return core_errf(err, "line %ld: messages[%zu].weight is only allowed on assistant messages", ln, i); }
            weight = json_number_value(w);
        }
        content.len = 0;
        if (chat_content(m, ln, (int)i, &content, err)) { buf_free(&content); return -1; }
        trained |= assistant && weight != 0;
        /* the template itself lives in chat_template.c, shared with inference */
        if (chat_render_turn(e, role, content.data, content.len, weight != 0, i + 1 < n)) { buf_free(&content); return core_errf(err, "out of memory"); }
    }
    buf_free(&content);
    if (!trained) return core_errf(err, "line %ld: no assistant message to train on (add one, or remove \"weight\": 0)", ln);
    return 0;
}

int jsonl_parse_line(const char *line, size_t len, long ln, int want_chat, texample_t *e, char *err)
{
    texample_reset(e);
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) i++;
    if (i == len) return 1;
    long bad = utf8_first_invalid(line, len);
    if (bad >= 0) return core_errf(err, "line %ld: invalid UTF-8 at byte %ld of the line; save the file as UTF-8", ln, bad + 1);
    json_error_t je;
    json_t *o = json_loadb(line, len, JSON_DECODE_ANY, &je);
    if (!o) return core_errf(err, "line %ld: not valid JSON (%s at column %d); each line must be one JSON object", ln, je.text, je.column);
    int rc;
    if (!json_is_object(o)) {
        rc = core_errf(err, "line %ld: expected a JSON object like {\"prompt\": \"...\", \"completion\": \"...\"}, found %s", ln, json_kind(o));
    } else {
        int chat = json_object_get(o, "messages") != NULL && !json_object_get(o, "prompt");
        if (want_chat >= 0 && chat != want_chat)
            rc = core_errf(err, "line %ld: this line is a %s example but the file started with %s examples; use one format per file",
                           ln, chat ? "chat (\"messages\")" : "prompt/completion", want_chat ? "chat (\"messages\")" : "prompt/completion");
        else {
            e->is_chat = chat;
            rc = chat ? parse_chat(o, ln, e, err) : parse_legacy(o, ln, e, err);
        }
    }
    json_decref(o);
    return rc;
}

int jsonl_each(const char *path, jsonl_fn fn, void *ctx, int *is_chat, char *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return core_errf(err, "cannot open %s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long ln = 0, n = 0;
    int chat = -1, rc = 0;
    texample_t e = {0};
    while ((len = getline(&line, &cap, f)) >= 0) {
        ln++;
        if (len && line[len - 1] == '\n') len--;
        int r = jsonl_parse_line(line, (size_t)len, ln, chat, &e, err);
        if (r < 0) { rc = -1; break; }
        if (r == 1) continue;
        chat = e.is_chat;
        n++;
        if (fn && fn(ctx, ln, &e, err)) { rc = -1; break; }
    }
    if (!rc && ferror(f)) rc = core_errf(err, "cannot read %s: %s", path, strerror(errno));
    if (!rc && n == 0) rc = core_errf(err, "%s has no examples; add lines like {\"prompt\": \"...\", \"completion\": \"...\"}", path);
    free(line);
    texample_free(&e);
    fclose(f);
    if (is_chat) *is_chat = chat > 0;
    return rc;
}

static int count_one(void *ctx, long ln, const texample_t *e, char *err)
{
    (*(int *)ctx)++;
    return 0;
}

int train_check_file(const char *path, int *n_examples, int *is_chat, char *err)
{
    int n = 0, chat = 0;
    if (jsonl_each(path, count_one, &n, &chat, err)) return -1;
    if (n_examples) *n_examples = n;
    if (is_chat) *is_chat = chat;
    return 0;
}
