/* train_ckpt.h: checkpoint files of train/ (ckpt.c), shared by trainer.c
 * and the tests. Not part of train/'s public face. */
#ifndef TUNERY_TRAIN_CKPT_H
#define TUNERY_TRAIN_CKPT_H

#include "train/train_int.h"
#include "nn/nn.h"

typedef struct {
    int step, total_steps, n_epochs, batch_size;
    double learning_rate, learning_rate_multiplier, prompt_loss_weight, pretrain_learning_rate;
    uint64_t seed;
    char train_sha256[65], valid_sha256[65];
    long long elapsed_tokens, elapsed_examples;
    int bf16;   /* the matmul precision the run trained in (absent in older states: fp32) */
} ckpt_state_t;

int ckpt_state_write(const char *path, const ckpt_state_t *s, char *err);
int ckpt_state_read(const char *path, ckpt_state_t *s, char *err);
/* Step of the newest complete checkpoint in work_dir (its path in out), or -1. */
int ckpt_find_latest(const char *work_dir, char *out, size_t outlen);
/* Write ckpt-step-<s->step> atomically; out_dir (PATH_MAX, may be NULL) gets its path. */
int ckpt_write(const char *work_dir, const gpt2_t *m, const ckpt_state_t *s, const buf_t *csv, char *out_dir, char *err);

#endif
