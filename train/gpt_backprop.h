/* The GPT's training state and pass: gradients, the activations a forward pass keeps for the
 * backward pass, and the pool that spreads products and attention over threads. The model
 * (parameters) is model/gpt.h; training only adds to it. Matrix products on the engine's kernels
 * (matmul.h), attention in attention.h, parameter gradients summed in shard_sum.h's tree.
 *
 * The same bits on every kernel path, at any thread count, and for any split of a batch over
 * ranks: a pass over B sequences may be one rank's share of a larger batch (shard0, batch_rows),
 * and gpt_backward hands the rank's gradient sums to `combine`, which adds the ranks' sums in
 * the tree's order (data_parallel.h). */
#ifndef GPTD_GPT_BACKPROP_H
#define GPTD_GPT_BACKPROP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/error.h"
#include "../common/rng.h"
#include "../model/gpt.h"
#include "matmul.h"

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
    float *fch, *fch_act;             /* (L, B, T, 4C); fch NULL with relu (not needed) */
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
    float *att_scratch;                   /* attention_scratch_floats per sequence, for the pool */
} Activations;

/* Adds, in place, the vectors of n floats that every rank holds, so that all end with the sum in
 * shard_sum's order (data_parallel.h). */
typedef void (*GradCombine)(void *ctx, float *v, size_t n);

typedef struct {
    GPT *model; /* the parameters trained; not owned */
    /* The gradient vector (train_grad_floats): the parameters' gradients in their layout, then a
     * tied head's own part (head_grad_size floats, folded into wte's at the end of the pass),
     * then the sum of the pass's losses. Allocated by gpt_alloc_grads. */
    float *grad_memory;
    GPTParams grads;
    float *head_grad;
    size_t head_grad_size;
    /* activations, sized for (act_B, act_T) */
    int act_B, act_T;
    bool act_dropout;
    float *act_memory;
    Activations acts;
    /* the last forward pass, for backward */
    const int *last_inputs, *last_targets;
    int last_B, last_T;
    float last_dropout;
    /* products and attention: the kernels, and the pool (NULL = the calling thread alone) */
    Matmul mm;
    struct ThreadPool *pool;
    float *shard_scratch;  /* shard_sum's */
    float *token_grad_tmp; /* a partial gradient being added: (V, C), or a bias of 4C */
    /* this pass as a part of the batch: the index of its first sequence in the batch, and the
     * batch's rows (0: this pass is the whole batch); set by a data-parallel trainer */
    int shard0, batch_rows;
    GradCombine combine; /* NULL: one process */
    void *combine_ctx;
    uint64_t dropout_base; /* this pass's dropout streams derive from it */
    float loss_sum;        /* the sum of this pass's losses, in shard_sum's order */
    float batch_loss;      /* after gpt_backward: the mean loss of the whole batch */
} TrainState;

/* GPT-2 initialisation: N(0, 0.02) matrices and embeddings, residual projections scaled by
 * 1/sqrt(2 L), zero biases, unit LayerNorm gains. */
void gpt_init_weights(GPT *m, Rng *rng);

/* Starts a training state for model on the best kernels this CPU has and no pool (allocates
 * nothing: activations come with the first forward pass, gradients with gpt_alloc_grads). */
void train_state_init(TrainState *s, GPT *model);
/* Runs the products on `kernels` and spreads work over `pool` (may be NULL). */
void train_state_use(TrainState *s, const struct Kernels *kernels, struct ThreadPool *pool);
void train_state_free(TrainState *s);

int gpt_alloc_grads(TrainState *s, Error *err);
void gpt_zero_grads(TrainState *s);
/* Floats of the gradient vector (grad_memory). */
size_t train_grad_floats(const TrainState *s);

/* Training forward over inputs (B, T), T <= block_size. With targets (B, T) returns the mean
 * cross-entropy loss (and keeps what backward needs); without, returns 0. Logits end up in
 * s->acts.logits (B, T, V). dropout > 0 draws masks from rng. */
int gpt_forward(TrainState *s, const int *inputs, const int *targets, int B, int T, float dropout,
                Rng *rng, float *loss, Error *err);

/* Gradients of the mean loss of the last forward pass (of the whole batch, when the pass is a
 * rank's part), written into s->grads; s->batch_loss is that mean loss. */
void gpt_backward(TrainState *s);

#endif
