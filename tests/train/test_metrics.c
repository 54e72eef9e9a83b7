/* test_metrics.c: hyper-parameter "auto" table, classification metrics
 * (hand-computed cases and fixture numbers from a standard-library Python
 * reference, classification_reference.py), and the compiled_results.csv
 * header and rows. */
#include "test.h"
#include "train/train_int.h"
#include "classification_fixture.h"

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

static void test_auto_batch_size(void)
{
    static const int table[][2] = {
        {1, 1}, {100, 1}, {249, 1}, {250, 1}, {251, 1}, {749, 1}, {750, 2}, {1000, 2},
        {5000, 10}, {10000, 20}, {127750, 256}, {128000, 256}, {1000000, 256},
    };
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        CHECKF(hp_auto_batch_size(table[i][0]) == table[i][1], "n=%d -> %d, want %d",
               table[i][0], hp_auto_batch_size(table[i][0]), table[i][1]);
}

static void test_auto_lr_multiplier(void)
{
    CHECK(hp_auto_lr_multiplier(1) == 0.05);
    CHECK(hp_auto_lr_multiplier(8) == 0.05);
    CHECK(hp_auto_lr_multiplier(9) == 0.1);
    CHECK(hp_auto_lr_multiplier(64) == 0.1);
    CHECK(hp_auto_lr_multiplier(65) == 0.2);
    CHECK(hp_auto_lr_multiplier(256) == 0.2);
}

static void test_pretrain_lr(void)
{
    char dir[] = "/tmp/tunery-test-hp-XXXXXX", path[PATH_MAX], err[CORE_ERR_LEN];
    CHECK(mkdtemp(dir) != NULL);
    CHECK(hp_pretrain_lr(dir) == 6e-4);  /* no tunery.json */
    snprintf(path, sizeof path, "%s/tunery.json", dir);
    const char *j = "{\"base\": \"x\", \"pretrain_learning_rate\": 0.00025}";
    CHECK(fs_write_atomic(path, j, strlen(j), err) == 0);
    CHECK(hp_pretrain_lr(dir) == 0.00025);
    fs_rm_rf(dir, err);
}

static void test_binary_by_hand(void)
{
    /* 6 examples: y = 1 1 1 0 0 0, p = .9 .6 .4 .7 .2 .1
     * pred = 1 1 0 1 0 0: tp 2 fp 1 fn 1 tn 2 -> acc 4/6, P 2/3, R 2/3, F1 2/3
     * AUROC: positive/negative pairs won: .9 beats 3, .6 beats 2 (.2 .1), .4 beats 2 -> 7/9
     * AP: thresholds .9 (R 1/3 P 1), .7 (R 1/3), .6 (R 2/3 P 2/3), .4 (R 1 P 3/4)
     *     = 1/3*1 + 1/3*2/3 + 1/3*3/4 = 0.8055... */
    int y[] = {1, 1, 1, 0, 0, 0};
    double p[] = {.9, .6, .4, .7, .2, .1}, betas[] = {2};
    cls_metrics_t m;
    metrics_binary(y, p, 6, betas, 1, &m);
    CHECK_NEAR(m.accuracy, 4.0 / 6, 1e-12);
    CHECK_NEAR(m.precision, 2.0 / 3, 1e-12);
    CHECK_NEAR(m.recall, 2.0 / 3, 1e-12);
    CHECK_NEAR(m.f1, 2.0 / 3, 1e-12);
    CHECK_NEAR(m.fbeta[0], 2.0 / 3, 1e-12);  /* P == R: every F-beta equals them */
    CHECK_NEAR(m.auroc, 7.0 / 9, 1e-12);
    CHECK_NEAR(m.auprc, 1.0 / 3 + 2.0 / 9 + 1.0 / 4, 1e-12);
    /* ties: every score equal -> AUROC 0.5, AP = positive rate */
    double q[] = {.3, .3, .3, .3, .3, .3};
    metrics_binary(y, q, 6, NULL, 0, &m);
    CHECK_NEAR(m.auroc, 0.5, 1e-12);
    CHECK_NEAR(m.auprc, 0.5, 1e-12);
    CHECK(m.precision == 0 && m.recall == 0 && m.f1 == 0);
    /* one class only: AUROC undefined */
    int ones[] = {1, 1};
    double p2[] = {.7, .2};
    CHECK(isnan(metrics_auroc(ones, p2, 2)));
}

static void test_binary_fixture(void)
{
    cls_metrics_t m;
    metrics_binary(fx_y, fx_p, FX_N, fx_betas, 3, &m);
    CHECK_NEAR(m.accuracy, fx_acc, 1e-12);
    CHECK_NEAR(m.precision, fx_prec, 1e-12);
    CHECK_NEAR(m.recall, fx_rec, 1e-12);
    CHECK_NEAR(m.f1, fx_f[1], 1e-12);
    for (int k = 0; k < 3; k++) CHECK_NEAR(m.fbeta[k], fx_f[k], 1e-12);
    CHECK_NEAR(m.auroc, fx_auroc, 1e-12);
    CHECK_NEAR(m.auprc, fx_auprc, 1e-12);
}

static void test_multiclass(void)
{
    /* by hand: y = 0 0 1 2, pred = 0 1 1 1. class 0: P 1 R 1/2 F1 2/3;
     * class 1: P 1/3 R 1 F1 1/2; class 2: 0. weighted = (2*2/3 + 1*1/2)/4 */
    int y[] = {0, 0, 1, 2}, pr[] = {0, 1, 1, 1};
    cls_metrics_t m;
    metrics_multiclass(y, pr, 4, 3, &m);
    CHECK_NEAR(m.accuracy, 0.5, 1e-12);
    CHECK_NEAR(m.weighted_f1, (4.0 / 3 + 0.5) / 4, 1e-12);
    metrics_multiclass(fx_yc, fx_pc, FX_M, FX_K, &m);
    CHECK_NEAR(m.accuracy, fx_macc, 1e-12);
    CHECK_NEAR(m.weighted_f1, fx_wf1, 1e-12);
}

static void test_results_csv(void)
{
    buf_t b = {0};
    results_cols_t c = {0};
    CHECK(results_header(&b, &c) == 0);
    CHECK_EQ_STR(b.data, "step,elapsed_tokens,elapsed_examples,training_loss,training_sequence_accuracy,"
                         "training_token_accuracy,validation_loss,validation_sequence_accuracy,validation_token_accuracy\n");
    train_metrics_t m = {.step = 3, .elapsed_tokens = 120, .elapsed_examples = 6, .training_loss = 1.5f,
                         .training_sequence_accuracy = 0.5, .training_token_accuracy = 0.25,
                         .validation_loss = NAN, .validation_sequence_accuracy = NAN, .validation_token_accuracy = NAN};
    b.len = 0;
    CHECK(results_row(&b, &c, &m, NULL) == 0);
    CHECK_EQ_STR(b.data, "3,120,6,1.5,0.5,0.25,,,\n");
    double betas[] = {0.5, 2};
    results_cols_t cb = {.binary = 1, .betas = betas, .nbetas = 2};
    b.len = 0;
    CHECK(results_header(&b, &cb) == 0);
    CHECK_EQ_STR(b.data, "step,elapsed_tokens,elapsed_examples,training_loss,training_sequence_accuracy,training_token_accuracy,"
                         "classification/accuracy,classification/precision,classification/recall,classification/auroc,"
                         "classification/auprc,classification/f1.0,classification/f0.5,classification/f2.0,"
                         "validation_loss,validation_sequence_accuracy,validation_token_accuracy\n");
    b.len = 0;
    CHECK(results_row(&b, &cb, &m, NULL) == 0);
    CHECK_EQ_STR(b.data, "3,120,6,1.5,0.5,0.25,,,,,,,,,,,\n");
    results_cols_t cm = {.multiclass = 1};
    b.len = 0;
    CHECK(results_header(&b, &cm) == 0);
    CHECK(strstr(b.data, ",training_token_accuracy,classification/accuracy,classification/weighted_f1_score,validation_loss,") != NULL);
    /* a float32 loss prints with enough digits to read back the same bits */
    float loss = 2.71828175f;
    m.training_loss = loss;
    b.len = 0;
    results_row(&b, &c, &m, NULL);
    CHECK((float)strtod(b.data + strlen("3,120,6,"), NULL) == loss);
    buf_free(&b);
}

int main(void)
{
    RUN(test_auto_batch_size);
    RUN(test_auto_lr_multiplier);
    RUN(test_pretrain_lr);
    RUN(test_binary_by_hand);
    RUN(test_binary_fixture);
    RUN(test_multiclass);
    RUN(test_results_csv);
    return test_summary();
}
