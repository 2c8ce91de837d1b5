/* The GPT: configuration, parameters laid out in one buffer by a table of named tensors, and the
 * training forward/backward pass over a batch (B, T).
 *
 * Parameters use GPT-2 names and layouts (matrices are "Conv1D" (in, out), y = x @ W + b), so
 * the table doubles as the checkpoint's list of tensors. The head is lm_head.weight (V, C) with
 * a bias (as in the seed lecture) or, when tied, the token embedding without a bias (GPT-2). */
#ifndef GPTD_GPT_H
#define GPTD_GPT_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "layers.h"
#include "rng.h"

#define GPT_MAX_LAYERS 64
#define GPT_MAX_TENSORS (8 + 12 * GPT_MAX_LAYERS)

typedef struct {
    int vocab_size; /* V */
    int n_layer;    /* L */
    int n_head;     /* NH */
    int n_embd;     /* C, divisible by NH */
    int block_size; /* maximum context T */
    Activation activation;
    bool qkv_bias;  /* bias on the q/k/v projection */
    bool tied_head; /* head shares wte, no bias */
} GPTConfig;

/* Checks sizes and relations; names the offending field. */
int gpt_config_validate(const GPTConfig *c, Error *err);

typedef struct {
    float *ln1_w, *ln1_b;       /* (C), (C) */
    float *qkv_w, *qkv_b;       /* (C, 3C), (3C) or NULL */
    float *proj_w, *proj_b;     /* (C, C), (C) */
    float *ln2_w, *ln2_b;       /* (C), (C) */
    float *fc_w, *fc_b;         /* (C, 4C), (4C) */
    float *fcproj_w, *fcproj_b; /* (4C, C), (C) */
} LayerParams;

typedef struct {
    float *wte;                        /* (V, C) */
    float *wpe;                        /* (T, C) */
    LayerParams layer[GPT_MAX_LAYERS]; /* n_layer used */
    float *lnf_w, *lnf_b;              /* (C), (C) */
    float *head_w;                     /* (V, C); == wte when tied */
    float *head_b;                     /* (V) or NULL when tied */
} GPTParams;

typedef struct {
    char name[64];
    int ndim;
    int shape[2];
    size_t offset; /* in floats from the start of the parameter buffer */
    size_t size;   /* elements */
} TensorSpec;

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
    GPTConfig config;
    TensorSpec tensors[GPT_MAX_TENSORS];
    int n_tensors;
    size_t n_params;
    float *param_memory; /* one buffer for all parameters */
    GPTParams params;
    float *grad_memory; /* same layout; allocated by gpt_alloc_grads */
    GPTParams grads;
    /* training activations, sized for (act_B, act_T) */
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
} GPT;

/* Lays out parameters for c and allocates them (zeroed). */
int gpt_init(GPT *m, const GPTConfig *c, Error *err);
void gpt_free(GPT *m);

/* GPT-2 initialisation: N(0, 0.02) matrices and embeddings, residual projections scaled by
 * 1/sqrt(2 L), zero biases, unit LayerNorm gains. */
void gpt_init_weights(GPT *m, Rng *rng);

int gpt_alloc_grads(GPT *m, Error *err);
void gpt_zero_grads(GPT *m);

/* Training forward over inputs (B, T), T <= block_size. With targets (B, T) returns the mean
 * cross-entropy loss (and keeps what backward needs); without, returns 0. Logits end up in
 * m->acts.logits (B, T, V). dropout > 0 draws masks from rng. */
int gpt_forward(GPT *m, const int *inputs, const int *targets, int B, int T, float dropout,
                Rng *rng, float *loss, Error *err);

/* Gradients of the mean loss of the last forward pass, accumulated into m->grads. */
void gpt_backward(GPT *m);

#endif
