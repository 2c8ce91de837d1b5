#define _GNU_SOURCE /* qsort_r */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>

int sampler_config_validate(const SamplerConfig *c, Error *err) {
    if (!(c->temperature >= 0.0f && c->temperature <= SAMPLER_MAX_TEMPERATURE))
        return error_set(err, "temperature must be in [0, %g], got %g", SAMPLER_MAX_TEMPERATURE,
                         c->temperature);
    if (c->top_k < 0) return error_set(err, "top_k must be >= 0 (0 = off), got %d", c->top_k);
    if (c->top_k > SAMPLER_MAX_TOP_K)
        return error_set(err, "top_k must be at most %d, got %d", SAMPLER_MAX_TOP_K, c->top_k);
    if (!(c->top_p > 0.0f && c->top_p <= 1.0f))
        return error_set(err, "top_p must be in (0, 1], got %g", c->top_p);
    return 0;
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Orders token ids by probability, descending; ties by lower id, so the order is total. */
static int by_prob_desc(const void *a, const void *b, void *probs) {
    const float *p = probs;
    int i = *(const int *)a, j = *(const int *)b;
    if (p[i] != p[j]) return p[i] > p[j] ? -1 : 1;
    return i - j;
}

float sampler_logprob(const float *logits, int V, int token) {
    float maxv = logits[argmax(logits, V)];
    double sum = 0.0;
    for (int i = 0; i < V; i++) sum += exp((double)logits[i] - maxv);
    return (float)(logits[token] - maxv - log(sum));
}

int sampler_sample(const float *logits, int V, const SamplerConfig *c, Rng *rng, float *probs,
                   int *index, float *logprob) {
    if (c->temperature == 0.0f || c->top_k == 1) {
        int best = argmax(logits, V);
        if (logprob) *logprob = sampler_logprob(logits, V, best); /* at temperature 1 */
        return best;
    }
    float maxv = logits[argmax(logits, V)];
    double sum = 0.0;
    for (int i = 0; i < V; i++) {
        probs[i] = expf((logits[i] - maxv) / c->temperature);
        sum += probs[i];
    }
    for (int i = 0; i < V; i++) probs[i] = (float)(probs[i] / sum);
    if ((c->top_k == 0 || c->top_k >= V) && c->top_p >= 1.0f) { /* nothing to cut: no sort */
        double r = rng_float(rng), acc = 0.0;
        int pick = V - 1;
        for (int i = 0; i < V; i++) {
            acc += probs[i];
            if (r < acc) {
                pick = i;
                break;
            }
        }
        if (logprob) *logprob = logf(probs[pick]);
        return pick;
    }
    /* Candidates in descending probability; top-k and top-p cut this list. */
    for (int i = 0; i < V; i++) index[i] = i;
    qsort_r(index, (size_t)V, sizeof *index, by_prob_desc, probs);
    int n = c->top_k > 0 && c->top_k < V ? c->top_k : V;
    if (c->top_p < 1.0f) {
        double mass = 0.0;
        int keep = 0;
        while (keep < n) {
            mass += probs[index[keep++]];
            if (mass >= c->top_p) break;
        }
        n = keep;
    }
    double kept = 0.0;
    for (int i = 0; i < n; i++) kept += probs[index[i]];
    double r = rng_float(rng) * kept, acc = 0.0;
    int pick = index[n - 1];
    for (int i = 0; i < n; i++) {
        acc += probs[index[i]];
        if (r < acc) {
            pick = index[i];
            break;
        }
    }
    if (logprob) *logprob = (float)log(probs[pick] / kept);
    return pick;
}
