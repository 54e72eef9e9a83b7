/* prepare_write.c: the output side of `tools fine_tunes.prepare_data`:
 * the split question, the JSONL files written as pandas' to_json(lines=True,
 * force_ascii=False) wrote them, the suggested `tunery api fine_tunes.create`
 * command with its classification flags, the original's time estimate, and
 * numpy's RandomState(42) permutation that decides the train/valid split.
 */
#include "cli/prepare_int.h"
#include <stdlib.h>
#include <string.h>

static void json_str_pandas(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '/': fputs("\\/", f); break;     /* pandas' ujson escapes it */
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        case '\b': fputs("\\b", f); break;
        case '\f': fputs("\\f", f); break;
        default:
            if (*p < 0x20) fprintf(f, "\\u%04x", *p);
            else fputc(*p, f);
        }
    }
    fputc('"', f);
}

static int write_rows(const char *path, const df_t *d, const size_t *rows, size_t n, FILE *errf)
{
    FILE *f = fopen(path, "wb");
    if (!f) { fprintf(errf, "tunery: cannot write %s\n", path); return -1; }
    for (size_t k = 0; k < n; k++) {
        size_t i = rows ? rows[k] : k;
        fputs("{\"prompt\":", f);
        json_str_pandas(f, d->p[i]);
        fputs(",\"completion\":", f);
        json_str_pandas(f, d->c[i]);
        fputs("}\n", f);
    }
    return fclose(f) ? -1 : 0;
}

static void out_names(const char *fname, int split, char names[2][4200])
{
    const char *slash = strrchr(fname, '/'), *base = slash ? slash + 1 : fname;
    const char *dot = strrchr(base, '.');
    while (dot && dot > base && dot[-1] == '.') dot--;   /* splitext skips leading dots */
    size_t stem = dot && dot != base ? (size_t)(dot - fname) : strlen(fname);
    for (int i = 0;; i++) {
        char idx[32] = "";
        if (i) snprintf(idx, sizeof idx, " (%d)", i);
        int exists = 0;
        for (int k = 0; k < (split ? 2 : 1); k++) {
            snprintf(names[k], 4200, "%.*s_prepared%s%s.jsonl", (int)stem, fname,
                     split ? (k ? "_valid" : "_train") : "", idx);
            exists |= fs_exists(names[k]);
        }
        if (!exists) return;
    }
}

static void estimate_time(pd_ctx_t *x)
{
    df_t *d = &x->df;
    double t;
    if (pd_infer_task(d) == TASK_CLASS) t = (double)d->n * 1.44;
    else t = (16.0 * (double)d->n + (d->reindexed ? 8.0 * (double)d->n : 128.0)) * 0.0515;
    t += 140;
    const char *unit;
    double v;
    if (t < 60) { v = t; unit = "seconds"; }
    else if (t < 3600) { v = t / 60; unit = "minutes"; }
    else if (t < 86400) { v = t / 3600; unit = "hours"; }
    else { v = t / 86400; unit = "days"; }
    char s[64], r[64];
    snprintf(s, sizeof s, "%.2f", v);   /* round(v, 2): correctly rounded, like Python's */
    cli_py_float(strtod(s, NULL), r, sizeof r);
    fprintf(x->out, "Once your model starts training, it'll approximately take %s %s to train a `curie` model, and less "
                    "for `ada` and `babbage`. Queue will approximately take half an hour per job ahead of you.\n", r, unit);
}

int pd_write_out(pd_ctx_t *x, const char *fname, int any_applied)
{
    df_t *d = &x->df;
    task_t task = pd_infer_task(d);
    char *psfx = pd_common_xfix(d->p, d->n, 1), *csfx = pd_common_xfix(d->c, d->n, 1);
    char *psfx_d = pd_nl_escaped(psfx), *csfx_d = pd_nl_escaped(csfx);
    int split = task == TASK_CLASS && pd_ask(x, "- [Recommended] Would you like to split into training and validation set? [Y/n]: ");
    char *ending = *csfx_d ? pd_fmt(" Make sure to include `stop=[\"%s\"]` so that the generated texts ends at the expected place.", csfx_d)
                           : strdup("");
    int rc = 0;
    if (!any_applied && !split) {
        fprintf(x->out, "\nYou can use your file for fine-tuning:\n> tunery api fine_tunes.create -t \"%s\"\n\nAfter you\xe2\x80\x99ve "
                        "fine-tuned a model, remember that your prompt has to end with the indicator string `%s` for the "
                        "model to start generating completions, rather than continuing with the prompt.%s\n", fname, psfx_d, ending);
        estimate_time(x);
    } else if (pd_ask(x, "\n\nYour data will be written to a new JSONL file. Proceed [Y/n]: ")) {
        char names[2][4200];
        out_names(fname, split, names);
        buf_t extra = {0};
        buf_reserve(&extra, 1);
        if (split) {
            size_t n = d->n, n_train = n > 1000 && n - 1000 > (size_t)(n * 0.8) ? n - 1000 : (size_t)(n * 0.8);
            size_t *perm = malloc((n + 1) * sizeof *perm), *valid = malloc((n + 1) * sizeof *valid), nv = 0;
            unsigned char *in_train = calloc(n + 1, 1);
            pd_permutation(42, n, perm);
            for (size_t i = 0; i < n_train; i++) in_train[perm[i]] = 1;
            for (size_t i = 0; i < n; i++) if (!in_train[i]) valid[nv++] = i;
            rc = write_rows(names[0], d, perm, n_train, x->errf) || write_rows(names[1], d, valid, nv, x->errf);
            free(perm); free(valid); free(in_train);
            /* number of classes, and the most frequent one (first seen wins a tie) */
            unsigned char *dup = calloc(n + 1, 1);
            size_t ncls = pd_hash_unique(d->c, NULL, n, dup, 0), best = 0, best_n = 0;
            for (size_t i = 0; i < n && ncls == 2; i++) {
                if (dup[i]) continue;
                size_t cnt = 0;
                for (size_t j = i; j < n; j++) cnt += !strcmp(d->c[j], d->c[i]);
                if (cnt > best_n) { best_n = cnt; best = i; }
            }
            free(dup);
            buf_appends(&extra, " --compute_classification_metrics");
            if (ncls == 2) buf_printf(&extra, " --classification_positive_class \"%s\"", d->c[best]);
            else buf_printf(&extra, " --classification_n_classes %zu", ncls);
        } else {
            rc = write_rows(names[0], d, NULL, d->n, x->errf);
        }
        if (rc) { buf_free(&extra); goto done; }
        buf_t files = {0};
        buf_printf(&files, "%s to `%s", split ? "s" : "", names[0]);
        if (split) buf_printf(&files, "` and `%s", names[1]);
        char *valid_s = split ? pd_fmt(" -v \"%s\"", names[1]) : strdup("");
        char *reminder = *psfx_d ? pd_fmt("After you\xe2\x80\x99ve fine-tuned a model, remember that your prompt has to end with the "
                                       "indicator string `%s` for the model to start generating completions, rather than "
                                       "continuing with the prompt.", psfx_d) : strdup("");
        fprintf(x->out, "\nWrote modified file%s`\nFeel free to take a look!\n\nNow use that file when fine-tuning:\n"
                        "> tunery api fine_tunes.create -t \"%s\"%s%s\n\n%s%s\n",
                files.data, names[0], valid_s, extra.data, reminder, ending);
        free(valid_s);
        free(reminder);
        buf_free(&files);
        buf_free(&extra);
        estimate_time(x);
    } else {
        fputs("Aborting... did not write the file\n", x->out);
    }
done:
    free(psfx); free(csfx); free(psfx_d); free(csfx_d); free(ending);
    return rc ? 1 : 0;
}

/* ---- numpy's RandomState(seed).permutation(n) ---- */

typedef struct { uint32_t mt[624]; int i; } mt19937_t;

static void mt_seed(mt19937_t *m, uint32_t s)
{
    m->mt[0] = s;
    for (int i = 1; i < 624; i++) m->mt[i] = 1812433253u * (m->mt[i - 1] ^ (m->mt[i - 1] >> 30)) + (uint32_t)i;
    m->i = 624;
}

static uint32_t mt_next(mt19937_t *m)
{
    if (m->i >= 624) {
        for (int k = 0; k < 624; k++) {
            uint32_t y = (m->mt[k] & 0x80000000u) | (m->mt[(k + 1) % 624] & 0x7fffffffu);
            m->mt[k] = m->mt[(k + 397) % 624] ^ (y >> 1) ^ (y & 1 ? 0x9908b0dfu : 0);
        }
        m->i = 0;
    }
    uint32_t y = m->mt[m->i++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

/* numpy's legacy random_interval: masked rejection sampling in [0, max]. */
static uint64_t mt_interval(mt19937_t *m, uint64_t max)
{
    if (!max) return 0;
    uint64_t mask = max;
    for (int s = 1; s <= 32; s <<= 1) mask |= mask >> s;
    uint64_t v;
    if (max <= 0xffffffffu) {
        while ((v = (mt_next(m) & mask)) > max) {}
    } else {
        while ((v = ((((uint64_t)mt_next(m)) << 32 | mt_next(m)) & mask)) > max) {}
    }
    return v;
}

void pd_permutation(uint32_t seed, size_t n, size_t *out)
{
    mt19937_t m;
    mt_seed(&m, seed);
    for (size_t i = 0; i < n; i++) out[i] = i;
    for (size_t i = n; i-- > 1;) {
        size_t j = (size_t)mt_interval(&m, i);
        size_t t = out[i]; out[i] = out[j]; out[j] = t;
    }
}
