/* id.c: object ids like OpenAI's (file-…, ft-…, cmpl-…): a prefix and random
 * alphanumerics from the kernel's CSPRNG, so ids cannot be guessed across orgs. */
#include "core/core.h"
#include <string.h>
#include <sys/random.h>

void id_random(char *out, const char *prefix, int n)
{
    static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    size_t pl = strlen(prefix);
    memcpy(out, prefix, pl);
    unsigned char r[256];
    if (n > 256) n = 256;
    size_t got = 0;
    while (got < (size_t)n) {
        ssize_t k = getrandom(r + got, (size_t)n - got, 0);
        if (k > 0) got += (size_t)k;
    }
    /* 62 does not divide 256; rejection keeps the characters uniform. */
    for (int i = 0; i < n; i++) {
        unsigned char c = r[i];
        while (c >= 248) {
            if (getrandom(&c, 1, 0) != 1) c = 0;
        }
        out[pl + i] = alnum[c % 62];
    }
    out[pl + n] = 0;
}
