/* encode.c: examples -> token ids and per-token loss weights.
 *
 * Tokenization policy (docs/finetune.md, "What is trained on"):
 *   - each segment (prompt, completion, chat role header, chat content) is
 *     encoded on its own and the ids are concatenated, so the prompt's ids
 *     are exactly what /v1/completions will see at inference and the
 *     prompt/completion boundary falls between two tokens;
 *   - <|endoftext|> is appended after the completion as the end of the
 *     example, with loss weight 1: the model learns to stop;
 *   - <|endoftext|> written inside the text is plain text, never the special
 *     token (a data file cannot forge an example boundary);
 *   - weights: prompt tokens prompt_loss_weight, completion tokens and the
 *     end token 1, chat non-assistant tokens 0. w[t] weighs the prediction of
 *     token t from the tokens before it, so w[0] is never used.
 */
#include "train/train_int.h"

#include <stdlib.h>
#include <string.h>

static float seg_weight(int cls, double plw)
{
    return cls == TW_COMPLETION ? 1.0f : cls == TW_PROMPT ? (float)plw : 0.0f;
}

int tex_encode(const texample_t *e, const tok_t *tk, double plw, tex_t *out)
{
    tok_ids_t ids = {0};
    int *cls = NULL, ncls = 0, capcls = 0, rc = 0;
    out->prompt_n = -1;
    for (int i = 0; i < e->nsegs && !rc; i++) {
        const tseg_t *g = &e->segs[i];
        size_t before = ids.len;
        if (g->eot) {
            if (ids.len == ids.cap) {
                size_t cap = ids.cap ? ids.cap * 2 : 64;
                int *p = realloc(ids.ids, cap * sizeof *p);
                if (!p) { rc = -1; break; }
                ids.ids = p;
                ids.cap = cap;
            }
            ids.ids[ids.len++] = tok_eot(tk);
        } else if (g->len && tok_encode(tk, e->text.data + g->off, g->len, 0, &ids)) {
            rc = -1;
            break;
        }
        if ((int)ids.len > capcls) {
            capcls = (int)ids.cap > 2 * capcls ? (int)ids.cap : 2 * capcls;
            int *p = realloc(cls, (size_t)capcls * sizeof *p);
            if (!p) { rc = -1; break; }
            cls = p;
        }
        for (size_t k = before; k < ids.len; k++) cls[ncls++] = g->cls;
        if (g->cls == TW_COMPLETION && out->prompt_n < 0) out->prompt_n = (int)before;
    }
    if (!rc) {
        int n = (int)ids.len;
        out->ids = ids.ids;
        out->w = malloc((size_t)(n ? n : 1) * sizeof *out->w);
        out->is_compl = malloc((size_t)(n ? n : 1));
        if (!out->w || !out->is_compl) rc = -1;
        for (int t = 0; !rc && t < n; t++) {
            out->w[t] = seg_weight(cls[t], plw);
            out->is_compl[t] = cls[t] == TW_COMPLETION;
        }
        out->n = n;
        if (out->prompt_n < 0) out->prompt_n = n;
        ids.ids = NULL;
    }
    if (rc) { free(out->w); free(out->is_compl); out->w = NULL; out->is_compl = NULL; }
    tok_ids_free(&ids);
    free(cls);
    return rc;
}

/* Cut an example to max_len tokens, from the left (drop the oldest prompt
 * tokens) or the right (drop the end). */
static void tex_truncate(tex_t *x, int max_len, int how)
{
    int drop = x->n - max_len;
    if (drop <= 0) return;
    if (how == TRUNC_LEFT) {
        memmove(x->ids, x->ids + drop, (size_t)max_len * sizeof *x->ids);
        memmove(x->w, x->w + drop, (size_t)max_len * sizeof *x->w);
        memmove(x->is_compl, x->is_compl + drop, (size_t)max_len);
        x->prompt_n = x->prompt_n > drop ? x->prompt_n - drop : 0;
    } else if (x->prompt_n > max_len) {
        x->prompt_n = max_len;
    }
    x->n = max_len;
}

typedef struct {
    tdata_t *d;
    const tok_t *tk;
    double plw;
    int max_len, truncate;
} load_ctx_t;

static int class_index(tdata_t *d, const char *s, size_t len)
{
    for (int i = 0; i < d->n_classes; i++)
        if (strlen(d->classes[i]) == len && !memcmp(d->classes[i], s, len)) return i;
    if (d->n_classes >= 4096) return -1;  /* not a classification set */
    char **p = realloc(d->classes, (size_t)(d->n_classes + 1) * sizeof *p);
    if (!p) return -1;
    d->classes = p;
    d->classes[d->n_classes] = strndup(s, len);
    return d->classes[d->n_classes] ? d->n_classes++ : -1;
}

static void update_suffix(tdata_t *d, const char *s, size_t len, int first)
{
    if (first) { d->common_suffix = strndup(s, len); return; }
    if (!d->common_suffix) return;
    size_t sl = strlen(d->common_suffix), k = 0;
    while (k < sl && k < len && d->common_suffix[sl - 1 - k] == s[len - 1 - k]) k++;
    memmove(d->common_suffix, d->common_suffix + sl - k, k + 1);
}

static int load_one(void *vctx, long ln, const texample_t *e, char *err)
{
    load_ctx_t *c = vctx;
    tdata_t *d = c->d;
    if (d->n == d->cap) {
        int cap = d->cap ? d->cap * 2 : 256;
        tex_t *p = realloc(d->ex, (size_t)cap * sizeof *p);
        if (!p) return core_errf(err, "out of memory loading the data file");
        d->ex = p;
        d->cap = cap;
    }
    tex_t *x = &d->ex[d->n];
    memset(x, 0, sizeof *x);
    if (tex_encode(e, c->tk, c->plw, x)) return core_errf(err, "out of memory tokenizing line %ld", ln);
    x->line = ln;
    x->class_id = -1;
    if (x->n > c->max_len) {
        if (c->truncate == TRUNC_NONE) {
            int n = x->n;
            free(x->ids); free(x->w); free(x->is_compl);
            return core_errf(err, "line %ld: the example is %d tokens, longer than the model's context of %d; shorten it or pass --truncate left|right", ln, n, c->max_len);
        }
        tex_truncate(x, c->max_len, c->truncate);
    }
    d->n++;
    d->n_tokens += x->n;
    if (x->n > d->max_len) d->max_len = x->n;
    if (!e->is_chat) {
        const char *cs = e->text.data + e->compl_off;
        x->class_id = class_index(d, cs, e->compl_len);
        update_suffix(d, cs, e->compl_len, d->n == 1);
    }
    return 0;
}

int tdata_load(tdata_t *d, const char *path, const tok_t *tk, double plw, int max_len, int truncate, char *err)
{
    memset(d, 0, sizeof *d);
    char *bytes;
    size_t len;
    if (fs_read_all(path, &bytes, &len, err)) return -1;
    sha256_hex(bytes, len, d->sha256);
    free(bytes);
    load_ctx_t c = {d, tk, plw, max_len, truncate};
    if (jsonl_each(path, load_one, &c, &d->is_chat, err)) { tdata_free(d); return -1; }
    /* a suffix shared by every completion is a stop sequence only if the
     * completions are not all the same string */
    if (d->common_suffix && (!d->common_suffix[0] || d->n_classes == 1)) { free(d->common_suffix); d->common_suffix = NULL; }
    return 0;
}

void tdata_free(tdata_t *d)
{
    for (int i = 0; i < d->n; i++) { free(d->ex[i].ids); free(d->ex[i].w); free(d->ex[i].is_compl); }
    free(d->ex);
    for (int i = 0; i < d->n_classes; i++) free(d->classes[i]);
    free(d->classes);
    free(d->common_suffix);
    memset(d, 0, sizeof *d);
}

typedef struct { const tok_t *tk; long long n; } count_ctx_t;

static int count_tokens_one(void *vctx, long ln, const texample_t *e, char *err)
{
    count_ctx_t *c = vctx;
    for (int i = 0; i < e->nsegs; i++)
        c->n += e->segs[i].eot ? 1 : (long long)tok_count(c->tk, e->text.data + e->segs[i].off, e->segs[i].len);
    return 0;
}

long long train_count_tokens(const char *path, char *err)
{
    count_ctx_t c = {tok_r50k(err), 0};
    if (!c.tk) return -1;
    if (jsonl_each(path, count_tokens_one, &c, NULL, err)) return -1;
    return c.n;
}
