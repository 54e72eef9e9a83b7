/* tok_int.h: the inside of a tokenizer, shared by the files of src/tok/ only.
 *
 * One representation serves both sources of tokenizers. The vocabulary is a
 * blob of raw token bytes indexed by id. Merging is driven by one table of
 * mergeable adjacent pairs (a, b) -> (rank, merged id):
 *   - r50k follows tiktoken, which ranks a pair by the rank of the token its
 *     bytes concatenate to, so the table holds every split of every token
 *     into two tokens, rank = merged id, and a piece that is itself a token
 *     is that token (whole_lookup);
 *   - Hugging Face BPE ranks by position in the merges list (rank = index),
 *     whole_lookup only when the file says "ignore_merges".
 * Both then run the same algorithm: merge the lowest-ranked adjacent pair,
 * leftmost first, until none is mergeable.
 */
#ifndef TUNERY_TOK_INT_H
#define TUNERY_TOK_INT_H

#include "tok/tok.h"
#include <pthread.h>
#include <stdint.h>

typedef struct {
    int id;
    int always;        /* matched even without allow_special (HF non-special added token) */
    const char *s;     /* bytes, points into the vocab blob */
    size_t len;
} tok_special_t;

enum { TOK_PRE_GPT2 = 0, TOK_PRE_REGEX = 1 };
typedef struct tok_bt tok_bt_t;
typedef struct {
    uint64_t key;            /* a << 32 | b; UINT64_MAX = empty */
    int32_t rank, merged;
} tok_pair_t;
/* The compact form, when ids fit 16 bits and rank = merged id (r50k): half
 * the bytes, so more of the table stays in cache. */
typedef struct {
    uint32_t key;            /* a << 16 | b; UINT32_MAX = empty */
    int32_t rank;
} tok_pair32_t;

struct tok {
    int n_vocab;
    uint32_t *off;           /* n_vocab + 1 offsets into blob */
    char *blob;
    /* bytes -> id, open addressing, -1 = empty */
    int32_t *str_tab;
    uint32_t str_mask;
    /* (a << 32 | b) -> {rank, merged}; key UINT64_MAX = empty */
    tok_pair_t *pairs;       /* slot: key, rank, merged; one cache line holds 4 */
    tok_pair32_t *pairs32;   /* instead of pairs when it fits (see tok_pair32_t) */
    uint32_t pair_mask;
    /* in front of the 2 MB pairs32 table: a one-hash Bloom filter of the
     * keys, 2^21 bits (256 KB, stays in L2), since most pairs asked about
     * are not mergeable; and one byte per 2^17 top bits of that hash, the
     * least rank >> 8 of the keys there (0xff none), which answers "ranked
     * below limit?" (tok_bt.c's question) for most pairs that pass. 128 KB:
     * at 2 MB (one byte per Bloom bit) its reads missed L2 and were a third
     * of a compatibility check's time; 64-256 KB measured alike */
    uint64_t *pair_bits;
    uint8_t *pair_q;
    /* the pair of two single bytes, directly: every piece starts with these */
    struct { int32_t rank, merged; } *byte_pair;   /* 65536, [b0 << 8 | b1] */
    uint16_t *byte_pair16;   /* the same, 128 KB, with pairs32: merged id (= rank), 0xffff none */
    /* merges in rank order, for writing merges.txt: {a, b} */
    int32_t *merges;
    int n_merges;
    int byte_id[256];
    tok_special_t *specials;
    int n_special;
    int eot;
    int whole_lookup;
    int pre;                 /* TOK_PRE_* */
    int add_prefix_space;
    void *re;                /* pcre2_code_8 *, for TOK_PRE_REGEX */
    char *re_src;            /* the regex as written in the file */
    int shared;              /* the process-wide r50k: tok_free ignores it */
    int bt_ok;               /* ranks are ids (tiktoken): tok_bt.c may encode giant pieces */
    tok_bt_t *bt;            /* its tables, built on first use under bt_lock */
    pthread_mutex_t bt_lock;
};

#ifndef TOK_PQ_BITS
#define TOK_PQ_BITS 17
#endif
#ifndef TOK_BLOOM_BITS
#define TOK_BLOOM_BITS 21
#endif
_Static_assert(TOK_PQ_BITS <= TOK_BLOOM_BITS, "pair_q is indexed by the top bits of the Bloom filter's hash");
static inline uint32_t tok_pq_slot(uint32_t key)
{
    return (uint32_t)(((uint64_t)key * 0xC2B2AE3D27D4EB4Full) >> (64 - TOK_BLOOM_BITS));
}

/* rank of merging adjacent tokens a, b or INT_MAX; *merged gets the result */
static inline int32_t tok_pair_rank(const tok_t *t, int32_t a, int32_t b, int32_t *merged)
{
    if (t->pairs32) {
        uint32_t key = (uint32_t)a << 16 | (uint32_t)b;
        uint32_t f = tok_pq_slot(key);
        if (!(t->pair_bits[f >> 6] >> (f & 63) & 1)) return INT32_MAX;
        uint32_t h = (uint32_t)(((uint64_t)key * 0x9E3779B97F4A7C15ull) >> 32) & t->pair_mask;
        for (;;) {
            uint32_t k = t->pairs32[h].key;
            if (k == key) return *merged = t->pairs32[h].rank;
            if (k == UINT32_MAX) return INT32_MAX;
            h = (h + 1) & t->pair_mask;
        }
    }
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    uint32_t h = (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & t->pair_mask;
    for (;;) {
        uint64_t k = t->pairs[h].key;
        if (k == key) {
            *merged = t->pairs[h].merged;
            return t->pairs[h].rank;
        }
        if (k == UINT64_MAX) return INT32_MAX;
        h = (h + 1) & t->pair_mask;
    }
}

/* rank of merging the tokens of bytes b0, b1 or INT32_MAX; *merged gets the result */
static inline int32_t tok_byte_pair(const tok_t *t, unsigned b0, unsigned b1, int32_t *merged)
{
    if (t->byte_pair16) {
        uint16_t m = t->byte_pair16[b0 << 8 | b1];
        *merged = m;
        return m == 0xffff ? INT32_MAX : m;
    }
    *merged = t->byte_pair[b0 << 8 | b1].merged;
    return t->byte_pair[b0 << 8 | b1].rank;
}

/* 1 if adjacent tokens a, b merge with a rank below limit */
static inline int tok_pair_below(const tok_t *t, int32_t a, int32_t b, int32_t limit)
{
    if (t->pair_q) {
        uint32_t g = tok_pq_slot((uint32_t)a << 16 | (uint32_t)b);
        if (!(t->pair_bits[g >> 6] >> (g & 63) & 1)) return 0;
        if ((int32_t)t->pair_q[g >> (TOK_BLOOM_BITS - TOK_PQ_BITS)] << 8 >= limit) return 0;
    }
    int32_t m;
    return tok_pair_rank(t, a, b, &m) < limit;
}

/* Builds the hash tables of t from off/blob/pairs; t owns all arrays given.
 * pairs: n_pairs * {a, b, rank, merged}. Fills byte_id; every single byte
 * must be a token. */
int tok_build(tok_t *t, const uint32_t *pairs, size_t n_pairs, char *err);
int tok_lookup(const tok_t *t, const char *s, size_t len);
/* tokenizer.json text already in memory; what names it in errors. */
int tok_load_hf_mem(tok_t **out, const char *data, size_t len, const char *what, char *err);
/* A TUNTOK1 file (data/tok/r50k.tok, see scripts/build_r50k.mjs). */
int tok_load_file(tok_t **out, const char *path, char *err);

/* Pre-tokenizer: end of the piece that starts at i (GPT-2 rules). */
size_t tok_pretok_gpt2(const unsigned char *s, size_t i, size_t n);

/* BPE of one piece. Appends ids to out (room for len ids must exist) and
 * returns their number. scratch is per call, grown on demand. */
#define TOK_MEMO_BITS 18      /* tok_bt.c's memo: 2^18 16-bit slots, 512 KB */
#define TOK_MEMO_BLOCK_BITS 9 /* cleared in blocks of 1 KB, on first use */
typedef struct {
    int32_t *a;              /* ids / heap / links, grown to need */
    size_t cap;
    uint16_t *memo;          /* tok_bt.c's pair-compatibility memo */
    uint64_t memo_ready[(1u << (TOK_MEMO_BITS - TOK_MEMO_BLOCK_BITS)) / 64];   /* blocks cleared */
} tok_scratch_t;
size_t tok_bpe_piece(const tok_t *t, const unsigned char *p, size_t len,
                     int *out, tok_scratch_t *sc);
void tok_scratch_free(tok_scratch_t *sc);
/* The same by algorithm, for tests: 0 short scan (len <= 64), 1 heap,
 * 2 backtracking, 3 windowed heap, 4 parts between cuts, 5 merging in
 * registers (len <= 32) (the last four need tiktoken ranks; 4 and 5 give
 * (size_t)-2 where they do not apply). 1 and 5 merge without the
 * whole-piece lookup. */
size_t tok_bpe_piece_alg(const tok_t *t, const unsigned char *p, size_t len, int *out,
                         tok_scratch_t *sc, int alg);

/* Linear-time BPE of giant pieces (tok_bt.c), for bt_ok tokenizers. Returns
 * the number of ids, (size_t)-1 on out-of-memory, (size_t)-2 if the
 * vocabulary defeats it (the caller falls back to the heap). */
size_t tok_bt_piece(const tok_t *t, const unsigned char *p, size_t len, int *out, tok_scratch_t *sc);
void tok_bt_free(tok_t *t);
/* 1 if BPE of bytes(a) + bytes(b) gives [a, b], 0 if not, -1 without tables (OOM). */
int tok_bt_compatible(const tok_t *t, int a, int b);

/* Cutting long pieces where no token can span (tok_cut.c): its tables,
 * built with the backtracking encoder's. */
#define TOK_CUT_TRI_BITS 18
typedef struct {
    int ok;                           /* every token merges from its bytes: parts may be merged alone */
    uint64_t pair_tok[1024];          /* bit x << 8 | y: "xy" is a token */
    uint64_t tri[(1u << TOK_CUT_TRI_BITS) / 64];   /* Bloom filter of byte triples inside tokens */
} tok_cut_t;
void tok_cut_build(const tok_t *t, tok_cut_t *c);
const tok_cut_t *tok_bt_cut(const tok_t *t);   /* NULL on out-of-memory */
/* BPE of a piece by its parts between cuts; (size_t)-2 where it does not
 * apply (no AVX-512BW, not tiktoken ranks, fewer than one cut in 8 bytes
 * at the start), -1 OOM */
size_t tok_cut_piece(const tok_t *t, const unsigned char *p, size_t len, int *out, tok_scratch_t *sc);
/* Merging alone (no whole-piece lookup) of 2..32 bytes, tiktoken ranks with
 * byte_pair16; (size_t)-2 without AVX-512BW */
size_t tok_merge_small(const tok_t *t, const unsigned char *p, size_t len, int *out);

/* Regex pre-tokenizer (PCRE2), tok_re.c */
int tok_re_compile(tok_t *t, const char *pattern, char *err);
void tok_re_free(tok_t *t);
/* Calls fn(piece) for each piece of text[0..len): matches and the gaps between. */
typedef int (*tok_piece_fn)(const unsigned char *p, size_t len, void *ctx);
int tok_re_split(const tok_t *t, const unsigned char *s, size_t len, tok_piece_fn fn, void *ctx);

#endif
