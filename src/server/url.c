/* url.c: percent-decoding and path-pattern matching for the router. Kept
 * apart from the route table so the unit tests and the fuzzer can exercise
 * them without the handlers.
 */
#define TUNERY_SERVER_INTERNAL
#include "server/server.h"
#include <string.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int url_decode(const char *in, size_t n, char *out, size_t outlen, int plus_space)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '%') {
            if (i + 2 >= n) return -1;
            int h = hexval(in[i + 1]);
            int l = hexval(in[i + 2]);
            if (h < 0 || l < 0) return -1;
            c = (char)(h * 16 + l);
            if (c == 0) return -1;
            i += 2;
        } else if (c == '+' && plus_space) {
            c = ' ';
        }
        if (o + 1 >= outlen) return -1;
        out[o++] = c;
    }
    out[o] = 0;
    return 0;
}

int router_match_pattern(const char *pattern, const char *path,
                     char params[ROUTE_MAX_PARAMS][ROUTE_PARAM_LEN], int *nparams)
{
    int np = 0;
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (p[0] == '{' && p[1] == '}') {
            size_t n = strcspn(s, "/");
            if (n == 0 || np >= ROUTE_MAX_PARAMS) return -1;
            if (url_decode(s, n, params[np], ROUTE_PARAM_LEN, 1)) return -1;
            np++;
            s += n;
            p += 2;
        } else {
            if (*p != *s) return -1;
            p++;
            s++;
        }
    }
    if (*p || *s) return -1;
    *nparams = np;
    return 0;
}

