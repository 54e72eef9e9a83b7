/* fuzz_tok.c: libFuzzer target for r50k encode/decode. Any bytes must encode
 * without a crash, decode back to themselves, and count to as many tokens as
 * encode gives; the first byte chooses allow_special. The bytes as one piece
 * must also merge to the same ids by the default path (whole lookup, scan,
 * backtracking with its pair-table filters, parts between cuts, merging in
 * registers) as by the heap merge, which follows tiktoken's rule literally.
 *   make fuzz && TUNERY_SHARE=data build-fuzz/fuzz_tok -max_total_time=60 */
#include "tok/tok_int.h"

#include <stdlib.h>
#include <string.h>

static const tok_t *R;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[CORE_ERR_LEN];
    setenv("TUNERY_SHARE", "data", 0);
    R = tok_r50k(err);
    if (!R) { fprintf(stderr, "fuzz_tok: %s (run from the repo root)\n", err); abort(); }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    int allow = data[0] & 1;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    tok_ids_t v = {0};
    buf_t b = {0};
    if (tok_encode(R, s, n, allow, &v)) __builtin_trap();
    if (tok_decode(R, v.ids, v.len, &b)) __builtin_trap();
    if (b.len != n || (n && memcmp(b.data, s, n))) __builtin_trap();
    if (!allow && tok_count(R, s, n) != v.len) __builtin_trap();
    for (size_t i = 0; i < v.len; i++)
        if (v.ids[i] < 0 || v.ids[i] >= tok_vocab_size(R)) __builtin_trap();
    if (n >= 2 && tok_lookup(R, s, n) < 0) {
        int *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
        tok_scratch_t sc = {0};
        if (!x || !y) __builtin_trap();
        size_t nx = tok_bpe_piece(R, (const unsigned char *)s, n, x, &sc);
        size_t ny = tok_bpe_piece_alg(R, (const unsigned char *)s, n, y, &sc, 1);
        if (nx != ny || memcmp(x, y, nx * sizeof *x)) __builtin_trap();
        /* parts between cuts, and merging in registers, where they apply */
        nx = tok_bpe_piece_alg(R, (const unsigned char *)s, n, x, &sc, 4);
        if (nx != (size_t)-2 && (nx != ny || memcmp(x, y, nx * sizeof *x))) __builtin_trap();
        nx = tok_bpe_piece_alg(R, (const unsigned char *)s, n, x, &sc, 5);
        if (nx != (size_t)-2 && (nx != ny || memcmp(x, y, nx * sizeof *x))) __builtin_trap();
        tok_scratch_free(&sc);
        free(x);
        free(y);
    }
    tok_ids_free(&v);
    buf_free(&b);
    return 0;
}
