#include "sampler.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

int sampler_config_validate(const SamplerConfig *c, Error *err) {
    if (!(c->temperature >= 0.0f && c->temperature <= SAMPLER_MAX_TEMPERATURE))
        return error_set(err, "temperature must be in [0, %g], got %g", SAMPLER_MAX_TEMPERATURE,
                         c->temperature);
    if (c->top_k < 0) return error_set(err, "top_k must be >= 0 (0 = off), got %d", c->top_k);
    if (c->top_k > SAMPLER_MAX_TOP_K)
        return error_set(err, "top_k must be at most %d, got %d", SAMPLER_MAX_TOP_K, c->top_k);
    if (!(c->top_p > 0.0f && c->top_p <= 1.0f))
        return error_set(err, "top_p must be in (0, 1], got %g", c->top_p);
    if (!(c->min_p >= 0.0f && c->min_p <= 1.0f))
        return error_set(err, "min_p must be in [0, 1], got %g", c->min_p);
    return 0;
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* ---- the boundary of the kept set, without sorting ----
 * Probabilities are non-negative floats, which order like their bits read as uint32. A radix
 * select over those bits finds the boundary value: the probability of the last token kept in
 * (probability descending, id ascending) order. Each level counts the candidates and sums their
 * mass per bucket of one digit (high digit first), walks the buckets from the top until the
 * count reaches the cap or the mass reaches top_p, and keeps the boundary bucket's ids as the
 * next level's candidates. Three levels of 11, 11 and 10 bits fix all 32 bits: O(V) in all. */

enum { RADIX_LEVELS = 3, RADIX_MAX_BUCKETS = 1 << 11 };
static const int radix_shift[RADIX_LEVELS] = {21, 10, 0};
static const int radix_bits[RADIX_LEVELS] = {11, 11, 10};

typedef struct {
    uint32_t key;      /* the boundary probability's bits */
    float value;       /* the boundary probability */
    int above;         /* tokens more likely than it: all kept */
    int at;            /* tokens exactly as likely: the lowest ids among them are kept */
    double mass_above; /* the mass of the tokens above */
} Boundary;

static uint32_t float_key(float p) {
    uint32_t k;
    memcpy(&k, &p, sizeof k);
    return k;
}

/* The boundary for at most max_count tokens and a mass target (INFINITY: none). index (V
 * entries) holds the candidates between levels; the histograms live on the stack (24 KB). The
 * mass is summed bucket by bucket in double, in a fixed order (deterministic everywhere), which
 * differs from the sorted order's running sum only in rounding: a cut can differ from a full
 * sort's only where a prefix's mass lies within about 1e-16 of top_p. */
static Boundary find_boundary(const float *probs, int V, int max_count, double target, int *index) {
    Boundary b = {0};
    int count[RADIX_MAX_BUCKETS];
    double mass[RADIX_MAX_BUCKETS];
    int m = V; /* candidates: every id at the first level, then index[0..m) */
    for (int level = 0; level < RADIX_LEVELS; level++) {
        int shift = radix_shift[level], buckets = 1 << radix_bits[level];
        uint32_t mask = (uint32_t)buckets - 1;
        memset(count, 0, sizeof count[0] * (size_t)buckets);
        memset(mass, 0, sizeof mass[0] * (size_t)buckets);
        for (int t = 0; t < m; t++) {
            int i = level == 0 ? t : index[t];
            uint32_t d = float_key(probs[i]) >> shift & mask;
            count[d]++;
            mass[d] += probs[i];
        }
        /* From the top: the bucket where the count reaches the cap (or every candidate) or the
         * mass reaches the target. */
        int limit = max_count - b.above < m ? max_count - b.above : m;
        int above = 0, d = buckets - 1;
        double acc = b.mass_above;
        for (; d > 0; d--) {
            if (above + count[d] >= limit || acc + mass[d] >= target) break;
            above += count[d];
            acc += mass[d];
        }
        b.above += above;
        b.mass_above = acc;
        b.key |= (uint32_t)d << shift;
        int kept = 0; /* the boundary bucket's ids, still ascending */
        for (int t = 0; t < m; t++) {
            int i = level == 0 ? t : index[t];
            if ((float_key(probs[i]) >> shift & mask) == (uint32_t)d) index[kept++] = i;
        }
        m = kept;
    }
    b.at = m;
    memcpy(&b.value, &b.key, sizeof b.value);
    return b;
}

LogSoftmax sampler_log_softmax(const float *logits, int V) {
    float maxv = logits[argmax(logits, V)];
    double sum = 0.0;
    for (int i = 0; i < V; i++) sum += exp((double)logits[i] - maxv);
    return (LogSoftmax){maxv, log(sum)};
}

float sampler_logprob_of(const float *logits, LogSoftmax n, int token) {
    return (float)(logits[token] - n.max - n.log_sum);
}

float sampler_logprob(const float *logits, int V, int token) {
    return sampler_logprob_of(logits, sampler_log_softmax(logits, V), token);
}

/* Insertion into a short list kept in (logit descending, id ascending) order: ids arrive
 * ascending, so an equal logit goes after those already there. Expected O(V + n^2 log V). */
int sampler_top_logprobs(const float *logits, int V, int n, int *ids, float *logprobs) {
    if (n > V) n = V;
    int have = 0;
    for (int t = 0; t < V; t++) {
        if (have == n && !(logits[t] > logits[ids[n - 1]])) continue;
        int at = have < n ? have++ : n - 1;
        while (at > 0 && logits[t] > logits[ids[at - 1]]) {
            ids[at] = ids[at - 1];
            at--;
        }
        ids[at] = t;
    }
    LogSoftmax norm = sampler_log_softmax(logits, V);
    for (int i = 0; i < have; i++) logprobs[i] = sampler_logprob_of(logits, norm, ids[i]);
    return have;
}

/* Greedy (temperature 0, top_k 1) is the argmax; with nothing to cut, the draw walks all ids.
 * Otherwise the kept set is found in O(V) (find_boundary, no sort) and the draw walks the kept
 * ids in ascending id order, r = uniform * kept mass. Before issue 23 the walk went in sorted
 * order: the distribution is the same, but a given seed may now pick a different token. */
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
    /* min_p: the tokens below the floor get probability 0, and top_p's target is taken of the
     * mass left, as if the rest were renormalised (without a second division per token). */
    int n = c->top_k > 0 && c->top_k < V ? c->top_k : V;
    double target = c->top_p < 1.0f ? c->top_p : INFINITY;
    if (c->min_p > 0.0f) {
        float floor = c->min_p * probs[argmax(probs, V)];
        int left = 0;
        double mass = 0.0;
        for (int i = 0; i < V; i++) {
            if (probs[i] < floor) probs[i] = 0.0f;
            left += probs[i] > 0.0f;
            mass += probs[i];
        }
        if (left < n) n = left; /* never a token of probability 0 */
        target *= mass;
    }
    if (n == V && target == INFINITY) { /* nothing to cut */
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
    /* The kept set: the first n tokens in (probability descending, id ascending) order, n the
     * top_k cap cut further to the shortest prefix whose mass reaches top_p. */
    Boundary b = find_boundary(probs, V, n, target, index);
    if (target != INFINITY) { /* the ties at the boundary value, lowest ids first */
        double mass = b.mass_above;
        int keep = b.above;
        while (keep < n && keep < b.above + b.at) {
            mass += b.value;
            keep++;
            if (mass >= target) break;
        }
        n = keep;
    }
    /* The kept ids in ascending order: all above the boundary value, the lowest at it. */
    int ties = n - b.above;
    n = 0;
    double kept = 0.0;
    for (int i = 0; i < V; i++) {
        uint32_t k = float_key(probs[i]);
        if (k > b.key || (k == b.key && ties-- > 0)) {
            index[n++] = i;
            kept += probs[i];
        }
    }
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
