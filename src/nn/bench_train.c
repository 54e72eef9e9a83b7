/* bench_train.c: `tunery bench train`, the training-step benchmark.
 *
 * Runs full steps (forward with loss, backward, global-norm clipping, AdamW)
 * on random tokens and prints JSON lines: the speed (median ms/step after
 * warm-up, tokens/s, achieved GFLOP/s counted from the shapes, and the ratio
 * to this machine's peaks as measured by the same process: an FMA loop and
 * the best sgemm at the step's MLP shape), where the time goes per layer
 * type, and peak RSS against the theoretical footprint (params + grads +
 * AdamW m, v + activations). Numbers, not adjectives: see README.
 */
#include "cmds.h"
#include "nn/nn.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static void bench_usage(FILE *f)
{
    fprintf(f,
            "usage: tunery bench train [--config gpt2-124M|tiny|L,NH,C,V,maxT] [--batch B] [--seq T]\n"
            "                          [--steps N] [--warmup N] [--threads N] [--precision fp32|bf16]\n"
            "                          [--profile-clock wall|cpu]\n"
            "  Times full training steps (forward, backward, clip, AdamW) on random tokens and prints\n"
            "  JSON lines: speed vs the measured FMA and sgemm peaks, a per-layer profile, memory.\n"
            "  --profile-clock cpu: the profile counts process CPU time (for a shared machine;\n"
            "  set OMP_WAIT_POLICY=PASSIVE so that waiting threads do not count).\n"
            "  defaults: --config gpt2-124M --batch 4 --seq 64 --steps 7 --warmup 2\n");
}

static int parse_config(const char *s, gpt2_config_t *c)
{
    memset(c, 0, sizeof *c);
    if (!strcmp(s, "gpt2-124M") || !strcmp(s, "gpt2")) {
        *c = (gpt2_config_t){.max_seq_len = 1024, .vocab_size = 50257, .num_layers = 12, .num_heads = 12, .channels = 768};
        return 0;
    }
    if (!strcmp(s, "tiny")) {
        *c = (gpt2_config_t){.max_seq_len = 256, .vocab_size = 50257, .num_layers = 4, .num_heads = 4, .channels = 128};
        return 0;
    }
    return sscanf(s, "%d,%d,%d,%d,%d", &c->num_layers, &c->num_heads, &c->channels, &c->vocab_size,
                  &c->max_seq_len) == 5 ? 0 : -1;
}

/* process CPU seconds (all threads): on a shared machine, the work done */
static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int int_arg(const char *flag, const char *v, int lo, int *out)
{
    char *end;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || *end || x < lo || x > (1 << 24)) {
        fprintf(stderr, "tunery: %s needs an integer >= %d\n", flag, lo);
        return -1;
    }
    *out = (int)x;
    return 0;
}

int cmd_bench_train(int argc, char **argv)
{
    const char *cfg_name = "gpt2-124M", *prec = "fp32", *pclock = "wall";
    int B = 4, T = 64, steps = 7, warmup = 2, threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { bench_usage(stdout); return 0; }
        else if (!strcmp(a, "--config") && v) { cfg_name = v; i++; }
        else if (!strcmp(a, "--precision") && v) { prec = v; i++; }
        else if (!strcmp(a, "--profile-clock") && v) { pclock = v; i++; }
        else if (!strcmp(a, "--batch")) { bad = int_arg(a, v, 1, &B); i++; }
        else if (!strcmp(a, "--seq")) { bad = int_arg(a, v, 1, &T); i++; }
        else if (!strcmp(a, "--steps")) { bad = int_arg(a, v, 1, &steps); i++; }
        else if (!strcmp(a, "--warmup")) { bad = int_arg(a, v, 0, &warmup); i++; }
        else if (!strcmp(a, "--threads")) { bad = int_arg(a, v, 1, &threads); i++; }
        else {
            fprintf(stderr, "tunery: bench train: unknown option '%s'; see tunery bench train --help\n", a);
            return 2;
        }
        if (bad) return 2;
    }
    gpt2_config_t cfg;
    if (parse_config(cfg_name, &cfg)) {
        fprintf(stderr, "tunery: --config must be gpt2-124M, tiny or L,NH,C,V,maxT (e.g. 2,2,64,1000,128), not '%s'\n", cfg_name);
        return 2;
    }
    if (strcmp(pclock, "wall") && strcmp(pclock, "cpu")) {
        fprintf(stderr, "tunery: --profile-clock must be wall or cpu\n");
        return 2;
    }
    if (strcmp(prec, "fp32") && strcmp(prec, "bf16")) {
        fprintf(stderr, "tunery: --precision must be fp32 or bf16\n");
        return 2;
    }
    nn_matmul_set_precision(strcmp(prec, "bf16") ? NN_PREC_FP32 : NN_PREC_BF16);
    if (threads) omp_set_num_threads(threads);
    threads = omp_get_max_threads();
    if (T > cfg.max_seq_len) {
        fprintf(stderr, "tunery: --seq %d exceeds the model's context of %d\n", T, cfg.max_seq_len);
        return 2;
    }

    gpt2_t m;
    char err[CORE_ERR_LEN];
    if (gpt2_create(&m, &cfg, err)) {
        fprintf(stderr, "tunery: %s\n", err);
        return 1;
    }
    gpt2_init_random(&m, 1337);
    int *inp = malloc((size_t)B * (T + 1) * sizeof(int)), *tgt = malloc((size_t)B * T * sizeof(int));
    uint64_t s = 42;
    for (int i = 0; i < B * (T + 1); i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        inp[i] = (int)((s >> 33) % (uint64_t)cfg.vocab_size);
    }
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) tgt[b * T + t] = inp[b * (T + 1) + t + 1];
    for (int b = 0; b < B; b++) memmove(inp + b * T, inp + b * (T + 1), (size_t)T * sizeof(int));

    adamw_config_t opt = {.lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
    double *ms = malloc((size_t)steps * sizeof(double)), *cpu_ms = malloc((size_t)steps * sizeof(double));
    float loss = 0, first_loss = 0;
    memset(&nn_profile, 0, sizeof nn_profile);
    for (int step = 1; step <= warmup + steps; step++) {
        if (step == warmup + 1) {
            memset(&nn_profile, 0, sizeof nn_profile);
            nn_profile.enabled = strcmp(pclock, "cpu") ? NN_PROFILE_WALL : NN_PROFILE_CPU;
        }
        double t0 = time_mono(), c0 = cpu_seconds();
        loss = gpt2_forward(&m, inp, tgt, NULL, B, T);
        double tz = nn_profile_clock();
        gpt2_zero_grad(&m);
        double tz1 = nn_profile_clock();
        gpt2_backward(&m, 1.0f / (B * T));
        double tc = nn_profile_clock();
        gpt2_clip_grad_norm(&m, 1.0f);
        if (nn_profile.enabled) nn_profile.adamw += nn_profile_clock() - tc + tz1 - tz;
        gpt2_update(&m, &opt, step);
        double dt = time_mono() - t0;
        if (step == 1) first_loss = loss;
        if (step > warmup) {
            ms[step - warmup - 1] = dt * 1e3;
            cpu_ms[step - warmup - 1] = (cpu_seconds() - c0) * 1e3;
        }
    }
    nn_profile.enabled = 0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss_mb = ru.ru_maxrss / 1024.0;

    qsort(ms, steps, sizeof *ms, cmp_double);
    qsort(cpu_ms, steps, sizeof *cpu_ms, cmp_double);
    double med = steps % 2 ? ms[steps / 2] : 0.5 * (ms[steps / 2 - 1] + ms[steps / 2]);
    double cpu_med = steps % 2 ? cpu_ms[steps / 2] : 0.5 * (cpu_ms[steps / 2 - 1] + cpu_ms[steps / 2]);
    /* the machine may be shared: say how busy it was */
    double load1 = -1;
    FILE *la = fopen("/proc/loadavg", "r");
    if (la) {
        if (fscanf(la, "%lf", &load1) != 1) load1 = -1;
        fclose(la);
    }
    double flops = gpt2_step_flops(&cfg, B, T);
    double gflops = flops / (med * 1e-3) / 1e9;
    double fma = nn_peak_fma_gflops();
    double sgemm = nn_peak_sgemm_gflops(B * T, cfg.channels, 4 * cfg.channels);
    printf("{\"bench\":\"train\",\"config\":\"%s\",\"L\":%d,\"NH\":%d,\"C\":%d,\"V\":%d,\"params\":%zu,"
           "\"B\":%d,\"T\":%d,\"steps\":%d,\"precision\":\"%s\",\"ms_per_step_median\":%.1f,\"ms_per_step_min\":%.1f,\"cpu_ms_per_step_median\":%.1f,"
           "\"tokens_per_s\":%.0f,\"gflop_per_step\":%.2f,\"gflops_per_s\":%.1f,\"peak_fma_gflops\":%.1f,"
           "\"peak_sgemm_gflops\":%.1f,\"ratio_to_fma_peak\":%.3f,\"ratio_to_sgemm_peak\":%.3f,"
           "\"loss_first\":%.4f,\"loss_last\":%.4f,\"cpu\":\"%s\",\"threads\":%d,\"loadavg_1m\":%.2f}\n",
           cfg_name, cfg.num_layers, cfg.num_heads, cfg.channels, cfg.vocab_size, m.num_parameters, B, T, steps,
           prec, med, ms[0], cpu_med, B * T / (med * 1e-3), flops / 1e9, gflops, fma, sgemm, gflops / fma, gflops / sgemm,
           first_loss, loss, nn_cpu_describe(), threads, load1);

    nn_profile_t *p = &nn_profile;
    double f = 1e3 / steps;
    double total = p->matmul + p->attention + p->layernorm + p->gelu + p->lmhead_matmul + p->crossentropy +
                   p->other + p->adamw;
    printf("{\"bench\":\"train_profile\",\"config\":\"%s\",\"B\":%d,\"T\":%d,\"clock\":\"%s\",\"ms_matmul\":%.1f,\"ms_attention\":%.1f,"
           "\"ms_layernorm\":%.1f,\"ms_gelu\":%.1f,\"ms_lmhead_matmul\":%.1f,\"ms_crossentropy\":%.1f,"
           "\"ms_encoder_residual_memset\":%.1f,\"ms_adamw_clip_zero\":%.1f,\"ms_profiled_total\":%.1f,"
           "\"non_gemm_fraction\":%.3f}\n",
           cfg_name, B, T, pclock, p->matmul * f, p->attention * f, p->layernorm * f, p->gelu * f, p->lmhead_matmul * f,
           p->crossentropy * f, p->other * f, p->adamw * f, total * f,
           total > 0 ? (total - p->matmul - p->lmhead_matmul) / total : 0.0);

    double mb = 1.0 / (1024.0 * 1024.0);
    double params_mb = m.num_parameters * 4.0 * mb;
    double train_mb = gpt2_train_bytes(&m) * mb;
    double adam_mb = 2 * params_mb, acts_mb = train_mb - adam_mb;
    double theory = 2 * params_mb + train_mb;
    printf("{\"bench\":\"train_memory\",\"config\":\"%s\",\"B\":%d,\"T\":%d,\"peak_rss_mb\":%.0f,\"theoretical_mb\":%.0f,"
           "\"params_mb\":%.0f,\"grads_mb\":%.0f,\"adamw_mb\":%.0f,\"activations_mb\":%.0f,\"rss_ratio\":%.3f}\n",
           cfg_name, B, T, rss_mb, theory, params_mb, params_mb, adam_mb, acts_mb, rss_mb / theory);
    free(ms);
    free(cpu_ms);
    free(inp);
    free(tgt);
    gpt2_free(&m);
    return 0;
}
