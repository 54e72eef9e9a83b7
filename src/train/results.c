/* results.c: compiled_results.csv, the file OpenAI attached to every legacy
 * fine-tune (shared/reference/openai-api.md §1.10). Column order is the wire
 * contract: step, elapsed_tokens, elapsed_examples, training_loss,
 * training_sequence_accuracy, training_token_accuracy, [classification/...],
 * validation_loss, validation_sequence_accuracy, validation_token_accuracy.
 * One row per optimisation step; a metric not computed on that step is an
 * empty cell. Losses are printed with 9 significant digits so a float32
 * round-trips and two runs can be compared bit for bit from the file.
 */
#include "train/train_int.h"

#include <math.h>
#include <stdio.h>

/* Python's str(float) for the betas: 1 -> "1.0", 0.5 -> "0.5". */
static void beta_name(char *out, size_t n, double b)
{
    if (b == floor(b) && fabs(b) < 1e15) snprintf(out, n, "%.1f", b);
    else snprintf(out, n, "%.15g", b);
}

int results_header(buf_t *b, const results_cols_t *c)
{
    int rc = buf_appends(b, "step,elapsed_tokens,elapsed_examples,training_loss,training_sequence_accuracy,training_token_accuracy");
    if (c->binary) {
        rc |= buf_appends(b, ",classification/accuracy,classification/precision,classification/recall,"
                             "classification/auroc,classification/auprc,classification/f1.0");
        for (int k = 0; k < c->nbetas; k++) {
            char nm[40];
            beta_name(nm, sizeof nm, c->betas[k]);
            rc |= buf_printf(b, ",classification/f%s", nm);
        }
    } else if (c->multiclass) {
        rc |= buf_appends(b, ",classification/accuracy,classification/weighted_f1_score");
    }
    rc |= buf_appends(b, ",validation_loss,validation_sequence_accuracy,validation_token_accuracy\n");
    return rc ? -1 : 0;
}

static int cell(buf_t *b, double v)
{
    return isnan(v) ? buf_append(b, ",", 1) : buf_printf(b, ",%.9g", v);
}

int results_row(buf_t *b, const results_cols_t *c, const train_metrics_t *m, const cls_metrics_t *cm)
{
    int rc = buf_printf(b, "%d,%lld,%lld", m->step, m->elapsed_tokens, m->elapsed_examples);
    rc |= cell(b, m->training_loss) | cell(b, m->training_sequence_accuracy) | cell(b, m->training_token_accuracy);
    if (c->binary) {
        rc |= cell(b, cm ? cm->accuracy : NAN) | cell(b, cm ? cm->precision : NAN) | cell(b, cm ? cm->recall : NAN);
        rc |= cell(b, cm ? cm->auroc : NAN) | cell(b, cm ? cm->auprc : NAN) | cell(b, cm ? cm->f1 : NAN);
        for (int k = 0; k < c->nbetas; k++) rc |= cell(b, cm && k < 16 ? cm->fbeta[k] : NAN);
    } else if (c->multiclass) {
        rc |= cell(b, cm ? cm->accuracy : NAN) | cell(b, cm ? cm->weighted_f1 : NAN);
    }
    rc |= cell(b, m->validation_loss) | cell(b, m->validation_sequence_accuracy) | cell(b, m->validation_token_accuracy);
    rc |= buf_append(b, "\n", 1);
    return rc ? -1 : 0;
}
