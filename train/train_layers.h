/* The elementwise and per-row layers of the GPT's training pass, each a forward/backward pair in
 * plain C. Arguments: outputs first, then inputs, then sizes. layernorm_backward accumulates (+=)
 * into its input's gradient, where the residual stream's branches add up; the other backward
 * functions write theirs. Parameter gradients come per sequence, for shard_sum.h's tree. */
#ifndef GPTD_TRAIN_LAYERS_H
#define GPTD_TRAIN_LAYERS_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/rng.h"
#include "../model/layers.h"

/* out (N, C) = wte[tokens] + wpe[position], tokens (B, T) with positions 0..T-1. */
void embedding_forward(float *out, const int *tokens, const float *wte, const float *wpe, int B,
                       int T, int C);

/* The parameter gradients of one sequence of T rows, a shard of shard_sum.h: each element one
 * chain over the rows in order, stored in out or, when add, computed whole and added to it.
 * tmp (the partial's size) is used when add. Token embedding: dwte (V, C) from dout (T, C) at
 * tokens (T).
 * rows_grad: out (n) = dout (n) (the position embedding's rows 0..T-1). bias_grad: column sums
 * of dout (T, M), rows ld apart. layernorm_weight_grad: sums of dout * xhat, xhat from inp (T, C)
 * (rows ld apart: C columns of wider rows), mean and rstd (T) of the forward pass (its bias's
 * gradient is bias_grad). */
void embedding_token_grad(float *dwte, float *tmp, const float *dout, const int *tokens, int T,
                          int C, int V, bool add);
void rows_grad(float *out, const float *dout, long n, bool add);
void bias_grad(float *dbias, float *tmp, const float *dout, int T, int M, int ld, bool add);
void layernorm_weight_grad(float *dweight, float *tmp, const float *dout, const float *inp,
                           const float *mean, const float *rstd, int T, int C, int ld, bool add);

/* LayerNorm over the last dim (eps 1e-5), one running sum per row (the order the PyTorch
 * reference test follows). mean/rstd (N) are saved for the backward pass and may be NULL. */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, int N, int C);
/* dinp (N, C) += the gradient of the input (the parameters' are layernorm_weight_grad and
 * bias_grad). */
void layernorm_backward(float *dinp, const float *dout, const float *inp, const float *weight,
                        const float *mean, const float *rstd, int N, int C);

/* relu or GELU (tanh or erf form) on n values; the backward pass writes dinp = f'(inp) dout. */
void activation_forward(float *out, const float *inp, long n, Activation act);
void activation_backward(float *dinp, const float *inp, const float *dout, long n, Activation act);

/* Inverted dropout: out = inp * mask, mask[i] = 0 with probability p else 1/(1-p). With p == 0
 * it copies and fills the mask with 1 (so the backward stays one code path). */
void dropout_forward(float *out, float *mask, const float *inp, long n, float p, Rng *rng);
void dropout_backward(float *dinp, const float *dout, const float *mask, long n); /* dinp = */

/* out = a + b (n). */
void residual_forward(float *out, const float *a, const float *b, long n);

/* Softmax cross-entropy over V classes for N rows. losses (N) per position; if dlogits is
 * non-NULL it receives d(mean loss)/d(logits) = (softmax - onehot) / batch_rows, the mean over
 * the whole batch (N rows here, more when the batch is spread over ranks). Returns the mean of
 * its N rows. */
float crossentropy_forward_backward(float *losses, float *dlogits, const float *logits,
                                    const int *targets, int N, int V, int batch_rows);

#endif
