/* train_int.h: the pieces of train/ that its own files and tests share but
 * the rest of the program does not need (train.h is the public face).
 *
 *   jsonl.c    read and check a JSONL data file line by line; render chat
 *   encode.c   examples -> token ids + per-token loss weights (tok/)
 *   hparams.c  "auto" hyper-parameters as OpenAI's legacy service chose them
 *   metrics.c  token/sequence accuracy, classification metrics
 *   results.c  compiled_results.csv
 *   ckpt.c     checkpoints: atomic write, newest complete one, resume state
 *   trainer.c  train_run
 */
#ifndef TUNERY_TRAIN_INT_H
#define TUNERY_TRAIN_INT_H

#include "train/train.h"
#include "tok/tok.h"
#include <stddef.h>

/* ---- one example as text segments (jsonl.c) ----
 * A segment is text with one loss class. TW_PROMPT gets prompt_loss_weight,
 * TW_COMPLETION gets 1 (these tokens are "the completion" for accuracy),
 * TW_NONE gets 0. A segment with eot set is the single <|endoftext|> token. */
enum { TW_NONE = 0, TW_PROMPT = 1, TW_COMPLETION = 2 };
typedef struct {
    size_t off, len;   /* into the example's text buffer */
    int cls;           /* TW_* */
    int eot;           /* 1: the <|endoftext|> token, off/len unused */
} tseg_t;

typedef struct {
    buf_t text;        /* all segment bytes, back to back */
    tseg_t *segs;
    int nsegs, cap;
    int is_chat;
    /* legacy format only: where prompt and completion live in text */
    size_t prompt_off, prompt_len, compl_off, compl_len;
} texample_t;

void texample_reset(texample_t *e);
/* Append one segment (eot: the <|endoftext|> token, s unused); -1 out of memory. */
int texample_seg_add(texample_t *e, const char *s, size_t len, int cls, int eot);

/* ---- the chat template (chat_template.c), shared by training and inference ----
 * Render one message: "<role>:", " <content>", then "\n" (non-assistant)
 * or <|endoftext|> (assistant, loss class by weight). more: another turn
 * follows (an assistant turn then gets "\n"; a last non-assistant turn
 * otherwise gets a closing <|endoftext|>). */
int chat_render_turn(texample_t *e, const char *role, const char *content, size_t len, int weight, int more);
/* Open the assistant's reply for generation: "assistant:". */
int chat_render_open(texample_t *e);
void texample_free(texample_t *e);

/* Parse one JSONL line (no trailing newline) into e. Returns 1 for a blank
 * line (skipped by policy), 0 for an example, -1 with err ("line N: ...")
 * for a bad one. want_chat: -1 = either (first line decides), 0/1 = the
 * format the file started with. */
int jsonl_parse_line(const char *line, size_t len, long lineno, int want_chat, texample_t *e, char *err);

/* Iterate a file's lines: calls fn for each example; stops at the first bad
 * line (returning -1 with err). Bounded memory (one line at a time). */
typedef int (*jsonl_fn)(void *ctx, long lineno, const texample_t *e, char *err);
int jsonl_each(const char *path, jsonl_fn fn, void *ctx, int *is_chat, char *err);

/* Validate UTF-8; returns -1 if valid, else the byte offset of the first bad byte. */
long utf8_first_invalid(const char *s, size_t len);

/* ---- tokenized dataset (encode.c) ---- */
typedef struct {
    int *ids;          /* n tokens: prompt + completion + <|endoftext|> */
    float *w;          /* n loss weights, w[t] weighs predicting ids[t] from ids[<t] */
    unsigned char *is_compl; /* n flags: token counts for token/sequence accuracy */
    int n;
    long line;         /* 1-based line in the source file */
    int class_id;      /* classification: index into dataset classes, or -1 */
    int prompt_n;      /* tokens before the first completion token (legacy) */
} tex_t;

typedef struct {
    tex_t *ex;
    int n, cap;
    long long n_tokens;        /* sum of ex[i].n */
    int max_len;
    int is_chat;
    char sha256[65];           /* of the file bytes */
    /* legacy completions, distinct, in first-seen order (for classification
     * and the stop-sequence guess); NULL for chat */
    char **classes; int n_classes;
    char *common_suffix;       /* longest suffix shared by every completion, or NULL */
} tdata_t;

enum { TRUNC_NONE = 0, TRUNC_LEFT = 1, TRUNC_RIGHT = 2 };
/* Load and tokenize a file. prompt_loss_weight fills TW_PROMPT weights.
 * max_len: the model's context; longer examples are an error naming the
 * line unless truncate says which end to cut. */
int tdata_load(tdata_t *d, const char *path, const tok_t *tk, double prompt_loss_weight,
               int max_len, int truncate, char *err);
void tdata_free(tdata_t *d);
/* Tokens of one example as tdata_load counts them. */
int tex_encode(const texample_t *e, const tok_t *tk, double plw, tex_t *out);

/* ---- hyper-parameters (hparams.c) ---- */
int hp_auto_batch_size(int n_examples);
double hp_auto_lr_multiplier(int batch_size);
/* "pretrain_learning_rate" from <model_dir>/tunery.json, else 6e-4. */
double hp_pretrain_lr(const char *model_dir);

/* ---- metrics (metrics.c) ---- */
typedef struct {
    double accuracy, precision, recall, auroc, auprc, f1;
    double fbeta[16];          /* per requested beta */
    double weighted_f1;        /* multiclass */
} cls_metrics_t;
/* Binary: y[i] in {0,1} (1 = positive class), p[i] = model probability of
 * the positive class; predicted positive when p > 0.5. */
void metrics_binary(const int *y, const double *p, int n, const double *betas, int nbetas, cls_metrics_t *m);
/* Multiclass: true and predicted class ids in [0, k). */
void metrics_multiclass(const int *y, const int *pred, int n, int k, cls_metrics_t *m);
double metrics_auroc(const int *y, const double *p, int n);
double metrics_auprc(const int *y, const double *p, int n);

/* ---- compiled_results.csv (results.c) ---- */
typedef struct {
    int binary, multiclass;    /* which classification columns exist */
    const double *betas; int nbetas;
} results_cols_t;
int results_header(buf_t *b, const results_cols_t *c);
/* cm may be NULL (classification cells empty). */
int results_row(buf_t *b, const results_cols_t *c, const train_metrics_t *m, const cls_metrics_t *cm);

/* ---- the engine's share of a fine-tune (trainer.c), for bench finetune ---- */
int train_raw_steps(const train_opts_t *o, int steps, double *secs, long long *tokens, long long *examples, char *err);

#endif
