/* pretrain.c: `tunery pretrain`, which builds the built-in base models (ada,
 * babbage, curie, davinci) from plain text with the same engine fine-tuning
 * uses. It exists so that a fresh, offline machine has real pretrained
 * language models behind those names (see scripts/build_base_models.sh).
 *
 * Training is next-token prediction on random windows of T+1 tokens drawn
 * from the tokenized corpus with a seeded generator, so step k always sees the
 * same data; a checkpoint every N steps (weights, AdamW state, step) lets a
 * stopped run continue exactly where it was. */
#include "cmds.h"
#include "core/core.h"
#include "nn/nn.h"
#include "tok/tok.h"
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *corpus, *valid, *out;
    gpt2_config_t cfg;
    int steps, batch, warmup, eval_every, ckpt_every, log_every;
    float lr, min_lr, weight_decay;
    uint64_t seed;
} pretrain_opts_t;

/* One splitmix64 output for the state x: window k of step s is a pure
 * function of (seed, s, k), which is what makes resume exact. */
static uint64_t mix64(uint64_t x) { return core_splitmix64(&x); }

static int load_tokens(const char *path, tok_ids_t *ids, char *err)
{
    char *text;
    size_t len;
    if (fs_read_all(path, &text, &len, err)) return -1;
    const tok_t *tok = tok_r50k(err);
    if (!tok) { free(text); return -1; }
    /* The corpus separates documents with <|endoftext|>: that is the one
     * special token the base models learn. */
    int rc = tok_encode(tok, text, len, 1, ids);
    free(text);
    if (rc) return core_errf(err, "out of memory tokenizing %s", path);
    return 0;
}

/* Fill inputs/targets (B, T) with windows of the token stream. */
static void fill_batch(const tok_ids_t *d, int B, int T, uint64_t seed, int step, int *inp, int *tgt)
{
    size_t span = d->len - (size_t)T - 1;
    for (int b = 0; b < B; b++) {
        size_t off = (size_t)(mix64(seed ^ mix64(((uint64_t)step << 20) | (uint64_t)b)) % span);
        for (int t = 0; t < T; t++) {
            inp[b * T + t] = d->ids[off + t];
            tgt[b * T + t] = d->ids[off + t + 1];
        }
    }
}

/* Mean loss over evenly spaced, fixed windows of the validation text. */
static float eval_loss(gpt2_t *m, const tok_ids_t *v, int B, int T, int *inp, int *tgt)
{
    size_t n_windows = (v->len - 1) / (size_t)T;
    if (n_windows > 64) n_windows = 64;
    double sum = 0;
    int batches = 0;
    for (size_t w = 0; w + (size_t)B <= n_windows; w += (size_t)B) {
        for (int b = 0; b < B; b++) {
            size_t off = (w + (size_t)b) * (size_t)T;
            for (int t = 0; t < T; t++) {
                inp[b * T + t] = v->ids[off + t];
                tgt[b * T + t] = v->ids[off + t + 1];
            }
        }
        sum += gpt2_forward(m, inp, tgt, NULL, B, T);
        batches++;
    }
    return batches ? (float)(sum / batches) : NAN;
}

static int write_state(const char *dir, int step, double tokens, float vloss, char *err)
{
    char path[PATH_MAX], buf[256];
    snprintf(path, sizeof path, "%s/pretrain-state.json", dir);
    int n = snprintf(buf, sizeof buf, "{\"step\": %d, \"tokens_seen\": %.0f, \"valid_loss\": %.6f}\n", step, tokens,
                     isnan(vloss) ? -1.0 : vloss);
    return fs_write_atomic(path, buf, (size_t)n, err);
}

/* A checkpoint is a directory written under a temporary name and renamed
 * into place, so a kill at any moment leaves the previous one intact. */
static int save_checkpoint(gpt2_t *m, const char *out, int step, double tokens, float vloss, char *err)
{
    char tmp[PATH_MAX], dst[PATH_MAX], path[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s/ckpt.tmp", out);
    snprintf(dst, sizeof dst, "%s/ckpt", out);
    if (fs_rm_rf(tmp, err) || gpt2_save(m, tmp, err)) return -1;
    snprintf(path, sizeof path, "%s/optim.bin", tmp);
    if (gpt2_optim_save(m, path, err) || write_state(tmp, step, tokens, vloss, err)) return -1;
    char old[PATH_MAX];
    snprintf(old, sizeof old, "%s/ckpt.old", out);
    if (fs_rm_rf(old, err)) return -1;
    if (fs_exists(dst) && rename(dst, old)) return core_errf(err, "cannot rename %s: %s", dst, strerror(errno));
    if (rename(tmp, dst)) return core_errf(err, "cannot rename %s: %s", tmp, strerror(errno));
    if (fs_fsync_dir_of(dst, err)) return -1;
    return fs_rm_rf(old, err);
}

static int resume_checkpoint(gpt2_t *m, const char *out, int *step, double *tokens, float *vloss, char *err)
{
    char dir[PATH_MAX], path[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/ckpt", out);
    snprintf(path, sizeof path, "%s/pretrain-state.json", dir);
    if (!fs_exists(path)) return 0;
    json_error_t je;
    json_t *st = json_load_file(path, 0, &je);
    if (!st) return core_errf(err, "cannot read %s: %s; delete %s to start over", path, je.text, dir);
    *step = (int)json_integer_value(json_object_get(st, "step"));
    *tokens = json_number_value(json_object_get(st, "tokens_seen"));
    double v = json_number_value(json_object_get(st, "valid_loss"));
    *vloss = v >= 0 ? (float)v : NAN;
    json_decref(st);
    gpt2_free(m);
    if (gpt2_load(m, dir, err)) return -1;
    snprintf(path, sizeof path, "%s/optim.bin", dir);
    if (gpt2_optim_load(m, path, err)) return -1;
    return 1;
}

/* Parameters as GPT-2 counts them: the tied embedding once, unpadded. */
static long long gpt2_count_params(const gpt2_config_t *c)
{
    long long C = c->channels;
    return (long long)c->vocab_size * C + (long long)c->max_seq_len * C + c->num_layers * (12 * C * C + 13 * C) + 2 * C;
}

static int write_final(gpt2_t *m, const pretrain_opts_t *o, int step, double tokens, float vloss, char *err)
{
    if (isnan(vloss)) return core_errf(err, "no validation loss was measured; rerun with a smaller --eval-every");
    if (gpt2_save(m, o->out, err)) return -1;
    const tok_t *tok = tok_r50k(err);
    if (!tok || tok_save_dir(tok, o->out, err)) return -1;
    json_t *j = json_pack("{s:s, s:f, s:i, s:f, s:f, s:f, s:s, s:{s:i,s:i,s:i,s:i,s:i}, s:I, s:i}",
                          "made_by", "tunery pretrain", "pretrain_learning_rate", (double)o->lr, "steps", step,
                          "tokens_seen", tokens, "valid_loss", (double)vloss, "valid_perplexity", exp(vloss),
                          "corpus", "scripts/build_corpus.sh (KJV Bible, Jargon File 4.4.7, BSD fortunes)",
                          "architecture", "n_layer", o->cfg.num_layers, "n_head", o->cfg.num_heads, "n_embd",
                          o->cfg.channels, "n_positions", o->cfg.max_seq_len, "vocab_size", o->cfg.vocab_size,
                          "parameters", (json_int_t)gpt2_count_params(&o->cfg),
                          "seed", (int)o->seed);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/tunery.json", o->out);
    int rc = fs_write_json(path, j, JSON_INDENT(2), err);
    json_decref(j);
    return rc;
}

static int pretrain(const pretrain_opts_t *o, char *err)
{
    tok_ids_t train = {0}, valid = {0};
    if (load_tokens(o->corpus, &train, err) || load_tokens(o->valid, &valid, err)) return -1;
    int B = o->batch, T = o->cfg.max_seq_len;
    if (train.len < (size_t)T + 2 || valid.len < (size_t)T + 2)
        return core_errf(err, "the corpus is shorter than one context window of %d tokens", T);
    fprintf(stderr, "pretrain: %zu training tokens, %zu validation tokens\n", train.len, valid.len);

    gpt2_t m = {0};
    if (gpt2_create(&m, &o->cfg, err)) return -1;
    gpt2_init_random(&m, o->seed);
    if (fs_mkdir_p(o->out, 0755, err)) return -1;
    int step = 0;
    double tokens = 0;
    float vloss = NAN;
    int r = resume_checkpoint(&m, o->out, &step, &tokens, &vloss, err);
    if (r < 0) return -1;
    if (r) fprintf(stderr, "pretrain: resumed from step %d\n", step);

    int *inp = malloc(sizeof(int) * (size_t)B * T), *tgt = malloc(sizeof(int) * (size_t)B * T);
    if (!inp || !tgt) return core_errf(err, "out of memory");
    lr_schedule_t sched = {LR_COSINE, o->lr, o->min_lr, o->warmup, o->steps};
    adamw_config_t opt = {0, 0.9f, 0.95f, 1e-8f, o->weight_decay};
    double t0 = time_mono(), smooth = 0;
    while (step < o->steps) {
        fill_batch(&train, B, T, o->seed, step, inp, tgt);
        float loss = gpt2_forward(&m, inp, tgt, NULL, B, T);
        gpt2_zero_grad(&m);
        gpt2_backward(&m, 1.0f / (float)(B * T));
        float norm = gpt2_clip_grad_norm(&m, 1.0f);
        step++;
        opt.lr = lr_at(&sched, step);
        gpt2_update(&m, &opt, step);
        tokens += (double)B * T;
        smooth = smooth ? 0.95 * smooth + 0.05 * loss : loss;
        if (step % o->log_every == 0 || step == o->steps) {
            double dt = time_mono() - t0;
            fprintf(stderr, "pretrain: step %d/%d loss %.4f (smoothed %.4f) norm %.2f lr %.2e %.0f tok/s\n", step,
                    o->steps, loss, smooth, norm, opt.lr, o->log_every * (double)B * T / dt);
            t0 = time_mono();
        }
        if (step % o->eval_every == 0 || step == o->steps) {
            vloss = eval_loss(&m, &valid, B, T, inp, tgt);
            fprintf(stderr, "pretrain: step %d validation loss %.4f perplexity %.1f\n", step, vloss, exp(vloss));
        }
        if (step % o->ckpt_every == 0 || step == o->steps) {
            if (save_checkpoint(&m, o->out, step, tokens, vloss, err)) return -1;
        }
    }
    int rc = write_final(&m, o, step, tokens, vloss, err);
    free(inp);
    free(tgt);
    gpt2_free(&m);
    tok_ids_free(&train);
    tok_ids_free(&valid);
    return rc;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tunery pretrain --corpus TRAIN.txt --valid VALID.txt --out DIR [options]\n"
            "Pretrains a GPT-2-architecture model from scratch on plain text (r50k tokens;\n"
            "<|endoftext|> in the text separates documents). Re-running with the same --out\n"
            "resumes from DIR/ckpt.\n\n"
            "  --corpus FILE          training text\n"
            "  --valid FILE           held-out text for the validation loss\n"
            "  --out DIR              model directory to write (HF layout + tunery.json)\n"
            "  --config L,NH,C,T      layers, heads, width, context (default 4,4,128,128)\n"
            "  --steps N              optimizer steps (default 2000)\n"
            "  --batch B              sequences per step (default 8)\n"
            "  --lr X                 peak learning rate (default 1e-3), cosine decay to --min-lr (default lr/10)\n"
            "  --warmup N             warm-up steps (default 100)\n"
            "  --weight-decay X       AdamW weight decay (default 0.1)\n"
            "  --eval-every N         validation interval in steps (default 200)\n"
            "  --checkpoint-every N   checkpoint interval in steps (default 200)\n"
            "  --log-every N          progress line interval (default 20)\n"
            "  --seed N               data order and initialisation (default 1337)\n");
}

int cmd_pretrain(int argc, char **argv)
{
    pretrain_opts_t o = {.cfg = {128, 50257, 0, 4, 4, 128}, .steps = 2000, .batch = 8, .warmup = 100,
                         .eval_every = 200, .ckpt_every = 200, .log_every = 20, .lr = 1e-3f, .min_lr = -1,
                         .weight_decay = 0.1f, .seed = 1337};
    static const struct option opts[] = {
        {"corpus", 1, 0, 'c'}, {"valid", 1, 0, 'v'}, {"out", 1, 0, 'o'}, {"config", 1, 0, 'g'},
        {"steps", 1, 0, 's'}, {"batch", 1, 0, 'b'}, {"lr", 1, 0, 'l'}, {"min-lr", 1, 0, 'm'},
        {"warmup", 1, 0, 'w'}, {"weight-decay", 1, 0, 'd'}, {"eval-every", 1, 0, 'e'},
        {"checkpoint-every", 1, 0, 'k'}, {"log-every", 1, 0, 'L'}, {"seed", 1, 0, 'S'}, {"help", 0, 0, 'h'},
        {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': o.corpus = optarg; break;
        case 'v': o.valid = optarg; break;
        case 'o': o.out = optarg; break;
        case 'g':
            if (sscanf(optarg, "%d,%d,%d,%d", &o.cfg.num_layers, &o.cfg.num_heads, &o.cfg.channels,
                       &o.cfg.max_seq_len) != 4 || o.cfg.num_layers < 1 || o.cfg.num_heads < 1 ||
                o.cfg.channels % o.cfg.num_heads || o.cfg.max_seq_len < 2) {
                fprintf(stderr, "tunery pretrain: --config wants L,NH,C,T with C divisible by NH, e.g. 4,4,128,128\n");
                return 2;
            }
            break;
        case 's': o.steps = atoi(optarg); break;
        case 'b': o.batch = atoi(optarg); break;
        case 'l': o.lr = strtof(optarg, NULL); break;
        case 'm': o.min_lr = strtof(optarg, NULL); break;
        case 'w': o.warmup = atoi(optarg); break;
        case 'd': o.weight_decay = strtof(optarg, NULL); break;
        case 'e': o.eval_every = atoi(optarg); break;
        case 'k': o.ckpt_every = atoi(optarg); break;
        case 'L': o.log_every = atoi(optarg); break;
        case 'S': o.seed = strtoull(optarg, NULL, 10); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!o.corpus || !o.valid || !o.out) {
        fprintf(stderr, "tunery pretrain: --corpus, --valid and --out are required (try --help)\n");
        return 2;
    }
    if (o.steps < 1 || o.batch < 1 || o.eval_every < 1 || o.ckpt_every < 1 || o.log_every < 1) {
        fprintf(stderr, "tunery pretrain: --steps, --batch and the intervals must be positive\n");
        return 2;
    }
    if (o.min_lr < 0) o.min_lr = o.lr / 10;
    char err[CORE_ERR_LEN];
    if (pretrain(&o, err)) {
        fprintf(stderr, "tunery pretrain: %s\n", err);
        return 1;
    }
    return 0;
}
