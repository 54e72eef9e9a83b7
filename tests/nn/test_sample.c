/* Unit tests for sample.c: every logits-processing step and the byte-level
 * helpers of streaming, on synthetic logits (no model needed). */
#include "nn/nn.h"
#include "test.h"
#include <stdlib.h>

static void test_log_softmax(void)
{
    float x[4] = {1.0f, 2.0f, 3.0f, 4.0f}, y[4];
    sample_log_softmax(y, x, 4);
    double s = 0;
    for (int i = 0; i < 4; i++) s += exp(y[i]);
    CHECK_NEAR(s, 1.0, 1e-6);
    /* log softmax of [1,2,3,4] at 4: -log(1 + e^-1 + e^-2 + e^-3) */
    CHECK_NEAR(y[3], -log(1 + exp(-1) + exp(-2) + exp(-3)), 1e-6);
    CHECK_NEAR(y[0] - y[1], -1.0, 1e-6);
    /* huge logits do not overflow */
    float big[2] = {1000.0f, 1000.0f};
    sample_log_softmax(big, big, 2);
    CHECK_NEAR(big[0], -log(2.0), 1e-6);
}

static void test_top_k(void)
{
    float x[7] = {0.1f, 5.0f, 3.0f, 5.0f, -1.0f, 4.0f, 3.0f};
    int ids[5]; float v[5];
    sample_top_k(x, 7, 5, ids, v);
    int want[5] = {1, 3, 5, 2, 6}; /* ties: lower id first */
    for (int i = 0; i < 5; i++) CHECK_EQ_INT(ids[i], want[i]);
    CHECK(v[0] == 5.0f && v[4] == 3.0f);
    sample_top_k(x, 3, 5, ids, v); /* k > V */
    CHECK_EQ_INT(ids[0], 1); CHECK_EQ_INT(ids[1], 2); CHECK_EQ_INT(ids[2], 0);
}

static void test_penalties(void)
{
    float l[4] = {1, 1, 1, 1};
    int counts[4] = {0, 1, 3, 0};
    sample_penalize(l, 4, counts, 0.5f, 0.25f);
    CHECK_NEAR(l[0], 1.0, 1e-7);
    CHECK_NEAR(l[1], 1.0 - 0.5 - 0.25, 1e-7);
    CHECK_NEAR(l[2], 1.0 - 0.5 - 0.75, 1e-7);
    /* negative penalties encourage repetition */
    float m[2] = {0, 0};
    int c2[2] = {2, 0};
    sample_penalize(m, 2, c2, -1.0f, -1.0f);
    CHECK(m[0] > m[1]);
}

static void test_greedy_and_bias(void)
{
    float l[5] = {0.0f, 2.0f, 7.0f, 7.0f, 1.0f};
    sample_rng_t r;
    sample_rng_init(&r, 1, 0);
    float t[5];
    memcpy(t, l, sizeof l);
    CHECK_EQ_INT(sample_pick(t, 5, 0.0f, 1.0f, &r), 2); /* first of the tied maxima */
    int ids[2] = {2, 3}; float b[2] = {-100.0f, -100.0f};
    memcpy(t, l, sizeof l);
    sample_bias(t, 5, ids, b, 2);
    CHECK(isinf(t[2]) && t[2] < 0);
    CHECK_EQ_INT(sample_pick(t, 5, 0.0f, 1.0f, &r), 1);
    /* a banned token is never drawn, even at the highest temperature */
    int seen[5] = {0};
    for (int i = 0; i < 5000; i++) {
        memcpy(t, l, sizeof l);
        sample_bias(t, 5, ids, b, 2);
        seen[sample_pick(t, 5, 2.0f, 1.0f, &r)]++;
    }
    CHECK_EQ_INT(seen[2] + seen[3], 0);
    CHECK(seen[0] > 0 && seen[1] > 0 && seen[4] > 0);
    /* a positive bias makes a token the greedy choice */
    int id0 = 0; float b0 = 10.0f;
    memcpy(t, l, sizeof l);
    sample_bias(t, 5, &id0, &b0, 1);
    CHECK_EQ_INT(sample_pick(t, 5, 0.0f, 1.0f, &r), 0);
}

static void test_sampling_distribution(void)
{
    /* probabilities 0.5, 0.3, 0.15, 0.05 */
    float p[4] = {0.5f, 0.3f, 0.15f, 0.05f}, l[4], t[4];
    for (int i = 0; i < 4; i++) l[i] = logf(p[i]);
    sample_rng_t r;
    sample_rng_init(&r, 42, 0);
    int cnt[4] = {0}, N = 20000;
    for (int i = 0; i < N; i++) { memcpy(t, l, sizeof l); cnt[sample_pick(t, 4, 1.0f, 1.0f, &r)]++; }
    for (int i = 0; i < 4; i++) CHECK_NEAR((double)cnt[i] / N, p[i], 0.015);
    /* top_p 0.7: the nucleus is {0, 1} (0.5 < 0.7 <= 0.8), renormalised */
    int cp[4] = {0};
    for (int i = 0; i < N; i++) { memcpy(t, l, sizeof l); cp[sample_pick(t, 4, 1.0f, 0.7f, &r)]++; }
    CHECK_EQ_INT(cp[2] + cp[3], 0);
    CHECK_NEAR((double)cp[0] / N, 0.625, 0.015);
    /* tiny top_p = greedy */
    for (int i = 0; i < 100; i++) { memcpy(t, l, sizeof l); CHECK_EQ_INT(sample_pick(t, 4, 1.0f, 0.01f, &r), 0); }
    /* low temperature sharpens, high flattens */
    int lo = 0, hi = 0;
    for (int i = 0; i < N; i++) {
        memcpy(t, l, sizeof l); lo += sample_pick(t, 4, 0.3f, 1.0f, &r) == 0;
        memcpy(t, l, sizeof l); hi += sample_pick(t, 4, 2.0f, 1.0f, &r) == 0;
    }
    CHECK(lo > 0.8 * N);
    CHECK(hi < 0.45 * N);
}

static void test_rng_reproducible(void)
{
    sample_rng_t a, b, c;
    sample_rng_init(&a, 7, 3);
    sample_rng_init(&b, 7, 3);
    sample_rng_init(&c, 7, 4);
    int same = 1, diff = 0;
    for (int i = 0; i < 100; i++) {
        double x = sample_rng_uniform(&a), y = sample_rng_uniform(&b), z = sample_rng_uniform(&c);
        same &= x == y;
        diff += x != z;
        CHECK(x >= 0.0 && x < 1.0);
    }
    CHECK(same);
    CHECK(diff > 90);
}

static void test_top_p_large_vocab(void)
{
    /* A long tail: the threshold search must still find the exact nucleus. */
    int V = 50000;
    float *l = malloc(V * sizeof *l), *t = malloc(V * sizeof *t);
    for (int i = 0; i < V; i++) l[i] = -0.001f * i;
    /* mass of ids < k is (1 - q^k)/(1 - q^V), q = e^-0.001; top_p = 0.5 */
    double q = exp(-0.001), Z = (1 - pow(q, V));
    int kmax = 0;
    while ((1 - pow(q, kmax)) / Z < 0.5) kmax++;
    sample_rng_t r;
    sample_rng_init(&r, 5, 0);
    int worst = 0;
    for (int i = 0; i < 2000; i++) {
        memcpy(t, l, V * sizeof *t);
        int id = sample_pick(t, V, 1.0f, 0.5f, &r);
        if (id > worst) worst = id;
    }
    CHECK(worst < kmax);
    CHECK(worst > kmax * 0.9);
    free(l); free(t);
}

static void test_utf8_ready(void)
{
    const char *e = "a\xc3\xa9";           /* "aé" */
    CHECK_EQ_INT(sample_utf8_ready(e, 3), 3);
    CHECK_EQ_INT(sample_utf8_ready(e, 2), 1); /* é's first byte held back */
    const char *euro = "\xe2\x82\xac";        /* € */
    CHECK_EQ_INT(sample_utf8_ready(euro, 1), 0);
    CHECK_EQ_INT(sample_utf8_ready(euro, 2), 0);
    CHECK_EQ_INT(sample_utf8_ready(euro, 3), 3);
    const char *emoji = "x\xf0\x9f\x98\x80";  /* x😀 */
    for (int n = 2; n < 5; n++) CHECK_EQ_INT(sample_utf8_ready(emoji, n), 1);
    CHECK_EQ_INT(sample_utf8_ready(emoji, 5), 5);
    /* invalid bytes are passed through: waiting cannot fix them */
    CHECK_EQ_INT(sample_utf8_ready("\x80\x80", 2), 2);
    CHECK_EQ_INT(sample_utf8_ready("a\xff", 2), 2);
    CHECK_EQ_INT(sample_utf8_ready("", 0), 0);
}

static void test_stop(void)
{
    const char *stops[3] = {"\n\n", "END", "xyz"};
    const char *t = "hello\nworld END and\n\n";
    long p = sample_stop_find(t, strlen(t), 0, stops, 3);
    CHECK_EQ_INT(p, 12); /* END comes before \n\n */
    CHECK_EQ_INT(sample_stop_find(t, strlen(t), 13, stops, 3), (long)strlen(t) - 2);
    CHECK_EQ_INT(sample_stop_find("abc", 3, 0, stops, 3), -1);
    /* hold back any tail that could still become a stop */
    CHECK_EQ_INT(sample_stop_holdback("abc E", 5, stops, 3), 1);
    CHECK_EQ_INT(sample_stop_holdback("abc EN", 6, stops, 3), 2);
    CHECK_EQ_INT(sample_stop_holdback("abc\n", 4, stops, 3), 1);
    CHECK_EQ_INT(sample_stop_holdback("abc", 3, stops, 3), 0);
    CHECK_EQ_INT(sample_stop_holdback("xy", 2, stops, 3), 2);
    const char *empty[1] = {""};
    CHECK_EQ_INT(sample_stop_find("abc", 3, 0, empty, 1), -1);
    CHECK_EQ_INT(sample_stop_holdback("abc", 3, empty, 1), 0);
}

int main(void)
{
    RUN(test_log_softmax);
    RUN(test_top_k);
    RUN(test_penalties);
    RUN(test_greedy_and_bias);
    RUN(test_sampling_distribution);
    RUN(test_rng_reproducible);
    RUN(test_top_p_large_vocab);
    RUN(test_utf8_ready);
    RUN(test_stop);
    return test_summary();
}
