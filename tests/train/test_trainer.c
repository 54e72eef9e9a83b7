/* test_trainer.c: train_run end to end on a tiny random GPT-2 (L=2 NH=2
 * C=32 V=50257 T=64): prompt-loss weights scale the gradient linearly,
 * same seed gives bit-identical results, a run cancelled after a
 * checkpoint resumes to exactly the clean run's compiled_results.csv, the
 * results file has one row per step, epochs emit events, and the output
 * directory is complete. Seconds, not minutes. */
#include "test.h"
#include "train/train_ckpt.h"

#include <limits.h>
#include <omp.h>
#include <stdlib.h>
#include <unistd.h>

static char tmpdir[256], model_dir[PATH_MAX], train_path[PATH_MAX], valid_path[PATH_MAX];

static void write_file(const char *path, const char *s)
{
    FILE *f = fopen(path, "wb");
    fputs(s, f);
    fclose(f);
}

static int make_model(void)
{
    char err[CORE_ERR_LEN];
    gpt2_config_t c = {.max_seq_len = 64, .vocab_size = 50257, .num_layers = 2, .num_heads = 2, .channels = 32};
    gpt2_t m;
    if (gpt2_create(&m, &c, err)) { fprintf(stderr, "%s\n", err); return -1; }
    gpt2_init_random(&m, 1234);
    snprintf(model_dir, sizeof model_dir, "%s/base", tmpdir);
    int rc = gpt2_save(&m, model_dir, err);
    if (rc) fprintf(stderr, "%s\n", err);
    gpt2_free(&m);
    return rc;
}

static void make_data(void)
{
    static const char *animals[] = {"cat", "dog", "cow", "owl", "ant", "bee", "elk", "yak"};
    buf_t b = {0}, v = {0};
    for (int i = 0; i < 24; i++) {
        const char *a = animals[i % 8];
        buf_printf(&b, "{\"prompt\": \"Is a %s %s? ->\", \"completion\": \" %s\"}\n", a, i % 3 ? "big" : "small", i % 2 ? "yes" : "no");
    }
    for (int i = 0; i < 6; i++)
        buf_printf(&v, "{\"prompt\": \"Is a %s tiny? ->\", \"completion\": \" %s\"}\n", animals[(i * 3) % 8], i % 2 ? "yes" : "no");
    snprintf(train_path, sizeof train_path, "%s/train.jsonl", tmpdir);
    snprintf(valid_path, sizeof valid_path, "%s/valid.jsonl", tmpdir);
    write_file(train_path, b.data);
    write_file(valid_path, v.data);
    buf_free(&b);
    buf_free(&v);
}

static void base_opts(train_opts_t *o, const char *name)
{
    static char out[8][PATH_MAX], work[8][PATH_MAX];
    static int k;
    k = (k + 1) % 8;
    snprintf(out[k], PATH_MAX, "%s/%s-out", tmpdir, name);
    snprintf(work[k], PATH_MAX, "%s/%s-work", tmpdir, name);
    memset(o, 0, sizeof *o);
    o->base_model_dir = model_dir;
    o->train_path = train_path;
    o->valid_path = valid_path;
    o->out_dir = out[k];
    o->work_dir = work[k];
    o->n_epochs = 2;
    o->batch_size = 4;
    o->learning_rate_multiplier = 5;  /* a random model needs a real rate to move */
    o->prompt_loss_weight = -1;
    o->seed = 42;
    o->has_seed = 1;
    o->micro_tokens = 16;  /* T = 8 here: 2 rows per forward, so a step of 4 accumulates over 2 */
}

static char *read_csv(const train_opts_t *o)
{
    char p[PATH_MAX], *s = NULL, err[CORE_ERR_LEN];
    size_t n;
    snprintf(p, sizeof p, "%s/compiled_results.csv", o->work_dir);
    if (fs_read_all(p, &s, &n, err)) return NULL;
    return s;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++) n += *s == '\n';
    return n;
}

typedef struct { int events, epochs_seen, resolved, metrics, stop_at, checkpoints; train_resolved_t r; char last[128]; } hookctx_t;
static void on_resolved(void *c, const train_resolved_t *r) { ((hookctx_t *)c)->resolved++; ((hookctx_t *)c)->r = *r; }
static void on_event(void *c, const char *lvl, const char *msg)
{
    hookctx_t *h = c;
    h->events++;
    snprintf(h->last, sizeof h->last, "%s", msg);
    char want[64];
    snprintf(want, sizeof want, "Completed epoch %d/2", h->epochs_seen + 1);
    if (!strcmp(msg, want)) h->epochs_seen++;
}
static void on_metrics(void *c, const train_metrics_t *m) { ((hookctx_t *)c)->metrics++; }
static void on_ckpt(void *c, int step, const char *dir, const train_metrics_t *m) { ((hookctx_t *)c)->checkpoints++; }
static int on_stop(void *c) { hookctx_t *h = c; return h->stop_at && h->metrics >= h->stop_at ? 2 : 0; }

static void test_run_and_outputs(void)
{
    train_opts_t o;
    base_opts(&o, "a");
    hookctx_t hc = {0};
    train_hooks_t h = {&hc, on_resolved, on_event, on_metrics, on_ckpt, on_stop};
    train_result_t res;
    char err[CORE_ERR_LEN] = "";
    CHECKF(train_run(&o, &h, &res, err) == 0, "%s", err);
    CHECK_EQ_INT(hc.resolved, 1);
    CHECK_EQ_INT(hc.r.batch_size, 4);
    CHECK_EQ_INT(hc.r.total_steps, 12);       /* 24 examples / 4 x 2 epochs */
    CHECK_NEAR(hc.r.learning_rate, 5 * 6e-4, 1e-12);
    CHECK_NEAR(hc.r.prompt_loss_weight, 0.01, 1e-12);
    CHECK_EQ_INT(hc.epochs_seen, 2);
    CHECK_EQ_INT(hc.metrics, 12);
    CHECK_EQ_INT(hc.checkpoints, 2);          /* epoch ends */
    CHECK_EQ_INT(res.steps_done, 12);
    CHECK(!isnan(res.final_valid_loss));
    char *csv = read_csv(&o);
    CHECK(csv != NULL);
    CHECK_EQ_INT(count_lines(csv), 13);
    CHECK(csv && !strncmp(csv, "step,elapsed_tokens,elapsed_examples,training_loss,", 51));
    /* validation every ceil(6/4) = 2 steps and at epoch ends: row 2 has it, row 1 not */
    CHECK(csv && strstr(csv, "\n1,") && strstr(strstr(csv, "\n1,"), ",,,\n") == strchr(strstr(csv, "\n1,") + 1, '\n') - 3);
    free(csv);
    const char *files[] = {"model.safetensors", "config.json", "tokenizer.json", "tunery.json"};
    for (int i = 0; i < 4; i++) {
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", o.out_dir, files[i]);
        CHECKF(fs_exists(p), "missing %s", p);
    }
    char p[PATH_MAX], *tj = NULL;
    size_t n;
    snprintf(p, sizeof p, "%s/tunery.json", o.out_dir);
    if (!fs_read_all(p, &tj, &n, err)) {
        CHECK(strstr(tj, "\"pretrain_learning_rate\"") != NULL);
        CHECK(strstr(tj, "\"sha256\"") != NULL);
        CHECK(strstr(tj, "\"seed\": \"42\"") != NULL);
        free(tj);
    }
    snprintf(p, sizeof p, "%s/train.log", o.work_dir);
    if (!fs_read_all(p, &tj, &n, err)) {
        CHECK(strstr(tj, "batch_size 4, learning_rate_multiplier 5") != NULL);
        CHECK(strstr(tj, "info: Completed epoch 2/2") != NULL);
        free(tj);
    } else CHECKF(0, "%s", err);
    /* continued fine-tuning: the output is a valid base, its tunery.json carries the pretraining rate */
    train_opts_t c;
    base_opts(&c, "continued");
    c.base_model_dir = o.out_dir;
    c.n_epochs = 1;
    c.learning_rate_multiplier = 0;  /* auto: batch 4 -> 0.05 */
    hookctx_t hc2 = {0};
    train_hooks_t h2 = {&hc2, on_resolved, NULL, NULL, NULL, NULL};
    CHECKF(train_run(&c, &h2, &res, err) == 0, "%s", err);
    CHECK_NEAR(hc2.r.learning_rate, 0.05 * 6e-4, 1e-15);
    CHECK_EQ_INT(res.steps_done, 6);
}

static void test_deterministic_and_resume(void)
{
    char err[CORE_ERR_LEN] = "";
    train_opts_t a, b, c;
    base_opts(&a, "clean");
    base_opts(&b, "same");
    base_opts(&c, "killed");
    a.checkpoint_every = b.checkpoint_every = c.checkpoint_every = 2;
    CHECKF(train_run(&a, NULL, NULL, err) == 0, "%s", err);
    CHECKF(train_run(&b, NULL, NULL, err) == 0, "%s", err);
    char *ca = read_csv(&a), *cb = read_csv(&b);
    CHECK(ca && cb && !strcmp(ca, cb));
    /* cancelled at once after step 5 (no checkpoint on cancel): newest checkpoint is step 4 */
    hookctx_t hc = {.stop_at = 5};
    train_hooks_t h = {&hc, NULL, NULL, on_metrics, NULL, on_stop};
    train_result_t res;
    CHECKF(train_run(&c, &h, &res, err) == 0, "%s", err);
    CHECK(res.stopped);
    CHECK_EQ_INT(res.steps_done, 5);
    char ck[PATH_MAX];
    CHECK_EQ_INT(ckpt_find_latest(c.work_dir, ck, sizeof ck), 4);
    char *cc = read_csv(&c);
    CHECK_EQ_INT(count_lines(cc), 6);
    free(cc);
    c.resume = 1;
    c.seed = 999;  /* ignored on resume: the checkpoint's seed wins */
    CHECKF(train_run(&c, NULL, &res, err) == 0, "%s", err);
    cc = read_csv(&c);
    CHECKF(ca && cc && !strcmp(ca, cc), "resumed run differs:\n%s\nvs\n%s", ca, cc);
    /* only the newest 3 checkpoints remain: 8, 10, 12 */
    CHECK_EQ_INT(ckpt_find_latest(c.work_dir, ck, sizeof ck), 12);
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/ckpt-step-6", c.work_dir);
    CHECK(!fs_exists(p));
    snprintf(p, sizeof p, "%s/ckpt-step-8", c.work_dir);
    CHECK(fs_exists(p));
    /* a different seed gives a different curve */
    train_opts_t d;
    base_opts(&d, "seed7");
    d.seed = 7;
    CHECKF(train_run(&d, NULL, NULL, err) == 0, "%s", err);
    char *cd = read_csv(&d);
    CHECK(ca && cd && strcmp(ca, cd));
    free(ca); free(cb); free(cc); free(cd);
}

/* The gradient is linear in the loss weights, so with prompt weight w:
 * G(w) = G(0) + w (G(1) - G(0)). Checked on real encoded examples, i.e. the
 * prompt tokens really carry w and the completion tokens 1. */
static void test_prompt_loss_weight_gradient(void)
{
    char err[CORE_ERR_LEN];
    gpt2_t m;
    CHECK(gpt2_load(&m, model_dir, err) == 0);
    const tok_t *tk = tok_r50k(err);
    texample_t e = {0};
    const char *s = "{\"prompt\": \"The capital of France is ->\", \"completion\": \" Paris\"}";
    CHECK(jsonl_parse_line(s, strlen(s), 1, -1, &e, err) == 0);
    double ws[3] = {0, 1, 0.01};
    float *g[3];
    for (int k = 0; k < 3; k++) {
        tex_t x = {0};
        tex_encode(&e, tk, ws[k], &x);
        int T = x.n - 1;
        gpt2_zero_grad(&m);
        gpt2_forward(&m, x.ids, x.ids + 1, x.w + 1, 1, T);
        gpt2_backward(&m, 1.0f);  /* unnormalised: d/dθ sum_i w_i loss_i */
        g[k] = malloc(m.num_parameters * sizeof(float));
        memcpy(g[k], m.grads_memory, m.num_parameters * sizeof(float));
        free(x.ids); free(x.w); free(x.is_compl);
    }
    double maxdiff = 0, maxg = 0, pdiff = 0;
    for (size_t i = 0; i < m.num_parameters; i++) {
        double want = g[0][i] + 0.01 * (g[1][i] - g[0][i]);
        double d = fabs(g[2][i] - want);
        if (d > maxdiff) maxdiff = d;
        if (fabs(g[2][i]) > maxg) maxg = fabs(g[2][i]);
        if (fabs(g[1][i] - g[0][i]) > pdiff) pdiff = fabs(g[1][i] - g[0][i]);
    }
    CHECKF(maxdiff <= 1e-4 * maxg, "max |G(0.01) - G(0) - 0.01 dG| = %g (max |G| %g)", maxdiff, maxg);
    CHECK(pdiff > 1e-3 * maxg);  /* the prompt tokens do contribute a gradient */
    for (int k = 0; k < 3; k++) free(g[k]);
    texample_free(&e);
    gpt2_free(&m);
}

static void test_classification_columns(void)
{
    char err[CORE_ERR_LEN] = "";
    train_opts_t o;
    base_opts(&o, "cls");
    o.compute_classification_metrics = 1;
    o.classification_positive_class = " yes";
    double betas[] = {0.5, 2};
    o.classification_betas = betas;
    o.n_classification_betas = 2;
    CHECKF(train_run(&o, NULL, NULL, err) == 0, "%s", err);
    char *csv = read_csv(&o);
    CHECK(csv && strstr(csv, ",classification/f1.0,classification/f0.5,classification/f2.0,validation_loss,"));
    /* epoch-end rows (6 and 12) have an accuracy that is a multiple of 1/6 */
    const char *r6 = csv ? strstr(csv, "\n6,") : NULL;
    CHECK(r6 != NULL);
    if (r6) {
        const char *c = r6 + 1;
        for (int i = 0; i < 6; i++) c = strchr(c, ',') + 1;
        double acc = strtod(c, NULL);
        CHECKF(fabs(acc * 6 - round(acc * 6)) < 1e-9 && *c != ',', "accuracy cell '%.20s'", c);
    }
    free(csv);
    o.classification_positive_class = " maybe";
    base_opts(&o, "cls2");
    o.compute_classification_metrics = 1;
    o.classification_positive_class = " maybe";
    CHECK(train_run(&o, NULL, NULL, err) == -1);
    CHECKF(strstr(err, "not a completion in the data"), "%s", err);
}

static void test_bad_data_error(void)
{
    char err[CORE_ERR_LEN] = "", p[PATH_MAX];
    snprintf(p, sizeof p, "%s/bad.jsonl", tmpdir);
    write_file(p, "{\"prompt\": \"a\", \"completion\": \" b\"}\n{\"prompt\": \"a\"}\n");
    train_opts_t o;
    base_opts(&o, "bad");
    o.train_path = p;
    CHECK(train_run(&o, NULL, NULL, err) == -1);
    CHECKF(strstr(err, "line 2: missing \"completion\""), "%s", err);
    /* too long for the 64-token context */
    buf_t b = {0};
    buf_appends(&b, "{\"prompt\": \"");
    for (int i = 0; i < 80; i++) buf_appends(&b, "word ");
    buf_appends(&b, "\", \"completion\": \" x\"}\n");
    write_file(p, b.data);
    buf_free(&b);
    CHECK(train_run(&o, NULL, NULL, err) == -1);
    CHECKF(strstr(err, "line 1: the example is"), "%s", err);
    o.truncate = TRUNC_LEFT;
    o.valid_path = NULL;
    CHECKF(train_run(&o, NULL, NULL, err) == 0, "%s", err);
}

/* A run continues in the precision it trained in: killed in bf16, resumed by
 * a process started in fp32 (a server restarted without TUNERY_MATMUL=bf16),
 * it finishes with the clean bf16 run's exact results (and those differ from
 * an fp32 run's, so the check can fail). */
static void test_resume_keeps_precision(void)
{
    if (!nn_matmul_bf16_available()) { fprintf(stderr, "  (no bf16 on this CPU: skipped)\n"); return; }
    char err[CORE_ERR_LEN] = "";
    nn_prec_t p0 = nn_matmul_get_precision();
    train_opts_t a, c, f;
    base_opts(&a, "bf16-clean");
    base_opts(&c, "bf16-killed");
    base_opts(&f, "fp32-clean");
    a.checkpoint_every = c.checkpoint_every = 2;
    nn_matmul_set_precision(NN_PREC_FP32);
    CHECKF(train_run(&f, NULL, NULL, err) == 0, "%s", err);
    nn_matmul_set_precision(NN_PREC_BF16);
    CHECKF(train_run(&a, NULL, NULL, err) == 0, "%s", err);
    hookctx_t hc = {.stop_at = 5};
    train_hooks_t h = {&hc, NULL, NULL, on_metrics, NULL, on_stop};
    train_result_t res;
    CHECKF(train_run(&c, &h, &res, err) == 0, "%s", err);
    CHECK(res.stopped);
    nn_matmul_set_precision(NN_PREC_FP32);
    c.resume = 1;
    CHECKF(train_run(&c, NULL, &res, err) == 0, "%s", err);
    CHECK(nn_matmul_get_precision() == NN_PREC_BF16);
    char *ca = read_csv(&a), *cc = read_csv(&c), *cf = read_csv(&f);
    CHECKF(ca && cc && !strcmp(ca, cc), "bf16 run resumed from an fp32 process differs:\n%s\nvs\n%s", ca, cc);
    CHECK(ca && cf && strcmp(ca, cf) != 0);
    free(ca); free(cc); free(cf);
    nn_matmul_set_precision(p0);
}

/* chat data trains through the same loop; a resume of a finished run only
 * rewrites the output */
static void test_chat_and_finished_resume(void)
{
    char err[CORE_ERR_LEN] = "", p[PATH_MAX];
    snprintf(p, sizeof p, "%s/chat.jsonl", tmpdir);
    write_file(p, "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello\"}]}\n"
                  "{\"messages\": [{\"role\": \"system\", \"content\": \"Terse.\"}, {\"role\": \"user\", \"content\": \"Bye\"},"
                  " {\"role\": \"assistant\", \"content\": \"Bye\"}]}\n");
    train_opts_t o;
    base_opts(&o, "chat");
    o.train_path = p;
    o.valid_path = NULL;
    o.batch_size = 0;  /* auto: 1 */
    o.n_epochs = 1;
    hookctx_t hc = {0};
    train_hooks_t h = {&hc, on_resolved, NULL, NULL, NULL, NULL};
    train_result_t res;
    CHECKF(train_run(&o, &h, &res, err) == 0, "%s", err);
    CHECK_EQ_INT(hc.r.batch_size, 1);
    CHECK_NEAR(hc.r.learning_rate_multiplier, 5, 0);
    CHECK_EQ_INT(res.steps_done, 2);
    o.resume = 1;
    CHECKF(train_run(&o, NULL, &res, err) == 0, "%s", err);
    CHECK_EQ_INT(res.steps_done, 2);
    char *csv = read_csv(&o);
    CHECK_EQ_INT(count_lines(csv), 3);
    free(csv);
}

int main(void)
{
    /* a 32-channel model: a second thread only adds barrier cost on a busy
     * machine (thread-count independence of the results is nn/'s test) */
    omp_set_num_threads(1);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tunery-test-trainer-XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    if (make_model()) return 1;
    make_data();
    RUN(test_run_and_outputs);
    RUN(test_deterministic_and_resume);
    RUN(test_resume_keeps_precision);
    RUN(test_prompt_loss_weight_gradient);
    RUN(test_classification_columns);
    RUN(test_bad_data_error);
    RUN(test_chat_and_finished_resume);
    char err[CORE_ERR_LEN];
    fs_rm_rf(tmpdir, err);
    return test_summary();
}
