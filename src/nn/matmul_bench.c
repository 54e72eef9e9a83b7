/* matmul_bench.c: `tunery bench matmul`, every matmul path at the engine's
 * real shapes, as JSON lines.
 *
 * The dispatcher's rule (matmul.c) is a fixed rule that came from these
 * measurements; this command is how it is re-checked on another machine
 * (a Zen 5 without AMX, a bigger Xeon) and where docs/bench.md's table comes
 * from. Shapes are GPT-2 124M's Linear layers and LM head at B*T = 256 and
 * 1024 (training), and N = 1, 8, 128 forward (decode and prefill).
 */
#include "nn/matmul_impl.h"
#include "cmds.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int bench_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static float *bench_buf(size_t n, unsigned salt)
{
    float *p = malloc(n * sizeof(float));
    if (!p) return NULL;
    for (size_t i = 0; i < n; i++) p[i] = (float)(((i + salt) * 2654435761u) % 1000) * 0.001f - 0.5f;
    return p;
}

typedef struct {
    const char *name;
    int C, OC;
} bench_layer_t;

static const bench_layer_t bench_layers[] = {
    {"qkv", 768, 2304}, {"attproj", 768, 768}, {"fc", 768, 3072}, {"fcproj", 3072, 768}, {"lmhead", 768, 50304},
};

/* dir: 0 forward, 1 dinp, 2 dweight. Returns the sorted times in t (reps). */
static int bench_one(mm_path_t path, nn_prec_t prec, int dir, int N, int C, int OC, float *inp, float *w,
                     float *b, float *out, float *dout, float *dinp, float *dw, int reps, double *t)
{
    for (int r = -1; r < reps; r++) {   /* r = -1: warm-up (primitive creation, page faults) */
        double t0 = time_mono();
        int rc = dir == 0 ? mm_forward_path(path, prec, out, inp, w, b, N, C, OC)
               : dir == 1 ? mm_backward_path(path, prec, dinp, NULL, NULL, dout, inp, w, N, C, OC)
                          : mm_backward_path(path, prec, NULL, dw, NULL, dout, inp, w, N, C, OC);
        if (rc != 0) return -1;
        if (r >= 0) t[r] = time_mono() - t0;
    }
    qsort(t, reps, sizeof *t, bench_cmp);
    return 0;
}

int cmd_bench_matmul(int argc, char **argv)
{
    int reps = 7, portable = 0, bandwidth = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--portable")) portable = 1;
        else if (!strcmp(argv[i], "--bandwidth")) bandwidth = 1;
        else {
            fprintf(stderr, "usage: tunery bench matmul [--reps N] [--portable] [--bandwidth]\n"
                            "  every matmul path at GPT-2 124M shapes, GFLOP/s (best and median of N),\n"
                            "  --portable also times the portable C kernels (slow), --bandwidth the DRAM read rate\n");
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (reps < 1 || reps > 1000) { fprintf(stderr, "tunery: --reps must be 1..1000\n"); return 2; }
    double fma = nn_peak_fma_gflops();
    /* the load average travels with the figures: on a shared machine it says
     * whether they measure the code or the neighbours */
    double load = -1;
    FILE *la = fopen("/proc/loadavg", "r");
    if (la) {
        if (fscanf(la, "%lf", &load) != 1) load = -1;
        fclose(la);
    }
    printf("{\"bench\":\"matmul_peak\",\"fma_gflops\":%.1f,\"threads\":%d,\"loadavg_1m\":%.2f,\"cpu\":\"%s\"}\n",
           fma, omp_get_max_threads(), load, nn_cpu_describe());
    if (bandwidth) printf("{\"bench\":\"matmul_peak\",\"read_bandwidth_gbs\":%.1f}\n", nn_read_bandwidth_gbs());
    fflush(stdout);
    static const int train_n[] = {256, 1024}, infer_n[] = {1, 8, 128};
    double *t = malloc((size_t)reps * sizeof *t);
    for (int set = 0; set < 2; set++) {
        const int *ns = set == 0 ? train_n : infer_n;
        int nn = set == 0 ? 2 : 3;
        for (int ni = 0; ni < nn; ni++)
            for (size_t li = 0; li < sizeof bench_layers / sizeof *bench_layers; li++) {
                int N = ns[ni], C = bench_layers[li].C, OC = bench_layers[li].OC;
                float *inp = bench_buf((size_t)N * C, 1), *w = bench_buf((size_t)OC * C, 2), *b = bench_buf(OC, 3);
                float *out = bench_buf((size_t)N * OC, 4), *dout = bench_buf((size_t)N * OC, 5);
                float *dinp = bench_buf((size_t)N * C, 6), *dw = bench_buf((size_t)OC * C, 7);
                if (!t || !inp || !w || !b || !out || !dout || !dinp || !dw) {
                    fprintf(stderr, "tunery: out of memory for the %s shape\n", bench_layers[li].name);
                    return 1;
                }
                double flops = 2.0 * N * C * OC;
                for (int dir = 0; dir < (set == 0 ? 3 : 1); dir++)
                    for (int p = MM_AUTO; p < MM_NPATHS; p++)
                        for (int prec = NN_PREC_FP32; prec <= NN_PREC_BF16; prec++) {
                            if (p == MM_PORTABLE && !portable) continue;
                            if (prec == NN_PREC_BF16 && (p == MM_PORTABLE || p == MM_AVX512)) continue;
                            if (prec == NN_PREC_FP32 && p == MM_AMX) continue;
                            if (prec == NN_PREC_BF16 && !(nn_cpu()->avx512_bf16 || nn_cpu()->amx_bf16)) continue;
                            if (bench_one((mm_path_t)p, (nn_prec_t)prec, dir, N, C, OC, inp, w, b, out, dout, dinp,
                                          dw, reps, t) != 0)
                                continue;
                            double best = flops / t[0] * 1e-9, med = flops / t[reps / 2] * 1e-9;
                            printf("{\"bench\":\"matmul\",\"layer\":\"%s\",\"N\":%d,\"C\":%d,\"OC\":%d,"
                                   "\"product\":\"%s\",\"path\":\"%s\",\"precision\":\"%s\",\"ms_median\":%.3f,"
                                   "\"gflops_best\":%.1f,\"gflops_median\":%.1f,\"ratio_to_fma_peak\":%.3f,"
                                   "\"gbs_weights_median\":%.1f}\n",
                                   bench_layers[li].name, N, C, OC, dir == 0 ? "forward" : dir == 1 ? "dinp" : "dweight",
                                   mm_path_name((mm_path_t)p), prec ? "bf16" : "fp32", t[reps / 2] * 1e3, best, med,
                                   med / fma, (double)OC * C * 4 / t[reps / 2] * 1e-9);
                            fflush(stdout);
                        }
                free(inp); free(w); free(b); free(out); free(dout); free(dinp); free(dw);
            }
    }
    free(t);
    return 0;
}
