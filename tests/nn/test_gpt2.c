/* test_gpt2.c: the GPT-2 training engine against PyTorch (float64 reference,
 * fixtures from scripts/gen_nn_fixtures.py in tests/nn/fixtures/).
 *
 * Tolerances (fp32 engine vs float64 truth):
 *   loss                  max relative error <= 1e-4
 *   logits                max |error| / max |logit| <= 1e-4
 *   gradients             max |error| / max |grad of that tensor| <= 1e-3
 *   params after 3 AdamW steps (clipping, weight decay)  max |error| <= 1e-5
 * Plus: gradient accumulation over micro-batches equals the full batch,
 * save -> load gives bit-identical logits, an HF-layout directory (fp32 and
 * bf16) gives the reference logits, optimizer state round-trips exactly.
 */
#include "nn/gpt2_impl.h"
#include "test.h"

#include <omp.h>
#include <stdlib.h>
#include <unistd.h>

#define FIX "tests/nn/fixtures"

static const char *pnames[GPT2_NUM_PARAM_TENSORS] = {
    "wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
    "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"};
/* (offset, scale) per tensor: the FILL table of gen_nn_fixtures.py */
static const double pfill[GPT2_NUM_PARAM_TENSORS][2] = {
    {0.0, 0.1}, {0.0, 0.05}, {1.0, 0.1}, {0.0, 0.05}, {0.0, 0.08}, {0.0, 0.02}, {0.0, 0.08}, {0.0, 0.02},
    {1.0, 0.1}, {0.0, 0.05}, {0.0, 0.08}, {0.0, 0.02}, {0.0, 0.04}, {0.0, 0.02}, {1.0, 0.1}, {0.0, 0.05}};

/* fixture_fill() of gen_nn_fixtures.py, bit for bit */
static void fixture_fill(float *x, size_t n, uint64_t seed, uint64_t ti, double off, double scale)
{
    uint64_t base = (seed << 32) + (ti << 48);
    for (size_t i = 0; i < n; i++) {
        uint64_t z = base + (i + 1) * 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        double u = (double)(z >> 40) / 16777216.0;
        x[i] = (float)(off + scale * (2.0 * u - 1.0));
    }
}

static float *param_ptr(gpt2_t *m, float *mem, int idx)
{
    for (int i = 0; i < idx; i++) mem += m->param_sizes[i];
    return mem;
}

static void fill_params(gpt2_t *m, uint64_t seed)
{
    memset(m->params_memory, 0, m->num_parameters * sizeof(float));
    for (int i = 0; i < GPT2_NUM_PARAM_TENSORS; i++) {
        size_t n = i == 0 ? (size_t)m->config.vocab_size * m->config.channels : m->param_sizes[i];
        fixture_fill(param_ptr(m, m->params_memory, i), n, seed, (uint64_t)i, pfill[i][0], pfill[i][1]);
    }
}

typedef struct {
    st_file_t f;
    int L, NH, C, V, maxT, B, T, seed;
    const int *inputs, *targets;
    const float *weights;
    int ok;
} fixture_t;

static const st_tensor_t *need(fixture_t *fx, const char *name)
{
    const st_tensor_t *t = st_tensor_find(&fx->f, name);
    CHECKF(t != NULL, "fixture tensor %s missing", name);
    return t;
}

static int fixture_open(fixture_t *fx, const char *file, gpt2_t *m)
{
    char err[CORE_ERR_LEN], path[256];
    memset(fx, 0, sizeof *fx);
    snprintf(path, sizeof path, FIX "/%s", file);
    int rc = st_file_open(&fx->f, path, err);
    CHECKF(rc == 0, "%s", err);
    if (rc) return -1;
    const int *c = (const int *)need(fx, "config")->data;
    fx->L = c[0]; fx->NH = c[1]; fx->C = c[2]; fx->V = c[3]; fx->maxT = c[4]; fx->B = c[5]; fx->T = c[6]; fx->seed = c[7];
    fx->inputs = (const int *)need(fx, "inputs")->data;
    fx->targets = (const int *)need(fx, "targets")->data;
    fx->weights = (const float *)need(fx, "weights")->data;
    gpt2_config_t cfg = {.max_seq_len = fx->maxT, .vocab_size = fx->V, .num_layers = fx->L, .num_heads = fx->NH,
                         .channels = fx->C};
    rc = gpt2_create(m, &cfg, err);
    CHECKF(rc == 0, "%s", err);
    if (rc) { st_file_close(&fx->f); return -1; }
    fill_params(m, (uint64_t)fx->seed);
    return 0;
}

static double weight_sum(const fixture_t *fx, int row0, int rows)
{
    double s = 0.0;
    for (int i = row0 * fx->T; i < (row0 + rows) * fx->T; i++)
        if (fx->targets[i] >= 0) s += fx->weights[i];
    return s;
}

/* max |ours[idx] - ref| / max |ref| over a fixture's (possibly sampled) tensor */
static double compare_sampled(fixture_t *fx, const char *prefix, const char *name, const float *ours, double *maxabs_err)
{
    char key[64], ikey[64];
    snprintf(key, sizeof key, "%s.%s", prefix, name);
    snprintf(ikey, sizeof ikey, "%s_idx.%s", prefix, name);
    const st_tensor_t *ref = need(fx, key), *idx = st_tensor_find(&fx->f, ikey);
    if (!ref) return 1e30;
    const float *r = (const float *)ref->data;
    const int *ix = idx ? (const int *)idx->data : NULL;
    double maxref = 0.0, maxerr = 0.0;
    for (size_t i = 0; i < ref->nelem; i++) {
        double o = ours[ix ? (size_t)ix[i] : i];
        maxref = fmax(maxref, fabs(r[i]));
        maxerr = fmax(maxerr, fabs(o - r[i]));
    }
    if (maxabs_err) *maxabs_err = maxerr;
    return maxref > 0 ? maxerr / maxref : maxerr;
}

static void parity(const char *file)
{
    fixture_t fx;
    gpt2_t m;
    if (fixture_open(&fx, file, &m)) return;
    int B = fx.B, T = fx.T, Vp = m.config.padded_vocab_size;

    /* logits (sampled columns) and argmax */
    CHECK(gpt2_forward(&m, fx.inputs, NULL, NULL, B, T) == 0.0f);
    const float *lg = gpt2_logits(&m);
    CHECK(lg != NULL);
    const st_tensor_t *cols = need(&fx, "logit_cols"), *rl = need(&fx, "logits");
    if (lg && cols && rl) {
        const int *cj = (const int *)cols->data;
        const float *r = (const float *)rl->data;
        double maxref = 0, maxerr = 0;
        for (int i = 0; i < B * T; i++)
            for (size_t j = 0; j < cols->nelem; j++) {
                double ref = r[i * cols->nelem + j];
                maxref = fmax(maxref, fabs(ref));
                maxerr = fmax(maxerr, fabs(lg[(size_t)i * Vp + cj[j]] - ref));
            }
        CHECKF(maxerr / maxref <= 1e-4, "%s logits: relative error %.3g", file, maxerr / maxref);
    }

    /* loss, argmax, gradients */
    gpt2_zero_grad(&m);
    float loss = gpt2_forward(&m, fx.inputs, fx.targets, fx.weights, B, T);
    float ref_loss = *(const float *)need(&fx, "loss")->data;
    CHECKF(fabs(loss - ref_loss) / fabs(ref_loss) <= 1e-4, "%s loss %.8g vs %.8g", file, loss, ref_loss);
    if (getenv("TUNERY_TEST_VERBOSE")) fprintf(stderr, "  %s loss rel %.3g\n", file, fabs(loss - ref_loss) / fabs(ref_loss));
    const int *am = (const int *)need(&fx, "argmax")->data;
    const float *gap = (const float *)need(&fx, "argmax_gap")->data;
    for (int i = 0; i < B * T; i++)
        if (gap[i] > 1e-3f) CHECKF(m.out_argmax[i] == am[i], "%s argmax[%d] %d vs %d", file, i, m.out_argmax[i], am[i]);
    gpt2_backward(&m, (float)(1.0 / weight_sum(&fx, 0, B)));
    for (int p = 0; p < GPT2_NUM_PARAM_TENSORS; p++) {
        double rel = compare_sampled(&fx, "grad", pnames[p], param_ptr(&m, m.grads_memory, p), NULL);
        CHECKF(rel <= 1e-3, "%s grad %s: relative error %.3g", file, pnames[p], rel);
        if (getenv("TUNERY_TEST_VERBOSE")) fprintf(stderr, "  %s grad %s rel %.3g\n", file, pnames[p], rel);
    }
    /* padded vocabulary rows and unused positions get no gradient */
    double pad = 0;
    for (size_t i = (size_t)fx.V * fx.C; i < m.param_sizes[0]; i++) pad = fmax(pad, fabs(m.grads.wte[i]));
    for (size_t i = (size_t)T * fx.C; i < m.param_sizes[1]; i++) pad = fmax(pad, fabs(m.grads.wpe[i]));
    CHECK(pad == 0.0);

    /* 3 AdamW steps with clipping on the same batch */
    const float *a = (const float *)need(&fx, "adam")->data;
    const float *sl = (const float *)need(&fx, "step_losses")->data, *sn = (const float *)need(&fx, "step_norms")->data;
    adamw_config_t opt = {.lr = a[0], .beta1 = a[1], .beta2 = a[2], .eps = a[3], .weight_decay = a[4]};
    fill_params(&m, (uint64_t)fx.seed);
    for (int step = 1; step <= 3; step++) {
        float l = gpt2_forward(&m, fx.inputs, fx.targets, fx.weights, B, T);
        gpt2_zero_grad(&m);
        gpt2_backward(&m, (float)(1.0 / weight_sum(&fx, 0, B)));
        float norm = gpt2_clip_grad_norm(&m, a[5]);
        gpt2_update(&m, &opt, step);
        CHECKF(fabs(l - sl[step - 1]) <= 1e-4 * fabs(sl[step - 1]), "%s step %d loss %.8g vs %.8g", file, step, l, sl[step - 1]);
        CHECKF(fabs(norm - sn[step - 1]) <= 1e-3 * fabs(sn[step - 1]), "%s step %d norm %.8g vs %.8g", file, step, norm, sn[step - 1]);
    }
    for (int p = 0; p < GPT2_NUM_PARAM_TENSORS; p++) {
        double abs_err = 0;
        compare_sampled(&fx, "after", pnames[p], param_ptr(&m, m.params_memory, p), &abs_err);
        CHECKF(abs_err <= 1e-5, "%s params after AdamW %s: max abs error %.3g", file, pnames[p], abs_err);
        if (getenv("TUNERY_TEST_VERBOSE")) fprintf(stderr, "  %s after %s abs %.3g\n", file, pnames[p], abs_err);
    }
    gpt2_free(&m);
    st_file_close(&fx.f);
}

/* bf16 matmuls (fp32 master weights and accumulation), where the CPU has
 * them: stated bound 2e-3 relative on the loss, 3e-2 on gradients. */
static void test_parity_bf16(void)
{
    fixture_t fx;
    gpt2_t m;
    if (fixture_open(&fx, "gpt2_odd.safetensors", &m)) return;
    nn_matmul_set_precision(NN_PREC_BF16);
    gpt2_zero_grad(&m);
    float loss = gpt2_forward(&m, fx.inputs, fx.targets, fx.weights, fx.B, fx.T);
    gpt2_backward(&m, (float)(1.0 / weight_sum(&fx, 0, fx.B)));
    nn_matmul_set_precision(NN_PREC_FP32);
    float ref_loss = *(const float *)need(&fx, "loss")->data;
    CHECKF(fabs(loss - ref_loss) / fabs(ref_loss) <= 2e-3, "bf16 loss %.8g vs %.8g", loss, ref_loss);
    double worst = 0;
    for (int p = 0; p < GPT2_NUM_PARAM_TENSORS; p++) {
        double rel = compare_sampled(&fx, "grad", pnames[p], param_ptr(&m, m.grads_memory, p), NULL);
        worst = fmax(worst, rel);
        CHECKF(rel <= 3e-2, "bf16 grad %s: relative error %.3g", pnames[p], rel);
    }
    if (getenv("TUNERY_TEST_VERBOSE"))
        fprintf(stderr, "  bf16: loss rel %.3g, worst grad rel %.3g\n", fabs(loss - ref_loss) / fabs(ref_loss), worst);
    gpt2_free(&m);
    st_file_close(&fx.f);
}

/* Attention kernels alone (blocked path for head size 16 and 32, generic for
 * 8; odd T for the block tails) against a float64 naive forward, and the
 * backward against central finite differences of L = sum(out * G). */
static double naive_attn_loss(const double *qkv, const float *G, float *outf, int B, int T, int C, int NH)
{
    int hs = C / NH;
    double L = 0;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const double *q = qkv + ((size_t)b * T + t) * 3 * C + h * hs;
                double s[64], mx = -1e300, sum = 0;
                for (int t2 = 0; t2 <= t; t2++) {
                    const double *k = qkv + ((size_t)b * T + t2) * 3 * C + C + h * hs;
                    double d = 0;
                    for (int i = 0; i < hs; i++) d += q[i] * k[i];
                    s[t2] = d / sqrt((double)hs);
                    mx = fmax(mx, s[t2]);
                }
                for (int t2 = 0; t2 <= t; t2++) { s[t2] = exp(s[t2] - mx); sum += s[t2]; }
                for (int i = 0; i < hs; i++) {
                    double o = 0;
                    for (int t2 = 0; t2 <= t; t2++) o += s[t2] / sum * qkv[((size_t)b * T + t2) * 3 * C + 2 * C + h * hs + i];
                    size_t oi = ((size_t)b * T + t) * C + h * hs + i;
                    if (outf) outf[oi] = (float)o;
                    L += o * G[oi];
                }
            }
    return L;
}

static void attention_case(int B, int T, int C, int NH)
{
    size_t n3 = (size_t)B * T * 3 * C, n1 = (size_t)B * T * C;
    float *qkv = malloc(n3 * 4), *dqkv = malloc(n3 * 4), *out = malloc(n1 * 4), *ref = malloc(n1 * 4);
    float *G = malloc(n1 * 4), *lse = malloc((size_t)B * NH * T * 4);
    double *qd = calloc(n3, sizeof(double));
    fixture_fill(qkv, n3, 99, 1, 0.0, 1.0);
    fixture_fill(G, n1, 99, 2, 0.0, 1.0);
    for (size_t i = 0; i < n3; i++) qd[i] = qkv[i];
    attention_forward(out, lse, qkv, B, T, C, NH);
    naive_attn_loss(qd, G, ref, B, T, C, NH);
    double err = 0;
    for (size_t i = 0; i < n1; i++) err = fmax(err, fabs(out[i] - ref[i]));
    CHECKF(err < 1e-5, "attention forward C=%d NH=%d T=%d: max error %.3g", C, NH, T, err);
    attention_backward(dqkv, G, qkv, out, lse, B, T, C, NH);
    double worst = 0;
    for (int k = 0; k < 40; k++) {
        size_t i = (size_t)(k * 7919) % n3;
        double h = 1e-4, x = qd[i];
        qd[i] = x + h;
        double lp = naive_attn_loss(qd, G, NULL, B, T, C, NH);
        qd[i] = x - h;
        double lm = naive_attn_loss(qd, G, NULL, B, T, C, NH);
        qd[i] = x;
        worst = fmax(worst, fabs((lp - lm) / (2 * h) - dqkv[i]));
    }
    CHECKF(worst < 1e-4, "attention backward C=%d NH=%d T=%d: max error %.3g vs finite differences", C, NH, T, worst);
    free(qkv); free(dqkv); free(out); free(ref); free(G); free(lse); free(qd);
}

static void test_attention_kernels(void)
{
    attention_case(2, 7, 32, 2);    /* hs 16: blocked, T tail */
    attention_case(1, 37, 64, 2);   /* hs 32: blocked, several key blocks */
    attention_case(2, 9, 24, 3);    /* hs 8: generic */
}

static void test_parity_tiny50k(void) { parity("gpt2_tiny50k.safetensors"); }
static void test_parity_odd(void) { parity("gpt2_odd.safetensors"); }

/* Gradient accumulation over micro-batches (rows 0 | 1..B-1) with
 * grad_scale = 1 / total weight equals one full-batch backward. */
static void test_grad_accumulation(void)
{
    fixture_t fx;
    gpt2_t m;
    if (fixture_open(&fx, "gpt2_odd.safetensors", &m)) return;
    int B = fx.B, T = fx.T;
    double wsum = weight_sum(&fx, 0, B);
    gpt2_zero_grad(&m);
    float full_loss = gpt2_forward(&m, fx.inputs, fx.targets, fx.weights, B, T);
    gpt2_backward(&m, (float)(1.0 / wsum));
    float *full = malloc(m.num_parameters * sizeof(float));
    memcpy(full, m.grads_memory, m.num_parameters * sizeof(float));

    gpt2_zero_grad(&m);
    double lsum = 0;
    int rows[2][2] = {{0, 1}, {1, B - 1}};
    for (int k = 0; k < 2; k++) {
        int r0 = rows[k][0], nr = rows[k][1];
        float l = gpt2_forward(&m, fx.inputs + r0 * T, fx.targets + r0 * T, fx.weights + r0 * T, nr, T);
        lsum += l * weight_sum(&fx, r0, nr);
        gpt2_backward(&m, (float)(1.0 / wsum));
    }
    CHECK_NEAR(lsum / wsum, full_loss, 1e-5 * full_loss);
    double maxg = 0, maxerr = 0;
    for (size_t i = 0; i < m.num_parameters; i++) {
        maxg = fmax(maxg, fabs(full[i]));
        maxerr = fmax(maxerr, fabs(full[i] - m.grads_memory[i]));
    }
    CHECKF(maxerr <= 1e-5 * maxg, "accumulated grads differ: %.3g (max %.3g)", maxerr, maxg);
    free(full);
    gpt2_free(&m);
    st_file_close(&fx.f);
}

/* Clipping is lazy; gpt2_grads_sync applies it; gpt2_update consumes grads. */
static void test_clip_sync(void)
{
    fixture_t fx;
    gpt2_t m;
    if (fixture_open(&fx, "gpt2_odd.safetensors", &m)) return;
    gpt2_zero_grad(&m);
    gpt2_forward(&m, fx.inputs, fx.targets, fx.weights, fx.B, fx.T);
    gpt2_backward(&m, (float)(1.0 / weight_sum(&fx, 0, fx.B)));
    float n0 = gpt2_clip_grad_norm(&m, 0.5f);
    CHECK(n0 > 0.5f);
    gpt2_grads_sync(&m);
    CHECK_NEAR(gpt2_clip_grad_norm(&m, 0.0f), 0.5, 1e-5);
    adamw_config_t opt = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
    gpt2_update(&m, &opt, 1);
    CHECK(gpt2_clip_grad_norm(&m, 0.0f) == 0.0f);
    gpt2_free(&m);
    st_file_close(&fx.f);
}

/* DESIGN.md: a fixed seed on the same machine gives bit-identical losses.
 * Two runs of 2 steps, with 2 threads and with 1, end in the same bits. */
static void run_steps(const char *file, float *losses, float **params, size_t *n)
{
    fixture_t fx;
    gpt2_t m;
    if (fixture_open(&fx, file, &m)) return;
    adamw_config_t opt = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
    for (int step = 1; step <= 2; step++) {
        gpt2_zero_grad(&m);
        losses[step - 1] = gpt2_forward(&m, fx.inputs, fx.targets, fx.weights, fx.B, fx.T);
        gpt2_backward(&m, (float)(1.0 / weight_sum(&fx, 0, fx.B)));
        gpt2_clip_grad_norm(&m, 1.0f);
        gpt2_update(&m, &opt, step);
    }
    *n = m.num_parameters;
    *params = malloc(*n * sizeof(float));
    memcpy(*params, m.params_memory, *n * sizeof(float));
    gpt2_free(&m);
    st_file_close(&fx.f);
}

static void test_deterministic(void)
{
    float l1[2] = {0}, l2[2] = {0}, l3[2] = {0}, *p1 = NULL, *p2 = NULL, *p3 = NULL;
    size_t n = 0;
    const char *file = "gpt2_odd.safetensors";
    run_steps(file, l1, &p1, &n);
    run_steps(file, l2, &p2, &n);
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    run_steps(file, l3, &p3, &n);
    omp_set_num_threads(nt);
    if (!p1 || !p2 || !p3) { CHECK(0); return; }
    CHECK(memcmp(l1, l2, sizeof l1) == 0 && memcmp(p1, p2, n * sizeof(float)) == 0);
    CHECKF(memcmp(l1, l3, sizeof l1) == 0 && memcmp(p1, p3, n * sizeof(float)) == 0,
           "1 thread vs %d: losses %.9g %.9g vs %.9g %.9g", nt, l3[0], l3[1], l1[0], l1[1]);
    free(p1); free(p2); free(p3);
}

/* Weights 0 for all positions: loss 0, no gradient, no NaN. */
static void test_zero_weights(void)
{
    fixture_t fx;
    gpt2_t m;
    if (fixture_open(&fx, "gpt2_odd.safetensors", &m)) return;
    int n = fx.B * fx.T;
    float *w = calloc(n, sizeof(float));
    gpt2_zero_grad(&m);
    CHECK(gpt2_forward(&m, fx.inputs, fx.targets, w, fx.B, fx.T) == 0.0f);
    gpt2_backward(&m, 1.0f);
    double mx = 0;
    for (size_t i = 0; i < m.num_parameters; i++) mx = fmax(mx, fabs(m.grads_memory[i]));
    CHECK(mx == 0.0);
    int bad[1] = {fx.V};
    CHECK(isnan(gpt2_forward(&m, bad, NULL, NULL, 1, 1)));
    CHECK(isnan(gpt2_forward(&m, fx.inputs, NULL, NULL, 1, fx.maxT + 1)));
    free(w);
    gpt2_free(&m);
    st_file_close(&fx.f);
}

static void tmpdir_make(char *out, size_t n)
{
    snprintf(out, n, "/tmp/tunery-test-gpt2-XXXXXX");
    CHECK(mkdtemp(out) != NULL);
}

static void test_save_load_roundtrip(void)
{
    fixture_t fx;
    gpt2_t m, m2;
    char err[CORE_ERR_LEN], dir[64];
    if (fixture_open(&fx, "gpt2_odd.safetensors", &m)) return;
    int BT = fx.B * fx.T, Vp = m.config.padded_vocab_size;
    tmpdir_make(dir, sizeof dir);
    int rc = gpt2_save(&m, dir, err);
    CHECKF(rc == 0, "%s", err);
    rc = gpt2_load(&m2, dir, err);
    CHECKF(rc == 0, "%s", err);
    if (!rc) {
        CHECK(memcmp(m.params_memory, m2.params_memory, m.num_parameters * sizeof(float)) == 0);
        gpt2_forward(&m, fx.inputs, NULL, NULL, fx.B, fx.T);
        gpt2_forward(&m2, fx.inputs, NULL, NULL, fx.B, fx.T);
        CHECK(memcmp(gpt2_logits(&m), gpt2_logits(&m2), (size_t)BT * Vp * sizeof(float)) == 0);
        gpt2_free(&m2);
    }
    char path[128];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *cfg = NULL;
    size_t len;
    if (fs_read_all(path, &cfg, &len, err) == 0) {
        CHECK(strstr(cfg, "\"GPT2LMHeadModel\"") && strstr(cfg, "\"gelu_new\"") && strstr(cfg, "\"n_layer\": 3"));
        free(cfg);
    }
    /* a file cut short is a clean error */
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK(truncate(path, 1000) == 0);
    CHECK(gpt2_load(&m2, dir, err) < 0 && strstr(err, "model.safetensors"));
    fs_rm_rf(dir, err);
    gpt2_free(&m);
    st_file_close(&fx.f);
}

static void hf_dir(const char *dir, const char *key, double tol)
{
    gpt2_t m;
    char err[CORE_ERR_LEN];
    st_file_t f;
    int rc = gpt2_load(&m, dir, err);
    CHECKF(rc == 0, "%s", err);
    if (rc) return;
    if (st_file_open(&f, FIX "/hf_tiny_expected.safetensors", err)) { CHECKF(0, "%s", err); gpt2_free(&m); return; }
    const st_tensor_t *in = st_tensor_find(&f, "inputs"), *lg = st_tensor_find(&f, key);
    CHECK(in && lg && in->ndim == 2 && lg->ndim == 3);
    if (in && lg) {
        int B = (int)in->shape[0], T = (int)in->shape[1], V = m.config.vocab_size, Vp = m.config.padded_vocab_size;
        CHECK(V == lg->shape[2]);
        gpt2_forward(&m, (const int *)in->data, NULL, NULL, B, T);
        const float *ours = gpt2_logits(&m), *ref = (const float *)lg->data;
        double maxref = 0, maxerr = 0;
        for (int i = 0; i < B * T; i++)
            for (int j = 0; j < V; j++) {
                maxref = fmax(maxref, fabs(ref[(size_t)i * V + j]));
                maxerr = fmax(maxerr, fabs(ours[(size_t)i * Vp + j] - ref[(size_t)i * V + j]));
            }
        CHECKF(maxerr / maxref <= tol, "%s logits relative error %.3g", dir, maxerr / maxref);
    }
    st_file_close(&f);
    gpt2_free(&m);
}

static void test_hf_directory(void)
{
    hf_dir(FIX "/hf_tiny", "logits", 1e-4);
    hf_dir(FIX "/hf_tiny_bf16", "logits_bf16", 1e-4);
    gpt2_t m;
    char err[CORE_ERR_LEN];
    CHECK(gpt2_load(&m, FIX "/does-not-exist", err) < 0 && strstr(err, "config.json"));
}

static void test_optim_state_roundtrip(void)
{
    fixture_t fx, fx2;
    gpt2_t m, m2;
    char err[CORE_ERR_LEN], dir[64], path[128];
    if (fixture_open(&fx, "gpt2_odd.safetensors", &m)) return;
    if (fixture_open(&fx2, "gpt2_odd.safetensors", &m2)) return;
    st_file_close(&fx2.f);
    adamw_config_t opt = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
    tmpdir_make(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/optim.bin", dir);
    CHECK(gpt2_optim_save(&m, path, err) < 0);  /* nothing yet */
    gpt2_zero_grad(&m);
    gpt2_forward(&m, fx.inputs, fx.targets, fx.weights, fx.B, fx.T);
    gpt2_backward(&m, 0.01f);
    gpt2_update(&m, &opt, 1);
    int rc = gpt2_optim_save(&m, path, err);
    CHECKF(rc == 0, "%s", err);
    memcpy(m2.params_memory, m.params_memory, m.num_parameters * sizeof(float));
    rc = gpt2_optim_load(&m2, path, err);
    CHECKF(rc == 0, "%s", err);
    /* the same second step on both gives the same bits */
    gpt2_t *ms[2] = {&m, &m2};
    for (int k = 0; k < 2; k++) {
        gpt2_zero_grad(ms[k]);
        gpt2_forward(ms[k], fx.inputs, fx.targets, fx.weights, fx.B, fx.T);
        gpt2_backward(ms[k], 0.01f);
        gpt2_update(ms[k], &opt, 2);
    }
    CHECK(memcmp(m.params_memory, m2.params_memory, m.num_parameters * sizeof(float)) == 0);
    CHECK(truncate(path, 100) == 0);
    CHECK(gpt2_optim_load(&m2, path, err) < 0 && strstr(err, "truncated"));
    fs_rm_rf(dir, err);
    gpt2_free(&m);
    gpt2_free(&m2);
    st_file_close(&fx.f);
}

static void test_lr_schedules(void)
{
    lr_schedule_t s = {LR_COSINE, 1.0f, 0.1f, 10, 110};
    CHECK_NEAR(lr_at(&s, 1), 0.1, 1e-6);
    CHECK_NEAR(lr_at(&s, 10), 1.0, 1e-6);
    CHECK_NEAR(lr_at(&s, 60), 0.55, 1e-6);
    CHECK_NEAR(lr_at(&s, 110), 0.1, 1e-6);
    CHECK_NEAR(lr_at(&s, 500), 0.1, 1e-6);
    s.kind = LR_LINEAR;
    CHECK_NEAR(lr_at(&s, 35), 1.0 - 0.9 * 0.25, 1e-6);
    s.kind = LR_CONSTANT;
    CHECK_NEAR(lr_at(&s, 80), 1.0, 1e-6);
    s.warmup_steps = 0;
    CHECK_NEAR(lr_at(&s, 1), 1.0, 1e-6);
}

static void test_random_init(void)
{
    gpt2_config_t cfg = {.max_seq_len = 8, .vocab_size = 300, .num_layers = 2, .num_heads = 2, .channels = 16};
    gpt2_t a, b;
    char err[CORE_ERR_LEN];
    CHECK(gpt2_create(&a, &cfg, err) == 0 && gpt2_create(&b, &cfg, err) == 0);
    CHECK(a.config.padded_vocab_size == 384);
    gpt2_init_random(&a, 42);
    gpt2_init_random(&b, 42);
    CHECK(memcmp(a.params_memory, b.params_memory, a.num_parameters * sizeof(float)) == 0);
    double s2 = 0;
    for (int i = 0; i < 300 * 16; i++) s2 += a.params.wte[i] * a.params.wte[i];
    CHECK_NEAR(sqrt(s2 / (300 * 16)), 0.02, 0.002);
    CHECK(a.params.wte[300 * 16] == 0.0f && a.params.ln1w[0] == 1.0f && a.params.qkvb[0] == 0.0f);
    gpt2_free(&a);
    gpt2_free(&b);
    cfg.num_heads = 3;
    CHECK(gpt2_create(&a, &cfg, err) < 0 && strstr(err, "heads"));
    gpt2_free(&a); /* safe after a failed create */
}

/* AdamW's vector loop must give the same bits as the plain formula (it
 * does the same operations, each rounded once, no fused multiply-add).
 * Odd sizes, so every tensor has a scalar tail and some are shorter than a
 * vector; a pending clip factor; two steps (bias corrections differ). */
static void test_adamw_bits(void)
{
    gpt2_config_t cfg = {.max_seq_len = 9, .vocab_size = 37, .num_layers = 1, .num_heads = 2, .channels = 20};
    gpt2_t m;
    char err[CORE_ERR_LEN];
    if (gpt2_create(&m, &cfg, err)) { CHECKF(0, "%s", err); return; }
    gpt2_init_random(&m, 7);
    gpt2_zero_grad(&m);
    CHECK(gpt2_optim_alloc(&m) == 0);
    size_t n = m.num_parameters;
    float *p = malloc(n * 4), *g = malloc(n * 4), *mm = malloc(n * 4), *vv = malloc(n * 4);
    adamw_config_t opt = {.lr = 3e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
    uint64_t st = 99;
    int same = 1;
    for (int step = 1; step <= 2; step++) {
        for (size_t i = 0; i < n; i++)
            m.grads_memory[i] = (float)((core_splitmix64(&st) >> 40) * (1.0 / 16777216.0) - 0.5);
        m.train->grad_coef = 0.7f;
        memcpy(p, m.params_memory, n * 4); memcpy(g, m.grads_memory, n * 4);
        memcpy(mm, m.train->m, n * 4); memcpy(vv, m.train->v, n * 4);
        float b1 = opt.beta1, b2 = opt.beta2, lr = opt.lr, eps = opt.eps, gc = 0.7f;
        float bc1 = 1.0f - powf(b1, (float)step), bc2 = 1.0f - powf(b2, (float)step);
        float step_size = lr / bc1, inv_bc2_sqrt = 1.0f / sqrtf(bc2);
        size_t off = 0;
        for (int t = 0; t < GPT2_NUM_PARAM_TENSORS; t++) {
            float decay = gpt2_param_is_matrix[t] ? 1.0f - lr * opt.weight_decay : 1.0f;
            for (size_t i = off; i < off + m.param_sizes[t]; i++) {
                float gi = g[i] * gc;
                float mi = b1 * mm[i] + (1.0f - b1) * gi;
                float vi = b2 * vv[i] + (1.0f - b2) * gi * gi;
                mm[i] = mi;
                vv[i] = vi;
                p[i] = p[i] * decay - step_size * mi / (sqrtf(vi) * inv_bc2_sqrt + eps);
            }
            off += m.param_sizes[t];
        }
        gpt2_update(&m, &opt, step);
        same &= memcmp(p, m.params_memory, n * 4) == 0 && memcmp(mm, m.train->m, n * 4) == 0 &&
                memcmp(vv, m.train->v, n * 4) == 0;
        for (size_t i = 0; i < n; i++) same &= m.grads_memory[i] == 0.0f;
    }
    CHECKF(same, "AdamW update differs from the scalar formula (or left gradients non-zero)");
    free(p); free(g); free(mm); free(vv);
    gpt2_free(&m);
}

int main(void)
{
    RUN(test_attention_kernels);
    RUN(test_parity_tiny50k);
    RUN(test_parity_odd);
    RUN(test_parity_bf16);
    RUN(test_grad_accumulation);
    RUN(test_clip_sync);
    RUN(test_deterministic);
    RUN(test_zero_weights);
    RUN(test_save_load_roundtrip);
    RUN(test_hf_directory);
    RUN(test_optim_state_roundtrip);
    RUN(test_adamw_bits);
    RUN(test_lr_schedules);
    RUN(test_random_init);
    return test_summary();
}
