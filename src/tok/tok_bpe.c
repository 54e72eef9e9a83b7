/* tok_bpe.c: byte-pair merging of one pre-tokenized piece.
 *
 * The rule (tiktoken's and Hugging Face's alike): start from one token per
 * byte, repeatedly merge the adjacent pair of lowest rank, the leftmost one on
 * a tie, until no adjacent pair is mergeable.
 *
 * Most pieces are a few bytes long, so a flat array scanned for the minimum
 * is fastest there (what tiktoken does); for tiktoken ranks that array is
 * two 32-lane registers (tok_cut.c's tok_merge_small), which also merges
 * the parts that long pieces are cut into. A scan per merge is quadratic,
 * though, and a pre-tokenizer happily produces a 10 MB piece from 10 MB
 * without spaces; long pieces therefore use a doubly linked list of parts and
 * an indexed binary min-heap of the pair that starts at each part, ordered by
 * (rank, position): O(n log n) time, 24 bytes of memory per byte of piece.
 */
#include "tok/tok_int.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define BPE_SHORT 64

#define pair_rank tok_pair_rank

static size_t bpe_short(const tok_t *t, const unsigned char *p, size_t len, int *out)
{
    int32_t ids[BPE_SHORT], rank[BPE_SHORT], mg[BPE_SHORT];
    int m = (int)len;
    for (int i = 0; i < m; i++) ids[i] = t->byte_id[p[i]];
    for (int i = 0; i + 1 < m; i++) rank[i] = tok_byte_pair(t, p[i], p[i + 1], &mg[i]);
    while (m > 1) {
        int32_t best = INT_MAX;
        int bi = -1;
        for (int i = 0; i + 1 < m; i++)
            if (rank[i] < best) { best = rank[i]; bi = i; }
        if (bi < 0) break;
        ids[bi] = mg[bi];
        /* drop part bi+1 and the pair that started at it */
        memmove(ids + bi + 1, ids + bi + 2, (size_t)(m - bi - 2) * sizeof *ids);
        if (bi + 2 < m) {
            memmove(rank + bi + 1, rank + bi + 2, (size_t)(m - bi - 3) * sizeof *rank);
            memmove(mg + bi + 1, mg + bi + 2, (size_t)(m - bi - 3) * sizeof *mg);
        }
        m--;
        if (bi > 0) rank[bi - 1] = pair_rank(t, ids[bi - 1], ids[bi], &mg[bi - 1]);
        if (bi + 1 < m) rank[bi] = pair_rank(t, ids[bi], ids[bi + 1], &mg[bi]);
    }
    memcpy(out, ids, (size_t)m * sizeof *out);
    return (size_t)m;
}

/* ---- long pieces: linked list + indexed heap ---- */

typedef struct {
    int32_t *id, *nxt, *prv, *rank, *mg, *heap, *hpos;
    int32_t hn;
} lheap_t;

static inline int lh_less(const lheap_t *h, int32_t x, int32_t y)
{
    return h->rank[x] < h->rank[y] || (h->rank[x] == h->rank[y] && x < y);
}

static inline void lh_set(lheap_t *h, int32_t i, int32_t node)
{
    h->heap[i] = node;
    h->hpos[node] = i;
}

static void lh_up(lheap_t *h, int32_t i)
{
    int32_t node = h->heap[i];
    while (i > 0) {
        int32_t pi = (i - 1) / 2;
        if (!lh_less(h, node, h->heap[pi])) break;
        lh_set(h, i, h->heap[pi]);
        i = pi;
    }
    lh_set(h, i, node);
}

static void lh_down(lheap_t *h, int32_t i)
{
    int32_t node = h->heap[i];
    for (;;) {
        int32_t c = 2 * i + 1;
        if (c >= h->hn) break;
        if (c + 1 < h->hn && lh_less(h, h->heap[c + 1], h->heap[c])) c++;
        if (!lh_less(h, h->heap[c], node)) break;
        lh_set(h, i, h->heap[c]);
        i = c;
    }
    lh_set(h, i, node);
}

static void lh_remove(lheap_t *h, int32_t node)
{
    int32_t i = h->hpos[node];
    if (i < 0) return;
    h->hpos[node] = -1;
    int32_t last = h->heap[--h->hn];
    if (i == h->hn) return;
    lh_set(h, i, last);
    lh_up(h, i);
    lh_down(h, h->hpos[last]);
}

/* recompute the pair starting at node; keep the heap in step */
static void lh_update(const tok_t *t, lheap_t *h, int32_t node)
{
    int32_t r = h->nxt[node] < 0 ? INT_MAX : pair_rank(t, h->id[node], h->id[h->nxt[node]], &h->mg[node]);
    if (r == INT_MAX) { lh_remove(h, node); h->rank[node] = INT_MAX; return; }
    h->rank[node] = r;
    if (h->hpos[node] < 0) {
        h->hpos[node] = h->hn;
        h->heap[h->hn++] = node;
        lh_up(h, h->hpos[node]);
    } else {
        lh_up(h, h->hpos[node]);
        lh_down(h, h->hpos[node]);
    }
}

static size_t bpe_long(const tok_t *t, const unsigned char *p, size_t len, int *out, tok_scratch_t *sc)
{
    size_t need = 7 * len;
    if (sc->cap < need) {
        int32_t *a = realloc(sc->a, need * sizeof *a);
        if (!a) return (size_t)-1;
        sc->a = a;
        sc->cap = need;
    }
    int32_t n = (int32_t)len;
    lheap_t h = { sc->a, sc->a + len, sc->a + 2 * len, sc->a + 3 * len, sc->a + 4 * len,
                  sc->a + 5 * len, sc->a + 6 * len, 0 };
    for (int32_t i = 0; i < n; i++) {
        h.id[i] = t->byte_id[p[i]];
        h.nxt[i] = i + 1 < n ? i + 1 : -1;
        h.prv[i] = i - 1;
        h.hpos[i] = -1;
    }
    for (int32_t i = 0; i + 1 < n; i++) {
        h.rank[i] = tok_byte_pair(t, p[i], p[i + 1], &h.mg[i]);
        if (h.rank[i] != INT_MAX) { h.hpos[i] = h.hn; h.heap[h.hn++] = i; }
    }
    h.rank[n - 1] = INT_MAX;
    for (int32_t i = h.hn / 2 - 1; i >= 0; i--) lh_down(&h, i);
    while (h.hn > 0) {
        int32_t a = h.heap[0], b = h.nxt[a];
        h.id[a] = h.mg[a];
        /* unlink b */
        lh_remove(&h, b);
        h.nxt[a] = h.nxt[b];
        if (h.nxt[b] >= 0) h.prv[h.nxt[b]] = a;
        lh_update(t, &h, a);
        if (h.prv[a] >= 0) lh_update(t, &h, h.prv[a]);
    }
    size_t m = 0;
    for (int32_t i = 0; i >= 0; i = h.nxt[i]) out[m++] = h.id[i];
    return m;
}

/* Giant pieces, tiktoken ranks: the heap over a 10 MB piece misses the cache
 * at every step. Instead, merge windows of BPE_WIN bytes (cache-resident),
 * keep each window's tokens up to the last boundary BPE_MARGIN bytes before
 * its end, and start the next window there. This is exact, not a guess: a
 * token sequence is the BPE encoding of its bytes iff every adjacent pair is
 * compatible (tok_bt.c); inside a window the pairs are, being a BPE output,
 * and each junction is checked. A failing junction backs up a few tokens and
 * retries; the backtracking encoder is the last resort. */
#define BPE_WIN 4096
#define BPE_MARGIN 256
/* from this length on (tiktoken ranks), backtracking beats the scan and the
 * heap: measured on text with its whitespace removed (pieces of tens to
 * hundreds of bytes between punctuation), 16/32/64/128 tried, 32 best;
 * since the pair-table filters (tok_int.h), 8/12/16/24/32/48 tried, 16 best
 * (0.34 vs 0.38 CPU-s for 10 MB, the text itself unchanged) */
#define BPE_BT_MIN 16

static size_t bpe_windowed(const tok_t *t, const unsigned char *p, size_t len, int *out, tok_scratch_t *sc)
{
    size_t pos = 0, m = 0;
    int retries = 0;
    while (pos < len) {
        size_t w = len - pos < BPE_WIN ? len - pos : BPE_WIN;
        size_t k = w <= BPE_SHORT ? bpe_short(t, p + pos, w, out + m) : bpe_long(t, p + pos, w, out + m, sc);
        if (k == (size_t)-1) return k;
        size_t keep = k, end = pos + w;
        if (end < len) {
            /* drop the tokens that end within the margin */
            size_t at = end;
            while (keep > 1 && at > end - BPE_MARGIN) at -= t->off[out[m + keep - 1] + 1] - t->off[out[m + keep - 1]], keep--;
            end = at;
        }
        if (m > 0) {
            int ok = tok_bt_compatible(t, out[m - 1], out[m]);
            if (ok < 0) return (size_t)-2;
            if (!ok) {
                /* back up over a few kept tokens and merge again from there */
                if (++retries > 64) return (size_t)-2;
                for (int i = 0; i < 4 && m > 0; i++) {
                    m--;
                    pos -= t->off[out[m] + 1] - t->off[out[m]];
                }
                continue;
            }
        }
        m += keep;
        pos = end;
    }
    return m;
}

size_t tok_bpe_piece(const tok_t *t, const unsigned char *p, size_t len, int *out, tok_scratch_t *sc)
{
    if (len == 1) { out[0] = t->byte_id[p[0]]; return 1; }
    if (len == 2 && t->bt_ok && t->byte_pair16) {
        /* tiktoken ranks: the pair table holds every split of every token,
         * so the two bytes' pair is the whole lookup, one L2 read cheaper */
        uint16_t m = t->byte_pair16[p[0] << 8 | p[1]];
        if (m != 0xffff) { out[0] = m; return 1; }
        out[0] = t->byte_id[p[0]];
        out[1] = t->byte_id[p[1]];
        return 2;
    }
    if (len == 3 && t->bt_ok && t->byte_pair16) {
        /* three bytes: merge the lower of the two byte pairs, then look up
         * the one pair left, no hashing of the piece. If the piece is a
         * token, that last pair is one of its splits, all of which are in
         * the pair table, so the whole-piece rule holds; a token none of
         * whose byte pairs merges takes the general path */
        uint32_t r1 = t->byte_pair16[p[0] << 8 | p[1]], r2 = t->byte_pair16[p[1] << 8 | p[2]];
        if ((r1 & r2) != 0xffff) {
            int32_t a = r1 <= r2 ? (int32_t)r1 : t->byte_id[p[0]];
            int32_t b = r1 <= r2 ? t->byte_id[p[2]] : (int32_t)r2, m;
            if (tok_pair_rank(t, a, b, &m) != INT32_MAX) { out[0] = m; return 1; }
            out[0] = a;
            out[1] = b;
            return 2;
        }
    }
    /* pieces for the backtracking encoder skip the whole lookup: its walk
     * finds a piece that is a token as its first, longest candidate, and
     * hashing 17+ bytes that are hardly ever a token costs 3-5% there */
    if (t->whole_lookup && !(t->bt_ok && len > BPE_BT_MIN)) {
        int id = tok_lookup(t, (const char *)p, len);
        if (id >= 0) { out[0] = id; return 1; }
    }
    if (t->bt_ok && len > BPE_BT_MIN) {
        /* parts between cuts first (tok_cut.c); then backtracking, measured
         * faster than the windowed heap (1.0 vs 1.3-1.9 CPU-s on 10 MB
         * without spaces), which is its safety net */
        size_t m = tok_cut_piece(t, p, len, out, sc);
        if (m != (size_t)-2) return m;
        m = tok_bt_piece(t, p, len, out, sc);
        if (m == (size_t)-2) m = bpe_windowed(t, p, len, out, sc);
        if (m != (size_t)-2) return m;
    }
    if (t->bt_ok && t->byte_pair16 && len <= 32) {
        size_t m = tok_merge_small(t, p, len, out);   /* the scan's merges in registers */
        if (m != (size_t)-2) return m;
    }
    if (len <= BPE_SHORT) return bpe_short(t, p, len, out);
    return bpe_long(t, p, len, out, sc);
}

size_t tok_bpe_piece_alg(const tok_t *t, const unsigned char *p, size_t len, int *out,
                         tok_scratch_t *sc, int alg)
{
    if (alg == 0) return len <= BPE_SHORT ? bpe_short(t, p, len, out) : (size_t)-2;
    if (alg == 1) return len >= 2 ? bpe_long(t, p, len, out, sc) : (size_t)-2;
    if (alg == 3) return t->bt_ok ? bpe_windowed(t, p, len, out, sc) : (size_t)-2;
    if (alg == 4) return tok_cut_piece(t, p, len, out, sc);
    if (alg == 5) return len >= 2 && len <= 32 && t->bt_ok && t->byte_pair16 ? tok_merge_small(t, p, len, out) : (size_t)-2;
    return t->bt_ok ? tok_bt_piece(t, p, len, out, sc) : (size_t)-2;
}

void tok_scratch_free(tok_scratch_t *sc)
{
    free(sc->a);
    free(sc->memo);
    memset(sc->memo_ready, 0, sizeof sc->memo_ready);
    sc->a = NULL;
    sc->memo = NULL;
    sc->cap = 0;
}
