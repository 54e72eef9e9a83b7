/* bench_finetune.c: `tunery bench finetune`, what a fine-tune costs end to
 * end (reading and tokenizing the file, the steps, validation-free results
 * rows, checkpoints, the final model directory) against the engine alone on
 * the same steps. The gap is the pipeline's overhead; the target is
 * end to end within 10% of the raw engine. One JSON line per figure. */
#include "cmds.h"
#include "nn/nn.h"
#include "train/train_int.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct { const char *name; gpt2_config_t c; } configs[] = {
    {"tiny", {.num_layers = 2, .num_heads = 4, .channels = 64, .max_seq_len = 128, .vocab_size = 50257}},
    {"small", {.num_layers = 4, .num_heads = 4, .channels = 128, .max_seq_len = 256, .vocab_size = 50257}},
    {"gpt2-124M", {.num_layers = 12, .num_heads = 12, .channels = 768, .max_seq_len = 1024, .vocab_size = 50257}},
};

/* n examples: the shipped fortunes set cycled, else a synthetic one. */
static int write_examples(const char *path, int n, char *err)
{
    char src[PATH_MAX], *txt = NULL;
    size_t len = 0;
    snprintf(src, sizeof src, "%s/examples/fortunes_train.jsonl", core_share_dir());
    buf_t b = {0};
    if (fs_read_all(src, &txt, &len, err) == 0 && len > 0) {
        const char *p = txt;
        for (int i = 0; i < n; i++) {
            const char *nl = strchr(p, '\n');
            if (!nl) { p = txt; nl = strchr(p, '\n'); if (!nl) break; }
            buf_append(&b, p, (size_t)(nl - p + 1));
            p = nl + 1;
            if (!*p) p = txt;
        }
    } else {
        for (int i = 0; i < n; i++)
            buf_printf(&b, "{\"prompt\": \"Example %d: is %d even or odd?\\n\\n###\\n\\n\", \"completion\": \" %s\"}\n",
                       i, i * 7919 % 1000, (i * 7919 % 1000) % 2 ? "odd" : "even");
    }
    free(txt);
    int rc = fs_write_atomic(path, b.data, b.len, err);
    buf_free(&b);
    return rc;
}

int cmd_bench_finetune(int argc, char **argv)
{
    int n = 1000, epochs = 1, batch = 0, ckpt_every = 0, ci = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) {
            printf("usage: tunery bench finetune [--examples N] [--config tiny|small|gpt2-124M] [--epochs N] [--batch-size N] [--checkpoint-every N]\n"
                   "Fine-tunes a randomly initialised model of that shape on N examples (the shipped fortunes set,\n"
                   "cycled) and prints examples/s and tokens/s end to end (data loading, checkpoints and the final\n"
                   "model write included) beside the engine alone on the same steps. Defaults: 1000, tiny, 1, auto, 0.\n");
            return 0;
        }
        if (!v) { fprintf(stderr, "tunery bench finetune: %s needs a value\n", a); return 2; }
        if (!strcmp(a, "--examples")) n = atoi(v);
        else if (!strcmp(a, "--epochs")) epochs = atoi(v);
        else if (!strcmp(a, "--batch-size")) batch = atoi(v);
        else if (!strcmp(a, "--checkpoint-every")) ckpt_every = atoi(v);
        else if (!strcmp(a, "--config")) {
            ci = -1;
            for (size_t k = 0; k < sizeof configs / sizeof *configs; k++) if (!strcmp(v, configs[k].name)) ci = (int)k;
            if (ci < 0) { fprintf(stderr, "tunery bench finetune: unknown --config '%s' (tiny, small, gpt2-124M)\n", v); return 2; }
        } else { fprintf(stderr, "tunery bench finetune: unknown option '%s'\n", a); return 2; }
        i++;
    }
    if (n < 1 || epochs < 1 || batch < 0 || ckpt_every < 0) { fprintf(stderr, "tunery bench finetune: the numbers must be positive\n"); return 2; }
    char dir[] = "/tmp/tunery-bench-finetune-XXXXXX", err[CORE_ERR_LEN];
    if (!mkdtemp(dir)) { perror("tunery bench finetune: mkdtemp"); return 1; }
    char data[PATH_MAX], base[PATH_MAX], out[PATH_MAX], work[PATH_MAX], work2[PATH_MAX];
    snprintf(data, sizeof data, "%s/train.jsonl", dir);
    snprintf(base, sizeof base, "%s/base", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(work, sizeof work, "%s/work", dir);
    snprintf(work2, sizeof work2, "%s/work-raw", dir);
    gpt2_t m;
    int rc = 1;
    if (write_examples(data, n, err) || gpt2_create(&m, &configs[ci].c, err)) goto done;
    gpt2_init_random(&m, 1);
    if (gpt2_save(&m, base, err)) { gpt2_free(&m); goto done; }
    gpt2_free(&m);

    train_opts_t o = {.base_model_dir = base, .train_path = data, .out_dir = out, .work_dir = work,
                      .n_epochs = epochs, .batch_size = batch, .prompt_loss_weight = -1, .seed = 1, .has_seed = 1,
                      .checkpoint_every = ckpt_every, .truncate = TRUNC_LEFT};
    train_result_t res;
    double t0 = time_mono();
    if (train_run(&o, NULL, &res, err)) goto done;
    double e2e = time_mono() - t0;
    long long tok = 0, ex = 0;
    double raw = 0;
    o.work_dir = work2;
    if (train_raw_steps(&o, res.steps_done, &raw, &tok, &ex, err)) goto done;
    printf("{\"bench\":\"finetune\",\"what\":\"end to end\",\"config\":\"%s\",\"examples\":%d,\"epochs\":%d,\"steps\":%d,"
           "\"seconds\":%.3f,\"examples_per_s\":%.2f,\"tokens_per_s\":%.1f,\"cpu\":\"%s\"}\n",
           configs[ci].name, n, epochs, res.steps_done, e2e, ex / e2e, res.trained_tokens / e2e, nn_cpu_describe());
    printf("{\"bench\":\"finetune\",\"what\":\"engine only, same steps\",\"config\":\"%s\",\"steps\":%d,\"seconds\":%.3f,"
           "\"examples_per_s\":%.2f,\"tokens_per_s\":%.1f}\n", configs[ci].name, res.steps_done, raw, ex / raw, tok / raw);
    printf("{\"bench\":\"finetune\",\"what\":\"end to end / engine only\",\"ratio\":%.3f,\"target\":0.9}\n", raw / e2e);
    rc = 0;
done:
    if (rc) fprintf(stderr, "tunery bench finetune: %s\n", err);
    fs_rm_rf(dir, err);
    return rc;
}
