/* train: fine-tuning as OpenAI's legacy service did it. A JSONL file of
 * {"prompt","completion"} (or {"messages":[...]}) lines becomes token ids
 * with per-token loss weights; the trainer resolves "auto" hyper-parameters,
 * trains with the engine (nn/), evaluates, writes checkpoints that resume
 * bit-exactly, compiled_results.csv, and a Hugging Face model directory.
 *
 * The trainer knows nothing of HTTP or SQL: the service (sched/ worker)
 * passes hooks that route events, metrics and checkpoints to the store;
 * `tunery train` passes hooks that print progress.
 */
#ifndef TUNERY_TRAIN_H
#define TUNERY_TRAIN_H

#include "core/core.h"
#include "tok/tok.h"
#include <stdint.h>

typedef struct {
    const char *base_model_dir;   /* model to start from: a base or a fine-tuned model directory */
    const char *train_path;       /* JSONL */
    const char *valid_path;       /* JSONL or NULL */
    const char *out_dir;          /* final model directory (model.safetensors, config.json, tokenizer, tunery.json) */
    const char *work_dir;         /* checkpoints (ckpt-step-N/), train.log, compiled_results.csv */
    int n_epochs;                 /* 0 = auto (4) */
    int batch_size;               /* 0 = auto (~0.2% of examples, 1..256) */
    double learning_rate_multiplier; /* 0 = auto (0.05/0.1/0.2 by batch size) × base model's pretraining lr */
    double prompt_loss_weight;    /* < 0 = default 0.01 */
    int compute_classification_metrics;
    int classification_n_classes;             /* 0 = unset */
    const char *classification_positive_class; /* NULL = unset */
    const double *classification_betas;        /* NULL/0 = unset */
    int n_classification_betas;
    uint64_t seed;
    int has_seed;                 /* 0: pick a seed and report it */
    int checkpoint_every;         /* steps between checkpoints besides each epoch end; 0 = epoch ends only */
    int resume;                   /* continue from the newest complete checkpoint in work_dir */
    /* added by train/ after the first contract; zero keeps the documented default */
    int truncate;                 /* examples longer than the context: 0 = error naming the line, 1 = cut the left (oldest prompt tokens), 2 = cut the right */
    int valid_every;              /* steps between validations besides each epoch end; 0 = auto (4 per epoch) */
    int micro_tokens;             /* padded tokens per forward/backward (memory bound); 0 = 1024 */
} train_opts_t;

/* The values "auto" resolved to, reported once before the first step. */
typedef struct {
    int n_epochs, batch_size;
    double learning_rate_multiplier, learning_rate, prompt_loss_weight;
    uint64_t seed;
    int n_train_examples, n_valid_examples;
    long long n_train_tokens;     /* tokens per epoch (for cost and trained_tokens) */
    int total_steps;
} train_resolved_t;

/* One row of compiled_results.csv; a metric not computed at this step is NaN. */
typedef struct {
    int step;
    long long elapsed_tokens, elapsed_examples;
    double training_loss, training_sequence_accuracy, training_token_accuracy;
    double validation_loss, validation_sequence_accuracy, validation_token_accuracy;
    int epoch;                    /* 1-based epoch this step belongs to */
} train_metrics_t;

/* Callbacks; any may be NULL. They run on the training thread. */
typedef struct {
    void *ctx;
    void (*resolved)(void *ctx, const train_resolved_t *r);
    void (*event)(void *ctx, const char *level, const char *message);  /* e.g. "Completed epoch 1/4" */
    void (*metrics)(void *ctx, const train_metrics_t *m);
    void (*checkpoint)(void *ctx, int step, const char *ckpt_dir, const train_metrics_t *m);
    /* Polled between steps: non-zero asks the trainer to stop cleanly after
     * writing a checkpoint (pause) or at once (cancel: return value 2). */
    int (*should_stop)(void *ctx);
} train_hooks_t;

typedef struct {
    int steps_done;
    long long trained_tokens;
    double final_train_loss, final_valid_loss;  /* NaN if not computed */
    int stopped;                  /* 1 if should_stop ended it early */
} train_result_t;

/* Check a fine-tune data file without training, as upload validation does:
 * every line valid JSON with a non-empty string "prompt"+"completion" (or a
 * valid "messages" list). Fills n_examples and *is_chat, and for a bad file
 * returns -1 with err naming the first bad line ("line 12: ..."). Streams
 * the file: bounded memory for any size. */
int train_check_file(const char *path, int *n_examples, int *is_chat, char *err);
/* Tokens the file trains on per epoch (r50k; prompt + completion + end
 * token, as train_run counts them), streamed; -1 with err on a bad file. */
long long train_count_tokens(const char *path, char *err);

/* ---- chat (chat_template.c): one template for training and inference ----
 * A conversation for /v1/chat/completions. content is UTF-8 of content_len
 * bytes (text parts already concatenated); weight is for training only. */
typedef struct {
    const char *role;   /* system, developer, user, assistant, tool, function */
    const char *content;
    size_t content_len;
} train_chat_msg_t;
/* 1 if role is one the template renders, else 0. */
int train_chat_role_known(const char *role);
/* The token ids a chat fine-tune sees for this conversation followed by the
 * opened assistant turn ("assistant:"), built by the very code training
 * uses (docs/finetune.md, "Chat template"). Generate from these ids, stop
 * at <|endoftext|> (the end-of-turn marker) and drop the reply's first
 * space, which the template puts before every content. out is replaced. -1 with err on an unknown role or no memory. */
int train_chat_encode(const tok_t *tk, const train_chat_msg_t *msgs, int n, tok_ids_t *out, char *err);

/* Run one fine-tune. Returns 0, or -1 with err saying what went wrong (for a
 * bad data file: the line number and the problem). */
int train_run(const train_opts_t *o, const train_hooks_t *h, train_result_t *res, char *err);

#endif
