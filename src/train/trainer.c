/* trainer.c: train_run, one fine-tune from a JSONL file to a model directory.
 *
 * The loop, and the decisions behind it (docs/finetune.md has the long form):
 *   - a step is batch_size examples; steps per epoch = ceil(n / batch_size),
 *     the last batch of an epoch may be smaller;
 *   - data order: each epoch is a Fisher-Yates shuffle seeded by
 *     core_splitmix64(seed, epoch), so the order is a pure function of the seed
 *     and a resumed run needs no stored permutation;
 *   - every forward pass of a run has the same shape (B, T): T = the longest
 *     example (or classification row) rounded up to 8, B = micro_tokens / T
 *     capped at batch_size; short examples are padded (loss weight 0) and a
 *     micro-batch with fewer examples gets empty rows. One shape because the
 *     engine picks a matmul kernel per shape from a bounded cache: a run that
 *     shows it many shapes can get a different kernel (different rounding)
 *     for the same shape after a resume, and the resumed losses then drift
 *     in the 8th digit (seen with per-batch T). Gradients accumulate across
 *     micro-batches with grad_scale = 1 / (total loss weight of the step),
 *     so the update is that of the weighted mean over the whole batch;
 *   - AdamW (beta 0.9/0.95, eps 1e-8, weight decay 0.1 on matrices, as GPT-3
 *     was trained), gradient norm clipped to 1.0, learning rate decaying
 *     linearly from its resolved value to 0 at the end (no warm-up: the
 *     model is already trained);
 *   - validation over the whole validation file every valid_every steps
 *     (default: 4 times per epoch) and at each epoch end; classification
 *     metrics at each epoch end;
 *   - a checkpoint at each epoch end and every checkpoint_every steps.
 */
#include "train/train_ckpt.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define MICRO_TOKENS_DEFAULT 1024

typedef struct {
    const train_opts_t *o;
    const train_hooks_t *h;
    gpt2_t m;
    tok_t *tk;
    tdata_t tr, va;
    int has_valid;
    train_resolved_t r;
    double pretrain_lr;
    int spe;                  /* steps per epoch */
    int valid_every;
    int *perm, perm_epoch;
    int *in, *tg;             /* micro-batch buffers, B*T (or Bc*T) each */
    float *w;
    int micro_tokens;
    int B, T;                 /* the one forward shape of this run */
    int Bc;                   /* classification rows per forward: a multiple of n_cls */
    results_cols_t cols;
    int positive;             /* binary: index of the positive class */
    int **cls_ids; int *cls_n; int n_cls;  /* classification: each class's tokens */
    buf_t csv;
    char csv_path[PATH_MAX];
    FILE *log;                /* work_dir/train.log, appended; NULL if it cannot be opened */
    long long elapsed_tokens, elapsed_examples;
} trainer_t;

/* ---------------------------------------------------------------------- */
/* deterministic data order */

static void epoch_order(trainer_t *t, int epoch)
{
    if (t->perm_epoch == epoch) return;
    int n = t->tr.n;
    uint64_t st = t->r.seed ^ (0xD1B54A32D192ED03ull * (uint64_t)(epoch + 1));
    for (int i = 0; i < n; i++) t->perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(core_splitmix64(&st) % (uint64_t)(i + 1));
        int x = t->perm[i]; t->perm[i] = t->perm[j]; t->perm[j] = x;
    }
    t->perm_epoch = epoch;
}

/* ---------------------------------------------------------------------- */
/* forward over a list of examples in micro-batches; accumulates statistics */

typedef struct {
    double wloss, wsum;       /* sum w*loss, sum w */
    long tok_ok, tok_n;       /* completion tokens predicted right / counted */
    long seq_ok, seq_n;
} evalsum_t;

static int round8(int x, int cap) { x = (x + 7) & ~7; return x > cap ? cap : x; }

/* Run examples idx[0..n) through the model. With backward: accumulate
 * gradients scaled by grad_scale. */
static int run_examples(trainer_t *t, const tdata_t *d, const int *idx, int n, int backward, float grad_scale, evalsum_t *es)
{
    int B = t->B, T = t->T;
    for (int i = 0; i < n; i += B) {
        int rows = n - i < B ? n - i : B;
        for (int b = 0; b < B; b++) {
            const tex_t *x = b < rows ? &d->ex[idx[i + b]] : NULL;
            int len = x ? x->n - 1 : 0;
            for (int p = 0; p < T; p++) {
                int k = b * T + p;
                if (p < len) { t->in[k] = x->ids[p]; t->tg[k] = x->ids[p + 1]; t->w[k] = x->w[p + 1]; }
                else { t->in[k] = tok_eot(t->tk); t->tg[k] = -1; t->w[k] = 0; }
            }
        }
        float ml = gpt2_forward(&t->m, t->in, t->tg, t->w, B, T);
        if (isnan(ml)) return -1;
        if (backward) gpt2_backward(&t->m, grad_scale);
        for (int b = 0; b < rows; b++) {
            const tex_t *x = &d->ex[idx[i + b]];
            int len = x->n - 1, ok = 1, any = 0;
            for (int p = 0; p < len; p++) {
                int k = b * T + p;
                es->wloss += (double)t->w[k] * t->m.out_losses[k];
                es->wsum += t->w[k];
                if (x->is_compl[p + 1]) {
                    int hit = t->m.out_argmax[k] == t->tg[k];
                    es->tok_ok += hit; es->tok_n++; ok &= hit; any = 1;
                }
            }
            if (any) { es->seq_ok += ok; es->seq_n++; }
        }
    }
    return 0;
}

static void evalsum_metrics(const evalsum_t *e, double *loss, double *seq, double *tok)
{
    *loss = e->wsum > 0 ? e->wloss / e->wsum : NAN;
    *seq = e->seq_n ? (double)e->seq_ok / e->seq_n : NAN;
    *tok = e->tok_n ? (double)e->tok_ok / e->tok_n : NAN;
}

static int validate(trainer_t *t, train_metrics_t *mt)
{
    evalsum_t es = {0};
    int *idx = malloc((size_t)t->va.n * sizeof *idx);
    if (!idx) return -1;
    for (int i = 0; i < t->va.n; i++) idx[i] = i;
    int rc = run_examples(t, &t->va, idx, t->va.n, 0, 0, &es);
    free(idx);
    evalsum_metrics(&es, &mt->validation_loss, &mt->validation_sequence_accuracy, &mt->validation_token_accuracy);
    return rc;
}

static void emit(trainer_t *t, const char *level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---------------------------------------------------------------------- */
/* classification: score every class string after each validation prompt */

static int classification_setup(trainer_t *t, char *err)
{
    const train_opts_t *o = t->o;
    if (!o->compute_classification_metrics) return 0;
    if (!t->has_valid) return core_errf(err, "compute_classification_metrics needs a validation file");
    if (t->va.is_chat) return core_errf(err, "classification metrics need prompt/completion data, not chat messages");
    if (!o->classification_positive_class && o->classification_n_classes < 2)
        return core_errf(err, "compute_classification_metrics needs classification_positive_class (binary) or classification_n_classes (multiclass, at least 2)");
    /* classes: every distinct completion of the training then validation file */
    char **names = NULL;
    int n = 0;
    const tdata_t *ds[2] = {&t->tr, &t->va};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < ds[k]->n_classes; i++) {
            int dup = 0;
            for (int j = 0; j < n; j++) dup |= !strcmp(names[j], ds[k]->classes[i]);
            if (dup) continue;
            names = realloc(names, (size_t)(n + 1) * sizeof *names);
            names[n++] = ds[k]->classes[i];
        }
    if (n > 64) { free(names); return core_errf(err, "classification metrics: the data has %d distinct completions; a classification set has a few classes", n); }
    t->positive = -1;
    if (o->classification_positive_class) {
        for (int j = 0; j < n; j++) if (!strcmp(names[j], o->classification_positive_class)) t->positive = j;
        if (t->positive < 0) { free(names); return core_errf(err, "classification_positive_class \"%s\" is not a completion in the data (mind the leading space)", o->classification_positive_class); }
        if (n != 2) { free(names); return core_errf(err, "classification_positive_class is for binary classification, but the data has %d distinct completions", n); }
        t->cols.binary = 1;
        t->cols.betas = o->classification_betas;
        t->cols.nbetas = o->n_classification_betas > 16 ? 16 : o->n_classification_betas;
    } else {
        t->cols.multiclass = 1;
        if (o->classification_n_classes != n)
            emit(t, "warn", "classification_n_classes is %d but the data has %d distinct completions; the metrics use the %d found",
                 o->classification_n_classes, n, n);
    }
    t->n_cls = n;
    t->cls_ids = calloc((size_t)n, sizeof *t->cls_ids);
    t->cls_n = calloc((size_t)n, sizeof *t->cls_n);
    for (int j = 0; j < n; j++) {
        tok_ids_t ids = {0};
        tok_encode(t->tk, names[j], strlen(names[j]), 0, &ids);
        t->cls_ids[j] = ids.ids;
        t->cls_n[j] = (int)ids.len;
    }
    /* map validation labels to this class list */
    for (int i = 0; i < t->va.n; i++) {
        int c = t->va.ex[i].class_id;
        const char *nm = c >= 0 ? t->va.classes[c] : NULL;
        t->va.ex[i].class_id = -1;
        for (int j = 0; nm && j < n; j++) if (!strcmp(names[j], nm)) t->va.ex[i].class_id = j;
    }
    free(names);
    return 0;
}

/* Length of example x's prompt + class j after cutting the oldest prompt
 * tokens so that the inputs fit the context. */
static int cls_cut(const trainer_t *t, const tex_t *x)
{
    int maxT = t->m.config.max_seq_len, L = 0;
    for (int j = 0; j < t->n_cls; j++) if (x->prompt_n + t->cls_n[j] > L) L = x->prompt_n + t->cls_n[j];
    return L - 1 > maxT ? L - 1 - maxT : 0;
}

/* Rows (example, class) for examples idx[0..ne): inputs prompt + class
 * tokens, weight 1 on predicting each class token. One forward scores them
 * all; prob gets softmax over classes of log p(class string | prompt). */
static int classify_batch(trainer_t *t, const int *idx, int ne, int T, double *prob)
{
    int K = t->n_cls;
    for (int e = 0; e < ne; e++) {
        const tex_t *x = &t->va.ex[idx[e]];
        int pn = x->prompt_n, cut = cls_cut(t, x);
        for (int j = 0; j < K; j++) {
            int len = pn - cut + t->cls_n[j], row = e * K + j;
            for (int p = 0; p < T; p++) {
                int k = row * T + p, q = p + cut;   /* q: position in prompt+class */
                t->in[k] = p >= len ? tok_eot(t->tk) : q < pn ? x->ids[q] : t->cls_ids[j][q - pn];
                t->tg[k] = p + 1 >= len ? -1 : q + 1 < pn ? x->ids[q + 1] : t->cls_ids[j][q + 1 - pn];
                t->w[k] = p + 1 < len && q + 1 >= pn ? 1.0f : 0.0f;
            }
        }
    }
    for (size_t k = (size_t)ne * K * T; k < (size_t)t->Bc * T; k++) { t->in[k] = tok_eot(t->tk); t->tg[k] = -1; t->w[k] = 0; }
    if (isnan(gpt2_forward(&t->m, t->in, t->tg, t->w, t->Bc, T))) return -1;
    for (int e = 0; e < ne; e++) {
        double *pr = prob + (size_t)e * K, mx = -INFINITY, z = 0;
        for (int j = 0; j < K; j++) {
            const float *w = t->w + (size_t)(e * K + j) * T, *l = t->m.out_losses + (size_t)(e * K + j) * T;
            double lp = 0;
            for (int p = 0; p < T; p++) lp -= w[p] * l[p];
            pr[j] = lp;
            if (lp > mx) mx = lp;
        }
        for (int j = 0; j < K; j++) z += pr[j] = exp(pr[j] - mx);
        for (int j = 0; j < K; j++) pr[j] /= z;
    }
    return 0;
}

static int classification_metrics(trainer_t *t, cls_metrics_t *cm)
{
    int n = t->va.n, K = t->n_cls;
    int *y = malloc((size_t)n * sizeof *y), *pred = malloc((size_t)n * sizeof *pred), *idx = malloc((size_t)n * sizeof *idx);
    double *pp = malloc((size_t)n * sizeof *pp), *prob = malloc((size_t)n * K * sizeof *prob);
    int rc = (!y || !pred || !pp || !prob || !idx) ? -1 : 0, m = 0;
    for (int i = 0; i < n; i++) if (t->va.ex[i].class_id >= 0) idx[m++] = i;
    /* Bc / K examples per forward, always the run's (Bc, T) shape */
    for (int i = 0; !rc && i < m; i += t->Bc / K) {
        int ne = m - i < t->Bc / K ? m - i : t->Bc / K;
        if (classify_batch(t, idx + i, ne, t->T, prob + (size_t)i * K)) rc = -1;
    }
    for (int i = 0; !rc && i < m; i++) {
        const tex_t *x = &t->va.ex[idx[i]];
        const double *pr = prob + (size_t)i * K;
        int best = 0;
        for (int j = 1; j < K; j++) if (pr[j] > pr[best]) best = j;
        y[i] = t->cols.binary ? x->class_id == t->positive : x->class_id;
        pred[i] = best;
        pp[i] = t->cols.binary ? pr[t->positive] : 0;
    }
    if (!rc) {
        if (t->cols.binary) metrics_binary(y, pp, m, t->cols.betas, t->cols.nbetas, cm);
        else metrics_multiclass(y, pred, m, K, cm);
    }
    free(y); free(pred); free(pp); free(prob); free(idx);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* results, events, checkpoints */

/* One line of work_dir/train.log: UTC time, then the message. */
static void tlog(trainer_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tlog(trainer_t *t, const char *fmt, ...)
{
    if (!t->log) return;
    char ts[32];
    time_fmt_model(time_unix(), ts);
    fprintf(t->log, "%s ", ts);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(t->log, fmt, ap);
    va_end(ap);
    fputc('\n', t->log);
    fflush(t->log);
}

static void emit(trainer_t *t, const char *level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tlog(t, "%s: %s", level, msg);
    if (t->h && t->h->event) t->h->event(t->h->ctx, level, msg);
}

static int csv_append(trainer_t *t, const train_metrics_t *mt, const cls_metrics_t *cm, char *err)
{
    size_t before = t->csv.len;
    if (results_row(&t->csv, &t->cols, mt, cm)) return core_errf(err, "out of memory");
    FILE *f = fopen(t->csv_path, "ab");
    if (!f) return core_errf(err, "cannot append to %s: %s", t->csv_path, strerror(errno));
    size_t n = t->csv.len - before;
    int bad = fwrite(t->csv.data + before, 1, n, f) != n;
    bad |= fclose(f) != 0;
    return bad ? core_errf(err, "cannot write %s: %s (disk full?)", t->csv_path, strerror(errno)) : 0;
}

static void state_fill(const trainer_t *t, int step, ckpt_state_t *s)
{
    memset(s, 0, sizeof *s);
    s->step = step;
    s->total_steps = t->r.total_steps;
    s->n_epochs = t->r.n_epochs;
    s->batch_size = t->r.batch_size;
    s->learning_rate = t->r.learning_rate;
    s->learning_rate_multiplier = t->r.learning_rate_multiplier;
    s->prompt_loss_weight = t->r.prompt_loss_weight;
    s->pretrain_learning_rate = t->pretrain_lr;
    s->seed = t->r.seed;
    snprintf(s->train_sha256, sizeof s->train_sha256, "%s", t->tr.sha256);
    snprintf(s->valid_sha256, sizeof s->valid_sha256, "%s", t->has_valid ? t->va.sha256 : "");
    s->elapsed_tokens = t->elapsed_tokens;
    s->elapsed_examples = t->elapsed_examples;
    s->bf16 = nn_matmul_get_precision() == NN_PREC_BF16;
}

static int checkpoint(trainer_t *t, int step, const train_metrics_t *mt, char *err)
{
    ckpt_state_t s;
    char dir[PATH_MAX];
    state_fill(t, step, &s);
    if (ckpt_write(t->o->work_dir, &t->m, &s, &t->csv, dir, err)) return -1;
    tlog(t, "checkpoint %s", dir);
    if (t->h && t->h->checkpoint) t->h->checkpoint(t->h->ctx, step, dir, mt);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* setup */

static int resolve(trainer_t *t, char *err)
{
    const train_opts_t *o = t->o;
    train_resolved_t *r = &t->r;
    r->n_epochs = o->n_epochs > 0 ? o->n_epochs : 4;
    r->batch_size = o->batch_size > 0 ? o->batch_size : hp_auto_batch_size(t->tr.n);
    if (r->batch_size > t->tr.n) r->batch_size = t->tr.n;
    r->learning_rate_multiplier = o->learning_rate_multiplier > 0 ? o->learning_rate_multiplier : hp_auto_lr_multiplier(r->batch_size);
    t->pretrain_lr = hp_pretrain_lr(o->base_model_dir);
    r->learning_rate = r->learning_rate_multiplier * t->pretrain_lr;
    r->prompt_loss_weight = o->prompt_loss_weight >= 0 ? o->prompt_loss_weight : 0.01;
    if (o->has_seed) r->seed = o->seed;
    else if (getrandom(&r->seed, sizeof r->seed, 0) != sizeof r->seed) r->seed = (uint64_t)time_unix();
    if (!o->has_seed) r->seed &= 0x7FFFFFFF;  /* the current API's seed range */
    r->n_train_examples = t->tr.n;
    r->n_valid_examples = t->has_valid ? t->va.n : 0;
    r->n_train_tokens = t->tr.n_tokens;
    t->spe = (t->tr.n + r->batch_size - 1) / r->batch_size;
    r->total_steps = t->spe * r->n_epochs;
    t->valid_every = o->valid_every > 0 ? o->valid_every : (t->spe + 3) / 4;
    if (r->n_epochs > 1000) return core_errf(err, "n_epochs %d is too many (at most 1000)", r->n_epochs);
    return 0;
}

static int load_data(trainer_t *t, double plw, char *err)
{
    int maxT = t->m.config.max_seq_len;
    char e2[CORE_ERR_LEN];
    if (tdata_load(&t->tr, t->o->train_path, t->tk, plw, maxT, t->o->truncate, e2))
        return core_errf(err, "training file %s: %s", t->o->train_path, e2);
    if (t->o->valid_path) {
        if (tdata_load(&t->va, t->o->valid_path, t->tk, plw, maxT, t->o->truncate, e2))
            return core_errf(err, "validation file %s: %s", t->o->valid_path, e2);
        t->has_valid = 1;
        if (t->va.is_chat != t->tr.is_chat) return core_errf(err, "the training and validation files must have the same format (both prompt/completion or both chat)");
    }
    return 0;
}

/* Write the finished model: weights, tokenizer, and how it was made. */
static int write_output(trainer_t *t, const train_metrics_t *last, char *err)
{
    const train_opts_t *o = t->o;
    if (fs_mkdir_p(o->out_dir, 0755, err) || gpt2_save(&t->m, o->out_dir, err) || tok_save_dir(t->tk, o->out_dir, err)) return -1;
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)t->r.seed);
    json_t *j = json_object();
    json_object_set_new(j, "base", json_string(o->base_model_dir));
    json_object_set_new(j, "format", json_string(t->tr.is_chat ? "chat" : "prompt-completion"));
    if (t->tr.is_chat) json_object_set_new(j, "chat_template", json_string("<role>: <content>\\n per turn; assistant turns end with <|endoftext|>"));
    json_object_set_new(j, "training_file", json_pack("{s:s, s:s, s:i, s:I}", "path", o->train_path, "sha256", t->tr.sha256,
                                                     "examples", t->tr.n, "tokens", (json_int_t)t->tr.n_tokens));
    if (t->has_valid)
        json_object_set_new(j, "validation_file", json_pack("{s:s, s:s, s:i}", "path", o->valid_path, "sha256", t->va.sha256, "examples", t->va.n));
    json_object_set_new(j, "hyperparameters", json_pack("{s:i, s:i, s:f, s:f}", "n_epochs", t->r.n_epochs, "batch_size", t->r.batch_size,
                                                        "learning_rate_multiplier", t->r.learning_rate_multiplier,
                                                        "prompt_loss_weight", t->r.prompt_loss_weight));
    json_object_set_new(j, "learning_rate", json_real(t->r.learning_rate));
    json_object_set_new(j, "pretrain_learning_rate", json_real(t->pretrain_lr));
    json_object_set_new(j, "seed", json_string(seed));
    json_object_set_new(j, "steps", json_integer(t->r.total_steps));
    json_object_set_new(j, "trained_tokens", json_integer(t->elapsed_tokens));
    json_t *fm = json_object();
    if (!isnan(last->training_loss)) json_object_set_new(fm, "training_loss", json_real(last->training_loss));
    if (!isnan(last->training_token_accuracy)) json_object_set_new(fm, "training_token_accuracy", json_real(last->training_token_accuracy));
    if (!isnan(last->validation_loss)) json_object_set_new(fm, "validation_loss", json_real(last->validation_loss));
    if (!isnan(last->validation_token_accuracy)) json_object_set_new(fm, "validation_token_accuracy", json_real(last->validation_token_accuracy));
    if (!isnan(last->validation_sequence_accuracy)) json_object_set_new(fm, "validation_sequence_accuracy", json_real(last->validation_sequence_accuracy));
    json_object_set_new(j, "final_metrics", fm);
    if (t->tr.common_suffix) json_object_set_new(j, "stop", json_pack("[s]", t->tr.common_suffix));
    json_object_set_new(j, "created_at", json_integer(time_unix()));
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/tunery.json", o->out_dir);
    int rc = fs_write_json(path, j, JSON_INDENT(2) | JSON_REAL_PRECISION(10), err);
    json_decref(j);
    return rc;
}

/* ---------------------------------------------------------------------- */

static void trainer_free(trainer_t *t)
{
    gpt2_free(&t->m);
    if (t->tk) tok_free(t->tk);
    tdata_free(&t->tr);
    tdata_free(&t->va);
    free(t->perm); free(t->in); free(t->tg); free(t->w);
    for (int j = 0; j < t->n_cls; j++) free(t->cls_ids[j]);
    free(t->cls_ids); free(t->cls_n);
    buf_free(&t->csv);
    if (t->log) fclose(t->log);
}

/* Everything before the first step: model, data, hyper-parameters, resume state. */
static int trainer_open(trainer_t *t, int *start_step, char *err)
{
    const train_opts_t *o = t->o;
    if (!o->base_model_dir || !o->train_path || !o->out_dir || !o->work_dir)
        return core_errf(err, "a fine-tune needs a base model, a training file, an output directory and a work directory");
    if (fs_mkdir_p(o->work_dir, 0755, err)) return -1;
    char ck[PATH_MAX];
    snprintf(ck, sizeof ck, "%s/train.log", o->work_dir);
    t->log = fopen(ck, "a");
    ckpt_state_t st;
    int resumed = o->resume && ckpt_find_latest(o->work_dir, ck, sizeof ck) >= 0;
    if (resumed) {
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/state.json", ck);
        if (ckpt_state_read(p, &st, err)) return -1;
        /* A run continues in the precision it trained in, whatever this
         * process was started with (TUNERY_MATMUL), so that a resume computes
         * the same steps; a bf16 run moved to a CPU without bf16 goes on in fp32. */
        nn_prec_t want = st.bf16 && nn_matmul_bf16_available() ? NN_PREC_BF16 : NN_PREC_FP32;
        if (want != nn_matmul_get_precision()) {
            tlog(t, "resume: continuing in %s, the precision checkpoint %s was trained in%s",
                 want == NN_PREC_BF16 ? "bf16" : "fp32", ck,
                 st.bf16 && want == NN_PREC_FP32 ? " (bf16 is not available on this CPU: fp32)" : "");
            nn_matmul_set_precision(want);
        }
    }
    char e2[CORE_ERR_LEN];
    if (gpt2_load(&t->m, resumed ? ck : o->base_model_dir, e2))
        return core_errf(err, "cannot load the model from %s: %s", resumed ? ck : o->base_model_dir, e2);
    if (tok_load_dir(&t->tk, o->base_model_dir, err)) return -1;
    double plw = resumed ? st.prompt_loss_weight : o->prompt_loss_weight >= 0 ? o->prompt_loss_weight : 0.01;
    if (load_data(t, plw, err) || resolve(t, err)) return -1;
    if (resumed) {
        if (strcmp(st.train_sha256, t->tr.sha256))
            return core_errf(err, "the training file changed since checkpoint %s was written; resume with the same file or start a new run", ck);
        t->r.n_epochs = st.n_epochs;
        t->r.batch_size = st.batch_size;
        t->r.learning_rate = st.learning_rate;
        t->r.learning_rate_multiplier = st.learning_rate_multiplier;
        t->r.prompt_loss_weight = st.prompt_loss_weight;
        t->r.seed = st.seed;
        t->pretrain_lr = st.pretrain_learning_rate;
        t->spe = (t->tr.n + t->r.batch_size - 1) / t->r.batch_size;
        t->r.total_steps = t->spe * t->r.n_epochs;
        if (o->valid_every <= 0) t->valid_every = (t->spe + 3) / 4;
        t->elapsed_tokens = st.elapsed_tokens;
        t->elapsed_examples = st.elapsed_examples;
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/optimizer.bin", ck);
        if (gpt2_optim_load(&t->m, p, err)) return -1;
    }
    if (classification_setup(t, err)) return -1;
    int maxT = t->m.config.max_seq_len;
    t->micro_tokens = o->micro_tokens > 0 ? o->micro_tokens : MICRO_TOKENS_DEFAULT;
    /* the run's one forward shape (see the top of this file) */
    int longest = t->tr.max_len - 1;
    if (t->has_valid && t->va.max_len - 1 > longest) longest = t->va.max_len - 1;
    for (int i = 0; t->n_cls && i < t->va.n; i++) {
        const tex_t *x = &t->va.ex[i];
        int L = 0;
        for (int j = 0; j < t->n_cls; j++) if (x->prompt_n + t->cls_n[j] > L) L = x->prompt_n + t->cls_n[j];
        if (L - 1 - cls_cut(t, x) > longest) longest = L - 1 - cls_cut(t, x);
    }
    t->T = round8(longest < 1 ? 1 : longest, maxT);
    t->B = t->micro_tokens / t->T;
    if (t->B > t->r.batch_size) t->B = t->r.batch_size;
    if (t->B < 1) t->B = 1;
    t->Bc = t->n_cls ? t->n_cls * (t->B / t->n_cls > 0 ? t->B / t->n_cls : 1) : t->B;
    size_t cap = (size_t)(t->B > t->Bc ? t->B : t->Bc) * t->T;
    t->in = malloc(cap * sizeof *t->in);
    t->tg = malloc(cap * sizeof *t->tg);
    t->w = malloc(cap * sizeof *t->w);
    t->perm = malloc((size_t)t->tr.n * sizeof *t->perm);
    t->perm_epoch = -1;
    if (!t->in || !t->tg || !t->w || !t->perm) return core_errf(err, "out of memory");
    snprintf(t->csv_path, sizeof t->csv_path, "%s/compiled_results.csv", o->work_dir);
    if (resumed) {
        char p[PATH_MAX], *txt;
        size_t len;
        snprintf(p, sizeof p, "%s/compiled_results.csv", ck);
        if (fs_read_all(p, &txt, &len, err)) return -1;
        buf_append(&t->csv, txt, len);
        free(txt);
        /* the columns follow the options of this run, as the header says */
        buf_t hdr = {0};
        results_header(&hdr, &t->cols);
        int same = t->csv.len >= hdr.len && !memcmp(t->csv.data, hdr.data, hdr.len);
        buf_free(&hdr);
        if (!same) return core_errf(err, "checkpoint %s was written with other classification options; resume with the same options", ck);
    } else if (results_header(&t->csv, &t->cols)) {
        return core_errf(err, "out of memory");
    }
    if (fs_write_atomic(t->csv_path, t->csv.data, t->csv.len, err)) return -1;
    *start_step = resumed ? st.step + 1 : 1;
    return 0;
}

int train_run(const train_opts_t *o, const train_hooks_t *h, train_result_t *res, char *err)
{
    trainer_t t = {0};
    t.o = o;
    t.h = h;
    train_result_t rdummy;
    if (!res) res = &rdummy;
    memset(res, 0, sizeof *res);
    res->final_train_loss = res->final_valid_loss = NAN;
    int start = 1, rc = 0, last_ckpt = -1;
    if (trainer_open(&t, &start, err)) { trainer_free(&t); return -1; }
    if (h && h->resolved) h->resolved(h->ctx, &t.r);
    tlog(&t, "%s at step %d of %d: base %s, %d training examples (%lld tokens per epoch), %d validation; n_epochs %d, "
         "batch_size %d, learning_rate_multiplier %g, learning_rate %g, prompt_loss_weight %g, seed %llu",
         start > 1 ? "resumed" : "started", start, t.r.total_steps, o->base_model_dir, t.r.n_train_examples,
         t.r.n_train_tokens, t.r.n_valid_examples, t.r.n_epochs, t.r.batch_size, t.r.learning_rate_multiplier,
         t.r.learning_rate, t.r.prompt_loss_weight, (unsigned long long)t.r.seed);
    last_ckpt = start - 1;

    lr_schedule_t sched = {LR_LINEAR, (float)t.r.learning_rate, 0.0f, 0, t.r.total_steps + 1};
    adamw_config_t opt = {0, 0.9f, 0.95f, 1e-8f, 0.1f};
    train_metrics_t mt = {0};
    mt.step = start - 1;
    mt.training_loss = mt.training_sequence_accuracy = mt.training_token_accuracy = NAN;
    mt.validation_loss = mt.validation_sequence_accuracy = mt.validation_token_accuracy = NAN;
    res->steps_done = start - 1;
    for (int step = start; step <= t.r.total_steps; step++) {
        int stop = h && h->should_stop ? h->should_stop(h->ctx) : 0;
        if (stop) {
            res->stopped = 1;
            if (stop != 2 && last_ckpt != step - 1 && step > 1) rc = checkpoint(&t, step - 1, &mt, err);
            break;
        }
        int epoch = (step - 1) / t.spe, k = (step - 1) % t.spe;
        epoch_order(&t, epoch);
        int bs = t.r.batch_size, n = t.tr.n - k * bs < bs ? t.tr.n - k * bs : bs;
        const int *idx = t.perm + (size_t)k * bs;
        double W = 0;
        long long ntok = 0;
        for (int i = 0; i < n; i++) {
            const tex_t *x = &t.tr.ex[idx[i]];
            for (int p = 1; p < x->n; p++) W += x->w[p];
            ntok += x->n;
        }
        evalsum_t es = {0};
        gpt2_zero_grad(&t.m);
        if (W <= 0 || run_examples(&t, &t.tr, idx, n, 1, (float)(1.0 / W), &es)) {
            rc = core_errf(err, "step %d failed: the model rejected a batch (token id out of the model's vocabulary, or out of memory)", step);
            break;
        }
        gpt2_clip_grad_norm(&t.m, 1.0f);
        opt.lr = lr_at(&sched, step);
        gpt2_update(&t.m, &opt, step);
        t.elapsed_tokens += ntok;
        t.elapsed_examples += n;

        memset(&mt, 0, sizeof mt);
        mt.step = step;
        mt.epoch = epoch + 1;
        mt.elapsed_tokens = t.elapsed_tokens;
        mt.elapsed_examples = t.elapsed_examples;
        evalsum_metrics(&es, &mt.training_loss, &mt.training_sequence_accuracy, &mt.training_token_accuracy);
        mt.validation_loss = mt.validation_sequence_accuracy = mt.validation_token_accuracy = NAN;
        int epoch_end = k == t.spe - 1;
        if (t.has_valid && (step % t.valid_every == 0 || epoch_end) && validate(&t, &mt)) {
            rc = core_errf(err, "validation at step %d failed", step);
            break;
        }
        cls_metrics_t cm, *cmp = NULL;
        if (epoch_end && t.n_cls) {
            if (classification_metrics(&t, &cm)) { rc = core_errf(err, "classification metrics at step %d failed", step); break; }
            cmp = &cm;
        }
        if ((rc = csv_append(&t, &mt, cmp, err))) break;
        if (h && h->metrics) h->metrics(h->ctx, &mt);
        res->steps_done = step;
        res->final_train_loss = mt.training_loss;
        if (!isnan(mt.validation_loss)) res->final_valid_loss = mt.validation_loss;
        if (epoch_end || (o->checkpoint_every > 0 && step % o->checkpoint_every == 0)) {
            if ((rc = checkpoint(&t, step, &mt, err))) break;
            last_ckpt = step;
        }
        if (epoch_end) emit(&t, "info", "Completed epoch %d/%d", epoch + 1, t.r.n_epochs);
    }
    res->trained_tokens = t.elapsed_tokens;
    if (!rc && !res->stopped) rc = write_output(&t, &mt, err);
    if (rc) tlog(&t, "error: %s", err);
    else tlog(&t, res->stopped ? "stopped after step %d" : "finished after step %d; model written to %s", res->steps_done, o->out_dir);
    trainer_free(&t);
    return rc ? -1 : 0;
}

/* The engine's share of a fine-tune, for `tunery bench finetune`: the same
 * model, data, order and micro-batches as train_run, timed over the first
 * `steps` steps with nothing else (no validation, results file, checkpoint
 * or output). Data loading happens before the clock starts. */
int train_raw_steps(const train_opts_t *o, int steps, double *secs, long long *tokens, long long *examples, char *err)
{
    trainer_t t = {0};
    t.o = o;
    int start = 1, rc = 0;
    if (trainer_open(&t, &start, err)) { trainer_free(&t); return -1; }
    lr_schedule_t sched = {LR_LINEAR, (float)t.r.learning_rate, 0.0f, 0, t.r.total_steps + 1};
    adamw_config_t opt = {0, 0.9f, 0.95f, 1e-8f, 0.1f};
    if (steps > t.r.total_steps) steps = t.r.total_steps;
    *tokens = 0;
    *examples = 0;
    double t0 = time_mono();
    for (int step = 1; step <= steps && !rc; step++) {
        int epoch = (step - 1) / t.spe, k = (step - 1) % t.spe, bs = t.r.batch_size;
        epoch_order(&t, epoch);
        int n = t.tr.n - k * bs < bs ? t.tr.n - k * bs : bs;
        const int *idx = t.perm + (size_t)k * bs;
        double W = 0;
        for (int i = 0; i < n; i++) {
            const tex_t *x = &t.tr.ex[idx[i]];
            for (int p = 1; p < x->n; p++) W += x->w[p];
            *tokens += x->n;
        }
        evalsum_t es = {0};
        gpt2_zero_grad(&t.m);
        if (W <= 0 || run_examples(&t, &t.tr, idx, n, 1, (float)(1.0 / W), &es)) rc = core_errf(err, "step %d failed", step);
        gpt2_clip_grad_norm(&t.m, 1.0f);
        opt.lr = lr_at(&sched, step);
        gpt2_update(&t.m, &opt, step);
        *examples += n;
    }
    *secs = time_mono() - t0;
    trainer_free(&t);
    return rc;
}
