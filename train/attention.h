/* The training pass's multi-head scaled dot-product attention, one implementation for the three
 * uses the lecture teaches:
 *   - causal (decoder): query i sees keys 0..i, the future never talks to the past;
 *   - full (encoder): every query sees every key;
 *   - cross: queries from one sequence (length Tq), keys/values from another (length Tk).
 * With causal and Tq < Tk the queries are the *last* Tq positions of the key sequence, so query
 * i sits at absolute position Tk - Tq + i (the rule a KV cache follows). The trainer runs the
 * causal case with Tq == Tk; the engine has its own attention over its KV cache (kernels.h).
 *
 * Rows may live inside wider buffers (q, k, v inside one (B, T, 3C) qkv tensor), so each input
 * has a row stride in floats; batch b starts at b * T * stride. Head h is channels
 * [h * head_size, (h + 1) * head_size) of each row. */
#ifndef GPTD_ATTENTION_H
#define GPTD_ATTENTION_H

#include <stdbool.h>
#include <stddef.h>

#include "../common/rng.h"

typedef struct {
    int B, Tq, Tk, n_head, head_size;
    bool causal;
    int q_stride, kv_stride, out_stride; /* floats from one row to the next */
    float scale; /* score scale; 0 means 1/sqrt(head_size), the transformer's choice */
    const struct Kernels *kernels; /* the products' (NULL: the best this CPU has) */
} AttentionShape;

/* The products run on the engine's kernels, each output one chain in order, on the calling
 * thread; `scratch` holds their working matrices: attention_scratch_floats of them. */
size_t attention_scratch_floats(const AttentionShape *s);

/* scores (Tq, Tk) = scale * q_bh k_bh^T for batch b, head h, before masking and softmax. */
void attention_scores(float *scores, float *scratch, const float *q, const float *k,
                      const AttentionShape *s, int b, int h);

/* out (B, Tq, n_head * head_size) = softmax(q k^T / sqrt(head_size) [+ mask]) v.
 * att (B, n_head, Tq, Tk) receives the softmax probabilities (kept for the backward pass).
 * If dropout > 0, att_mask (same size as att) receives the dropout mask and the dropped
 * probabilities are applied to v (as in the lecture). */
void attention_forward(float *out, float *att, float *att_mask, float *scratch, const float *q,
                       const float *k, const float *v, const AttentionShape *s, float dropout,
                       Rng *rng);

/* Accumulates dq, dk, dv (same layouts and strides as q, k, v) from dout. att_mask NULL means
 * no dropout. */
void attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                        const float *att, const float *att_mask, const float *q, const float *k,
                        const float *v, const AttentionShape *s);

#endif
