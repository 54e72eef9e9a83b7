/* hparams.c: the "auto" hyper-parameters of OpenAI's legacy fine-tunes.
 *
 * Why a file: these rules decide what a user's job costs and how it trains,
 * the service reports the resolved values, and the tests pin them as a table.
 *
 *   n_epochs                 4
 *   batch_size               round(0.2% of the training examples), clamped to 1..256
 *   learning_rate_multiplier by the resolved batch size (OpenAI: "0.05, 0.1 or
 *                            0.2 depending on final batch_size", larger batch,
 *                            larger rate; the thresholds were never published,
 *                            these are ours):  1..8 -> 0.05, 9..64 -> 0.1,
 *                            65..256 -> 0.2
 *   learning rate            multiplier x the base model's pretraining rate,
 *                            "pretrain_learning_rate" in its tunery.json (6e-4,
 *                            GPT-2 small's, when absent)
 */
#include "train/train_int.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>

int hp_auto_batch_size(int n_examples)
{
    int b = (int)lround(0.002 * n_examples);
    if (b < 1) b = 1;
    if (b > 256) b = 256;
    return b;
}

double hp_auto_lr_multiplier(int batch_size)
{
    if (batch_size <= 8) return 0.05;
    if (batch_size <= 64) return 0.1;
    return 0.2;
}

double hp_pretrain_lr(const char *model_dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/tunery.json", model_dir);
    json_t *o = json_load_file(path, 0, NULL);
    double lr = 6e-4;
    json_t *v = o ? json_object_get(o, "pretrain_learning_rate") : NULL;
    if (json_is_number(v) && json_number_value(v) > 0) lr = json_number_value(v);
    json_decref(o);
    return lr;
}
