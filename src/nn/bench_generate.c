/* bench_generate.c: `tunery bench generate`, how fast inference is and how
 * close it comes to what the memory system allows.
 *
 * Decoding one token reads every weight once (the KV cache is small next to
 * 124M parameters), so batch-1 decode cannot beat
 *   bound = measured read bandwidth / weight bytes per token
 * and the ratio to that bound is the figure that says whether the code is
 * good, independently of the machine. Batch 8 shares each weight read among
 * 8 sequences, so it should run several times the batch-1 rate. Prefill is
 * compute-bound (T rows per weight read) and is compared with PyTorch's
 * forward elsewhere (scripts). Random weights: speed does not depend on them.
 *
 * One JSON line per figure, each with the cpu string, so a number is never
 * quoted without its machine.
 */
#include "cmds.h"
#include "nn/nn.h"

#include <jansson.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void emit(const char *cfg, const char *metric, double value, const char *unit, const char *extra)
{
    printf("{\"bench\":\"generate\",\"config\":\"%s\",\"metric\":\"%s\",\"value\":%.4g,\"unit\":\"%s\"%s%s,\"threads\":%d,\"cpu\":\"%s\"}\n",
           cfg, metric, value, unit, extra && *extra ? "," : "", extra ? extra : "", omp_get_max_threads(), nn_cpu_describe());
    fflush(stdout);
}

/* PyTorch's numbers for the same shapes, from scripts/bench_torch.py's
 * generate child (plain torch GPT-2 with a KV cache), run now on the same
 * machine so the comparison shares its load. NULL if it cannot run. */
static json_t *torch_reference(const char *script, int steps)
{
    if (!fs_exists(script)) return NULL;
    char cmd[1024];
    int th = omp_get_max_threads(); /* the same thread count as ours */
    /* torch's best configuration (docs/bench.md section 7): passive OpenMP
     * wait and glibc malloc tuned so that it stops page-faulting */
    snprintf(cmd, sizeof cmd,
             "env -u OPENBLAS_CORETYPE OMP_NUM_THREADS=%d OMP_WAIT_POLICY=PASSIVE MALLOC_MMAP_MAX_=0 "
             "MALLOC_TOP_PAD_=1073741824 MALLOC_TRIM_THRESHOLD_=1099511627776 /usr/bin/python3 '%s' --child "
             "'{\"kind\":\"generate\",\"threads\":%d,\"mkldnn\":1,\"env\":\"passive+malloc\",\"bf16\":0,"
             "\"B\":1,\"T\":128,\"steps\":1,\"decode\":%d}' 2>/dev/null", th, script, th, steps);
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    char line[4096];
    json_t *j = NULL;
    while (fgets(line, sizeof line, p))
        if (line[0] == '{' && !j) j = json_loads(line, 0, NULL);
    pclose(p);
    return j;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: tunery bench generate [--config gpt2-124M|gpt2-350M|tiny] [--prefill T] [--steps N] [--reps R]\n"
               "                             [--threads N] [--torch scripts/bench_torch.py | --no-torch]\n"
               "  prints prefill tokens/s, decode tokens/s at batch 1 and 8, the memory-bandwidth bound of\n"
               "  decode, and model load times, one JSON line each (random weights)\n");
}

int cmd_bench_generate(int argc, char **argv)
{
    const char *cfgname = "gpt2-124M";
    const char *torch = "scripts/bench_torch.py";
    int T = 128, steps = 32, reps = 5;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
        if (!strcmp(argv[i], "--no-torch")) { torch = NULL; continue; }
        if (!v) { usage(stderr); return 2; }
        if (!strcmp(argv[i], "--config")) cfgname = v;
        else if (!strcmp(argv[i], "--prefill")) T = atoi(v);
        else if (!strcmp(argv[i], "--steps")) steps = atoi(v);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(v);
        else if (!strcmp(argv[i], "--torch")) torch = v;
        else if (!strcmp(argv[i], "--threads") && atoi(v) > 0) omp_set_num_threads(atoi(v));
        else { usage(stderr); return 2; }
        i++;
    }
    gpt2_config_t cfg = {1024, 50257, 0, 12, 12, 768};
    if (!strcmp(cfgname, "gpt2-350M")) { cfg.num_layers = 24; cfg.num_heads = 16; cfg.channels = 1024; }
    else if (!strcmp(cfgname, "tiny")) { cfg.num_layers = 2; cfg.num_heads = 4; cfg.channels = 64; cfg.max_seq_len = 256; }
    else if (strcmp(cfgname, "gpt2-124M")) { fprintf(stderr, "tunery bench generate: unknown --config %s\n", cfgname); return 2; }
    if (T < 1 || steps < 1 || reps < 1 || T + steps > cfg.max_seq_len) {
        fprintf(stderr, "tunery bench generate: need 1 <= --prefill + --steps <= %d and --reps >= 1\n", cfg.max_seq_len);
        return 2;
    }
    char err[CORE_ERR_LEN], extra[256];
    gpt2_t m;
    if (gpt2_create(&m, &cfg, err)) { fprintf(stderr, "tunery bench generate: %s\n", err); return 1; }
    gpt2_init_random(&m, 1337);

    /* load times: convert once, then the memory-mapped load a server does */
    /* the model's temporary directory (~1 GB with its mapped image) carries
     * this process's id, so a run that was killed leaves nothing for long:
     * the next run removes it */
    char dir[64];
    fs_sweep_dead("/tmp", "tunery-bench-generate-");
    snprintf(dir, sizeof dir, "/tmp/tunery-bench-generate-%d-XXXXXX", (int)getpid());
    if (!mkdtemp(dir) || gpt2_save(&m, dir, err)) {
        fprintf(stderr, "tunery bench generate: cannot save the model to a temporary directory: %s\n", err);
        gpt2_free(&m);
        return 1;
    }
    gpt2_free(&m);
    double t0 = time_mono();
    if (gpt2_load_mapped(&m, dir, err)) { fprintf(stderr, "tunery bench generate: %s\n", err); return 1; }
    double first = time_mono() - t0;
    double lt[9];
    int nl = 0;
    for (; nl < 5; nl++) {
        gpt2_unload_mapped(&m);
        t0 = time_mono();
        if (gpt2_load_mapped(&m, dir, err)) { fprintf(stderr, "tunery bench generate: %s\n", err); return 1; }
        lt[nl] = time_mono() - t0;
    }
    /* mapping is lazy: also time faulting every page in (from the page cache),
     * which the first request pays; that is the honest "ready to serve" time */
    t0 = time_mono();
    volatile float sink = 0;
    for (size_t i = 0; i < m.num_parameters; i += 1024) sink += m.params_memory[i];
    (void)sink;
    double touch = time_mono() - t0;
    fs_rm_rf(dir, err);   /* the mapping outlives its file: nothing left if this run is killed */
    snprintf(extra, sizeof extra, "\"first_load_ms\":%.1f,\"touch_all_pages_ms\":%.1f", first * 1e3, touch * 1e3);
    emit(cfgname, "model_load_ms", median(lt, nl) * 1e3, "ms", extra);

    int maxT = T + steps, nb = 8;
    infer_t *st;
    if (infer_create(&st, &m, nb, maxT, err)) { fprintf(stderr, "tunery bench generate: %s\n", err); return 1; }
    int V = cfg.vocab_size;
    int *prompt = malloc((size_t)T * sizeof *prompt);
    float *logits = malloc((size_t)nb * V * sizeof *logits);
    double *tv = malloc((size_t)reps * sizeof *tv);
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < T; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; prompt[i] = (int)(x % (uint64_t)V); }

    double tp = 0, tp_cpu = 0, rate[2] = {0, 0};
    nn_prec_t prec0 = nn_matmul_get_precision();
    for (int pass = 0; pass < 2; pass++) {
        /* pass 0: fp32 (the default, bit-for-bit the tested path); pass 1: bf16
         * matmuls (TUNERY_MATMUL=bf16), what AMX can do when parity to 1e-4
         * is not needed */
        nn_prec_t prec = pass ? NN_PREC_BF16 : NN_PREC_FP32;
        const char *sfx = pass ? "_bf16" : "";
        char name[64];
        nn_matmul_set_precision(prec);
        if (nn_matmul_get_precision() != prec) break; /* no bf16 on this CPU */
        /* prefill T tokens (a warm-up first: oneDNN builds its primitives once) */
        infer_reset(st, 0);
        infer_prefill(st, 0, prompt, T, logits, 0, err);
        double *cv = malloc((size_t)reps * sizeof *cv);
        for (int r = 0; r < reps; r++) {
            infer_reset(st, 0);
            double c0 = cpu_seconds();
            t0 = time_mono();
            infer_prefill(st, 0, prompt, T, logits, 0, err);
            tv[r] = time_mono() - t0;
            cv[r] = cpu_seconds() - c0;
        }
        double tpp = median(tv, reps), cpp = median(cv, reps);
        free(cv);
        if (!pass) tp_cpu = cpp;
        snprintf(extra, sizeof extra, "\"T\":%d,\"ms\":%.2f,\"cpu_ms\":%.2f", T, tpp * 1e3, cpp * 1e3);
        snprintf(name, sizeof name, "prefill_tokens_per_s%s", sfx);
        emit(cfgname, name, T / tpp, "tokens/s", extra);
        if (!pass) tp = tpp;
        /* decode at batch 1 and batch 8, from a T-token context */
        int batches[2] = {1, nb};
        for (int b = 0; b < 2; b++) {
            int B = batches[b], seqs[8], toks[8];
            for (int r = 0; r < reps; r++) {
                infer_reset(st, 0); /* every rep decodes from the same T-token context */
                infer_prefill(st, 0, prompt, T, NULL, 0, err);
                for (int q = 0; q < B; q++) { seqs[q] = q; infer_copy_seq(st, q, 0); }
                t0 = time_mono();
                for (int s = 0; s < steps; s++) {
                    for (int q = 0; q < B; q++) toks[q] = prompt[(s + q) % T];
                    if (infer_decode(st, seqs, toks, B, logits, err)) { fprintf(stderr, "tunery bench generate: %s\n", err); return 1; }
                }
                tv[r] = time_mono() - t0;
            }
            double rt = B * steps / median(tv, reps);
            if (!pass) rate[b] = rt;
            snprintf(extra, sizeof extra, "\"batch\":%d,\"context\":%d,\"steps\":%d,\"ms_per_step\":%.2f", B, T, steps,
                     1e3 * B / rt);
            snprintf(name, sizeof name, "decode_tokens_per_s_batch%d%s", B, sfx);
            emit(cfgname, name, rt, "tokens/s", extra);
        }
    }
    nn_matmul_set_precision(prec0);

    /* the bound: every weight is read once per decode step (wpe: one row) */
    double bytes = (double)(m.num_parameters - (size_t)cfg.max_seq_len * cfg.channels) * sizeof(float);
    double bw = nn_read_bandwidth_gbs();
    double bound = bw * 1e9 / bytes;
    snprintf(extra, sizeof extra, "\"weight_mb_per_token\":%.1f,\"read_bandwidth_gbs\":%.2f,\"batch1_fraction_of_bound\":%.3f",
             bytes / 1e6, bw, rate[0] / bound);
    emit(cfgname, "decode_bandwidth_bound_tokens_per_s", bound, "tokens/s", extra);

    /* the PyTorch reference (124M, T=128 only: that is the shape it runs) */
    json_t *ref = torch && !strcmp(cfgname, "gpt2-124M") && T == 128 ? torch_reference(torch, steps) : NULL;
    if (ref && json_object_get(ref, "prefill_T128_ms")) {
        double pms = json_number_value(json_object_get(ref, "prefill_T128_ms"));
        double d1 = json_number_value(json_object_get(ref, "decode_b1_tokens_per_s"));
        double d8 = json_number_value(json_object_get(ref, "decode_b8_tokens_per_s"));
        double plast = json_number_value(json_object_get(ref, "prefill_T128_last_logits_ms"));
        double pcpu = json_number_value(json_object_get(ref, "prefill_T128_cpu_ms"));
        double plast_cpu = json_number_value(json_object_get(ref, "prefill_T128_last_logits_cpu_ms"));
        /* two references: torch's forward pass (all 128 positions' logits, the
         * issue's definition) and torch computing only the last position's
         * logits, as tunery's prefill does; wall and CPU time */
        snprintf(extra, sizeof extra, "\"torch_prefill_ms\":%.1f,\"tunery_prefill_ms\":%.1f,\"torch_cpu_ms\":%.1f,"
                 "\"tunery_cpu_ms\":%.1f,\"cpu_ratio\":%.3f", pms, tp * 1e3, pcpu, tp_cpu * 1e3,
                 tp_cpu > 0 ? pcpu / (tp_cpu * 1e3) : 0.0);
        emit(cfgname, "prefill_speedup_vs_torch", pms / (tp * 1e3), "x", extra);
        snprintf(extra, sizeof extra, "\"torch_prefill_ms\":%.1f,\"tunery_prefill_ms\":%.1f,\"torch_cpu_ms\":%.1f,"
                 "\"tunery_cpu_ms\":%.1f,\"cpu_ratio\":%.3f", plast, tp * 1e3, plast_cpu, tp_cpu * 1e3,
                 tp_cpu > 0 ? plast_cpu / (tp_cpu * 1e3) : 0.0);
        emit(cfgname, "prefill_speedup_vs_torch_last_logits", plast > 0 ? plast / (tp * 1e3) : 0, "x", extra);
        snprintf(extra, sizeof extra, "\"torch_tokens_per_s\":%.1f,\"tunery_tokens_per_s\":%.1f", d1, rate[0]);
        emit(cfgname, "decode_batch1_speedup_vs_torch", d1 > 0 ? rate[0] / d1 : 0, "x", extra);
        snprintf(extra, sizeof extra, "\"torch_tokens_per_s\":%.1f,\"tunery_tokens_per_s\":%.1f", d8, rate[1]);
        emit(cfgname, "decode_batch8_speedup_vs_torch", d8 > 0 ? rate[1] / d8 : 0, "x", extra);
    } else if (torch && !strcmp(cfgname, "gpt2-124M")) {
        fprintf(stderr, "tunery bench generate: no PyTorch reference (%s did not run; needs /usr/bin/python3 with torch)\n", torch);
    }
    json_decref(ref);

    infer_free(st);
    free(prompt); free(logits); free(tv);
    gpt2_unload_mapped(&m);
    return 0;
}
