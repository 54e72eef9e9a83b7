/* gpt2_impl.h: private to the GPT-2 files (gpt2.c, adamw.c, st_gpt2.c).
 * The training state behind gpt2_t.train: activations for the largest B*T
 * seen (allocated once, reused every step), per-layer activation-gradient
 * scratch (backward walks the layers one at a time, so one layer's worth is
 * enough), and the AdamW moments. Nothing outside nn/ includes this. */
#ifndef TUNERY_NN_GPT2_IMPL_H
#define TUNERY_NN_GPT2_IMPL_H

#include "nn/nn.h"

struct gpt2_train_state {
    size_t cap_bt;          /* B*T the activations are sized for */
    int B, T;               /* of the last forward */
    int has_targets;        /* the last forward computed the loss gradient */
    /* activations, one allocation (acts_memory) */
    float *acts_memory;
    size_t acts_floats;
    float *encoded;         /* (B,T,C) */
    float *ln1, *ln1_mean, *ln1_rstd;     /* (L,B,T,C), (L,B,T) x2 */
    float *qkv;             /* (L,B,T,3C) */
    float *atty;            /* (L,B,T,C) attention output, before the projection */
    float *att_lse;         /* (L,B,NH,T) */
    float *residual2;       /* (L,B,T,C) */
    float *ln2, *ln2_mean, *ln2_rstd;
    float *fch;             /* (L,B,T,4C) */
    float *fch_gelu;        /* (L,B,T,4C) */
    float *residual3;       /* (L,B,T,C) */
    float *lnf, *lnf_mean, *lnf_rstd;
    float *logits;          /* (B,T,Vp): logits, then in place the loss gradient */
    float *scratch;         /* (B,T,C): projection outputs before the residual add */
    int *inputs;            /* (B,T) copy of the last inputs (encoder backward) */
    int *live_rows;         /* rows of the last forward with a non-zero loss weight */
    int n_live;
    int lm_compacted;       /* backward moved those rows' dlogits to the front */
    /* activation gradients for one layer, one allocation (dacts_memory) */
    float *dacts_memory;
    size_t dacts_floats;
    float *dresidual;       /* (B,T,C) */
    float *dln;             /* (B,T,C) */
    float *datty;           /* (B,T,C) */
    float *dqkv;            /* (B,T,3C) */
    float *dfch;            /* (B,T,4C) */
    /* AdamW moments, allocated at the first update or optimizer load */
    float *m, *v;
    float grad_coef;        /* pending clip factor (0 = none), see gpt2_grads_sync */
    int grads_zero;         /* gradients known to be zero (gpt2_update consumed them) */
};

/* Big buffers (params, grads, m, v, activations): 2 MB-aligned and advised
 * for transparent huge pages, so a first touch faults once per 2 MB instead of
 * once per 4 KB (~12 us each on these VMs) and the passes over 2 GB of
 * optimizer state miss the TLB less. zero = calloc semantics. free() frees. */
void *gpt2_alloc_big(size_t bytes, int zero);
/* Make sure m and v exist (zeroed when new). 0 or -1 (out of memory). */
int gpt2_optim_alloc(gpt2_t *m);
/* Which parameter tensors are 2-D (weight decay applies), by index. */
extern const int gpt2_param_is_matrix[GPT2_NUM_PARAM_TENSORS];
/* Fill m->param_sizes from m->config; returns the total. */
size_t gpt2_param_sizes(gpt2_t *m);

#endif
