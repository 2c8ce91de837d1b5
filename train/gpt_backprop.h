/* The GPT's training state and pass: gradients, the activations a forward pass keeps for the
 * backward pass, and the pool that spreads attention over sequences. The model (parameters) is
 * model/gpt.h; training only adds to it. Matrix products on OpenBLAS (matmul.h), attention in
 * attention.h. */
#ifndef GPTD_GPT_BACKPROP_H
#define GPTD_GPT_BACKPROP_H

#include <stdbool.h>
#include <stddef.h>

#include "../common/error.h"
#include "../common/rng.h"
#include "../model/gpt.h"

/* Activations kept by the training forward pass for the backward pass. Per-layer tensors hold
 * all L layers one after another. */
typedef struct {
    float *encoded;                   /* (B, T, C) */
    float *ln1, *ln1_mean, *ln1_rstd; /* (L, B, T, C), (L, B, T), (L, B, T) */
    float *qkv;                       /* (L, B, T, 3C) */
    float *att, *att_mask;            /* (L, B, NH, T, T) each; mask only with dropout */
    float *atty;                      /* (L, B, T, C) attention output before c_proj */
    float *attproj, *attproj_mask;    /* (L, B, T, C) */
    float *resid1;                    /* (L, B, T, C) */
    float *ln2, *ln2_mean, *ln2_rstd; /* (L, B, T, C), (L, B, T), (L, B, T) */
    float *fch, *fch_act;             /* (L, B, T, 4C) */
    float *fcproj, *fcproj_mask;      /* (L, B, T, C) */
    float *resid2;                    /* (L, B, T, C) */
    float *lnf, *lnf_mean, *lnf_rstd; /* (B, T, C), (B, T), (B, T) */
    float *logits;                    /* (B, T, V) */
    float *losses;                    /* (B, T) */
    /* backward scratch, one layer's worth, reused layer after layer */
    float *dresid, *dln, *datty, *dsmall; /* (B, T, C) each */
    float *dqkv;                          /* (B, T, 3C) */
    float *dfch, *dfch_act;               /* (B, T, 4C) */
    float *dlogits;                       /* (B, T, V) */
    float *att_scratch;                   /* (B, 2 T * T): one per sequence, for the pool */
} Activations;

typedef struct {
    GPT *model;         /* the parameters trained; not owned */
    float *grad_memory; /* (n_params) in the parameter layout; allocated by gpt_alloc_grads */
    GPTParams grads;
    /* activations, sized for (act_B, act_T) */
    int act_B, act_T;
    bool act_dropout;
    float *act_memory;
    Activations acts;
    /* the last forward pass, for backward */
    const int *last_inputs, *last_targets;
    int last_B, last_T;
    float last_dropout;
    /* optional: spreads attention over sequences (set by the trainer; NULL = serial) */
    struct ThreadPool *pool;
} TrainState;

/* GPT-2 initialisation: N(0, 0.02) matrices and embeddings, residual projections scaled by
 * 1/sqrt(2 L), zero biases, unit LayerNorm gains. */
void gpt_init_weights(GPT *m, Rng *rng);

/* Starts a training state for model (allocates nothing: activations come with the first forward
 * pass, gradients with gpt_alloc_grads). */
void train_state_init(TrainState *s, GPT *model);
void train_state_free(TrainState *s);

int gpt_alloc_grads(TrainState *s, Error *err);
void gpt_zero_grads(TrainState *s);

/* Training forward over inputs (B, T), T <= block_size. With targets (B, T) returns the mean
 * cross-entropy loss (and keeps what backward needs); without, returns 0. Logits end up in
 * s->acts.logits (B, T, V). dropout > 0 draws masks from rng. */
int gpt_forward(TrainState *s, const int *inputs, const int *targets, int B, int T, float dropout,
                Rng *rng, float *loss, Error *err);

/* Gradients of the mean loss of the last forward pass, accumulated into s->grads. */
void gpt_backward(TrainState *s);

#endif
