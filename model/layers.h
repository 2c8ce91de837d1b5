/* What the engine needs of the GPT's layers besides its products (kernels.h): the activation
 * and LayerNorm at inference. The training layers, each a forward/backward pair, are in
 * train/train_layers.h. */
#ifndef GPTD_LAYERS_H
#define GPTD_LAYERS_H

#include <math.h>

/* relu (the lecture), GELU's tanh form (GPT-2) or its exact erf form (nn.GELU(), nanoGPT). */
typedef enum { ACT_RELU = 0, ACT_GELU = 1, ACT_GELU_ERF = 2 } Activation;

/* "relu", "gelu" or "gelu_erf", as flags and checkpoints spell them. */
const char *activation_name(Activation a);
/* The activation named; -1 for another name. */
int activation_parse(const char *name, Activation *a);

/* LayerNorm over the last dim (eps 1e-5) of N rows of C, with the sums in a fast fixed order. */
void layernorm_inference(float *out, const float *inp, const float *weight, const float *bias,
                         int N, int C);

#define GELU_SCALE 0.7978845608028654f /* sqrt(2 / pi) */

/* GELU, tanh form (as GPT-2). */
static inline float gelu(float x) {
    return 0.5f * x * (1.0f + tanhf(GELU_SCALE * (x + 0.044715f * x * x * x)));
}

#define GELU_ERF_SCALE 0.7071067811865476f /* 1 / sqrt(2) */

/* GELU, exact: x Phi(x) (PyTorch's nn.GELU(), as nanoGPT uses it). */
static inline float gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * GELU_ERF_SCALE)); }

#endif
