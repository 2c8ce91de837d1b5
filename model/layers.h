/* The elementwise and per-row layers of the GPT, each a forward/backward pair in plain C.
 * Arguments: outputs first, then inputs, then sizes. Backward functions accumulate (+=) into
 * gradients of parameters and inputs, so branches of the residual stream add up. */
#ifndef GPTD_LAYERS_H
#define GPTD_LAYERS_H

#include <math.h>
#include <stdint.h>

#include "rng.h"

typedef enum { ACT_RELU = 0, ACT_GELU = 1 } Activation;

/* out (N, C) = wte[tokens] + wpe[position], tokens (B, T) with positions 0..T-1. */
void embedding_forward(float *out, const int *tokens, const float *wte, const float *wpe, int B,
                       int T, int C);
void embedding_backward(float *dwte, float *dwpe, const float *dout, const int *tokens, int B,
                        int T, int C);

/* LayerNorm over the last dim (eps 1e-5). mean/rstd (N) are saved for the backward pass and
 * may be NULL at inference. */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, int N, int C);
/* The same at inference, with the sums in a faster order (no mean/rstd). */
void layernorm_inference(float *out, const float *inp, const float *weight, const float *bias,
                         int N, int C);
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean, const float *rstd,
                        int N, int C);

#define GELU_SCALE 0.7978845608028654f /* sqrt(2 / pi) */

/* GELU, tanh form (as GPT-2). */
static inline float gelu(float x) {
    return 0.5f * x * (1.0f + tanhf(GELU_SCALE * (x + 0.044715f * x * x * x)));
}

/* relu or GELU on n values. */
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
