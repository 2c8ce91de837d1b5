/* The GPT: configuration, and parameters laid out in one buffer by a table of named tensors.
 *
 * Parameters use GPT-2 names and layouts (matrices are "Conv1D" (in, out), y = x @ W + b), so
 * the table doubles as the checkpoint's list of tensors. The head is lm_head.weight (V, C) with
 * a bias (as in the lecture) or, when tied, the token embedding without a bias (GPT-2). */
#ifndef GPTD_GPT_H
#define GPTD_GPT_H

#include <stdbool.h>
#include <stddef.h>

#include "../common/error.h"
#include "layers.h"

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

/* The model as inference needs it: configuration and parameters, nothing of training (see
 * train/gpt_backprop.h). */
typedef struct {
    GPTConfig config;
    TensorSpec tensors[GPT_MAX_TENSORS]; /* n_tensors used; none after gpt_keep_unpacked */
    int n_tensors;
    size_t n_params;     /* parameters of the model (as loaded, even after gpt_keep_unpacked) */
    float *param_memory; /* one buffer for all parameters */
    GPTParams params;
} GPT;

/* Lays out parameters for c and allocates them (zeroed). */
int gpt_init(GPT *m, const GPTConfig *c, Error *err);
void gpt_free(GPT *m);

/* Points the fields of p into base, a buffer of m->n_params floats in the parameter layout:
 * gradients and optimizer moments are laid out like the parameters. */
void gpt_bind(const GPT *m, float *base, GPTParams *p);

/* For a model that only feeds an engine, once the engine has packed its matrices: keeps what
 * engine_forward still reads (wte, wpe, the LayerNorms) in a buffer of their size, frees the
 * rest and sets the matrices and their biases to NULL. The tensor table is emptied, so the model
 * can no longer be saved or trained. */
int gpt_keep_unpacked(GPT *m, Error *err);

#endif
