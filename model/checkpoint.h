/* GPT checkpoints on top of safetensors: the parameters under GPT-2 names, and in
 * __metadata__ the config, the vocabulary and free-form facts (training step, losses).
 * A training state adds the AdamW moments ("optimizer.m.<name>", "optimizer.v.<name>") so a
 * run can resume exactly. */
#ifndef GPTD_CHECKPOINT_H
#define GPTD_CHECKPOINT_H

#include "gpt.h"
#include "safetensors.h"
#include "tokenizer.h"

typedef struct {
    float *m, *v; /* (n_params) each, AdamW moments in parameter layout */
} OptimizerState;

/* Writes model (and, if opt is non-NULL, the optimizer moments) atomically. extra holds
 * additional metadata (may be NULL/0); keys this function writes itself (the config, "vocab",
 * "format", and "weights": float32 or float16) are taken from the model, not from extra. */
int checkpoint_save(const char *path, const GPT *model, const Tokenizer *tok,
                    const OptimizerState *opt, const StMeta *extra, int n_extra, Error *err);

/* Writes the parameters as float16 (no optimizer state): half the bytes, and the inference
 * engine streams them at half the cost. Refuses a model with a weight beyond float16's range. */
int checkpoint_save_float16(const char *path, const GPT *model, const Tokenizer *tok,
                            const StMeta *extra, int n_extra, Error *err);

/* Loads config, vocabulary and parameters (F32 or F16, as float) into a fresh model. If opt is
 * non-NULL the moments are loaded too (allocated here; error if the file has none). If st_out is
 * non-NULL the file stays open there for the caller to read more metadata (close it with
 * safetensors_close). */
int checkpoint_load(const char *path, GPT *model, Tokenizer *tok, OptimizerState *opt,
                    SafeTensors *st_out, Error *err);

/* Tensor `name`, in gptd's GPT-2 naming, found with or without its "transformer." prefix; NULL
 * when absent. */
const StTensor *checkpoint_find_tensor(const SafeTensors *st, const char *name);

/* Reads parameter `name` (found with or without GPT-2's "transformer." prefix; F32, F16 or BF16,
 * as float; finite) into dst, checking its shape against spec. For every format's loader. */
int checkpoint_read_tensor(const SafeTensors *st, const char *name, const TensorSpec *spec,
                           float *dst, Error *err);

/* A tokenizer fits a model when the sizes agree (a BPE model may pad its vocabulary). */
int checkpoint_check_vocab(const Tokenizer *tok, int vocab_size, Error *err);

#endif
