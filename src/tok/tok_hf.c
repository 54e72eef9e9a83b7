/* tok_hf.c: Hugging Face tokenizer files in and out.
 *
 * In: tokenizer.json of a byte-level BPE model (GPT-2, and Llama-3/Qwen2
 * style where a Split pre-tokenizer carries its own regex), or the older
 * vocab.json + merges.txt pair. Out: vocab.json + merges.txt + tokenizer.json
 * in the canonical GPT-2 shape, so transformers' GPT2TokenizerFast and
 * AutoTokenizer load a model directory written by tunery.
 *
 * Byte-level BPE writes token bytes as printable characters (GPT-2's
 * bytes_to_unicode: printable bytes stand for themselves, the others for
 * U+0100 upwards); tunery keeps raw bytes inside and maps at the border.
 * Not supported (refused or ignored, never silently wrong where it matters):
 * non-BPE models, dropout, normalizers (ignored: the GPT-2 family has none;
 * Qwen2's NFC changes only text that is not NFC already).
 */
#include "tok/tok_int.h"
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- GPT-2's bytes_to_unicode ---- */

static int b2u[256];          /* byte -> code point */
static int u2b[324];          /* code point -> byte, -1 if none */
static pthread_once_t map_once = PTHREAD_ONCE_INIT;

static void map_init(void)
{
    int n = 0;
    for (int i = 0; i < 324; i++) u2b[i] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
        b2u[b] = printable ? b : 256 + n++;
        u2b[b2u[b]] = b;
    }
}

/* mapped UTF-8 string -> raw bytes appended to out; characters outside the
 * map (added tokens of non-byte-level vocabularies) keep their UTF-8 bytes */
static int map_decode(const char *s, size_t len, buf_t *out)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        int cp = -1, w = 1;
        if (u[i] < 0x80) cp = u[i];
        else if ((u[i] & 0xe0) == 0xc0 && i + 1 < len) { cp = (u[i] & 0x1f) << 6 | (u[i + 1] & 0x3f); w = 2; }
        if (cp >= 0 && cp < 324 && u2b[cp] >= 0) {
            char c = (char)u2b[cp];
            if (buf_append(out, &c, 1)) return -1;
            i += (size_t)w;
        } else {
            size_t j = i + 1;
            while (j < len && (u[j] & 0xc0) == 0x80) j++;
            if (buf_append(out, s + i, j - i)) return -1;
            i = j;
        }
    }
    return 0;
}

static int map_encode(const char *s, size_t len, buf_t *out)
{
    for (size_t i = 0; i < len; i++) {
        int cp = b2u[(unsigned char)s[i]];
        char u[2];
        if (cp < 0x80) { u[0] = (char)cp; if (buf_append(out, u, 1)) return -1; }
        else {
            u[0] = (char)(0xc0 | cp >> 6);
            u[1] = (char)(0x80 | (cp & 0x3f));
            if (buf_append(out, u, 2)) return -1;
        }
    }
    return 0;
}

/* ---- building a tokenizer from vocab + merges + added tokens ---- */

typedef struct {
    json_t *vocab;        /* object: mapped string -> id (borrowed) */
    json_t *merges;       /* array of "a b" or ["a", "b"] (borrowed) */
    json_t *added;        /* array of {id, content, special} or NULL */
    int whole_lookup;
} hf_src_t;

static int merge_strs(json_t *m, const char **a, size_t *al, const char **b, size_t *bl)
{
    if (json_is_string(m)) {
        const char *s = json_string_value(m), *sp = strchr(s, ' ');
        if (!sp || sp == s) return -1;
        *a = s; *al = (size_t)(sp - s);
        *b = sp + 1; *bl = strlen(sp + 1);
        return 0;
    }
    if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
        json_is_string(json_array_get(m, 1))) {
        *a = json_string_value(json_array_get(m, 0)); *al = json_string_length(json_array_get(m, 0));
        *b = json_string_value(json_array_get(m, 1)); *bl = json_string_length(json_array_get(m, 1));
        return 0;
    }
    return -1;
}

static int vocab_id(json_t *vocab, const char *s, size_t len)
{
    char tmp[512];
    if (len >= sizeof tmp) return -1;
    memcpy(tmp, s, len);
    tmp[len] = 0;
    json_t *v = json_object_get(vocab, tmp);
    return json_is_integer(v) ? (int)json_integer_value(v) : -1;
}

static int hf_build(tok_t **out, const hf_src_t *src, const char *what, char *err)
{
    pthread_once(&map_once, map_init);
    if (!json_is_object(src->vocab) || !json_is_array(src->merges))
        return core_errf(err, "%s has no BPE vocab and merges; only byte-level BPE tokenizers are supported", what);
    long long maxid = -1;
    const char *key;
    json_t *val;
    json_object_foreach(src->vocab, key, val) {
        if (!json_is_integer(val) || json_integer_value(val) < 0 || json_integer_value(val) >= (1 << 24))
            return core_errf(err, "%s: token \"%.40s\" has an invalid id", what, key);
        if (json_integer_value(val) > maxid) maxid = json_integer_value(val);
    }
    size_t na = json_is_array(src->added) ? json_array_size(src->added) : 0;
    for (size_t i = 0; i < na; i++) {
        json_t *id = json_object_get(json_array_get(src->added, i), "id");
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= (1 << 24) ||
            !json_is_string(json_object_get(json_array_get(src->added, i), "content")))
            return core_errf(err, "%s: added token %zu has no valid id or content", what, i);
        if (json_integer_value(id) > maxid) maxid = json_integer_value(id);
    }
    if (maxid < 255) return core_errf(err, "%s: the vocabulary is too small for a byte-level BPE", what);
    if (maxid >= 2 * (long long)(json_object_size(src->vocab) + na) + 256)
        return core_errf(err, "%s: token ids run to %lld for %zu tokens; ids must be dense", what, maxid,
                         json_object_size(src->vocab) + na);

    int rc = -1;
    int nv = (int)maxid + 1;
    buf_t *tokb = calloc((size_t)nv, sizeof *tokb);
    tok_t *t = calloc(1, sizeof *t);
    uint32_t *pairs = NULL;
    buf_t blob = {0};
    if (!tokb || !t) { core_errf(err, "out of memory loading %s", what); goto done; }
    pthread_mutex_init(&t->bt_lock, NULL);
    t->n_vocab = nv;
    t->eot = -1;
    json_object_foreach(src->vocab, key, val) {
        buf_t *b = &tokb[json_integer_value(val)];
        b->len = 0;
        if (map_decode(key, strlen(key), b)) { core_errf(err, "out of memory loading %s", what); goto done; }
    }
    t->specials = calloc(na + 1, sizeof *t->specials);
    if (!t->specials) { core_errf(err, "out of memory loading %s", what); goto done; }
    for (size_t i = 0; i < na; i++) {
        json_t *a = json_array_get(src->added, i);
        int id = (int)json_integer_value(json_object_get(a, "id"));
        const char *c = json_string_value(json_object_get(a, "content"));
        tokb[id].len = 0;
        if (buf_append(&tokb[id], c, strlen(c))) { core_errf(err, "out of memory loading %s", what); goto done; }
        t->specials[t->n_special].id = id;
        t->specials[t->n_special].always = !json_is_true(json_object_get(a, "special"));
        t->n_special++;
        if (strcmp(c, "<|endoftext|>") == 0 || (t->eot < 0 && json_is_true(json_object_get(a, "special")))) t->eot = id;
    }
    t->off = malloc(((size_t)nv + 1) * sizeof *t->off);
    if (!t->off) { core_errf(err, "out of memory loading %s", what); goto done; }
    for (int id = 0; id < nv; id++) {
        t->off[id] = (uint32_t)blob.len;
        if (tokb[id].len && buf_append(&blob, tokb[id].data, tokb[id].len)) { core_errf(err, "out of memory loading %s", what); goto done; }
    }
    t->off[nv] = (uint32_t)blob.len;
    if (buf_reserve(&blob, 1)) { core_errf(err, "out of memory loading %s", what); goto done; }
    t->blob = blob.data;
    blob.data = NULL;
    for (int i = 0; i < t->n_special; i++) {
        int id = t->specials[i].id;
        t->specials[i].s = t->blob + t->off[id];
        t->specials[i].len = t->off[id + 1] - t->off[id];
    }

    size_t nm = json_array_size(src->merges);
    pairs = malloc((nm + 1) * 4 * sizeof *pairs);
    t->merges = malloc((nm + 1) * 2 * sizeof *t->merges);
    if (!pairs || !t->merges) { core_errf(err, "out of memory loading %s", what); goto done; }
    for (size_t k = 0; k < nm; k++) {
        const char *a, *b;
        size_t al, bl;
        char cat[512];
        if (merge_strs(json_array_get(src->merges, k), &a, &al, &b, &bl) || al + bl >= sizeof cat) {
            core_errf(err, "%s: merge %zu is not \"a b\" or [\"a\", \"b\"]", what, k);
            goto done;
        }
        memcpy(cat, a, al);
        memcpy(cat + al, b, bl);
        int ia = vocab_id(src->vocab, a, al), ib = vocab_id(src->vocab, b, bl), im = vocab_id(src->vocab, cat, al + bl);
        if (ia < 0 || ib < 0 || im < 0) {
            core_errf(err, "%s: merge %zu (%.*s %.*s) uses or makes a token missing from the vocab", what, k,
                      (int)(al > 40 ? 40 : al), a, (int)(bl > 40 ? 40 : bl), b);
            goto done;
        }
        uint32_t *q = pairs + 4 * k;
        q[0] = (uint32_t)ia; q[1] = (uint32_t)ib; q[2] = (uint32_t)k; q[3] = (uint32_t)im;
        t->merges[2 * k] = ia;
        t->merges[2 * k + 1] = ib;
    }
    t->n_merges = (int)nm;
    /* an added token may have taken the id a merge makes: refuse, or
     * decode(encode(x)) would not give x back */
    for (size_t k = 0; k < nm; k++) {
        const uint32_t *q = pairs + 4 * k;
        size_t la = t->off[q[0] + 1] - t->off[q[0]], lb = t->off[q[1] + 1] - t->off[q[1]];
        if (t->off[q[3] + 1] - t->off[q[3]] != la + lb || memcmp(t->blob + t->off[q[3]], t->blob + t->off[q[0]], la) != 0 ||
            memcmp(t->blob + t->off[q[3]] + la, t->blob + t->off[q[1]], lb) != 0) {
            core_errf(err, "%s: merge %zu makes token %u, whose bytes are not the two parts joined", what, k, q[3]);
            goto done;
        }
    }
    t->whole_lookup = src->whole_lookup;
    if (tok_build(t, pairs, nm, err)) goto done;
    rc = 0;
done:
    if (tokb) for (int i = 0; i < nv; i++) buf_free(&tokb[i]);
    free(tokb);
    free(pairs);
    buf_free(&blob);
    if (rc) tok_free(t);
    else *out = t;
    return rc;
}

/* ---- pre-tokenizer section of tokenizer.json ---- */

static int hf_pretok(tok_t *t, json_t *pt, const char *what, char *err)
{
    t->pre = TOK_PRE_GPT2;
    if (!pt || json_is_null(pt)) return core_errf(err, "%s has no pre_tokenizer; only byte-level BPE tokenizers are supported", what);
    const char *type = json_string_value(json_object_get(pt, "type"));
    if (!type) return core_errf(err, "%s: pre_tokenizer has no type", what);
    if (strcmp(type, "ByteLevel") == 0) {
        json_t *ur = json_object_get(pt, "use_regex");
        t->add_prefix_space = json_is_true(json_object_get(pt, "add_prefix_space"));
        if (ur && json_is_false(ur) && !t->re) return core_errf(err, "%s: a ByteLevel pre-tokenizer without a regex is not supported", what);
        return 0;
    }
    if (strcmp(type, "Split") == 0) {
        json_t *pat = json_object_get(pt, "pattern");
        const char *re = json_string_value(json_object_get(pat, "Regex"));
        const char *behavior = json_string_value(json_object_get(pt, "behavior"));
        if (!re) return core_errf(err, "%s: only Split pre-tokenizers with a Regex pattern are supported", what);
        if (behavior && strcmp(behavior, "Isolated") != 0)
            return core_errf(err, "%s: Split behaviour \"%s\" is not supported (only Isolated)", what, behavior);
        if (json_is_true(json_object_get(pt, "invert"))) return core_errf(err, "%s: inverted Split patterns are not supported", what);
        if (t->re) return core_errf(err, "%s: more than one Split pre-tokenizer is not supported", what);
        if (!(t->re_src = strdup(re))) return core_errf(err, "out of memory");
        return tok_re_compile(t, re, err);
    }
    if (strcmp(type, "Sequence") == 0) {
        json_t *arr = json_object_get(pt, "pretokenizers");
        size_t i;
        json_t *p;
        int pre = TOK_PRE_GPT2;
        json_array_foreach(arr, i, p) {
            if (hf_pretok(t, p, what, err)) return -1;
            if (t->re) pre = TOK_PRE_REGEX;
        }
        t->pre = pre;
        return 0;
    }
    return core_errf(err, "%s: pre-tokenizer \"%s\" is not supported; only byte-level BPE tokenizers are", what, type);
}

int tok_load_hf(tok_t **out, const char *path, char *err)
{
    char *buf;
    size_t len;
    if (fs_read_all(path, &buf, &len, err)) return -1;
    int rc = tok_load_hf_mem(out, buf, len, path, err);
    free(buf);
    return rc;
}

int tok_load_hf_mem(tok_t **out, const char *data, size_t len, const char *path, char *err)
{
    json_error_t je;
    json_t *root = json_loadb(data, len, 0, &je);
    if (!root) return core_errf(err, "cannot read %s: %s (line %d)", path, je.text, je.line);
    int rc = -1;
    json_t *model = json_object_get(root, "model");
    const char *type = json_string_value(json_object_get(model, "type"));
    if (!json_is_object(model) || (type && strcmp(type, "BPE") != 0)) {
        core_errf(err, "%s: model type %s is not supported; only BPE tokenizers are", path, type ? type : "(none)");
        goto done;
    }
    json_t *dropout = json_object_get(model, "dropout");
    if (dropout && !json_is_null(dropout) && json_number_value(dropout) != 0.0) {
        core_errf(err, "%s: BPE dropout is not supported", path);
        goto done;
    }
    hf_src_t src = { json_object_get(model, "vocab"), json_object_get(model, "merges"),
                     json_object_get(root, "added_tokens"), json_is_true(json_object_get(model, "ignore_merges")) };
    tok_t *t = NULL;
    if (hf_build(&t, &src, path, err)) goto done;
    if (hf_pretok(t, json_object_get(root, "pre_tokenizer"), path, err)) { tok_free(t); goto done; }
    *out = t;
    rc = 0;
done:
    json_decref(root);
    return rc;
}

/* vocab.json + merges.txt, GPT-2's original files */
static int tok_load_vocab_merges(tok_t **out, const char *vpath, const char *mpath, char *err)
{
    json_error_t je;
    json_t *vocab = json_load_file(vpath, 0, &je), *merges = json_array(), *added = json_array();
    char *text = NULL;
    size_t len;
    int rc = -1;
    if (!vocab) { core_errf(err, "cannot read %s: %s (line %d)", vpath, je.text, je.line); goto done; }
    if (fs_read_all(mpath, &text, &len, err)) goto done;
    for (char *line = text, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl) *nl = 0;
        size_t l = strlen(line);
        if (l && line[l - 1] == '\r') line[--l] = 0;
        if (l == 0 || strncmp(line, "#version", 8) == 0) continue;
        json_array_append_new(merges, json_string(line));
    }
    json_t *eot = json_object_get(vocab, "<|endoftext|>");
    if (json_is_integer(eot))
        json_array_append_new(added, json_pack("{s:O,s:s,s:b}", "id", eot, "content", "<|endoftext|>", "special", 1));
    hf_src_t src = { vocab, merges, added, 0 };
    rc = hf_build(out, &src, vpath, err);
done:
    free(text);
    json_decref(vocab);
    json_decref(merges);
    json_decref(added);
    return rc;
}

int tok_load_dir(tok_t **out, const char *model_dir, char *err)
{
    char p[PATH_MAX], q[PATH_MAX];
    snprintf(p, sizeof p, "%s/tokenizer.json", model_dir);
    if (fs_exists(p)) return tok_load_hf(out, p, err);
    snprintf(p, sizeof p, "%s/vocab.json", model_dir);
    snprintf(q, sizeof q, "%s/merges.txt", model_dir);
    if (fs_exists(p) && fs_exists(q)) return tok_load_vocab_merges(out, p, q, err);
    const tok_t *r = tok_r50k(err);
    if (!r) return -1;
    *out = (tok_t *)r;
    return 0;
}

/* ---- writing ---- */

static json_t *mapped_str(const tok_t *t, int id, buf_t *tmp)
{
    size_t len;
    const char *s = tok_piece(t, id, &len);
    for (int i = 0; i < t->n_special; i++)
        if (t->specials[i].id == id) return json_stringn(s, len);
    tmp->len = 0;
    if (map_encode(s, len, tmp)) return NULL;
    return json_stringn(tmp->data ? tmp->data : "", tmp->len);
}

static int save_json(const char *dir, const char *name, json_t *j, char *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return fs_write_json(path, j, JSON_INDENT(2), err);
}

int tok_save_dir(const tok_t *t, const char *dir, char *err)
{
    pthread_once(&map_once, map_init);
    if (fs_mkdir_p(dir, 0755, err)) return -1;
    int rc = -1;
    buf_t tmp = {0}, mtxt = {0};
    json_t *vocab = json_object(), *merges = json_array(), *added = json_array(), *root = NULL;
    for (int id = 0; id < t->n_vocab; id++) {
        size_t len;
        tok_piece(t, id, &len);
        if (len == 0) continue;
        json_t *s = mapped_str(t, id, &tmp);
        if (!s || json_object_set_new(vocab, json_string_value(s), json_integer(id))) { json_decref(s); core_errf(err, "out of memory"); goto done; }
        json_decref(s);
    }
    buf_appends(&mtxt, "#version: 0.2\n");
    for (int k = 0; k < t->n_merges; k++) {
        json_t *a = mapped_str(t, t->merges[2 * k], &tmp), *b = mapped_str(t, t->merges[2 * k + 1], &tmp);
        if (!a || !b || buf_printf(&mtxt, "%s %s\n", json_string_value(a), json_string_value(b)) ||
            json_array_append_new(merges, json_sprintf("%s %s", json_string_value(a), json_string_value(b)))) {
            json_decref(a); json_decref(b);
            core_errf(err, "out of memory"); goto done;
        }
        json_decref(a);
        json_decref(b);
    }
    for (int i = 0; i < t->n_special; i++)
        json_array_append_new(added, json_pack("{s:i,s:s%,s:b,s:b,s:b,s:b,s:b}", "id", t->specials[i].id,
                                               "content", t->specials[i].s, t->specials[i].len, "single_word", 0,
                                               "lstrip", 0, "rstrip", 0, "normalized", !t->specials[i].always ? 1 : 0,
                                               "special", !t->specials[i].always));
    json_t *bl = json_pack("{s:s,s:b,s:b,s:b}", "type", "ByteLevel", "add_prefix_space", t->add_prefix_space,
                           "trim_offsets", 1, "use_regex", t->pre == TOK_PRE_GPT2);
    json_t *pre = t->pre == TOK_PRE_GPT2 ? json_deep_copy(bl)
        : json_pack("{s:s,s:[{s:s,s:{s:s},s:s,s:b},O]}", "type", "Sequence", "pretokenizers", "type", "Split",
                    "pattern", "Regex", t->re_src ? t->re_src : "", "behavior", "Isolated", "invert", 0, bl);
    root = json_pack("{s:s,s:n,s:n,s:o,s:n,s:o,s:{s:s,s:b,s:b,s:b},s:{s:s,s:b,s:b,s:b},"
                     "s:{s:s,s:n,s:n,s:s,s:s,s:b,s:b,s:O,s:O}}",
                     "version", "1.0", "truncation", "padding", "added_tokens", added, "normalizer",
                     "pre_tokenizer", pre,
                     "post_processor", "type", "ByteLevel", "add_prefix_space", 1, "trim_offsets", 0, "use_regex", 1,
                     "decoder", "type", "ByteLevel", "add_prefix_space", 1, "trim_offsets", 1, "use_regex", 1,
                     "model", "type", "BPE", "dropout", "unk_token", "continuing_subword_prefix", "",
                     "end_of_word_suffix", "", "fuse_unk", 0, "byte_fallback", 0,
                     "vocab", vocab, "merges", merges);
    /* r50k's whole-piece rule is tiktoken's; GPT-2's own tokenizer.json does
     * without it and gives the same ids, so only regex tokenizers carry it */
    if (root && t->whole_lookup && t->pre == TOK_PRE_REGEX)
        json_object_set_new(json_object_get(root, "model"), "ignore_merges", json_true());
    added = NULL;
    json_decref(bl);
    if (!root) { core_errf(err, "out of memory writing the tokenizer"); goto done; }
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    if (save_json(dir, "vocab.json", vocab, err) || fs_write_atomic(path, mtxt.data, mtxt.len, err) ||
        save_json(dir, "tokenizer.json", root, err))
        goto done;
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    if (!fs_exists(path)) {
        json_t *cfg = json_pack("{s:s,s:i}", "tokenizer_class", "GPT2Tokenizer", "model_max_length", 1024);
        if (t->eot >= 0) {
            size_t l;
            const char *s = tok_piece(t, t->eot, &l);
            json_object_set_new(cfg, "eos_token", json_stringn(s, l));
            json_object_set_new(cfg, "bos_token", json_stringn(s, l));
            json_object_set_new(cfg, "unk_token", json_stringn(s, l));
        }
        int r = save_json(dir, "tokenizer_config.json", cfg, err);
        json_decref(cfg);
        if (r) goto done;
    }
    rc = 0;
done:
    json_decref(root);
    json_decref(vocab);
    json_decref(merges);
    json_decref(added);
    buf_free(&tmp);
    buf_free(&mtxt);
    return rc;
}
