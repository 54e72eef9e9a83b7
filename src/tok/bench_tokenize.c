/* bench_tokenize.c: `tunery bench tokenize [FILE]`, the tokenizer's speed as
 * JSON lines: r50k load time, single-threaded MB/s and tokens/s on the KJV
 * Bible (or FILE), the same for npm tiktoken (WASM) and js-tiktoken in the
 * same run (scripts/bench_tiktoken.mjs), and the CPU time per byte of
 * adversarial inputs relative to the text's (issue 3's target: 2x): 10 MB
 * without a space of random letters, digits, CJK, emoji, mixed classes,
 * random bytes, 100 KB lines, the text with its whitespace removed; 10 MB of
 * one letter or of spaces. The first line names the CPU and the load, since
 * figures from a shared machine mean little without them.
 */
#include "cmds.h"
#include "tok/tok_int.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
    "usage: tunery bench tokenize [FILE] [--reps N] [--no-peers] [--no-pathological] [--only NAME]\n"
    "Prints JSON lines: load time of r50k, single-threaded MB/s and tokens/s of\n"
    "encoding FILE (default: the KJV Bible from `bible Gen1:1-Rev22:21`), the same\n"
    "figures for npm tiktoken and js-tiktoken (needs node and `npm ci` in\n"
    "tests/tok/node), and pathological inputs' time per byte relative to FILE's.\n"
    "  --reps N            timed repetitions, the median is reported (default 5)\n"
    "  --no-peers          skip tiktoken and js-tiktoken\n"
    "  --no-pathological   skip the 10 MB pathological inputs\n"
    "  --only NAME         only the pathological inputs whose name contains NAME\n";

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* median wall seconds of reps encodes (*cpu: median CPU seconds of the
 * thread, the fairer figure on a shared machine); *ntok: the token count */
static double time_encode(const tok_t *t, const char *s, size_t n, int reps, size_t *ntok, double *cpu)
{
    double ts[64], cs[64];
    tok_ids_t v = {0};
    if (reps > 64) reps = 64;
    tok_encode(t, s, n, 0, &v);   /* warm-up, sizes the id buffer */
    for (int i = 0; i < reps; i++) {
        v.len = 0;
        double t0 = time_mono(), c0 = cpu_now();
        tok_encode(t, s, n, 0, &v);
        ts[i] = time_mono() - t0;
        cs[i] = cpu_now() - c0;
    }
    *ntok = v.len;
    tok_ids_free(&v);
    qsort(ts, (size_t)reps, sizeof *ts, cmp_double);
    qsort(cs, (size_t)reps, sizeof *cs, cmp_double);
    *cpu = cs[reps / 2];
    return ts[reps / 2];
}

static void print_fig(const char *impl, const char *input, size_t bytes, size_t ntok, double s, double cpu, double rel)
{
    printf("{\"bench\":\"tokenize\",\"impl\":\"%s\",\"input\":\"%s\",\"bytes\":%zu,\"tokens\":%zu,"
           "\"seconds\":%.4f,\"mb_per_s\":%.2f,\"tokens_per_s\":%.0f,\"cpu_seconds\":%.4f,\"cpu_mb_per_s\":%.2f",
           impl, input, bytes, ntok, s, bytes / s / 1e6, ntok / s, cpu, bytes / cpu / 1e6);
    if (rel > 0) printf(",\"cpu_per_byte_vs_text\":%.2f", rel);
    printf("}\n");
    fflush(stdout);
}

/* the CPU's model name and its cores, for the machine line */
static void print_machine(void)
{
    char line[512], model[256] = "unknown";
    int cores = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f)) {
        if (!strncmp(line, "processor", 9)) cores++;
        char *c = strchr(line, ':');
        if (c && !strncmp(line, "model name", 10) && !strcmp(model, "unknown")) {
            snprintf(model, sizeof model, "%s", c + 2);
            model[strcspn(model, "\n\"\\")] = 0;
        }
    }
    if (f) fclose(f);
    double load[3] = {0};
    if (getloadavg(load, 3) < 0) load[0] = -1;
    printf("{\"bench\":\"tokenize\",\"figure\":\"machine\",\"cpu\":\"%s\",\"cpus\":%d,\"loadavg\":%.2f,"
           "\"note\":\"encode is single-threaded; per-byte ratios use thread CPU time\"}\n", model, cores, load[0]);
}

static int read_kjv(buf_t *b, char *err)
{
    FILE *p = popen("bible -f 'Gen1:1-Rev22:21' 2>/dev/null || bible 'Gen1:1-Rev22:21'", "r");
    if (!p) return core_errf(err, "cannot run bible: install the Debian packages bible-kjv and bible-kjv-text, or give a FILE");
    char tmp[1 << 16];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, p)) > 0) buf_append(b, tmp, n);
    if (pclose(p) != 0 || b->len < 1000000)
        return core_errf(err, "`bible Gen1:1-Rev22:21` did not print the KJV text: install bible-kjv and bible-kjv-text, or give a FILE");
    return 0;
}

static void run_peers(const char *file, int reps, const char *label, double our_mbps, double our_cpu_mbps)
{
    char script[PATH_MAX + 64], cmd[3 * PATH_MAX];
    snprintf(script, sizeof script, "%s/../scripts/bench_tiktoken.mjs", core_share_dir());
    if (!fs_exists(script)) {
        printf("{\"bench\":\"tokenize\",\"impl\":\"tiktoken-wasm\",\"skipped\":\"%s not found\"}\n", script);
        return;
    }
    snprintf(cmd, sizeof cmd, "node '%s' '%s' %d '%s' 2>&1", script, file, reps, label);
    FILE *p = popen(cmd, "r");
    if (!p) return;
    char line[4096];
    while (fgets(line, sizeof line, p)) {
        fputs(line, stdout);
        const char *m = strstr(line, "\"mb_per_s\":"), *c = strstr(line, "\"cpu_mb_per_s\":");
        if (strstr(line, "\"tiktoken-wasm\"") && m && c && our_mbps > 0)
            printf("{\"bench\":\"tokenize\",\"figure\":\"speedup_vs_tiktoken\",\"input\":\"%s\",\"wall\":%.2f,\"cpu\":%.2f}\n",
                   label, our_mbps / atof(m + 11), our_cpu_mbps / atof(c + 15));
    }
    if (pclose(p) != 0)
        printf("{\"bench\":\"tokenize\",\"impl\":\"tiktoken-wasm\",\"skipped\":\"node failed; run npm ci in tests/tok/node\"}\n");
    fflush(stdout);
}

/* The adversarial inputs, 10 MB each: giant pre-tokenizer pieces (no
 * space) of every class, and the degenerate runs. */
static const char *const patho_cases[] = {
    "10MB-no-space-letters",        /* random a-z: one 10 MB \p{L}+ piece */
    "10MB-no-space-mixed",          /* letters, digits, punctuation: pieces of a few bytes */
    "10MB-text-without-whitespace", /* the text with its whitespace removed */
    "10MB-one-letter",
    "10MB-spaces",
    "10MB-digits",                  /* random 0-9: one \p{N}+ piece */
    "10MB-cjk",                     /* random U+4E00..U+9FFF: one \p{L}+ piece */
    "10MB-emoji",                   /* random U+1F300..U+1F64F: one "other" piece */
    "10MB-random-bytes",            /* uniform bytes, mostly invalid UTF-8 */
    "10MB-100KB-no-space-lines",    /* 100 KB lines of letters, digits, punctuation */
};

static uint32_t patho_seed;

static unsigned patho_rand(unsigned n)
{
    patho_seed = patho_seed * 1664525u + 1013904223u;
    return (unsigned)(((uint64_t)(patho_seed >> 8) * n) >> 24);
}

static size_t put_utf8(char *p, uint32_t cp)
{
    if (cp < 0x10000) {
        p[0] = (char)(0xe0 | cp >> 12);
        p[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        p[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    p[0] = (char)(0xf0 | cp >> 18);
    p[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    p[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    p[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

static void patho_fill(char *p, size_t n, size_t which, const buf_t *text)
{
    static const char letters[] = "abcdefghijklmnopqrstuvwxyz";
    static const char mixed[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789.,;:-_/()";
    static const char line[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;-_/";
    size_t i = 0, k = 0;
    patho_seed = 42 + (uint32_t)which;
    switch (which) {
    case 0: for (; i < n; i++) p[i] = letters[patho_rand(26)]; break;
    case 1: for (; i < n; i++) p[i] = mixed[patho_rand(sizeof mixed - 1)]; break;
    case 2:
        for (size_t j = 0; j < text->len && k < n; j++) {
            char c = text->data[j];
            if (c != ' ' && c != '\n' && c != '\t' && c != '\r') p[k++] = c;
        }
        for (i = k; k > 0 && i < n; i++) p[i] = p[i - k];
        break;
    case 3: memset(p, 'a', n); break;
    case 4: memset(p, ' ', n); break;
    case 5: for (; i < n; i++) p[i] = (char)('0' + patho_rand(10)); break;
    case 6:
    case 7:
        while (i + 4 <= n) i += put_utf8(p + i, which == 6 ? 0x4e00 + patho_rand(0x5200) : 0x1f300 + patho_rand(0x350));
        for (; i < n; i++) p[i] = which == 6 ? 'a' : '!';
        break;
    case 8: for (; i < n; i++) p[i] = (char)patho_rand(256); break;
    default:
        for (; i < n; i++) p[i] = (i + 1) % 100000 == 0 ? '\n' : line[patho_rand(sizeof line - 1)];
        break;
    }
}

int cmd_bench_tokenize(int argc, char **argv)
{
    const char *file = NULL, *only = NULL;
    int reps = 5, peers = 1, patho = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-peers")) peers = 0;
        else if (!strcmp(argv[i], "--no-pathological")) patho = 0;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { fputs(usage, stdout); return 0; }
        else if (argv[i][0] != '-' && !file) file = argv[i];
        else { fprintf(stderr, "tunery bench tokenize: unknown option '%s'\n%s", argv[i], usage); return 2; }
    }
    if (reps < 1) reps = 1;
    print_machine();
    char err[CORE_ERR_LEN], path[PATH_MAX];
    snprintf(path, sizeof path, "%s/tok/r50k.tok", core_share_dir());
    double lt[9];
    for (int i = 0; i < 9; i++) {
        tok_t *t = NULL;
        double t0 = time_mono();
        if (tok_load_file(&t, path, err)) { fprintf(stderr, "tunery bench tokenize: %s\n", err); return 1; }
        lt[i] = time_mono() - t0;
        tok_free(t);
    }
    qsort(lt, 9, sizeof *lt, cmp_double);
    printf("{\"bench\":\"tokenize\",\"figure\":\"r50k_load_ms\",\"value\":%.2f}\n", lt[4] * 1e3);
    const tok_t *t = tok_r50k(err);
    if (!t) { fprintf(stderr, "tunery bench tokenize: %s\n", err); return 1; }

    buf_t text = {0};
    char tmpf[] = "/tmp/tunery-bench-tok-XXXXXX";
    const char *label = file ? file : "kjv";
    int rc = 1;
    if (file ? fs_read_all(file, &text.data, &text.len, err) : read_kjv(&text, err)) {
        fprintf(stderr, "tunery bench tokenize: %s\n", err);
        goto done;
    }
    size_t ntok;
    double cpu, s = time_encode(t, text.data, text.len, reps, &ntok, &cpu);
    double per_byte = cpu / (double)text.len;
    print_fig("tunery", label, text.len, ntok, s, cpu, 0);
    if (peers) {
        const char *pf = file;
        if (!pf) {
            int fd = mkstemp(tmpf);
            if (fd < 0 || write(fd, text.data, text.len) != (ssize_t)text.len) { if (fd >= 0) close(fd); goto patho; }
            close(fd);
            pf = tmpf;
        }
        run_peers(pf, reps, label, text.len / s / 1e6, text.len / cpu / 1e6);
    }
patho:
    if (patho) {
        size_t n = 10u << 20;
        char *p = malloc(n);
        if (!p) goto done;
        int pr = reps < 3 ? reps : 3;
        for (size_t c = 0; c < sizeof patho_cases / sizeof *patho_cases; c++) {
            if (only && !strstr(patho_cases[c], only)) continue;
            patho_fill(p, n, c, &text);
            s = time_encode(t, p, n, pr, &ntok, &cpu);
            print_fig("tunery", patho_cases[c], n, ntok, s, cpu, cpu / n / per_byte);
        }
        free(p);
    }
    rc = 0;
done:
    if (!file && tmpf[sizeof tmpf - 2] != 'X') unlink(tmpf);
    buf_free(&text);
    return rc;
}
