/* A Hugging Face GPT-2 directory as published (gpt2, distilgpt2, gpt2-medium..xl, and fine-tunes
 * saved by GPT2LMHeadModel): config.json, model.safetensors and the tokenizer's vocab.json +
 * merges.txt (or encoder.json + vocab.bpe).
 *
 * The tensors are gptd's own layout already (Conv1D weights stored (in, out)), named with or
 * without "transformer."; lm_head is wte (tied) unless the file holds a different one; the
 * causal-mask buffers (attn.bias, attn.masked_bias) are ignored. F32, F16 and BF16 load as
 * float. What gptd cannot run the same way (another architecture, an exact-erf GELU, a
 * LayerNorm epsilon other than 1e-5) is refused with the field named. */
#ifndef GPTD_LOAD_HF_GPT2_H
#define GPTD_LOAD_HF_GPT2_H

#include "gpt.h"
#include "tokenizer.h"

int hf_gpt2_load(const char *dir, GPT *model, Tokenizer *tok, Error *err);

#endif
