/* tok_re.c: the regex pre-tokenizer for tokenizer.json files that bring their
 * own Split pattern (Llama-3, Qwen2 and kin), with PCRE2 in UTF + UCP mode
 * and JIT. GPT-2's own pattern never comes here: tok_pretok.c scans it
 * faster. Hugging Face's "Isolated" split behaviour is implemented: every
 * match is a piece and so is every stretch between two matches. Invalid UTF-8
 * is allowed (PCRE2_MATCH_INVALID_UTF): such bytes never match a character
 * class and end up in the stretches between matches.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tok/tok_int.h"
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

int tok_re_compile(tok_t *t, const char *pattern, char *err)
{
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &ec, &eo, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return core_errf(err, "the tokenizer's pre-tokenizer regex does not compile at offset %zu: %s",
                         (size_t)eo, (const char *)msg);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);   /* falls back to the interpreter if JIT is unavailable */
    t->re = re;
    t->pre = TOK_PRE_REGEX;
    return 0;
}

void tok_re_free(tok_t *t)
{
    if (t->re) pcre2_code_free(t->re);
    t->re = NULL;
}

int tok_re_split(const tok_t *t, const unsigned char *s, size_t len, tok_piece_fn fn, void *ctx)
{
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md) return -1;
    size_t pos = 0, gap = 0;
    int rc = 0;
    while (pos < len) {
        int m = pcre2_match(t->re, s, len, pos, 0, md, NULL);
        if (m < 0) break;   /* no more matches (or a match error): the rest is one stretch */
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t a = ov[0], b = ov[1];
        if (b == a) {       /* empty match: step over one byte */
            pos = a + 1;
            continue;
        }
        if (a > gap && (rc = fn(s + gap, a - gap, ctx))) break;
        if ((rc = fn(s + a, b - a, ctx))) break;
        pos = gap = b;
    }
    if (rc == 0 && gap < len) rc = fn(s + gap, len - gap, ctx);
    pcre2_match_data_free(md);
    return rc;
}
