/* tok_pretok.c: GPT-2's pre-tokenizer as a hand-written scanner.
 *
 * The pattern, as tiktoken's r50k_base compiles it (Rust fancy-regex, Unicode):
 *     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * Alternatives are tried in order at each position (leftmost-first). A
 * scanner gives the same pieces several times faster than PCRE2-JIT, and is
 * what lets the tokenizer beat tiktoken.
 *
 * Classes: \p{L} and \p{N} are Unicode general categories L* and N*, taken
 * from utf8proc. \s is the Unicode White_Space property (what Rust's regex
 * means by \s); utf8proc exposes categories, not that property, so the 25 code
 * points of PropList.txt's White_Space are listed below. U+FEFF is not among
 * them (JavaScript's \s disagrees, which is why js-tiktoken drifts there).
 *
 * Invalid UTF-8: each byte that does not start a well-formed sequence is one
 * "character" of the class "other", like U+FFFD would be; it stays itself in
 * the piece, and byte-level BPE encodes it without loss.
 */
#include "tok/tok_int.h"
#include <utf8proc.h>

enum { C_O = 0, C_L = 1, C_N = 2, C_S = 3 };

static const unsigned char ascii_cls[128] = {
    ['\t'] = C_S, ['\n'] = C_S, ['\v'] = C_S, ['\f'] = C_S, ['\r'] = C_S, [' '] = C_S,
    ['0'] = C_N, ['1'] = C_N, ['2'] = C_N, ['3'] = C_N, ['4'] = C_N,
    ['5'] = C_N, ['6'] = C_N, ['7'] = C_N, ['8'] = C_N, ['9'] = C_N,
    ['A'] = C_L, ['B'] = C_L, ['C'] = C_L, ['D'] = C_L, ['E'] = C_L, ['F'] = C_L, ['G'] = C_L,
    ['H'] = C_L, ['I'] = C_L, ['J'] = C_L, ['K'] = C_L, ['L'] = C_L, ['M'] = C_L, ['N'] = C_L,
    ['O'] = C_L, ['P'] = C_L, ['Q'] = C_L, ['R'] = C_L, ['S'] = C_L, ['T'] = C_L, ['U'] = C_L,
    ['V'] = C_L, ['W'] = C_L, ['X'] = C_L, ['Y'] = C_L, ['Z'] = C_L,
    ['a'] = C_L, ['b'] = C_L, ['c'] = C_L, ['d'] = C_L, ['e'] = C_L, ['f'] = C_L, ['g'] = C_L,
    ['h'] = C_L, ['i'] = C_L, ['j'] = C_L, ['k'] = C_L, ['l'] = C_L, ['m'] = C_L, ['n'] = C_L,
    ['o'] = C_L, ['p'] = C_L, ['q'] = C_L, ['r'] = C_L, ['s'] = C_L, ['t'] = C_L, ['u'] = C_L,
    ['v'] = C_L, ['w'] = C_L, ['x'] = C_L, ['y'] = C_L, ['z'] = C_L,
};

static int is_white_space(int32_t c)
{
    return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
           c == 0x205f || c == 0x3000;
}

/* Decode one well-formed UTF-8 sequence at s[i..n); returns its length and the
 * code point, or 1 and -1 for a byte that does not start one. */
static inline int utf8_next(const unsigned char *s, size_t i, size_t n, int32_t *cp)
{
    unsigned c = s[i];
    size_t left = n - i;
    if (c < 0x80) { *cp = (int32_t)c; return 1; }
    if (c >= 0xc2 && c <= 0xdf && left >= 2 && (s[i + 1] & 0xc0) == 0x80) {
        *cp = (int32_t)((c & 0x1f) << 6 | (s[i + 1] & 0x3f));
        return 2;
    }
    if (c >= 0xe0 && c <= 0xef && left >= 3 && (s[i + 1] & 0xc0) == 0x80 && (s[i + 2] & 0xc0) == 0x80) {
        int32_t v = (int32_t)((c & 0x0f) << 12 | (s[i + 1] & 0x3f) << 6 | (s[i + 2] & 0x3f));
        if (v >= 0x800 && (v < 0xd800 || v > 0xdfff)) { *cp = v; return 3; }
    } else if (c >= 0xf0 && c <= 0xf4 && left >= 4 && (s[i + 1] & 0xc0) == 0x80 &&
               (s[i + 2] & 0xc0) == 0x80 && (s[i + 3] & 0xc0) == 0x80) {
        int32_t v = (int32_t)((c & 0x07) << 18 | (s[i + 1] & 0x3f) << 12 | (s[i + 2] & 0x3f) << 6 | (s[i + 3] & 0x3f));
        if (v >= 0x10000 && v <= 0x10ffff) { *cp = v; return 4; }
    }
    *cp = -1;
    return 1;
}

static int cls_of(int32_t cp)
{
    if (cp < 0) return C_O;
    if (cp < 128) return ascii_cls[cp];
    if (is_white_space(cp)) return C_S;
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
        return C_L;
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        return C_N;
    default:
        return C_O;
    }
}

/* class of the character at i, its byte length in *w */
static inline int cls_at(const unsigned char *s, size_t i, size_t n, int *w)
{
    if (s[i] < 0x80) { *w = 1; return ascii_cls[s[i]]; }
    int32_t cp;
    *w = utf8_next(s, i, n, &cp);
    return cls_of(cp);
}

/* end of the run of class k starting at i */
static inline size_t run_end(const unsigned char *s, size_t i, size_t n, int k)
{
    while (i < n) {
        if (s[i] < 0x80) {
            if (ascii_cls[s[i]] != k) return i;
            i++;
            continue;
        }
        int w;
        if (cls_at(s, i, n, &w) != k) return i;
        i += (size_t)w;
    }
    return i;
}

size_t tok_pretok_gpt2(const unsigned char *s, size_t i, size_t n)
{
    unsigned char c = s[i];
    if (c == '\'' && i + 1 < n) {
        unsigned char c1 = s[i + 1];
        if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return i + 2;
        if (i + 2 < n) {
            unsigned char c2 = s[i + 2];
            if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return i + 3;
        }
    }
    int w, k = cls_at(s, i, n, &w);
    if (c == ' ' && i + 1 < n) {
        int w1, k1 = cls_at(s, i + 1, n, &w1);
        if (k1 != C_S) return run_end(s, i + 1 + (size_t)w1, n, k1);
    }
    if (k != C_S) return run_end(s, i + (size_t)w, n, k);
    /* whitespace: \s+(?!\S) keeps the last space for the next piece when a
     * non-space follows a run of two or more; else \s+ takes the one */
    size_t last = i, j = i + (size_t)w;
    while (j < n) {
        int wj, kj = cls_at(s, j, n, &wj);
        if (kj != C_S) break;
        last = j;
        j += (size_t)wj;
    }
    if (j == n || last == i) return j;
    return last;
}
