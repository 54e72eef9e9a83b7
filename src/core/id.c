/* id.c: object ids like OpenAI's (file-…, ft-…, cmpl-…): a prefix and random
 * alphanumerics from the kernel's CSPRNG, so ids cannot be guessed across orgs;
 * and the one seeded generator (splitmix64) for everything reproducible. */
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

uint64_t core_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
