/* fuzz_tokjson.c: libFuzzer target for the Hugging Face tokenizer.json
 * loader. Any bytes must give either a tokenizer or an error sentence, never
 * a crash or a leak; a tokenizer that loads must round-trip text losslessly.
 * Seed it with the fixtures in tests/tok/fixtures:
 *   make fuzz && build-fuzz/fuzz_tokjson -max_total_time=60 tests/tok/fixtures */
#include "tok/tok_int.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tok_t *t = NULL;
    char err[CORE_ERR_LEN];
    err[0] = 0;
    if (tok_load_hf_mem(&t, (const char *)data, size, "fuzz", err)) {
        if (!memchr(err, 0, sizeof err) || !err[0]) __builtin_trap();
        return 0;
    }
    static const char text[] = "Hello world, it's 2024!\n\t <|endoftext|> \xe4\xb8\xad\xff 12345";
    tok_ids_t v = {0};
    buf_t b = {0};
    if (tok_encode(t, text, sizeof text - 1, 1, &v)) __builtin_trap();
    if (tok_decode(t, v.ids, v.len, &b)) __builtin_trap();
    size_t pre = t->add_prefix_space ? 1 : 0;   /* HF's add_prefix_space adds one */
    if (b.len != sizeof text - 1 + pre || memcmp(b.data + pre, text, sizeof text - 1)) __builtin_trap();
    tok_ids_free(&v);
    buf_free(&b);
    tok_free(t);
    return 0;
}
