/* Picks the next token from a row of logits: temperature (0 = greedy argmax), top-k, top-p
 * (nucleus), drawn with the caller's own RNG. Returns the token and its log-probability under
 * the distribution actually sampled from. */
#ifndef GPTD_SAMPLER_H
#define GPTD_SAMPLER_H

#include "../common/error.h"
#include "../common/rng.h"

/* The bounds of the sampling values, checked here and by the API (api/request.c). */
#define SAMPLER_MAX_TEMPERATURE 100.0f
#define SAMPLER_MAX_TOP_K (1 << 24) /* past any vocabulary (GPTConfig's vocab_size bound) */

typedef struct {
    float temperature; /* 0 means greedy; otherwise logits / temperature, at most 100 */
    int top_k;         /* 0 means all tokens; at most SAMPLER_MAX_TOP_K */
    float top_p;       /* 1 means all tokens; keeps the smallest prefix with mass >= top_p */
} SamplerConfig;

int sampler_config_validate(const SamplerConfig *c, Error *err);

/* log softmax(logits)[token] at temperature 1: how likely the model found token. */
float sampler_logprob(const float *logits, int V, int token);

/* probs and index are scratch of V entries each (no allocation on the per-token path). top_k
 * and top_p keep the first top_k tokens in (probability descending, id ascending) order, cut to
 * the shortest prefix whose mass reaches top_p; found in O(V) without sorting and drawn from in
 * ascending id order, so the same logits, config and RNG state pick the same token anywhere. */
int sampler_sample(const float *logits, int V, const SamplerConfig *c, Rng *rng, float *probs,
                   int *index, float *logprob);

#endif
