/* A training pass's parameter gradients, summed over its sequences in shard_sum's fixed tree
 * (the pass is TrainState's last forward: last_B sequences of last_T rows). Each writes the sum
 * into its output, which may be the parameter's slot of the gradient vector. */
#ifndef GPTD_GRAD_SUMS_H
#define GPTD_GRAD_SUMS_H

#include <stdbool.h>

#include "gpt_backprop.h"

/* dw (K, M), or (M, K) when out_in: the sum of inp^T @ dout, inp (B, T, K), dout (B, T, M). */
void grad_sum_weight(TrainState *ts, float *dw, const float *dout, const float *inp, int K, int M,
                     bool out_in);

/* db (M): the column sums of dout (B, T, M). */
void grad_sum_bias(TrainState *ts, float *db, const float *dout, int M);

/* A LayerNorm's gain and bias (C) from dout and its input, mean and rstd. */
void grad_sum_layernorm(TrainState *ts, float *dw, float *db, const float *dout, const float *inp,
                        const float *mean, const float *rstd);

/* The token embedding's (V, C): dout's rows (B, T, C) added into the rows of the pass's inputs. */
void grad_sum_tokens(TrainState *ts, float *dwte, const float *dout);

/* The position embedding's (T, C): dout's rows (B, T, C) summed over the sequences. */
void grad_sum_positions(TrainState *ts, float *dwpe, const float *dout);

/* *sum: the pass's losses (B, T) added up. */
void grad_sum_losses(TrainState *ts, float *sum, const float *losses);

#endif
