/* test_tok.c: unit tests of the tokenizer: known r50k ids, special-token
 * handling, lossless round trips of arbitrary bytes, counting, the
 * tokenizer.json loader on small fixtures (ids worked out by hand from their
 * merges), and save + reload of r50k. The full parity against tiktoken is
 * tests/tok/integration.sh. Run from the repo root (TUNERY_SHARE=data). */
#include "test.h"
#include "tok/tok_int.h"
#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

static const tok_t *R;

static int ids_eq(const tok_ids_t *v, const int *want, size_t n)
{
    if (v->len != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (v->ids[i] != want[i]) return 0;
    return 1;
}

#define CHECK_IDS(t, text, allow, ...) do { \
    static const int want_[] = { __VA_ARGS__ }; \
    tok_ids_t v_ = {0}; \
    CHECK(tok_encode((t), (text), strlen(text), (allow), &v_) == 0); \
    CHECKF(ids_eq(&v_, want_, sizeof want_ / sizeof *want_), "encode(\"%s\"): got %zu ids, first %d", \
           (text), v_.len, v_.len ? v_.ids[0] : -1); \
    tok_ids_free(&v_); \
} while (0)

static void test_r50k_loads(void)
{
    char err[CORE_ERR_LEN] = "";
    R = tok_r50k(err);
    CHECKF(R != NULL, "%s", err);
    if (!R) exit(test_summary() | 1);
    CHECK_EQ_INT(tok_vocab_size(R), 50257);
    CHECK_EQ_INT(tok_eot(R), 50256);
    CHECK(tok_r50k(err) == R);
}

static void test_known_ids(void)
{
    /* ids from tiktoken r50k_base */
    CHECK_IDS(R, "Hello world", 0, 15496, 995);
    CHECK_IDS(R, "hello world", 0, 31373, 995);
    CHECK_IDS(R, " the", 0, 262);
    CHECK_IDS(R, "I'm", 0, 40, 1101);
    CHECK_IDS(R, "I'M", 0, 40, 6, 44);
    CHECK_IDS(R, "a  b", 0, 64, 220, 275);
    CHECK_IDS(R, "\n\n", 0, 628);
    tok_ids_t v = {0};
    CHECK(tok_encode(R, "", 0, 1, &v) == 0 && v.len == 0);
    CHECK_EQ_INT(tok_count(R, "", 0), 0);
    tok_ids_free(&v);
}

static void test_special(void)
{
    CHECK_IDS(R, " <|endoftext|>", 1, 220, 50256);
    CHECK_IDS(R, " <|endoftext|>", 0, 1279, 91, 437, 1659, 5239, 91, 29);
    CHECK_IDS(R, "<|endoftext|><|endoftext|>", 1, 50256, 50256);
    CHECK_IDS(R, "a<|endoftext|>b", 1, 64, 50256, 65);
    size_t len;
    const char *p = tok_piece(R, 50256, &len);
    CHECK(p && len == 13 && memcmp(p, "<|endoftext|>", 13) == 0);
    CHECK(tok_piece(R, 50257, &len) == NULL);
    CHECK(tok_piece(R, -1, &len) == NULL);
}

static void roundtrip(const tok_t *t, const char *s, size_t n)
{
    tok_ids_t v = {0};
    buf_t b = {0};
    CHECK(tok_encode(t, s, n, 0, &v) == 0);
    CHECK(tok_decode(t, v.ids, v.len, &b) == 0);
    CHECKF(b.len == n && (n == 0 || memcmp(b.data, s, n) == 0), "round trip of %zu bytes gave %zu", n, b.len);
    CHECK_EQ_INT(tok_count(t, s, n), v.len);
    CHECK(v.len <= n);
    tok_ids_free(&v);
    buf_free(&b);
}

static void test_roundtrip_random_bytes(void)
{
    uint32_t seed = 7;
    char buf[4096];
    for (int k = 0; k < 200; k++) {
        size_t n = (size_t)(k * 37 % 4096);
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1664525u + 1013904223u;
            /* mix of raw bytes and text-ish bytes */
            buf[i] = (k & 1) ? (char)(seed >> 24) : " \t\nab'sZ9\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80\xff"[(seed >> 24) % 20];
        }
        roundtrip(R, buf, n);
    }
}

static void test_long_pieces(void)
{
    /* 300 KB pieces go through the heap path; the figures are tiktoken's
     * (r50k_base) for the same strings */
    size_t n = 300000;
    char *s = malloc(n);
    memset(s, 'a', n);
    roundtrip(R, s, n);
    tok_ids_t v = {0};
    CHECK(tok_encode(R, s, n, 0, &v) == 0);
    int all = v.len == 75000;
    for (size_t i = 0; all && i < v.len; i++) all = v.ids[i] == 24794;
    CHECKF(all, "300000 x 'a' gave %zu ids", v.len);
    tok_ids_free(&v);
    uint32_t seed = 1, h = 0;
    for (size_t i = 0; i < n; i++) { seed = seed * 1664525u + 1013904223u; s[i] = "abcdefghijklmnopqrstuvwxyz"[(seed >> 24) % 26]; }
    roundtrip(R, s, n);
    CHECK(tok_encode(R, s, n, 0, &v) == 0);
    for (size_t i = 0; i < v.len; i++) h = h * 31u + (uint32_t)v.ids[i];
    CHECK_EQ_INT(v.len, 178292);
    CHECK_EQ_INT(h, 1829723576u);
    tok_ids_free(&v);
    free(s);
}

static void test_two_byte_pieces(void)
{
    /* every two-byte piece: the byte-pair shortcut gives what tiktoken's rule
     * (a piece that is a token is that token, else its bytes) gives */
    int bad = 0;
    tok_scratch_t sc = {0};
    for (int i = 0; i < 65536; i++) {
        unsigned char p[2] = { (unsigned char)(i >> 8), (unsigned char)i };
        int out[2], id = tok_lookup(R, (const char *)p, 2);
        size_t k = tok_bpe_piece(R, p, 2, out, &sc);
        if (id >= 0 ? k != 1 || out[0] != id : k != 2 || out[0] != tok_lookup(R, (const char *)p, 1) ||
                                              out[1] != tok_lookup(R, (const char *)p + 1, 1))
            bad++;
    }
    tok_scratch_free(&sc);
    CHECKF(bad == 0, "%d of 65536 two-byte pieces differ", bad);
}

static void test_three_byte_pieces(void)
{
    /* the three-byte shortcut (two byte pairs, then one pair lookup) against
     * tiktoken's rule (a piece that is a token is that token, else the heap
     * merge): every three-byte token, and 200000 pieces of bytes drawn from
     * letters, digits, punctuation, space and high bytes */
    static const char pool[] = "abcdefghijklmnopqrstuvwxyzTHE0123456789 .,'!?-\n\t\xe2\x80\x99\xc3\xa9\xf0\x9f";
    int bad = 0, n = 0;
    tok_scratch_t sc = {0};
    uint32_t seed = 7;
    for (int i = 0; i < tok_vocab_size(R) + 200000; i++) {
        unsigned char p[3];
        if (i < tok_vocab_size(R)) {
            size_t len;
            const char *s = tok_piece(R, i, &len);
            if (len != 3) continue;
            memcpy(p, s, 3);
        } else {
            for (int j = 0; j < 3; j++) {
                seed = seed * 1664525u + 1013904223u;
                p[j] = (unsigned char)pool[(seed >> 8) % (sizeof pool - 1)];
            }
        }
        int out[3], ref[3], id = tok_lookup(R, (const char *)p, 3);
        size_t k = tok_bpe_piece(R, p, 3, out, &sc), kr = 1;
        if (id >= 0) ref[0] = id;
        else kr = tok_bpe_piece_alg(R, p, 3, ref, &sc, 1);
        if (k != kr || memcmp(out, ref, k * sizeof *out)) bad++;
        n++;
    }
    tok_scratch_free(&sc);
    CHECKF(bad == 0, "%d of %d three-byte pieces differ", bad, n);
    CHECK(n > 200000);
}

/* fills s[0..n) from the first m bytes of alpha (NULL: any byte), by the
 * seeded LCG every generated piece of these tests uses */
static void fill_random(unsigned char *s, size_t n, const char *alpha, unsigned m, uint32_t *seed)
{
    for (size_t i = 0; i < n; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        unsigned r = *seed >> 24;
        s[i] = alpha ? (unsigned char)alpha[r % m] : (unsigned char)r;
    }
}

static const char LETTERS[] = "abcdefghijklmnopqrstuvwxyz";
static const char TEXTLIKE[] = "etaoinshrdlucmfwypvbgkqjxzETAOIN0123456789 .,'";

static void test_bt_matches_heap(void)
{
    /* the backtracking encoder (giant pieces) against the heap merge, which
     * follows tiktoken's rule literally, on pieces of many alphabets */
    size_t n = 1500;
    unsigned char *s = malloc(n);
    int *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    tok_scratch_t sc = {0};
    uint32_t seed = 42;
    int bad = 0;
    for (int it = 0; it < 200; it++) {
        /* modes 3 and 4 are digit pieces (tok_bt.c's digit-pair table),
         * 4 with a leading space and some letters among the digits */
        unsigned k = 2 + (unsigned)it % 25;
        int mode = it % 5;
        if (mode == 0) fill_random(s, n, LETTERS, k, &seed);
        else if (mode == 1) fill_random(s, n, NULL, 0, &seed);
        else if (mode == 2) fill_random(s, n, TEXTLIKE, k + 20, &seed);
        else if (mode == 3) fill_random(s, n, "0123456789", k < 10 ? k : 10, &seed);
        else fill_random(s, n, "0123456789012345678901234567890123456789ae", 42, &seed);
        if (mode == 4) s[0] = ' ';
        size_t na = tok_bpe_piece_alg(R, s, n, a, &sc, 1), nb = tok_bpe_piece_alg(R, s, n, b, &sc, 2);
        if (na != nb || memcmp(a, b, na * sizeof *a)) bad++;
    }
    CHECKF(bad == 0, "backtracking: %d of 200 pieces differ", bad);
    /* the windowed heap (pieces over 4 KB) against the plain heap */
    size_t big = 20000;
    unsigned char *g = malloc(big);
    int *ga = malloc(big * sizeof *ga), *gb = malloc(big * sizeof *gb);
    bad = 0;
    for (int it = 0; it < 24; it++) {
        unsigned k = 2 + (unsigned)it % 25;
        int mode = it % 3;
        fill_random(g, big, mode == 0 ? LETTERS : mode == 1 ? NULL : TEXTLIKE, mode == 0 ? k : k + 20, &seed);
        size_t na = tok_bpe_piece_alg(R, g, big, ga, &sc, 1), nb = tok_bpe_piece_alg(R, g, big, gb, &sc, 3);
        if (na != nb || memcmp(ga, gb, na * sizeof *ga)) bad++;
    }
    CHECKF(bad == 0, "windowed: %d of 24 pieces differ", bad);
    free(g);
    free(ga);
    free(gb);
    tok_scratch_free(&sc);
    free(s);
    free(a);
    free(b);
}

/* the alphabets of the cut and merge tests; index 4: any byte */
static const char *const MIXED[] = {
    LETTERS,
    "etaoinshrdlucmfwypvbgkqjxzETAOIN0123456789.,;-_/()",
    "qxzjkvbpwyfgmucldrhsnioate",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij",
    NULL,
};

static void fill_mixed(unsigned char *s, size_t n, int mode, unsigned k, uint32_t *seed)
{
    const char *a = MIXED[mode];
    unsigned m = a && k > strlen(a) ? (unsigned)strlen(a) : k;
    fill_random(s, n, a, m, seed);
}

static void test_merge_small(void)
{
    /* tok_cut.c's merging in registers against the heap merge, every
     * length it takes, several alphabets (ties, ranks in every lane) */
    unsigned char s[32];
    int a[32], b[32], bad = 0, ran = 0;
    tok_scratch_t sc = {0};
    uint32_t seed = 7;
    for (int it = 0; it < 20000; it++) {
        size_t n = 2 + (size_t)it % 31;
        fill_mixed(s, n, it % 5, 2 + (unsigned)it % 40, &seed);
        size_t nb = tok_bpe_piece_alg(R, s, n, b, &sc, 5);
        if (nb == (size_t)-2) continue;   /* no AVX-512 here: the scan is used instead */
        ran++;
        size_t na = tok_bpe_piece_alg(R, s, n, a, &sc, 1);
        if (na != nb || memcmp(a, b, na * sizeof *a)) bad++;
    }
    CHECKF(bad == 0, "merging in registers: %d of %d strings differ from the heap merge", bad, ran);
    if (!ran) fprintf(stderr, "  (skipped: no AVX-512BW in this build)\n");
    tok_scratch_free(&sc);
}

static void test_cut_matches_heap(void)
{
    /* pieces cut where no token can span (tok_cut.c) against the heap
     * merge; and every r50k token is what merging its bytes gives, which
     * the cut path relies on (merged parts skip the whole-piece lookup) */
    size_t n = 1200;
    unsigned char *s = malloc(n);
    int *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    tok_scratch_t sc = {0};
    uint32_t seed = 1234;
    int bad = 0, ran = 0;
    for (int it = 0; it < 300; it++) {
        size_t len = 17 + (size_t)(it * 37) % (n - 17);
        fill_mixed(s, len, it % 5, 3 + (unsigned)it % 40, &seed);
        size_t nb = tok_bpe_piece_alg(R, s, len, b, &sc, 4);
        if (nb == (size_t)-2) continue;
        ran++;
        size_t na = tok_bpe_piece_alg(R, s, len, a, &sc, 1);
        if (na != nb || memcmp(a, b, na * sizeof *a)) bad++;
    }
    CHECKF(bad == 0, "cut pieces: %d of %d differ from the heap merge", bad, ran);
#ifdef __AVX512BW__
    CHECKF(ran > 100, "the cut path took only %d of 300 pieces", ran);
#endif
    int unmerged = 0;
    for (int id = 0; id < tok_vocab_size(R); id++) {
        size_t len;
        const char *p = tok_piece(R, id, &len);
        if (len < 2 || id == tok_eot(R)) continue;
        size_t k = tok_bpe_piece_alg(R, (const unsigned char *)p, len, a, &sc, 1);
        if (k != 1 || a[0] != id) unmerged++;
    }
    CHECKF(unmerged == 0, "%d r50k tokens do not come out of merging their bytes", unmerged);
    const tok_cut_t *c = tok_bt_cut(R);
    CHECK(c && c->ok);
    tok_scratch_free(&sc);
    free(s);
    free(a);
    free(b);
}

static void test_decode_errors(void)
{
    buf_t b = {0};
    int bad[] = {15496, 50257};
    CHECK(tok_decode(R, bad, 2, &b) == -1);
    CHECK(b.len == 0);
    int ok[] = {15496, 995};
    CHECK(tok_decode(R, ok, 2, &b) == 0);
    CHECK(b.len == 11 && memcmp(b.data, "Hello world", 11) == 0);
    buf_free(&b);
}

static tok_t *load_fixture(const char *name)
{
    char path[256], err[CORE_ERR_LEN] = "";
    snprintf(path, sizeof path, "tests/tok/fixtures/%s", name);
    tok_t *t = NULL;
    int rc = tok_load_hf(&t, path, err);
    CHECKF(rc == 0, "%s", err);
    return rc ? NULL : t;
}

static void test_hf_gpt2_fixture(void)
{
    tok_t *t = load_fixture("gpt2_small.json");
    if (!t) return;
    CHECK_EQ_INT(tok_vocab_size(t), 267);
    CHECK_EQ_INT(tok_eot(t), 266);
    CHECK_IDS(t, "the thing", 0, 116, 257, 256, 104, 261);
    CHECK_IDS(t, " the", 0, 258);
    CHECK_IDS(t, "aaaaa", 0, 263, 97);
    CHECK_IDS(t, " aaaa", 0, 260, 262, 97);
    CHECK_IDS(t, "1234", 0, 49, 50, 264);
    CHECK_IDS(t, "zz", 0, 122, 122);
    CHECK_IDS(t, "a<|endoftext|>b", 1, 97, 266, 98);
    CHECK_IDS(t, "a<|endoftext|>", 0, 97, 60, 124, 101, 110, 100, 111, 102, 116, 101, 120, 116, 124, 62);
    roundtrip(t, "any bytes \xff\xfe at all, \xe4\xb8\xad", 23);
    tok_free(t);
}

static void test_hf_llama3_fixture(void)
{
    tok_t *t = load_fixture("llama3_style.json");
    if (!t) return;
    /* Llama-3's regex cuts digits in threes, so 3|4 cannot merge */
    CHECK_IDS(t, "1234", 0, 49, 50, 51, 52);
    /* ignore_merges: a piece that is a token is that token */
    CHECK_IDS(t, "zz", 0, 265);
    /* (?i) contractions: 'T is one piece (GPT-2 would cut ' and T) */
    CHECK_IDS(t, "DON'T the", 0, 68, 79, 78, 39, 84, 258);
    CHECK_IDS(t, "x<|endoftext|>", 1, 120, 266);
    roundtrip(t, "Llama \xf0\x9f\xa6\x99 12345\r\n\n  x \xff", 22);
    tok_free(t);
}

static void test_hf_errors(void)
{
    char err[CORE_ERR_LEN] = "";
    tok_t *t = NULL;
    CHECK(tok_load_hf(&t, "tests/tok/fixtures/does-not-exist.json", err) < 0);
    CHECK(strstr(err, "does-not-exist") != NULL);
    char dir[] = "/tmp/tunery-tok-test-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    const char *bad = "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}";
    CHECK(fs_write_atomic(path, bad, strlen(bad), err) == 0);
    CHECK(tok_load_hf(&t, path, err) < 0);
    CHECK(strstr(err, "WordPiece") != NULL);
    fs_rm_rf(dir, err);
}

static void test_save_reload_r50k(void)
{
    char dir[] = "/tmp/tunery-tok-test-XXXXXX", err[CORE_ERR_LEN] = "";
    CHECK(mkdtemp(dir) != NULL);
    CHECKF(tok_save_dir(R, dir, err) == 0, "%s", err);
    tok_t *t = NULL;
    CHECKF(tok_load_dir(&t, dir, err) == 0, "%s", err);
    if (t) {
        CHECK(t != R);
        CHECK_EQ_INT(tok_vocab_size(t), tok_vocab_size(R));
        CHECK_EQ_INT(tok_eot(t), 50256);
        int same = 1;
        for (int id = 0; id < tok_vocab_size(R); id++) {
            size_t a, b;
            const char *pa = tok_piece(R, id, &a), *pb = tok_piece(t, id, &b);
            if (a != b || memcmp(pa, pb, a) != 0) same = 0;
        }
        CHECK(same);
        const char *text = "In the beginning God created the heaven and the earth. It's 2024; \"quotes\" "
                           "and   spaces\n\n\tdon't matter. Ünïcödé 中文 😀 <|endoftext|>";
        tok_ids_t v = {0}, w = {0};
        CHECK(tok_encode(R, text, strlen(text), 1, &v) == 0);
        CHECK(tok_encode(t, text, strlen(text), 1, &w) == 0);
        CHECK(v.len == w.len && memcmp(v.ids, w.ids, v.len * sizeof *v.ids) == 0);
        tok_ids_free(&v);
        tok_ids_free(&w);
        tok_free(t);
    }
    /* vocab.json + merges.txt alone load too */
    char p[600];
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    unlink(p);
    t = NULL;
    CHECKF(tok_load_dir(&t, dir, err) == 0, "%s", err);
    if (t) {
        CHECK_IDS(t, "Hello world", 0, 15496, 995);
        CHECK_IDS(t, " <|endoftext|>", 1, 220, 50256);
        tok_free(t);
    }
    fs_rm_rf(dir, err);
    /* a directory without tokenizer files gets r50k */
    t = NULL;
    CHECK(tok_load_dir(&t, "tests/tok", err) == 0 && t == R);
    tok_free(t);
}

typedef struct {
    const tok_t *t;
    const char *s;
    size_t n;
    tok_ids_t out;
} enc_job_t;

static void *enc_thread(void *arg)
{
    enc_job_t *j = arg;
    tok_encode(j->t, j->s, j->n, 0, &j->out);
    return NULL;
}

static void test_threads_share(void)
{
    /* one tokenizer, four threads at once, each meeting a giant piece first
     * (the lazily built backtracking tables), then a giant digit piece (the
     * digit pairs' table, built on first use too): all get the same ids */
    char err[CORE_ERR_LEN], path[512];
    snprintf(path, sizeof path, "%s/tok/r50k.tok", getenv("TUNERY_SHARE"));
    tok_t *t = NULL;
    CHECKF(tok_load_file(&t, path, err) == 0, "%s", err);
    if (!t) return;
    size_t n = 60000;
    char *s = malloc(n);
    uint32_t seed = 9;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        s[i] = (i < 40000 ? "abcdefghij" : "0123456789")[(seed >> 24) % 10];
    }
    enc_job_t jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (enc_job_t){ t, s, n, {0} };
        pthread_create(&th[i], NULL, enc_thread, &jobs[i]);
    }
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    tok_ids_t ref = {0};
    CHECK(tok_encode(R, s, n, 0, &ref) == 0);
    for (int i = 0; i < 4; i++) {
        CHECK(jobs[i].out.len == ref.len && memcmp(jobs[i].out.ids, ref.ids, ref.len * sizeof *ref.ids) == 0);
        tok_ids_free(&jobs[i].out);
    }
    tok_ids_free(&ref);
    free(s);
    tok_free(t);
}

static void stream_check(const tok_t *t, const char *s, size_t n, int allow, uint32_t seed)
{
    tok_ids_t whole = {0}, st = {0};
    CHECK(tok_encode(t, s, n, allow, &whole) == 0);
    /* feed blocks of random sizes (1..300 bytes), keeping the unused tail */
    char *buf = malloc(n + 1);
    size_t have = 0, fed = 0, count = 0, used;
    while (fed < n || have > 0) {
        seed = seed * 1664525u + 1013904223u;
        size_t k = 1 + (seed >> 24) % 300;
        if (k > n - fed) k = n - fed;
        memcpy(buf + have, s + fed, k);
        have += k;
        fed += k;
        int final = fed == n;
        CHECK(tok_encode_stream(t, buf, have, allow, final, &st, &count, &used) == 0);
        CHECK(used <= have);
        memmove(buf, buf + used, have - used);
        have -= used;
        if (final) { CHECK(have == 0); break; }
    }
    CHECKF(st.len == whole.len && memcmp(st.ids, whole.ids, st.len * sizeof *st.ids) == 0,
           "streamed %zu ids, whole %zu", st.len, whole.len);
    CHECK_EQ_INT(count, st.len);
    free(buf);
    tok_ids_free(&whole);
    tok_ids_free(&st);
}

static void test_stream(void)
{
    const char *texts[] = {
        "In the beginning God created the heaven and the earth.\n\nAnd the earth was without form, and void;  "
        "and darkness was upon the face of the deep.   It's   \t\t\r\n  done<|endoftext|>next<|endoftext|><|endoftext|>",
        "\xe4\xb8\xad\xe6\x96\x87\xe5\xad\x97 \xf0\x9f\x98\x80\xf0\x9f\x98\x80 caf\xc3\xa9 \xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7 <|endof",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa b",
    };
    for (int rep = 0; rep < 30; rep++)
        for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
            stream_check(R, texts[i], strlen(texts[i]), rep & 1, (uint32_t)(rep * 7 + i));
        }
    char raw[3000];
    uint32_t seed = 3;
    for (int rep = 0; rep < 20; rep++) {
        for (size_t i = 0; i < sizeof raw; i++) {
            seed = seed * 1664525u + 1013904223u;
            raw[i] = (rep & 1) ? (char)(seed >> 24) : " \t\nab'sZ9\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80<|>"[(seed >> 24) % 20];
        }
        stream_check(R, raw, sizeof raw, rep & 2, seed);
    }
    tok_t *t = load_fixture("llama3_style.json");
    if (t) {
        for (int rep = 0; rep < 10; rep++) stream_check(t, texts[0], strlen(texts[0]), rep & 1, (uint32_t)rep);
        tok_free(t);
    }
}

static void test_count_file_bounded(void)
{
    /* 32 MB of JSONL, counted with far less memory than the file's size */
    char path[] = "/tmp/tunery-tok-count-XXXXXX", err[CORE_ERR_LEN] = "";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w");
    const char *line = "{\"prompt\": \"In the beginning God created the heaven and the earth. ->\", "
                       "\"completion\": \" And the earth was without form, and void.\\n\"}\n";
    size_t n = 0, per = strlen(line);
    while (n < (32u << 20)) { fputs(line, f); n += per; }
    fclose(f);
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    size_t count = 0;
    CHECKF(tok_count_file(R, path, &count, err) == 0, "%s", err);
    getrusage(RUSAGE_SELF, &ru1);
    CHECK_EQ_INT(count, (n / per) * tok_count(R, line, per));
    if (!getenv("TUNERY_ASAN"))   /* ASan's shadow memory would blur the figure */
        CHECKF(ru1.ru_maxrss - ru0.ru_maxrss < 16 * 1024, "peak RSS grew %ld KB", ru1.ru_maxrss - ru0.ru_maxrss);
    CHECK(tok_count_file(R, "/tmp/does-not-exist-tunery", &count, err) < 0 && strstr(err, "does-not-exist"));
    unlink(path);
}

int main(void)
{
    if (!getenv("TUNERY_SHARE")) setenv("TUNERY_SHARE", "data", 1);
    RUN(test_r50k_loads);
    RUN(test_count_file_bounded);   /* first: it measures the peak RSS */
    RUN(test_known_ids);
    RUN(test_special);
    RUN(test_roundtrip_random_bytes);
    RUN(test_long_pieces);
    RUN(test_two_byte_pieces);
    RUN(test_three_byte_pieces);
    RUN(test_bt_matches_heap);
    RUN(test_merge_small);
    RUN(test_cut_matches_heap);
    RUN(test_decode_errors);
    RUN(test_hf_gpt2_fixture);
    RUN(test_hf_llama3_fixture);
    RUN(test_hf_errors);
    RUN(test_save_reload_r50k);
    RUN(test_threads_share);
    RUN(test_stream);
    return test_summary();
}
