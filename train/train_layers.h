/* The elementwise and per-row layers of the GPT's training pass, each a forward/backward pair in
 * plain C. Arguments: outputs first, then inputs, then sizes. Backward functions accumulate (+=)
 * into gradients of parameters and inputs, so branches of the residual stream add up. */
#ifndef GPTD_TRAIN_LAYERS_H
#define GPTD_TRAIN_LAYERS_H

#include <stdint.h>

#include "../common/rng.h"
#include "../model/layers.h"

/* out (N, C) = wte[tokens] + wpe[position], tokens (B, T) with positions 0..T-1. */
void embedding_forward(float *out, const int *tokens, const float *wte, const float *wpe, int B,
                       int T, int C);
void embedding_backward(float *dwte, float *dwpe, const float *dout, const int *tokens, int B,
                        int T, int C);

/* LayerNorm over the last dim (eps 1e-5), one running sum per row (the order the PyTorch
 * reference test follows). mean/rstd (N) are saved for the backward pass and may be NULL. */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, int N, int C);
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean, const float *rstd,
                        int N, int C);

/* relu or GELU (tanh or erf form) on n values. */
void activation_forward(float *out, const float *inp, long n, Activation act);
void activation_backward(float *dinp, const float *inp, const float *dout, long n, Activation act);

/* Inverted dropout: out = inp * mask, mask[i] = 0 with probability p else 1/(1-p). With p == 0
 * it copies and fills the mask with 1 (so the backward stays one code path). */
void dropout_forward(float *out, float *mask, const float *inp, long n, float p, Rng *rng);
void dropout_backward(float *dinp, const float *dout, const float *mask, long n);

/* out = a + b (n). */
void residual_forward(float *out, const float *a, const float *b, long n);

/* Softmax cross-entropy over V classes for N rows. losses (N) per position; if dlogits is
 * non-NULL it receives d(mean loss)/d(logits) = (softmax - onehot) / N. Returns mean loss. */
float crossentropy_forward_backward(float *losses, float *dlogits, const float *logits,
                                    const int *targets, int N, int V);

#endif
