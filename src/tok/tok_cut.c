/* tok_cut.c: long pieces cut where no token can span, short parts merged in
 * registers.
 *
 * Why: a 10 MB piece of random letters cost 3.2x text per byte in the
 * backtracking encoder (tok_bt.c), almost all of it in pair compatibility
 * checks (their memo misses on such varied pairs). But BPE never merges
 * across a place that no token of the vocabulary spans: every merge makes a
 * token, and that token would span it. So the piece's encoding is the
 * encodings of the parts between such places, each merged on its own
 * (without the whole-piece lookup, which applies to pre-tokenizer pieces
 * only). In random letters a quarter of all places are such cuts and the
 * parts average 4 bytes; in text without whitespace about a tenth.
 *
 * A place between bytes x = p[i-1] and y = p[i] is spanned by a token only
 * if the token is "xy", or holds the triple p[i-2..i] or p[i-1..i+1]. So i
 * is a cut when the pair xy is not a token and neither triple occurs in any
 * token: one bit for the pair (8 KB) and a one-hash Bloom filter of the
 * triples (32 KB, in L1; a false positive only loses a cut). Eight places
 * at a time by three 256-bit gathers: with 512-bit ones the text without
 * whitespace encoded 5% slower as a whole (the core likely clocks down).
 * A piece with fewer than one cut in 8 bytes at its start (digits, one
 * letter, most words run together) is left to the backtracking encoder:
 * its parts would be long, where backtracking does as well, and looking
 * for cuts costs about 1 ns a byte.
 *
 * Parts of up to 32 bytes are merged with their ids and pair ranks in two
 * 32-lane registers (AVX-512BW): minimum by PHMINPOSUW, removal of the
 * merged-away part by one permute, so a merge costs its two pair lookups.
 * (tok_bpe.c merges pieces of 4-16 bytes that are not a token the same way.)
 * Longer stretches between short parts go to the backtracking encoder
 * whole. Only for tiktoken ranks (rank = merged id, ids below 0xffff: r50k)
 * and only where every token of two or more bytes is what merging its
 * bytes gives (tok_bt.c checks that while finding each token's last merge),
 * since parts are merged from their bytes. Without AVX-512BW pieces take
 * the old path.
 */
#include "tok/tok_int.h"
#include <limits.h>
#include <string.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif

#define CUT_SMALL 32         /* parts up to this long are merged in registers */
#define CUT_EVERY 8          /* fewer cuts than one in this many bytes at the start: not worth it */

static inline uint32_t tri_slot(unsigned a, unsigned b, unsigned c)
{
    return (uint32_t)((a << 16 | b << 8 | c) * 0x9E3779B1u) >> (32 - TOK_CUT_TRI_BITS);
}

void tok_cut_build(const tok_t *t, tok_cut_t *c)
{
    memset(c, 0, sizeof *c);
    for (int id = 0; id < t->n_vocab; id++) {
        const unsigned char *s = (const unsigned char *)t->blob + t->off[id];
        size_t n = t->off[id + 1] - t->off[id];
        for (size_t i = 1; i < n; i++) {
            unsigned k = (unsigned)s[i - 1] << 8 | s[i];
            if (n == 2) c->pair_tok[k >> 6] |= 1ull << (k & 63);
            if (i >= 2) {
                uint32_t h = tri_slot(s[i - 2], s[i - 1], s[i]);
                c->tri[h >> 6] |= 1ull << (h & 63);
            }
        }
    }
}

#ifdef __AVX512BW__
static inline uint16_t rank16(const tok_t *t, uint16_t a, uint16_t b)
{
    int32_t m;
    return tok_pair_rank(t, a, b, &m) == INT32_MAX ? 0xffff : (uint16_t)m;
}

/* BPE by merging p[0..len), 2 <= len <= 32: lane i of id holds part i, lane
 * i of r the rank (= merged id) of parts i and i+1, 0xffff if they do not
 * merge; the lowest rank merges, the leftmost on a tie (PHMINPOSUW's) */
size_t tok_merge_small(const tok_t *t, const unsigned char *p, size_t len, int *out)
{
    uint16_t ib[32] __attribute__((aligned(64))), rb[32] __attribute__((aligned(64)));
    _mm512_store_si512((void *)rb, _mm512_set1_epi16(-1));
    for (size_t i = 0; i < len; i++) ib[i] = (uint16_t)t->byte_id[p[i]];
    for (size_t i = 0; i + 1 < len; i++) rb[i] = t->byte_pair16[p[i] << 8 | p[i + 1]];
    __m512i id = _mm512_load_si512((const void *)ib), r = _mm512_load_si512((const void *)rb);
    const __m512i iota = _mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16,
                                          15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    /* lane i takes lane i + 1 above the merge; lane 31 keeps its 0xffff rank */
    const __m512i next = _mm512_min_epu16(_mm512_add_epi16(iota, _mm512_set1_epi16(1)), _mm512_set1_epi16(31));
    uint32_t m = (uint32_t)len;
    for (;;) {
        /* each quarter's minimum as rank << 8 | lane: the least is the
         * lowest rank, the leftmost on a tie */
        uint32_t x = (uint32_t)_mm_cvtsi128_si32(_mm_minpos_epu16(_mm512_castsi512_si128(r)));
        uint32_t key = (x & 0xffff) << 8 | (x >> 16 & 7);
        if (m > 9) {
            x = (uint32_t)_mm_cvtsi128_si32(_mm_minpos_epu16(_mm512_extracti32x4_epi32(r, 1)));
            uint32_t k1 = (x & 0xffff) << 8 | (8 + (x >> 16 & 7));
            key = k1 < key ? k1 : key;
        }
        if (m > 17) {
            x = (uint32_t)_mm_cvtsi128_si32(_mm_minpos_epu16(_mm512_extracti32x4_epi32(r, 2)));
            uint32_t k2 = (x & 0xffff) << 8 | (16 + (x >> 16 & 7));
            key = k2 < key ? k2 : key;
        }
        if (m > 25) {
            x = (uint32_t)_mm_cvtsi128_si32(_mm_minpos_epu16(_mm512_extracti32x4_epi32(r, 3)));
            uint32_t k3 = (x & 0xffff) << 8 | (24 + (x >> 16 & 7));
            key = k3 < key ? k3 : key;
        }
        uint32_t best = key >> 8, bi = key & 31;
        if (best == 0xffff) break;
        /* the merged pair's neighbours, read out of the register before it
         * moves (a store and reloads waited on store forwarding: -8% a merge) */
        uint32_t nb = (uint32_t)_mm_cvtsi128_si32(_mm512_castsi512_si128(_mm512_permutexvar_epi16(
            _mm512_castsi128_si512(_mm_cvtsi32_si128((int)((bi - 1) & 31) | (int)((bi + 2) & 31) << 16)), id)));
        __m512i idx = _mm512_mask_blend_epi16(_mm512_cmpgt_epu16_mask(iota, _mm512_set1_epi16((short)bi)), iota, next);
        id = _mm512_mask_set1_epi16(_mm512_permutexvar_epi16(idx, id), 1u << bi, (short)best);
        r = _mm512_permutexvar_epi16(idx, r);
        m--;
        if (bi > 0) r = _mm512_mask_set1_epi16(r, 1u << (bi - 1), (short)rank16(t, (uint16_t)nb, (uint16_t)best));
        r = _mm512_mask_set1_epi16(r, 1u << bi, (short)(bi + 1 < m ? rank16(t, (uint16_t)best, (uint16_t)(nb >> 16)) : 0xffff));
    }
    _mm512_store_si512((void *)ib, id);
    for (uint32_t i = 0; i < m; i++) out[i] = ib[i];
    return m;
}
#else
size_t tok_merge_small(const tok_t *t, const unsigned char *p, size_t len, int *out)
{
    return (size_t)-2;
}
#endif

#ifdef __AVX512BW__
/* 1 if no token can span the place between p[i-1] and p[i], 0 < i < len */
static inline uint64_t is_cut(const tok_cut_t *c, const unsigned char *p, size_t i, size_t len)
{
    unsigned k = (unsigned)p[i - 1] << 8 | p[i];
    uint32_t hl = tri_slot(p[i - 2 + (i < 2)], p[i - 1], p[i]);        /* i < 2: no triple to the left */
    uint32_t hr = tri_slot(p[i - 1], p[i], p[i + (i + 1 < len)]);      /* i + 1 == len: none to the right */
    uint64_t span = c->pair_tok[k >> 6] >> (k & 63)
                  | (i >= 2 ? c->tri[hl >> 6] >> (hl & 63) : 0)
                  | (i + 1 < len ? c->tri[hr >> 6] >> (hr & 63) : 0);
    return ~span & 1;
}

/* cuts at base + j for j < 64, base + j in [lo, hi): 16 places at a time
 * by three gathers where the bytes around them are all inside the piece */
static inline uint64_t cut_mask(const tok_cut_t *c, const unsigned char *p, size_t base, size_t lo, size_t hi, size_t len)
{
    uint64_t cuts = 0;
    size_t i = lo;
#ifdef __AVX2__
    if (i < 2) for (; i < 2 && i < hi; i++) cuts |= is_cut(c, p, i, len) << (i - base);
    const __m256i mul = _mm256_set1_epi32((int)0x9E3779B1u), low5 = _mm256_set1_epi32(31);
    for (; i + 8 <= hi && i + 8 < len; i += 8) {
        __m256i w = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p + i - 2)));
        __m256i x = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p + i - 1)));
        __m256i y = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p + i)));
        __m256i z = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p + i + 1)));
        __m256i k = _mm256_or_si256(_mm256_slli_epi32(x, 8), y);
        __m256i hl = _mm256_srli_epi32(_mm256_mullo_epi32(_mm256_or_si256(_mm256_slli_epi32(w, 16), k), mul), 32 - TOK_CUT_TRI_BITS);
        __m256i hr = _mm256_srli_epi32(_mm256_mullo_epi32(_mm256_or_si256(_mm256_slli_epi32(k, 8), z), mul), 32 - TOK_CUT_TRI_BITS);
        __m256i a = _mm256_srlv_epi32(_mm256_i32gather_epi32((const int *)c->pair_tok, _mm256_srli_epi32(k, 5), 4), _mm256_and_si256(k, low5));
        __m256i b = _mm256_srlv_epi32(_mm256_i32gather_epi32((const int *)c->tri, _mm256_srli_epi32(hl, 5), 4), _mm256_and_si256(hl, low5));
        __m256i d = _mm256_srlv_epi32(_mm256_i32gather_epi32((const int *)c->tri, _mm256_srli_epi32(hr, 5), 4), _mm256_and_si256(hr, low5));
        __m256i span = _mm256_slli_epi32(_mm256_or_si256(_mm256_or_si256(a, b), d), 31);
        cuts |= (uint64_t)(uint8_t)~_mm256_movemask_ps(_mm256_castsi256_ps(span)) << (i - base);
    }
#endif
    for (; i < hi; i++) cuts |= is_cut(c, p, i, len) << (i - base);
    return cuts;
}

/* BPE by merging alone of a part of 1..32 bytes: the shortest straight
 * from the byte-pair table, as most parts of random letters are */
static inline size_t merge_part(const tok_t *t, const unsigned char *p, size_t n, int *out)
{
    if (n == 1) { out[0] = t->byte_id[p[0]]; return 1; }
    if (n == 2) {
        uint32_t r = t->byte_pair16[p[0] << 8 | p[1]];
        if (r != 0xffff) { out[0] = (int)r; return 1; }
        out[0] = t->byte_id[p[0]];
        out[1] = t->byte_id[p[1]];
        return 2;
    }
    return tok_merge_small(t, p, n, out);
}

/* the stretch p[from..to) to the backtracking encoder, if any */
static size_t flush(const tok_t *t, const unsigned char *p, size_t from, size_t to, int *out, tok_scratch_t *sc)
{
    if (from == to) return 0;
    if (to - from == 1) { out[0] = t->byte_id[p[from]]; return 1; }
    return tok_bt_piece(t, p + from, to - from, out, sc);
}

size_t tok_cut_piece(const tok_t *t, const unsigned char *p, size_t len, int *out, tok_scratch_t *sc)
{
    if (!t->bt_ok || !t->byte_pair16 || len < 3) return (size_t)-2;
    const tok_cut_t *c = tok_bt_cut(t);
    if (!c) return (size_t)-1;
    if (!c->ok) return (size_t)-2;
    /* parts: [start, i) between cuts; the long ones are left pending in
     * [pend, start) and go to the backtracking encoder together */
    size_t m = 0, start = 0, pend = 0;
    for (size_t base = 0; base <= len; base += 64) {
        size_t hi = base + 64 < len ? base + 64 : len;
        uint64_t cuts = cut_mask(c, p, base, base ? base : 1, hi, len);
        if (len - base < 64) cuts |= 1ull << (len - base);   /* the end closes the last part */
        /* fewer than one cut in CUT_EVERY bytes at the start (digits, one
         * letter, words without spaces): the parts are long, backtracking
         * does as well on them, and looking for cuts would only cost */
        if (base == 0 && (size_t)__builtin_popcountll(cuts) * CUT_EVERY < hi) return (size_t)-2;
        while (cuts) {
            size_t i = base + (size_t)__builtin_ctzll(cuts);
            cuts &= cuts - 1;
            if (i - start <= CUT_SMALL) {
                size_t k = flush(t, p, pend, start, out + m, sc);
                if (k >= (size_t)-2) return k;
                m += k;
                m += merge_part(t, p + start, i - start, out + m);
                pend = i;
            }
            start = i;
        }
    }
    size_t k = flush(t, p, pend, len, out + m, sc);
    return k >= (size_t)-2 ? k : m + k;
}
#else
size_t tok_cut_piece(const tok_t *t, const unsigned char *p, size_t len, int *out, tok_scratch_t *sc)
{
    return (size_t)-2;   /* parts would be merged by the scalar scan: no faster than backtracking */
}
#endif
