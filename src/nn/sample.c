/* sample.c: from logits to a token, and the byte-level bookkeeping streaming
 * needs. Pure functions on arrays, so every completions parameter can be
 * tested on synthetic logits without a model.
 *
 * Order of operations per step (generate.c): raw logits -> logprobs for the
 * response (the model's own distribution, as OpenAI reports it) -> penalties
 * -> logit_bias -> temperature / top_p -> pick.
 */
#include "nn/nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ----------------------------------------------------------------------------
 * random numbers: xoshiro256** seeded through splitmix64 */

void sample_rng_init(sample_rng_t *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xD1B54A32D192ED03ull);
    for (int i = 0; i < 4; i++) r->s[i] = core_splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(sample_rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double sample_rng_uniform(sample_rng_t *r)
{
    return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* ----------------------------------------------------------------------------
 * distributions */

void sample_log_softmax(float *out, const float *logits, int V)
{
    float maxv = -INFINITY;
    for (int i = 0; i < V; i++) if (logits[i] > maxv) maxv = logits[i];
    double sum = 0.0;
    for (int i = 0; i < V; i++) sum += exp((double)logits[i] - maxv);
    float ls = (float)log(sum); /* subtract max first: 1000 + log 2 is not a float */
    for (int i = 0; i < V; i++) out[i] = (logits[i] - maxv) - ls;
}

void sample_top_k(const float *x, int V, int k, int *ids, float *vals)
{
    int have = 0;
    if (k > V) k = V;
    for (int i = 0; i < V; i++) {
        float v = x[i];
        if (have == k && !(v > vals[k - 1])) continue;
        int j = have < k ? have++ : k - 1;
        while (j > 0 && v > vals[j - 1]) { vals[j] = vals[j - 1]; ids[j] = ids[j - 1]; j--; }
        vals[j] = v; ids[j] = i;
    }
}

void sample_penalize(float *logits, int V, const int *counts, float presence, float frequency)
{
    if (presence == 0.0f && frequency == 0.0f) return;
    for (int i = 0; i < V; i++)
        if (counts[i] > 0) logits[i] -= counts[i] * frequency + presence;
}

void sample_bias(float *logits, int V, const int *ids, const float *bias, int n)
{
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= V) continue;
        /* OpenAI: -100 "should result in a ban"; make it exact, not likely. */
        if (bias[i] <= -100.0f) logits[ids[i]] = -INFINITY;
        else logits[ids[i]] += bias[i];
    }
}

static int argmax(const float *x, int V)
{
    int best = 0;
    for (int i = 1; i < V; i++) if (x[i] > x[best]) best = i;
    return best;
}

typedef struct { float p; int id; } cand_t;

static int cand_cmp(const void *a, const void *b)
{
    const cand_t *x = a, *y = b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return x->id - y->id;
}

/* Nucleus sampling without sorting the whole vocabulary: any set made of the
 * most likely tokens whose mass reaches top_p contains the nucleus, so lower a
 * threshold until {p >= t} has the mass, then sort only that set. */
static int pick_top_p(const float *p, int V, float top_p, double u)
{
    float maxp = 0.0f;
    for (int i = 0; i < V; i++) if (p[i] > maxp) maxp = p[i];
    float t = maxp;
    double mass;
    int n;
    for (;;) {
        mass = 0.0; n = 0;
        for (int i = 0; i < V; i++) if (p[i] >= t) { mass += p[i]; n++; }
        if (mass >= top_p || t == 0.0f) break;
        t = t * 0.125f;
        if (t < 1e-30f) t = 0.0f;
    }
    cand_t *c = malloc((size_t)n * sizeof *c);
    if (!c) return argmax(p, V);
    int k = 0;
    for (int i = 0; i < V; i++) if (p[i] >= t) { c[k].p = p[i]; c[k].id = i; k++; }
    qsort(c, (size_t)n, sizeof *c, cand_cmp);
    double cum = 0.0;
    int keep = n;
    for (int i = 0; i < n; i++) {
        cum += c[i].p;
        if (cum >= top_p) { keep = i + 1; break; }
    }
    double total = 0.0;
    for (int i = 0; i < keep; i++) total += c[i].p;
    double r = u * total, acc = 0.0;
    int pick = c[keep - 1].id;
    for (int i = 0; i < keep; i++) {
        acc += c[i].p;
        if (r < acc) { pick = c[i].id; break; }
    }
    free(c);
    return pick;
}

int sample_pick(float *logits, int V, float temperature, float top_p, sample_rng_t *rng)
{
    if (temperature <= 0.0f) return argmax(logits, V);
    float maxv = -INFINITY;
    for (int i = 0; i < V; i++) if (logits[i] > maxv) maxv = logits[i];
    if (maxv == -INFINITY) return 0; /* everything banned: nothing sensible left */
    double sum = 0.0;
    for (int i = 0; i < V; i++) {
        float e = expf((logits[i] - maxv) / temperature);
        logits[i] = e;
        sum += e;
    }
    for (int i = 0; i < V; i++) logits[i] = (float)(logits[i] / sum);
    double u = sample_rng_uniform(rng);
    if (top_p < 1.0f) return pick_top_p(logits, V, top_p, u);
    double acc = 0.0;
    int last = 0;
    for (int i = 0; i < V; i++) {
        if (logits[i] <= 0.0f) continue;
        acc += logits[i];
        last = i;
        if (u < acc) return i;
    }
    return last; /* rounding: u landed past the accumulated mass */
}

/* ----------------------------------------------------------------------------
 * bytes: UTF-8 completeness and stop strings */

size_t sample_utf8_ready(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    /* Walk back over at most 3 continuation bytes to the last lead byte. */
    size_t i = n, back = 0;
    while (i > 0 && back < 4 && (u[i - 1] & 0xC0) == 0x80) { i--; back++; }
    if (i == 0) return n;
    unsigned char lead = u[i - 1];
    size_t need;
    if (lead >= 0xF0 && lead <= 0xF4) need = 4;
    else if (lead >= 0xE0 && lead < 0xF0) need = 3;
    else if (lead >= 0xC2 && lead < 0xE0) need = 2;
    else return n; /* ASCII, or a byte that can never start a character */
    size_t have = n - (i - 1);
    return have < need ? i - 1 : n;
}

long sample_stop_find(const char *text, size_t len, size_t from, const char *const *stops, int n_stop)
{
    long best = -1;
    for (int k = 0; k < n_stop; k++) {
        size_t sl = strlen(stops[k]);
        if (sl == 0 || sl > len) continue;
        for (size_t p = from; p + sl <= len; p++) {
            if (best >= 0 && (long)p >= best) break;
            if (text[p] == stops[k][0] && memcmp(text + p, stops[k], sl) == 0) { best = (long)p; break; }
        }
    }
    return best;
}

size_t sample_stop_holdback(const char *text, size_t len, const char *const *stops, int n_stop)
{
    size_t hold = 0;
    for (int k = 0; k < n_stop; k++) {
        size_t sl = strlen(stops[k]);
        for (size_t h = sl > 0 ? sl - 1 : 0; h > hold; h--) {
            if (h > len) continue;
            if (memcmp(text + len - h, stops[k], h) == 0) { hold = h; break; }
        }
    }
    return hold;
}
