/* tok.c: the tokenizer's tables, the shipped r50k file, encode and decode.
 *
 * Encoding splits the text at special tokens (when allowed), cuts each
 * ordinary stretch into pieces with the pre-tokenizer, and merges each piece
 * with tok_bpe_piece. The r50k file (data/tok/r50k.tok, written by
 * scripts/build_r50k.mjs) holds the vocabulary bytes and the pair table ready
 * to index: loading is one read and two hash-table fills, about a millisecond.
 */
#include "tok/tok_int.h"
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

void tok_ids_free(tok_ids_t *v)
{
    free(v->ids);
    v->ids = NULL;
    v->len = v->cap = 0;
}

static int ids_reserve(tok_ids_t *v, size_t extra)
{
    if (v->len + extra <= v->cap) return 0;
    size_t cap = v->cap ? v->cap : 256;
    while (cap < v->len + extra) cap *= 2;
    int *p = realloc(v->ids, cap * sizeof *p);
    if (!p) return -1;
    v->ids = p;
    v->cap = cap;
    return 0;
}

/* ---- tables ---- */

static inline uint32_t str_hash(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull ^ len;
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
        s += 8;
        len -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, len);
    h = (h ^ w) * 0x9E3779B97F4A7C15ull;
    return (uint32_t)(h >> 32);
}

/* With fewer than 2^20 tokens a slot holds id | fingerprint << 20: 11 more
 * bits of the hash, so that a piece that is not a token (most pieces of
 * random text) is turned away without reading any token's bytes. */
#define STR_ID_BITS 20
#define STR_ID_MASK ((1u << STR_ID_BITS) - 1)

int tok_lookup(const tok_t *t, const char *s, size_t len)
{
    uint32_t hv = str_hash(s, len), h = hv & t->str_mask;
    int small = t->n_vocab <= (int)STR_ID_MASK;
    uint32_t fp = hv >> (32 - (31 - STR_ID_BITS));
    for (;; h = (h + 1) & t->str_mask) {
        int32_t id = t->str_tab[h];
        if (id < 0) return -1;
        if (small) {
            if ((uint32_t)id >> STR_ID_BITS != fp) continue;
            id &= (int32_t)STR_ID_MASK;
        }
        if (t->off[id + 1] - t->off[id] == len && memcmp(t->blob + t->off[id], s, len) == 0) return id;
    }
}

static uint32_t pow2_at_least(size_t n)
{
    uint32_t c = 16;
    while (c < n) c *= 2;
    return c;
}

static int is_special_id(const tok_t *t, int id)
{
    for (int i = 0; i < t->n_special; i++)
        if (t->specials[i].id == id) return 1;
    return 0;
}

int tok_build(tok_t *t, const uint32_t *pairs, size_t n_pairs, char *err)
{
    uint32_t cap = pow2_at_least((size_t)t->n_vocab * 2);
    t->str_tab = malloc(cap * sizeof *t->str_tab);
    if (!t->str_tab) return core_errf(err, "out of memory loading the tokenizer");
    memset(t->str_tab, 0xff, cap * sizeof *t->str_tab);
    t->str_mask = cap - 1;
    /* specials are not reachable by merging bytes; keep them out of the
     * piece lookup so "<|endoftext|>" as text is not one token */
    for (int id = 0; id < t->n_vocab; id++) {
        size_t len = t->off[id + 1] - t->off[id];
        if (len == 0 || is_special_id(t, id)) continue;
        const char *s = t->blob + t->off[id];
        if (tok_lookup(t, s, len) >= 0) continue;   /* duplicate bytes: first id wins */
        uint32_t hv = str_hash(s, len), h = hv & t->str_mask;
        while (t->str_tab[h] >= 0) h = (h + 1) & t->str_mask;
        t->str_tab[h] = t->n_vocab <= (int)STR_ID_MASK ? id | (int32_t)(hv >> (32 - (31 - STR_ID_BITS)) << STR_ID_BITS) : id;
    }
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        t->byte_id[b] = tok_lookup(t, &c, 1);
        if (t->byte_id[b] < 0)
            return core_errf(err, "the tokenizer has no token for byte 0x%02x; only byte-level BPE tokenizers are supported", b);
    }
    for (size_t i = 0; i < n_pairs; i++) {
        const uint32_t *q = pairs + 4 * i;
        if (q[0] >= (uint32_t)t->n_vocab || q[1] >= (uint32_t)t->n_vocab || q[3] >= (uint32_t)t->n_vocab)
            return core_errf(err, "the tokenizer's merge %zu names a token id out of range", i);
    }
    /* the compact table when ids fit 16 bits and every rank is its token's id */
    int fits = t->n_vocab < 0xff00;   /* rank >> 8 below pair_q's 0xff */
    for (size_t i = 0; fits && i < n_pairs; i++) fits = pairs[4 * i + 2] == pairs[4 * i + 3];
    cap = pow2_at_least(n_pairs * 2);
    t->pair_mask = cap - 1;
    if (fits) {
        t->pairs32 = malloc(cap * sizeof *t->pairs32);
        t->pair_q = malloc(1u << TOK_PQ_BITS);
        t->pair_bits = calloc((1u << TOK_BLOOM_BITS) / 64, sizeof *t->pair_bits);
        if (!t->pairs32 || !t->pair_q || !t->pair_bits) return core_errf(err, "out of memory loading the tokenizer");
        for (uint32_t i = 0; i < cap; i++) t->pairs32[i].key = UINT32_MAX;
        memset(t->pair_q, 0xff, 1u << TOK_PQ_BITS);
    } else {
        if (!(t->pairs = malloc(cap * sizeof *t->pairs))) return core_errf(err, "out of memory loading the tokenizer");
        for (uint32_t i = 0; i < cap; i++) t->pairs[i].key = UINT64_MAX;
    }
    for (size_t i = 0; i < n_pairs; i++) {
        const uint32_t *q = pairs + 4 * i;
        int32_t m;
        if (tok_pair_rank(t, (int32_t)q[0], (int32_t)q[1], &m) != INT32_MAX) continue;   /* first (lowest rank) wins */
        if (fits) {
            uint32_t key = q[0] << 16 | q[1];
            uint32_t h = (uint32_t)(((uint64_t)key * 0x9E3779B97F4A7C15ull) >> 32) & t->pair_mask;
            while (t->pairs32[h].key != UINT32_MAX) h = (h + 1) & t->pair_mask;
            t->pairs32[h].key = key;
            t->pairs32[h].rank = (int32_t)q[2];
            uint8_t *pq = &t->pair_q[tok_pq_slot(key) >> (TOK_BLOOM_BITS - TOK_PQ_BITS)];
            if (*pq > q[2] >> 8) *pq = (uint8_t)(q[2] >> 8);
            uint32_t f = tok_pq_slot(key);
            t->pair_bits[f >> 6] |= 1ull << (f & 63);
        } else {
            uint64_t key = (uint64_t)q[0] << 32 | q[1];
            uint32_t h = (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & t->pair_mask;
            while (t->pairs[h].key != UINT64_MAX) h = (h + 1) & t->pair_mask;
            t->pairs[h].key = key;
            t->pairs[h].rank = (int32_t)q[2];
            t->pairs[h].merged = (int32_t)q[3];
        }
    }
    if (fits) {
        /* ids are ranks and below 0xffff: 2 bytes a pair keep it in L1/L2 */
        if (!(t->byte_pair16 = malloc(65536 * sizeof *t->byte_pair16))) return core_errf(err, "out of memory loading the tokenizer");
        for (int i = 0; i < 65536; i++) {
            int32_t m = -1;
            int32_t r = tok_pair_rank(t, t->byte_id[i >> 8], t->byte_id[i & 255], &m);
            t->byte_pair16[i] = r == INT32_MAX ? 0xffff : (uint16_t)m;
        }
        return 0;
    }
    t->byte_pair = malloc(65536 * sizeof *t->byte_pair);
    if (!t->byte_pair) return core_errf(err, "out of memory loading the tokenizer");
    for (int i = 0; i < 65536; i++) {
        int32_t m = -1;
        t->byte_pair[i].rank = tok_pair_rank(t, t->byte_id[i >> 8], t->byte_id[i & 255], &m);
        t->byte_pair[i].merged = m;
    }
    return 0;
}

void tok_free(tok_t *t)
{
    if (!t || t->shared) return;
    free(t->off);
    free(t->blob);
    free(t->str_tab);
    free(t->pairs);
    free(t->pairs32);
    free(t->pair_q);
    free(t->pair_bits);
    free(t->byte_pair);
    free(t->byte_pair16);
    free(t->merges);
    free(t->specials);
    tok_re_free(t);
    free(t->re_src);
    tok_bt_free(t);
    pthread_mutex_destroy(&t->bt_lock);
    free(t);
}

/* ---- the shipped r50k file ---- */

static int rd_u32(const char *buf, size_t len, size_t *pos, uint32_t *v)
{
    if (*pos + 4 > len) return -1;
    memcpy(v, buf + *pos, 4);
    *pos += 4;
    return 0;
}

/* Parses a TUNTOK1 file (see scripts/build_r50k.mjs). */
int tok_load_file(tok_t **out, const char *path, char *err)
{
    char *buf;
    size_t len;
    if (fs_read_all(path, &buf, &len, err)) return -1;
    tok_t *t = calloc(1, sizeof *t);
    uint32_t nv, nm, np, ns, flags, blen;
    size_t pos = 8;
    int rc = -1;
    if (!t) { core_errf(err, "out of memory loading %s", path); goto done; }
    pthread_mutex_init(&t->bt_lock, NULL);
    t->eot = -1;
    if (len < 8 || memcmp(buf, "TUNTOK1\n", 8) != 0 || rd_u32(buf, len, &pos, &nv) ||
        rd_u32(buf, len, &pos, &nm) || rd_u32(buf, len, &pos, &np) || rd_u32(buf, len, &pos, &ns) ||
        rd_u32(buf, len, &pos, &flags) || rd_u32(buf, len, &pos, &blen) || nv == 0 || nv > (1u << 24)) {
        core_errf(err, "%s is not a tunery tokenizer file; rebuild it with scripts/build_r50k.mjs", path);
        goto done;
    }
    size_t need = (nv + 1) * 4ull + blen + 3 + nm * 8ull + np * 16ull + ns * 4ull;
    if (len - pos < need - 3) {
        core_errf(err, "%s is truncated; rebuild it with scripts/build_r50k.mjs", path);
        goto done;
    }
    t->n_vocab = (int)nv;
    t->off = malloc((nv + 1) * 4ull);
    t->blob = malloc(blen + 1ull);
    t->merges = malloc(nm * 8ull + 1);
    t->specials = calloc(ns + 1ull, sizeof *t->specials);
    if (!t->off || !t->blob || !t->merges || !t->specials) { core_errf(err, "out of memory loading %s", path); goto done; }
    memcpy(t->off, buf + pos, (nv + 1) * 4ull);
    pos += (nv + 1) * 4ull;
    if (t->off[0] != 0 || t->off[nv] != blen) { core_errf(err, "%s has a corrupt offset table", path); goto done; }
    for (uint32_t i = 0; i < nv; i++)
        if (t->off[i] > t->off[i + 1]) { core_errf(err, "%s has a corrupt offset table", path); goto done; }
    memcpy(t->blob, buf + pos, blen);
    pos += (blen + 3) & ~3u;
    memcpy(t->merges, buf + pos, nm * 8ull);
    t->n_merges = (int)nm;
    pos += nm * 8ull;
    const uint32_t *pairs = (const uint32_t *)(buf + pos);   /* 4-aligned: fs_read_all mallocs */
    pos += np * 16ull;
    for (uint32_t i = 0; i < ns; i++) {
        uint32_t id;
        if (rd_u32(buf, len, &pos, &id) || id >= nv) { core_errf(err, "%s has a corrupt special-token list", path); goto done; }
        t->specials[i].id = (int)id;
        t->specials[i].s = t->blob + t->off[id];
        t->specials[i].len = t->off[id + 1] - t->off[id];
        if (i == 0) t->eot = (int)id;
    }
    t->n_special = (int)ns;
    for (int i = 0; i < t->n_merges * 2; i++)
        if (t->merges[i] < 0 || t->merges[i] >= t->n_vocab) { core_errf(err, "%s has a corrupt merge list", path); goto done; }
    t->whole_lookup = flags & 1;
    t->bt_ok = flags & 1;
    t->pre = TOK_PRE_GPT2;
    rc = tok_build(t, pairs, np, err);
done:
    free(buf);
    if (rc) tok_free(t);
    else *out = t;
    return rc;
}

static tok_t *r50k;
static char r50k_err[CORE_ERR_LEN];
static pthread_once_t r50k_once = PTHREAD_ONCE_INIT;

static void r50k_load(void)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/tok/r50k.tok", core_share_dir());
    if (tok_load_file(&r50k, path, r50k_err) == 0) r50k->shared = 1;
    else r50k = NULL;
}

const tok_t *tok_r50k(char *err)
{
    pthread_once(&r50k_once, r50k_load);
    if (!r50k && err) snprintf(err, CORE_ERR_LEN, "%s (set TUNERY_SHARE to tunery's data directory)", r50k_err);
    return r50k;
}

/* ---- encode ---- */

typedef struct {
    const tok_t *t;
    tok_ids_t *out;      /* NULL: count only */
    size_t count;
    tok_ids_t tmp;       /* ids of one piece when counting */
    tok_scratch_t sc;
    int oom;
    /* regex pre-tokenizer, streaming: the last piece seen, held back */
    const unsigned char *held;
    size_t held_len;
} enc_t;

static int enc_piece(const unsigned char *p, size_t n, void *ctx)
{
    enc_t *e = ctx;
    tok_ids_t *v = e->out ? e->out : &e->tmp;
    if (!e->out) v->len = 0;
    if (ids_reserve(v, n)) { e->oom = 1; return -1; }
    size_t k = tok_bpe_piece(e->t, p, n, v->ids + v->len, &e->sc);
    if (k == (size_t)-1) { e->oom = 1; return -1; }
    v->len += k;
    e->count += k;
    return 0;
}

static int enc_piece_held(const unsigned char *p, size_t n, void *ctx)
{
    enc_t *e = ctx;
    if (e->held && enc_piece(e->held, e->held_len, e)) return -1;
    e->held = p;
    e->held_len = n;
    return 0;
}

/* Encodes the pieces of s[0..n). Unless final, the last piece is left alone:
 * more text may extend it. Returns the bytes consumed, (size_t)-1 on OOM. */
static size_t enc_ordinary(enc_t *e, const unsigned char *s, size_t n, int final)
{
    if (e->t->pre == TOK_PRE_REGEX) {
        if (final) return tok_re_split(e->t, s, n, enc_piece, e) ? (size_t)-1 : n;
        e->held = NULL;
        if (tok_re_split(e->t, s, n, enc_piece_held, e)) return (size_t)-1;
        return e->held ? (size_t)(e->held - s) : n;
    }
    for (size_t i = 0; i < n;) {
        size_t j = tok_pretok_gpt2(s, i, n);
        if (j == n && !final) return i;
        if (enc_piece(s + i, j - i, e)) return (size_t)-1;
        i = j;
    }
    return n;
}

static int enc_add_id(enc_t *e, int id)
{
    e->count++;
    if (!e->out) return 0;
    if (ids_reserve(e->out, 1)) return -1;
    e->out->ids[e->out->len++] = id;
    return 0;
}

static int special_on(const tok_special_t *sp, int allow)
{
    return sp->len > 0 && (allow || sp->always);
}

/* earliest special at or after pos (longest on a tie); next[] caches each
 * special's next occurrence so the search stays linear */
static int enc_find_special(const tok_t *t, const unsigned char *s, size_t n, size_t pos,
                            int allow, size_t *next, size_t *at)
{
    int best = -1;
    for (int i = 0; i < t->n_special; i++) {
        const tok_special_t *sp = &t->specials[i];
        if (!special_on(sp, allow)) continue;
        if (next[i] < pos || next[i] == SIZE_MAX - 1) {
            const unsigned char *q = pos <= n ? memmem(s + pos, n - pos, sp->s, sp->len) : NULL;
            next[i] = q ? (size_t)(q - s) : SIZE_MAX;
        }
        if (next[i] == SIZE_MAX) continue;
        if (best < 0 || next[i] < *at || (next[i] == *at && sp->len > t->specials[best].len)) {
            best = i;
            *at = next[i];
        }
    }
    return best;
}

/* Streaming: where text may still change meaning when more follows. A UTF-8
 * sequence cut at the end, or an end that starts a special token, must wait. */
static size_t stream_safe_end(const tok_t *t, const unsigned char *s, size_t len, int allow)
{
    size_t end = len;
    for (size_t k = 1; k <= 3 && k <= len; k++) {
        unsigned char c = s[len - k];
        if ((c & 0xc0) == 0x80) continue;
        size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
        if (need > k && c >= 0xc2 && c <= 0xf4) end = len - k;
        break;
    }
    for (int i = 0; i < t->n_special; i++) {
        const tok_special_t *sp = &t->specials[i];
        if (!special_on(sp, allow)) continue;
        for (size_t k = sp->len - 1; k >= 1; k--)
            if (k <= len && len - k < end && memcmp(s + len - k, sp->s, k) == 0) { end = len - k; break; }
    }
    return end;
}

/* prefix: a whole text (not a stream's block), so add_prefix_space applies */
static int enc_text(enc_t *e, const char *text, size_t len, int allow_special, int final, int prefix, size_t *used)
{
    const tok_t *t = e->t;
    const unsigned char *s = (const unsigned char *)text;
    char *pref = NULL;
    size_t lim = final ? len : stream_safe_end(t, s, len, allow_special), shift = 0;
    if (prefix && t->add_prefix_space && len > 0 && text[0] != ' ') {
        if (!(pref = malloc(len + 1))) return -1;
        pref[0] = ' ';
        memcpy(pref + 1, text, len);
        s = (const unsigned char *)pref;
        lim = ++len;
        shift = 1;
    }
    int rc = 0;
    size_t pos = 0, k = 0;
    size_t ns = t->n_special > 0 ? (size_t)t->n_special : 0;
    size_t *next = ns ? malloc(ns * sizeof *next) : NULL;
    if (ns && !next) rc = -1;
    for (int i = 0; next && i < t->n_special; i++) next[i] = SIZE_MAX - 1;
    while (rc == 0) {
        size_t at = 0;
        int sp = next ? enc_find_special(t, s, lim, pos, allow_special, next, &at) : -1;
        if (sp < 0) {
            k = enc_ordinary(e, s + pos, lim - pos, final);
            if (k == (size_t)-1) rc = -1;
            else pos += k;
            break;
        }
        if (enc_ordinary(e, s + pos, at - pos, 1) == (size_t)-1 || enc_add_id(e, t->specials[sp].id)) rc = -1;
        pos = at + t->specials[sp].len;
    }
    free(next);
    free(pref);
    if (used) *used = pos - shift;
    return rc;
}

int tok_encode(const tok_t *t, const char *text, size_t len, int allow_special, tok_ids_t *out)
{
    enc_t e = { .t = t, .out = out };
    int rc = enc_text(&e, text, len, allow_special, 1, 1, NULL);
    tok_scratch_free(&e.sc);
    return rc ? -1 : 0;
}

size_t tok_count(const tok_t *t, const char *text, size_t len)
{
    enc_t e = { .t = t };
    enc_text(&e, text, len, 0, 1, 1, NULL);
    tok_scratch_free(&e.sc);
    tok_ids_free(&e.tmp);
    return e.count;
}

int tok_encode_stream(const tok_t *t, const char *text, size_t len, int allow_special, int final,
                      tok_ids_t *out, size_t *count, size_t *used)
{
    enc_t e = { .t = t, .out = out };
    int rc = enc_text(&e, text, len, allow_special, final, 0, used);
    tok_scratch_free(&e.sc);
    tok_ids_free(&e.tmp);
    if (count) *count += e.count;
    return rc ? -1 : 0;
}

/* ---- decode and accessors ---- */

const char *tok_piece(const tok_t *t, int id, size_t *len)
{
    if (id < 0 || id >= t->n_vocab) return NULL;
    *len = t->off[id + 1] - t->off[id];
    return t->blob + t->off[id];
}

int tok_decode(const tok_t *t, const int *ids, size_t n, buf_t *out)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab) return -1;
        total += t->off[ids[i] + 1] - t->off[ids[i]];
    }
    if (buf_reserve(out, total)) return -1;
    for (size_t i = 0; i < n; i++) {
        size_t l = t->off[ids[i] + 1] - t->off[ids[i]];
        memcpy(out->data + out->len, t->blob + t->off[ids[i]], l);
        out->len += l;
    }
    out->data[out->len] = 0;
    return 0;
}

int tok_vocab_size(const tok_t *t) { return t->n_vocab; }
int tok_eot(const tok_t *t) { return t->eot; }
