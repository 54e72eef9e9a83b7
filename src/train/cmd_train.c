/* cmd_train.c: `tunery train`, one fine-tune from the command line, no server.
 * The same train_run the service's workers call, with hooks that print
 * progress for a person: a live line on a terminal, plain lines otherwise. */
#include "cmds.h"
#include "nn/nn.h"
#include "train/train.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: tunery train --model M --train FILE --out DIR [options]\n"
    "\n"
    "Fine-tune model M on a JSONL file of {\"prompt\", \"completion\"} lines (or chat\n"
    "{\"messages\": [...]} lines) the way OpenAI's legacy fine-tunes did, and write a\n"
    "model directory (model.safetensors, config.json, tokenizer files, tunery.json).\n"
    "\n"
    "  --model M            base model: a name (ada, curie, a fine-tuned model) or a directory;\n"
    "                       random:L,NH,C,T starts from a randomly initialised GPT-2 of that shape\n"
    "                       (layers, heads, channels, context; r50k vocabulary; for tests)\n"
    "  --train FILE         training data (JSONL)\n"
    "  --validation FILE    validation data: loss and accuracies in compiled_results.csv\n"
    "  --out DIR            where the fine-tuned model is written\n"
    "  --work DIR           checkpoints and compiled_results.csv (default: DIR.work)\n"
    "  --n-epochs N         passes over the training data (default 4)\n"
    "  --batch-size N       examples per step (default: 0.2%% of the examples, 1..256)\n"
    "  --learning-rate-multiplier X  times the base model's pretraining rate\n"
    "                       (default 0.05, 0.1 or 0.2 by batch size)\n"
    "  --prompt-loss-weight X  loss weight of prompt tokens (default 0.01)\n"
    "  --seed N             data order seed; the same seed gives the same losses (default: random, printed)\n"
    "  --checkpoint-every N also checkpoint every N steps (always at each epoch end)\n"
    "  --resume             continue from the newest checkpoint in the work directory\n"
    "  --truncate left|right  cut examples longer than the context instead of failing\n"
    "  --validate-every N   validation interval in steps (default: 4 times per epoch)\n"
    "  --micro-tokens N     padded tokens per forward pass, bounds memory (default 1024)\n"
    "  --compute-classification-metrics   accuracy, precision, recall, AUROC, AUPRC, F1 at epoch ends\n"
    "  --classification-n-classes N       multiclass: accuracy and weighted F1\n"
    "  --classification-positive-class S  binary: the positive completion, e.g. \" yes\"\n"
    "  --classification-betas B,B,...     binary: also F-beta at these betas\n"
    "  --log-every N        without a terminal, print one line every N steps (default 10)\n"
    "  -q, --quiet          print only errors and the final line\n"
    "Environment: TUNERY_MATMUL=bf16 runs the matrix products in bf16 with fp32 master weights\n"
    "  on CPUs with AVX512_BF16 or AMX (2-3x faster, its own parity bound; docs/finetune.md).\n";

typedef struct {
    int tty, quiet, log_every, total, n_epochs;
    double t0;
    long long tok0;
    int have_tok0;
    double last_valid;
    int first_step;   /* first step this process ran (a resume starts later) */
} progress_t;

static void fmt_dur(double s, char *out, size_t n)
{
    if (!(s >= 0) || s > 1e7) { snprintf(out, n, "?"); return; }
    int x = (int)(s + 0.5);
    if (x >= 3600) snprintf(out, n, "%dh%02dm", x / 3600, x / 60 % 60);
    else if (x >= 60) snprintf(out, n, "%dm%02ds", x / 60, x % 60);
    else snprintf(out, n, "%ds", x);
}

static void on_resolved(void *ctx, const train_resolved_t *r)
{
    progress_t *p = ctx;
    p->total = r->total_steps;
    p->n_epochs = r->n_epochs;
    if (p->quiet) return;
    fprintf(stderr, "tunery train: %d training examples (%lld tokens per epoch), %d validation; n_epochs %d, batch_size %d, "
                    "learning_rate_multiplier %g (learning rate %.3g), prompt_loss_weight %g, seed %llu; %d steps\n",
            r->n_train_examples, r->n_train_tokens, r->n_valid_examples, r->n_epochs, r->batch_size,
            r->learning_rate_multiplier, r->learning_rate, r->prompt_loss_weight, (unsigned long long)r->seed, r->total_steps);
}

static void on_event(void *ctx, const char *level, const char *msg)
{
    progress_t *p = ctx;
    if (p->quiet) return;
    fprintf(stderr, "%s%s\n", p->tty ? "\r\033[K" : "", msg);
}

static void on_metrics(void *ctx, const train_metrics_t *m)
{
    progress_t *p = ctx;
    double now = time_mono();
    if (!p->have_tok0) { p->t0 = now; p->tok0 = m->elapsed_tokens; p->have_tok0 = 1; p->first_step = m->step; p->last_valid = NAN; return; }
    if (!isnan(m->validation_loss)) p->last_valid = m->validation_loss;
    if (p->quiet) return;
    if (!p->tty && m->step % p->log_every && m->step != p->total) return;
    double dt = now - p->t0, tps = dt > 0 ? (m->elapsed_tokens - p->tok0) / dt : 0;
    char eta[32], val[32] = "";
    int done = m->step - p->first_step;
    fmt_dur(done > 0 ? dt / done * (p->total - m->step) : -1, eta, sizeof eta);
    if (!isnan(p->last_valid)) snprintf(val, sizeof val, "  valid %.4f", p->last_valid);
    fprintf(stderr, "%sepoch %d/%d  step %d/%d  loss %.4f%s  %.0f tok/s  ETA %s%s",
            p->tty ? "\r\033[K" : "", m->epoch, p->n_epochs, m->step, p->total, m->training_loss, val, tps, eta,
            p->tty ? "" : "\n");
    fflush(stderr);
}

static int parse_int(const char *flag, const char *v, int lo, int *out)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (*v == 0 || *end || x < lo || x > 1000000000) {
        fprintf(stderr, "tunery train: %s needs a whole number >= %d, got '%s'\n", flag, lo, v);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int parse_double(const char *flag, const char *v, double lo, double *out)
{
    char *end;
    double x = strtod(v, &end);
    if (*v == 0 || *end || !(x >= lo) || isinf(x)) {
        fprintf(stderr, "tunery train: %s needs a number >= %g, got '%s'\n", flag, lo, v);
        return -1;
    }
    *out = x;
    return 0;
}

/* --model random:L,NH,C,T: a GPT-2 of that shape with GPT-2's random
 * initialisation (seeded), saved once into <work>/random-base so that a
 * resumed run finds the same start. */
static int random_model(const char *spec, const char *work, uint64_t seed, char *dir, char *err)
{
    gpt2_config_t c = {.vocab_size = 50257};
    char tail;
    if (sscanf(spec, "%d,%d,%d,%d%c", &c.num_layers, &c.num_heads, &c.channels, &c.max_seq_len, &tail) != 4 ||
        c.num_layers < 1 || c.num_heads < 1 || c.channels < c.num_heads || c.channels % c.num_heads || c.max_seq_len < 8)
        return core_errf(err, "--model random:L,NH,C,T needs four positive numbers with C a multiple of NH, e.g. random:2,4,64,128");
    snprintf(dir, PATH_MAX, "%s/random-base", work);
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/config.json", dir);
    if (fs_exists(p)) return 0;
    gpt2_t m;
    if (gpt2_create(&m, &c, err)) return -1;
    gpt2_init_random(&m, seed);
    int rc = fs_mkdir_p(work, 0755, err) || gpt2_save(&m, dir, err) ? -1 : 0;
    gpt2_free(&m);
    return rc;
}

int cmd_train(int argc, char **argv)
{
    train_opts_t o = {0};
    o.prompt_loss_weight = -1;
    const char *model = NULL, *work = NULL, *betas = NULL;
    progress_t pr = {.tty = isatty(2), .log_every = 10};
    double bet[16];
    for (int i = 1; i < argc; i++) {
        char flag[64];
        const char *a = argv[i], *v = NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { fputs(usage_text, stdout); return 0; }
        /* --flag=value and OpenAI's --flag_name spellings are accepted too */
        snprintf(flag, sizeof flag, "%s", a);
        char *eq = strchr(flag, '=');
        if (eq) { *eq = 0; v = a + (eq - flag) + 1; }
        for (char *c = flag + 2; *c; c++) if (*c == '_') *c = '-';
        int boolean = !strcmp(flag, "--resume") || !strcmp(flag, "--compute-classification-metrics") ||
                      !strcmp(flag, "-q") || !strcmp(flag, "--quiet");
        if (!boolean && !v) {
            if (i + 1 >= argc) { fprintf(stderr, "tunery train: %s needs a value; see tunery train --help\n", a); return 2; }
            v = argv[++i];
        }
        int rc = 0;
        if (!strcmp(flag, "--model") || !strcmp(flag, "-m")) model = v;
        else if (!strcmp(flag, "--train") || !strcmp(flag, "-t") || !strcmp(flag, "--training-file")) o.train_path = v;
        else if (!strcmp(flag, "--validation") || !strcmp(flag, "-v") || !strcmp(flag, "--validation-file")) o.valid_path = v;
        else if (!strcmp(flag, "--out") || !strcmp(flag, "-o")) o.out_dir = v;
        else if (!strcmp(flag, "--work")) work = v;
        else if (!strcmp(flag, "--n-epochs")) rc = parse_int(a, v, 1, &o.n_epochs);
        else if (!strcmp(flag, "--batch-size")) rc = parse_int(a, v, 1, &o.batch_size);
        else if (!strcmp(flag, "--learning-rate-multiplier")) rc = parse_double(a, v, 1e-12, &o.learning_rate_multiplier);
        else if (!strcmp(flag, "--prompt-loss-weight")) rc = parse_double(a, v, 0, &o.prompt_loss_weight);
        else if (!strcmp(flag, "--seed")) {
            char *end;
            o.seed = strtoull(v, &end, 10);
            o.has_seed = 1;
            if (!*v || *end || *v == '-') { fprintf(stderr, "tunery train: --seed needs a whole number >= 0, got '%s'\n", v); return 2; }
        }
        else if (!strcmp(flag, "--checkpoint-every")) rc = parse_int(a, v, 0, &o.checkpoint_every);
        else if (!strcmp(flag, "--validate-every")) rc = parse_int(a, v, 1, &o.valid_every);
        else if (!strcmp(flag, "--micro-tokens")) rc = parse_int(a, v, 8, &o.micro_tokens);
        else if (!strcmp(flag, "--log-every")) rc = parse_int(a, v, 1, &pr.log_every);
        else if (!strcmp(flag, "--resume")) o.resume = 1;
        else if (!strcmp(flag, "-q") || !strcmp(flag, "--quiet")) pr.quiet = 1;
        else if (!strcmp(flag, "--compute-classification-metrics")) o.compute_classification_metrics = 1;
        else if (!strcmp(flag, "--classification-n-classes")) rc = parse_int(a, v, 2, &o.classification_n_classes);
        else if (!strcmp(flag, "--classification-positive-class")) o.classification_positive_class = v;
        else if (!strcmp(flag, "--classification-betas")) betas = v;
        else if (!strcmp(flag, "--truncate")) {
            if (!strcmp(v, "left")) o.truncate = 1;
            else if (!strcmp(v, "right")) o.truncate = 2;
            else { fprintf(stderr, "tunery train: --truncate is left or right, got '%s'\n", v); return 2; }
        } else {
            fprintf(stderr, "tunery train: unknown option '%s'; see tunery train --help\n", a);
            return 2;
        }
        if (rc) return 2;
    }
    if (!model || !o.train_path || !o.out_dir) {
        fprintf(stderr, "tunery train: --model, --train and --out are required; see tunery train --help\n");
        return 2;
    }
    if (betas) {
        char *s = strdup(betas), *save = NULL;
        for (char *tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            if (o.n_classification_betas == 16) { fprintf(stderr, "tunery train: at most 16 --classification-betas\n"); free(s); return 2; }
            if (parse_double("--classification-betas", tok, 1e-9, &bet[o.n_classification_betas])) { free(s); return 2; }
            o.n_classification_betas++;
        }
        free(s);
        o.classification_betas = bet;
    }
    char model_dir[PATH_MAX], work_dir[PATH_MAX], err[CORE_ERR_LEN];
    if (!work) {
        snprintf(work_dir, sizeof work_dir, "%s.work", o.out_dir);
        work = work_dir;
    }
    o.work_dir = work;
    if (!strncmp(model, "random:", 7)) {
        if (random_model(model + 7, work, o.has_seed ? o.seed : 0, model_dir, err)) { fprintf(stderr, "tunery train: %s\n", err); return 1; }
    } else if (core_model_dir(model, model_dir, err)) {
        fprintf(stderr, "tunery train: %s\n", err);
        return 1;
    }
    o.base_model_dir = model_dir;
    train_hooks_t h = {&pr, on_resolved, on_event, on_metrics, NULL, NULL};
    train_result_t res;
    int rc = train_run(&o, &h, &res, err);
    if (pr.tty && !pr.quiet) fputc('\n', stderr);
    if (rc) { fprintf(stderr, "tunery train: %s\n", err); return 1; }
    printf("fine-tuned model written to %s (%d steps, %lld tokens, final training loss %.4f",
           o.out_dir, res.steps_done, res.trained_tokens, res.final_train_loss);
    if (!isnan(res.final_valid_loss)) printf(", validation loss %.4f", res.final_valid_loss);
    printf("); results in %s/compiled_results.csv\n", o.work_dir);
    return 0;
}
