/* What the engine needs of the GPT's layers besides its products (kernels.h): the activation
 * and LayerNorm at inference. The training layers, each a forward/backward pair, are in
 * train/train_layers.h. */
#ifndef GPTD_LAYERS_H
#define GPTD_LAYERS_H

#include <math.h>
#include <stdint.h>
#include <string.h>

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

/* exp(x) for x <= 0 (down to -87), to about 2 ulp: range reduction to 2^n e^r and a degree-6
 * polynomial. The engine's kernels compute it on whole vectors (kernels_impl.h
 * vexp_nonpositive) with exactly these operations, so a value is the same bits either way. */
static inline float expf_nonpositive(float x) {
    x = x > -87.0f ? x : -87.0f;
    float n = rintf(x * 1.44269504f);
    float r = fmaf(-n, 0.693359375f, x);
    r = fmaf(-n, -2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = fmaf(p, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    p = fmaf(p, r * r, r + 1.0f);
    uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* GELU, tanh form (as GPT-2): 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3). tanh is odd
 * and u has x's sign, so this is 0.5 (x + |x| tanh|u|), and tanh|u| = (1 - e) / (1 + e) with
 * e = exp(-2|u|) <= 1: no libm call, and the kernels run the same operations on vectors
 * (kernels_impl.h vgelu), so every path gives the same bits. Within 2e-7 of tanhf's form. */
static inline float gelu(float x) {
    float nx = 0.0f - x, ax = x > nx ? x : nx;
    float u = GELU_SCALE * ax * (1.0f + 0.044715f * x * x);
    float e = expf_nonpositive(-2.0f * u);
    float t = (1.0f - e) / (1.0f + e);
    return 0.5f * (x + ax * t);
}

#define GELU_ERF_SCALE 0.7071067811865476f /* 1 / sqrt(2) */

/* GELU, exact: x Phi(x) (PyTorch's nn.GELU(), as nanoGPT uses it). */
static inline float gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * GELU_ERF_SCALE)); }

#endif
