/* A model from wherever it is: gptd's own checkpoint file (checkpoint.h) or a Hugging Face GPT-2
 * directory (load_hf_gpt2.h). What serves or samples a model loads it here. */
#ifndef GPTD_LOAD_H
#define GPTD_LOAD_H

#include "gpt.h"
#include "tokenizer.h"

int model_load(const char *path, GPT *model, Tokenizer *tok, Error *err);

#endif
