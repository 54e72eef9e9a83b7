/* tok_bt.c: linear-time BPE for giant pieces of tiktoken-ranked vocabularies.
 *
 * The heap merge in tok_bpe.c is O(n log n) but touches memory at random, so
 * a 10 MB piece (10 MB without a space, or of one letter) ran 35-60 times
 * slower per byte than text (7 CPU-s for 10 MB of random letters). This is
 * the "backtracking" encoder of GitHub's
 * rust-gems `bpe` crate (van Antwerpen & Neubeck, 2024), which rests on one
 * fact about BPE whose ranks are token ids (tiktoken's r50k): a token
 * sequence is the BPE encoding of its bytes exactly when every adjacent pair
 * is "compatible", i.e. BPE of the two tokens' bytes gives those two tokens.
 * So: take the longest token that is a prefix of the rest, shorten it while it
 * is incompatible with the previous token, and backtrack (remembering dead
 * positions in a bitfield) when nothing fits; the position backed up to
 * then tries the popped token's prefixes, read from a table instead of
 * walking the trie again (a fifth of the steps in text without whitespace
 * are such retries). Amortised linear time: 0.30
 * CPU-s for those 10 MB of random letters (3.2x text's cost per byte: 0.6
 * tokens a byte against text's 0.27, 1.3 candidates tried per step, and the
 * tables do not all fit the 2 MB L2; docs/bench.md), 0.04 CPU-s for 10 MB
 * of one letter. Pieces with many places no token spans (random letters,
 * mixed classes) are now cut there first (tok_cut.c) and only their long
 * stretches come here; text without whitespace still does, whole.
 * Checks are memoised per call (16-bit exact tags), pairs of digit tokens
 * in a table of them all built once (walks in digits start from a table of
 * all three-digit strings), pairs of bytes in a table of their own; the
 * pair table's filters (tok_int.h) answer most of the rest.
 *
 * Compatibility is decided by undoing both tokens' merges from the top and
 * asking, at each step, whether the two tokens facing each other across the
 * boundary would have merged before either side's next merge (pair table:
 * every split of every token, rank = id, as tiktoken merges). Each token's
 * own last merge (its "split") is found once, in id order, as in the crate.
 *
 * The tables (a byte trie of the vocabulary, each token's split and
 * longest prefix, the digit tokens' numbering) are built on first use, ~45
 * ms for r50k (the digit pairs' table on the first long digit piece, ~20
 * ms), so processes that never meet a giant piece never pay for them.
 */
#include "tok/tok_int.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

typedef struct {
    uint32_t key;             /* parent node << 8 | byte; UINT32_MAX = empty */
    int32_t child;
    int32_t tok;              /* token ending at child, -1 if none */
    int32_t pad;
} bt_slot_t;

typedef struct {
    int32_t node, tok;
} bt_direct_t;

/* the merge that made a token, {id, id} for bytes: all the compatibility
 * check reads, 4 bytes a token (200 KB for r50k, in L2 beside the rest) */
typedef struct {
    uint16_t left, right;
} bt_info_t;

/* three digits' tokens of one, two and three digits and the node after them */
typedef struct {
    int32_t tok[3], node;
} bt_d3_t;

typedef struct {
    uint32_t kid;             /* first child << 9 | number of children */
    int32_t tok;              /* token ending here, -1 if none */
    uint8_t kb[8];            /* the children's bytes when at most 8 (99% of nodes) */
} bt_node_t;

struct tok_bt {
    /* byte trie of the vocabulary: children in an open-addressing table; the
     * first two levels also in direct tables, where most walks end. ch is the
     * table used while building; walks use nd/kbyte (see bt_build) */
    bt_slot_t *ch;
    uint32_t cmask;
    bt_node_t *nd;
    uint8_t *kbyte;
    bt_direct_t l1[256];
    int32_t *l2;              /* 65536: node of each two-byte prefix, -1 if none */
    int32_t *node_tok;        /* token ending at node, -1 if none (building only) */
    bt_info_t *info;          /* per token id */
    /* the rank of merging ids a, b < 256 (0xffff none): the bytes in r50k.
     * Compatibility checks end among them, where most pairs merge, so the
     * pair table's filters pass them on to its 2 MB tables; this is 128 KB */
    uint16_t *low_pair;
    /* per token id: its longest proper prefix that is a token (0xffff
     * none) << 8 | its length (tokens of more than 255 bytes: long_tok).
     * After a backtrack, the candidates left at a position are the popped
     * token's prefixes: this chain, so that no walk is needed */
    uint32_t *chain;
    int long_tok;
    /* A piece of ASCII digits (\p{N}+) is encoded with digit-only tokens,
     * 994 of them in r50k. The pair memo, shared with all other pairs, kept
     * losing their pairs (3 MB of digits: 1.65M checks computed for 591k
     * distinct pairs), and a per-call table of them still computed each
     * pair once per call: so all 994^2 are computed once per process, on
     * the first long digit piece (about 50 ms), into 1 bit a pair (121 KB) */
    uint16_t *dense;          /* per token id: index among digit tokens, 0xffff if not one */
    uint32_t n_dense;         /* 0: more than BT_DENSE_MAX, no table */
    uint16_t *dense_id;       /* the token id of each index */
    uint64_t *dcompat;        /* bit a * n_dense + c: digit tokens a, c compatible; NULL until built */
    /* per three digits 000-999: the tokens of their first one, two and
     * three (-1 none) and the trie node after the three (-1 if no longer
     * token goes on from there), so that a walk in a digits piece starts
     * with one 16-byte read instead of three dependent ones; built with
     * dcompat */
    bt_d3_t *d3;
    tok_cut_t cut;            /* tok_cut.c's tables */
};
#define BT_DENSE_MAX 1024     /* 1024^2 bits = 128 KB */

static inline uint32_t child_hash(uint32_t k)
{
    return (uint32_t)((k * 0x9E3779B97F4A7C15ull) >> 32);
}

static inline const bt_slot_t *trie_slot(const tok_bt_t *b, int32_t node, unsigned char c)
{
    uint32_t k = (uint32_t)node << 8 | c, h = child_hash(k) & b->cmask;
    for (;;) {
        if (b->ch[h].key == k) return &b->ch[h];
        if (b->ch[h].key == UINT32_MAX) return NULL;
        h = (h + 1) & b->cmask;
    }
}

static inline int32_t trie_child(const tok_bt_t *b, int32_t node, unsigned char c)
{
    const bt_slot_t *sl = trie_slot(b, node, c);
    return sl ? sl->child : -1;
}

/* index of byte c among a node's children's bytes kb[0..nk), -1 if none */
static inline int bt_kid_find(const uint8_t *kb, uint32_t nk, unsigned char c)
{
#ifdef __SSE2__
    __m128i cc = _mm_set1_epi8((char)c);
    for (uint32_t i = 0; i < nk; i += 16) {
        uint32_t m = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(kb + i)), cc));
        if (m) {
            uint32_t j = i + (uint32_t)__builtin_ctz(m);
            return j < nk ? (int)j : -1;   /* bytes are unique and sorted: a later match is another node's */
        }
    }
    return -1;
#else
    for (uint32_t i = 0; i < nk; i++)
        if (kb[i] == c) return (int)i;
    return -1;
#endif
}

/* Does BPE of bytes(t1) + bytes(t2) give [t1, t2]? Only merges ranked below
 * limit count (INT_MAX when encoding; the token being split when building). */
static int bt_compatible(const tok_t *t, const tok_bt_t *b, int32_t t1, int32_t t2, int32_t limit)
{
    const bt_info_t *info = b->info;
    for (;;) {
        if ((uint32_t)(t1 | t2) < 256 && b->low_pair) {
            uint32_t r = b->low_pair[t1 << 8 | t2];
            if (r != 0xffff && (int32_t)r < limit) return 0;
        } else if (tok_pair_below(t, t1, t2, limit)) return 0;
        if (t1 > t2) {
            limit = t1;
            t1 = info[t1].right;
            if (t1 == limit) {
                limit = t2 + 1;
                t2 = info[t2].left;
                if (t2 + 1 == limit) return 1;
            }
        } else {
            limit = t2 + 1;
            t2 = info[t2].left;
            if (t2 + 1 == limit) {
                limit = t1;
                t1 = info[t1].right;
                if (t1 == limit) return 1;
            }
        }
    }
}

static void bt_free(tok_bt_t *b)
{
    if (!b) return;
    free(b->ch);
    free(b->nd);
    free(b->kbyte);
    free(b->l2);
    free(b->node_tok);
    free(b->info);
    free(b->low_pair);
    free(b->chain);
    free(b->dense);
    free(b->dense_id);
    free(b->dcompat);
    free(b->d3);
    free(b);
}

static tok_bt_t *bt_build(const tok_t *t)
{
    tok_bt_t *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    size_t nodes_max = (size_t)t->off[t->n_vocab] + 1;
    uint32_t cap = 16;
    while (cap < 2 * nodes_max) cap *= 2;
    b->ch = malloc(cap * sizeof *b->ch);
    b->l2 = malloc(65536 * sizeof *b->l2);
    b->node_tok = malloc(nodes_max * sizeof *b->node_tok);
    b->info = malloc((size_t)t->n_vocab * sizeof *b->info);
    int32_t *prefix = malloc((size_t)t->n_vocab * sizeof *prefix);   /* longest proper prefix token, -1 none */
    if (!b->ch || !b->l2 || !b->node_tok || !b->info || !prefix || t->n_vocab > 65536) {
        free(prefix);
        bt_free(b);
        return NULL;
    }
    for (uint32_t i = 0; i < cap; i++) b->ch[i].key = UINT32_MAX;
    b->cmask = cap - 1;
    int32_t nn = 1;
    b->node_tok[0] = -1;
    for (int id = 0; id < t->n_vocab; id++) {
        const unsigned char *s = (const unsigned char *)t->blob + t->off[id];
        size_t len = t->off[id + 1] - t->off[id];
        if (len == 0 || tok_lookup(t, (const char *)s, len) != id) continue;   /* specials, duplicates */
        int32_t node = 0;
        for (size_t i = 0; i < len; i++) {
            int32_t c = trie_child(b, node, s[i]);
            if (c < 0) {
                uint32_t k = (uint32_t)node << 8 | s[i], h = child_hash(k) & b->cmask;
                while (b->ch[h].key != UINT32_MAX) h = (h + 1) & b->cmask;
                b->ch[h].key = k;
                b->ch[h].child = c = nn;
                b->node_tok[nn++] = -1;
            }
            node = c;
        }
        b->node_tok[node] = id;
    }
    for (uint32_t h = 0; h <= b->cmask; h++)
        if (b->ch[h].key != UINT32_MAX) b->ch[h].tok = b->node_tok[b->ch[h].child];
    /* the walk layout: nodes renumbered breadth first, so that each node's
     * children are consecutive ids, in byte order: a node holds its first
     * child and their number, and kbyte[id] is the byte leading to id. A
     * step of a walk is one vector compare in kbyte (98 KB for r50k, stays in
     * L2) and one 8-byte read of the child */
    uint32_t ne = (uint32_t)nn - 1, *start = calloc((size_t)nn + 1, sizeof *start);
    uint32_t *eb = malloc(((size_t)ne + 1) * sizeof *eb), *newid = malloc((size_t)nn * sizeof *newid);
    uint32_t *order = malloc((size_t)nn * sizeof *order);
    b->nd = malloc(((size_t)nn + 1) * sizeof *b->nd);
    b->kbyte = calloc((size_t)nn + 64, 1);
    if (!start || !eb || !newid || !order || !b->nd || !b->kbyte || (uint32_t)nn >= 1u << 23) {
        free(start); free(eb); free(newid); free(order); free(prefix);
        bt_free(b);
        return NULL;
    }
    for (uint32_t h = 0; h <= b->cmask; h++)
        if (b->ch[h].key != UINT32_MAX) start[(b->ch[h].key >> 8) + 1]++;
    for (int32_t v = 0; v < nn; v++) start[v + 1] += start[v];
    for (uint32_t h = 0; h <= b->cmask; h++) {
        if (b->ch[h].key == UINT32_MAX) continue;
        uint32_t par = b->ch[h].key >> 8, j = start[par]++;
        eb[j] = (uint32_t)b->ch[h].child << 8 | (b->ch[h].key & 255);   /* old child << 8 | byte */
    }
    for (int32_t v = nn; v > 0; v--) start[v] = start[v - 1];   /* back to group starts */
    start[0] = 0;
    for (int32_t v = 0; v < nn; v++)                              /* sort each group by byte */
        for (uint32_t i = start[v] + 1; i < start[v + 1]; i++)
            for (uint32_t j = i; j > start[v] && (eb[j] & 255) < (eb[j - 1] & 255); j--) {
                uint32_t x = eb[j]; eb[j] = eb[j - 1]; eb[j - 1] = x;
            }
    uint32_t head = 0, cnt = 0;
    order[cnt++] = 0;
    while (head < cnt) {
        uint32_t v = order[head];
        newid[v] = head++;
        for (uint32_t e = start[v]; e < start[v + 1]; e++) {
            b->kbyte[cnt] = (uint8_t)(eb[e] & 255);
            order[cnt++] = eb[e] >> 8;
        }
    }
    for (uint32_t v = 0; v < (uint32_t)nn; v++) {
        uint32_t old = order[v], nk = start[old + 1] - start[old];
        uint32_t k0 = nk ? newid[eb[start[old]] >> 8] : 0;
        b->nd[v].kid = k0 << 9 | nk;
        b->nd[v].tok = b->node_tok[old];
        memset(b->nd[v].kb, 0, sizeof b->nd[v].kb);
        for (uint32_t j = 0; j < nk && j < sizeof b->nd[v].kb; j++) b->nd[v].kb[j] = (uint8_t)(eb[start[old] + j] & 255);
    }
    memset(&b->nd[nn], 0, sizeof b->nd[nn]);
    b->nd[nn].tok = -1;
    for (int c0 = 0; c0 < 256; c0++) {
        int32_t n1 = trie_child(b, 0, (unsigned char)c0);
        b->l1[c0].node = n1 >= 0 ? (int32_t)newid[n1] : -1;
        b->l1[c0].tok = n1 >= 0 ? b->node_tok[n1] : -1;
        for (int c1 = 0; c1 < 256; c1++) {
            int32_t n2 = n1 >= 0 ? trie_child(b, n1, (unsigned char)c1) : -1;
            b->l2[c0 << 8 | c1] = n2 >= 0 ? (int32_t)newid[n2] : -1;
        }
    }
    free(start); free(eb); free(newid); free(order);
    for (int id = 0; id < t->n_vocab; id++) {
        const unsigned char *s = (const unsigned char *)t->blob + t->off[id];
        size_t len = t->off[id + 1] - t->off[id];
        int32_t node = 0, pre = -1;
        for (size_t i = 0; i + 1 < len && node >= 0; i++) {
            node = trie_child(b, node, s[i]);
            if (node >= 0 && b->node_tok[node] >= 0) pre = b->node_tok[node];
        }
        prefix[id] = pre;
    }
    b->chain = malloc((size_t)t->n_vocab * sizeof *b->chain);
    if (!b->chain) { free(prefix); bt_free(b); return NULL; }
    for (int id = 0; id < t->n_vocab; id++) {
        size_t len = t->off[id + 1] - t->off[id];
        if (len > 255) b->long_tok = 1;
        b->chain[id] = (uint32_t)(prefix[id] >= 0 ? prefix[id] : 0xffff) << 8 | (uint32_t)(len & 255);
    }
    b->low_pair = t->n_vocab < 0xffff ? malloc(65536 * sizeof *b->low_pair) : NULL;   /* else ranks may be 0xffff */
    for (int i = 0; b->low_pair && i < 65536; i++) {
        int32_t m, a = i >> 8, c = i & 255;
        int32_t r = a < t->n_vocab && c < t->n_vocab ? tok_pair_rank(t, a, c, &m) : INT32_MAX;
        b->low_pair[i] = (uint16_t)(r < t->n_vocab ? r : 0xffff);
    }
    /* each token's last merge: the longest prefix split whose parts are
     * older tokens and compatible (ids are ranks) */
    for (int id = 0; id < t->n_vocab; id++) {
        b->info[id].left = b->info[id].right = (uint16_t)id;
        const char *s = t->blob + t->off[id];
        size_t len = t->off[id + 1] - t->off[id];
        for (int32_t t1 = prefix[id]; t1 >= 0; t1 = prefix[t1]) {
            size_t l1 = t->off[t1 + 1] - t->off[t1];
            int32_t t2 = tok_lookup(t, s + l1, len - l1);
            if (t1 < id && t2 >= 0 && t2 < id && bt_compatible(t, b, t1, t2, id)) {
                b->info[id].left = (uint16_t)t1;
                b->info[id].right = (uint16_t)t2;
                break;
            }
        }
    }
    free(prefix);
    /* a token of two or more bytes with no such merge would not come out
     * of merging its bytes; tok_cut.c merges parts from their bytes */
    tok_cut_build(t, &b->cut);
    b->cut.ok = 1;
    for (int id = 0; id < t->n_vocab; id++)
        if (b->info[id].left == id && t->off[id + 1] - t->off[id] >= 2 && tok_lookup(t, t->blob + t->off[id], t->off[id + 1] - t->off[id]) == id)
            b->cut.ok = 0;
    /* the digit tokens' dense numbering (see struct tok_bt) */
    b->dense = malloc((size_t)t->n_vocab * sizeof *b->dense);
    if (!b->dense) { bt_free(b); return NULL; }
    for (int id = 0; id < t->n_vocab; id++) {
        const char *s = t->blob + t->off[id];
        size_t len = t->off[id + 1] - t->off[id], i = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9') i++;
        b->dense[id] = len > 0 && i == len && tok_lookup(t, s, len) == id && b->n_dense < BT_DENSE_MAX ? (uint16_t)b->n_dense++ : 0xffff;
    }
    if (b->n_dense >= BT_DENSE_MAX) b->n_dense = 0;
    if (b->n_dense && !(b->dense_id = malloc(b->n_dense * sizeof *b->dense_id))) { bt_free(b); return NULL; }
    for (int id = 0; id < t->n_vocab; id++)
        if (b->n_dense && b->dense[id] != 0xffff) b->dense_id[b->dense[id]] = (uint16_t)id;
    /* the building tables are not needed for walks: give back their ~20 MB */
    free(b->ch);
    free(b->node_tok);
    b->ch = NULL;
    b->node_tok = NULL;
    return b;
}

void tok_bt_free(tok_t *t)
{
    bt_free(t->bt);
    t->bt = NULL;
}

static const tok_bt_t *bt_get(const tok_t *t)
{
    tok_t *m = (tok_t *)t;   /* the lazily built tables are the only mutable part */
    const tok_bt_t *b = __atomic_load_n(&m->bt, __ATOMIC_ACQUIRE);
    if (b) return b;
    pthread_mutex_lock(&m->bt_lock);
    if (!m->bt) __atomic_store_n(&m->bt, bt_build(t), __ATOMIC_RELEASE);
    pthread_mutex_unlock(&m->bt_lock);
    return m->bt;
}

/* the digit tokens' compatibility table (struct tok_bt), built on first use;
 * NULL on out-of-memory */
static const uint64_t *bt_digits(const tok_t *t, const tok_bt_t *b)
{
    tok_bt_t *mb = (tok_bt_t *)b;   /* dcompat is built once, like the tables themselves */
    const uint64_t *d = __atomic_load_n(&mb->dcompat, __ATOMIC_ACQUIRE);
    if (d) return d;
    tok_t *mt = (tok_t *)t;
    pthread_mutex_lock(&mt->bt_lock);
    if (!mb->dcompat) {
        size_t n = b->n_dense;
        uint64_t *m = calloc((n * n + 63) / 64, sizeof *m);
        for (size_t a = 0; m && a < n; a++)
            for (size_t c = 0; c < n; c++)
                if (bt_compatible(t, b, b->dense_id[a], b->dense_id[c], INT_MAX)) m[(a * n + c) >> 6] |= 1ull << ((a * n + c) & 63);
        if (m && !mb->d3 && !(mb->d3 = malloc(1000 * sizeof *mb->d3))) { free(m); m = NULL; }
        for (int w = 0; m && w < 1000; w++) {
            mb->d3[w].tok[0] = b->l1['0' + w / 100].tok;
            mb->d3[w].tok[1] = mb->d3[w].tok[2] = mb->d3[w].node = -1;
            int32_t node = b->l2[('0' + w / 100) << 8 | ('0' + w / 10 % 10)];
            if (node < 0) continue;
            mb->d3[w].tok[1] = b->nd[node].tok;
            uint32_t k0 = b->nd[node].kid >> 9;
            int j = bt_kid_find(b->kbyte + k0, b->nd[node].kid & 511, (unsigned char)('0' + w % 10));
            if (j < 0) continue;
            mb->d3[w].tok[2] = b->nd[k0 + j].tok;
            mb->d3[w].node = b->nd[k0 + j].kid & 511 ? (int32_t)(k0 + j) : -1;
        }
        __atomic_store_n(&mb->dcompat, m, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&mt->bt_lock);
    return mb->dcompat;
}

#define BT_MEMO_BITS TOK_MEMO_BITS
#define BT_MEMO (1u << BT_MEMO_BITS)

const tok_cut_t *tok_bt_cut(const tok_t *t)
{
    const tok_bt_t *b = bt_get(t);
    return b ? &b->cut : NULL;
}

int tok_bt_compatible(const tok_t *t, int a, int c)
{
    const tok_bt_t *b = bt_get(t);
    return b ? bt_compatible(t, b, a, c, INT_MAX) : -1;
}


/* index of byte c among node's children, -1 if none; a node with at most 8
 * children holds their bytes, found by a SWAR compare without another read */
static inline int bt_node_find(const tok_bt_t *b, const bt_node_t *nd, unsigned char c)
{
    uint32_t nk = nd->kid & 511;
    if (nk > sizeof nd->kb) return bt_kid_find(b->kbyte + (nd->kid >> 9), nk, c);
    uint64_t w;
    memcpy(&w, nd->kb, 8);
    w ^= 0x0101010101010101ull * c;
    /* the lowest zero byte of w is exact (borrows only reach higher bytes) */
    uint64_t z = (w - 0x0101010101010101ull) & ~w & 0x8080808080808080ull;
    if (!z) return -1;
    uint32_t j = (uint32_t)__builtin_ctzll(z) >> 3;
    return j < nk ? (int)j : -1;
}

/* the walk from node, p[at..from) read already, on through p[from..len):
 * appends the tokens it passes to tk/ln (n so far), returns their number */
static inline int bt_walk_on(const tok_bt_t *b, uint32_t node, const unsigned char *p, size_t at, size_t from,
                             size_t len, int32_t *tk, uint8_t *ln, int n)
{
    for (size_t i = from; i < len; i++) {
        const bt_node_t *nd = &b->nd[node];
        int j = bt_node_find(b, nd, p[i]);
        if (j < 0) break;
        node = (nd->kid >> 9) + (uint32_t)j;
        if (b->nd[node].tok >= 0) { tk[n] = b->nd[node].tok; ln[n++] = (uint8_t)(i - at + 1); }
    }
    return n;
}

/* the tokens that are prefixes of p[at..len), shortest first, with their
 * lengths; there is at least one (every byte is a token) */
static inline int bt_prefixes(const tok_bt_t *b, const unsigned char *p, size_t at, size_t len,
                              int32_t *tk, uint8_t *ln)
{
    int n = 0;
    tk[n] = b->l1[p[at]].tok;
    ln[n++] = 1;
    if (at + 1 >= len) return n;
    int32_t n2 = b->l2[p[at] << 8 | p[at + 1]];
    if (n2 < 0) return n;
    uint32_t node = (uint32_t)n2;
    if (b->nd[node].tok >= 0) { tk[n] = b->nd[node].tok; ln[n++] = 2; }
    return bt_walk_on(b, node, p, at, at + 2, len, tk, ln, n);
}

/* bt_prefixes at three digits p[at..at+3) of a digits piece */
static inline int bt_prefixes_digits(const tok_bt_t *b, const unsigned char *p, size_t at, size_t len,
                                     int32_t *tk, uint8_t *ln)
{
    const bt_d3_t *e = &b->d3[(p[at] - '0') * 100 + (p[at + 1] - '0') * 10 + (p[at + 2] - '0')];
    int n = 0;
    for (int k = 0; k < 3; k++)
        if (e->tok[k] >= 0) { tk[n] = e->tok[k]; ln[n++] = (uint8_t)(k + 1); }
    return e->node < 0 ? n : bt_walk_on(b, (uint32_t)e->node, p, at, at + 3, len, tk, ln, n);
}

size_t tok_bt_piece(const tok_t *t, const unsigned char *p, size_t len, int *out, tok_scratch_t *sc)
{
    if (t->n_vocab > 65536) return (size_t)-2;   /* the memo's keys are two 16-bit ids */
    const tok_bt_t *b = bt_get(t);
    if (!b) return (size_t)-1;
    if (b->long_tok) return (size_t)-2;
    size_t words = (len + 1 + 31) / 32;
    size_t need = words + (len + 3) / 4;
    if (sc->cap < need) {
        int32_t *a = realloc(sc->a, need * sizeof *a);
        if (!a) return (size_t)-1;
        sc->a = a;
        sc->cap = need;
    }
    uint32_t *live = (uint32_t *)sc->a;   /* bit i: encoding may still end at i */
    uint8_t *olen = (uint8_t *)(sc->a + words);   /* bytes of each kept token */
    memset(live, 0xff, words * sizeof *live);
    if (!sc->memo) {
        /* cleared a block at a time as slots are first used, so that a call
         * that meets one long word does not pay for clearing 512 KB (9 us) */
        sc->memo = malloc(BT_MEMO * sizeof *sc->memo);
        if (!sc->memo) return (size_t)-1;
        memset(sc->memo_ready, 0, sizeof sc->memo_ready);
    }
    uint16_t *memo = sc->memo;
    int32_t ct[256];
    uint8_t cl[256];
    size_t pos = 0, m = 0;
    int have = -1;          /* after a backtrack: ct/cl hold the have candidates at pos */
    /* a digits piece (an optional space, then \p{N}): its pairs in dtab */
    const uint64_t *dtab = NULL;
    if (b->n_dense && len > 1 && ((p[0] >= '0' && p[0] <= '9') || (p[0] == ' ' && p[1] >= '0' && p[1] <= '9')))
        if (!(dtab = bt_digits(t, b))) return (size_t)-1;
    while (pos < len) {
        int i = (have >= 0 ? have
                 : dtab && pos + 3 <= len && (unsigned)(p[pos] - '0') < 10 && (unsigned)(p[pos + 1] - '0') < 10
                   && (unsigned)(p[pos + 2] - '0') < 10 ? bt_prefixes_digits(b, p, pos, len, ct, cl)
                 : bt_prefixes(b, p, pos, len, ct, cl)) - 1;
        have = -1;
        int32_t last = m ? out[m - 1] : -1;
        for (; i >= 0; i--) {
            size_t end = pos + cl[i];
            if (!(live[end >> 5] >> (end & 31) & 1)) continue;
            if (last < 0) break;
            if (dtab && b->dense[last] != 0xffff && b->dense[ct[i]] != 0xffff) {
                size_t k = (size_t)b->dense[last] * b->n_dense + b->dense[ct[i]];
                if (dtab[k >> 6] >> (k & 63) & 1) break;
                continue;
            }
            /* key * odd is a bijection of 32-bit keys: its top bits pick the
             * slot, the rest (the tag) tell which key is there, exactly */
            uint32_t h = ((uint32_t)last << 16 | (uint32_t)ct[i]) * 0x9E3779B1u;
            uint32_t si = h >> (32 - BT_MEMO_BITS), blk = si >> TOK_MEMO_BLOCK_BITS;
            if (!(sc->memo_ready[blk >> 6] >> (blk & 63) & 1)) {
                memset(memo + ((size_t)blk << TOK_MEMO_BLOCK_BITS), 0, sizeof *memo << TOK_MEMO_BLOCK_BITS);
                sc->memo_ready[blk >> 6] |= 1ull << (blk & 63);
            }
            uint16_t *slot = &memo[si];
            uint16_t tag = (uint16_t)(0x8000u | (h & ((1u << (32 - BT_MEMO_BITS)) - 1)));
            int ok;
            if ((*slot & ~0x4000u) == tag) ok = *slot >> 14 & 1;
            else {
                ok = bt_compatible(t, b, last, ct[i], INT_MAX);
                *slot = (uint16_t)(tag | ok << 14);
            }
            if (ok) break;
        }
        if (i >= 0) {
            out[m] = ct[i];
            olen[m++] = cl[i];
            pos += cl[i];
            continue;
        }
        if (m == 0) return (size_t)-2;   /* cannot happen for a BPE vocabulary */
        live[pos >> 5] &= ~(1u << (pos & 31));
        pos -= olen[--m];
        have = 0;
        for (int32_t x = (int32_t)(b->chain[out[m]] >> 8); x != 0xffff; x = (int32_t)(b->chain[x] >> 8)) {
            ct[have] = x;
            cl[have++] = (uint8_t)(b->chain[x] & 255);
        }
        for (int a = 0, z = have - 1; a < z; a++, z--) {   /* shortest first, as a walk gives them */
            int32_t tt = ct[a]; ct[a] = ct[z]; ct[z] = tt;
            uint8_t ll = cl[a]; cl[a] = cl[z]; cl[z] = ll;
        }
    }
    return m;
}
