/* Picks the next token from a row of logits: temperature (0 = greedy argmax), min-p, top-k, top-p
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
    float min_p; /* 0 means all tokens; drops those below min_p x the likeliest's probability */
} SamplerConfig;

int sampler_config_validate(const SamplerConfig *c, Error *err);

/* log softmax(logits)[token] at temperature 1: how likely the model found token. */
float sampler_logprob(const float *logits, int V, int token);

/* The normaliser of a row, to take several tokens' log-probabilities from it. */
typedef struct {
    float max;      /* the largest logit */
    double log_sum; /* log sum exp(logit - max) */
} LogSoftmax;
LogSoftmax sampler_log_softmax(const float *logits, int V);
float sampler_logprob_of(const float *logits, LogSoftmax norm, int token);

/* The min(n, V) likeliest tokens at temperature 1, in (logit descending, id ascending) order,
 * into ids and logprobs (n entries each); returns how many. */
int sampler_top_logprobs(const float *logits, int V, int n, int *ids, float *logprobs);

/* probs and index are scratch of V entries each (no allocation on the per-token path). min_p
 * first drops the tokens less likely than min_p times the likeliest (after temperature); top_k
 * and top_p then keep the first top_k tokens in (probability descending, id ascending) order, cut
 * to the shortest prefix whose mass reaches top_p; found in O(V) without sorting and drawn from in
 * ascending id order, so the same logits, config and RNG state pick the same token anywhere. */
int sampler_sample(const float *logits, int V, const SamplerConfig *c, Rng *rng, float *probs,
                   int *index, float *logprob);

#endif
