/* Sampler and sequence properties: greedy equivalences, the exact top-p cut, sampled
 * frequencies against the softmax (chi-square), seeds, stop strings held back while streaming,
 * and the documented handling of bad prompts and out-of-range values. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "test_filter.h"

#include "../../model/sampler.h"
#include "../../model/sequence.h"

#define V 65

/* A 16-token context; the rule past it does not matter to these tests. */
static const ContextPolicy ctx16 = {.block_size = 16, .shift = CONTEXT_EXACT, .keep = 16};

static void random_logits(float *logits, int n, uint64_t seed) {
    Rng rng;
    rng_seed(&rng, seed);
    for (int i = 0; i < n; i++) logits[i] = 3.0f * rng_normal(&rng);
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static void greedy_equivalences(void **state) {
    (void)state;
    float logits[V], probs[V];
    int index[V];
    for (int trial = 0; trial < 200; trial++) {
        random_logits(logits, V, trial);
        Rng rng;
        rng_seed(&rng, 1000 + trial);
        SamplerConfig topk1 = {.temperature = 1.0f, .top_k = 1, .top_p = 1.0f};
        SamplerConfig temp0 = {.temperature = 0.0f, .top_k = 0, .top_p = 1.0f};
        assert_int_equal(sampler_sample(logits, V, &topk1, &rng, probs, index, NULL),
                         argmax(logits, V));
        assert_int_equal(sampler_sample(logits, V, &temp0, &rng, probs, index, NULL),
                         argmax(logits, V));
        /* Both greedy forms report the model's own log-probability of the token (log softmax at
         * temperature 1), not that of the one-token set they drew from (0). */
        float lp_topk1 = 1, lp_temp0 = 1;
        int best = argmax(logits, V);
        sampler_sample(logits, V, &topk1, &rng, probs, index, &lp_topk1);
        sampler_sample(logits, V, &temp0, &rng, probs, index, &lp_temp0);
        assert_true(lp_topk1 == sampler_logprob(logits, V, best));
        assert_true(lp_temp0 == sampler_logprob(logits, V, best));
    }
}

/* Probabilities 0.5, 0.2, 0.15, 0.1, 0.05: top-p keeps the smallest prefix with mass >= p. */
static void top_p_keeps_smallest_prefix(void **state) {
    (void)state;
    const float p[5] = {0.5f, 0.2f, 0.15f, 0.1f, 0.05f};
    float logits[5], probs[5];
    int index[5];
    /* shuffled token order, so the cut is by probability and not by id */
    const int ids[5] = {3, 0, 4, 1, 2};
    for (int i = 0; i < 5; i++) logits[ids[i]] = logf(p[i]);
    struct {
        float top_p;
        int kept;
    } cases[] = {{0.5f, 1}, {0.6f, 2}, {0.7f, 2}, {0.8f, 3}, {0.86f, 4}, {0.96f, 5}, {1.0f, 5}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        SamplerConfig sc = {.temperature = 1.0f, .top_k = 0, .top_p = cases[c].top_p};
        int seen[5] = {0};
        Rng rng;
        rng_seed(&rng, 77);
        for (int draw = 0; draw < 4000; draw++) {
            int t = sampler_sample(logits, 5, &sc, &rng, probs, index, NULL);
            for (int i = 0; i < 5; i++)
                if (ids[i] == t) seen[i]++;
        }
        for (int i = 0; i < 5; i++) {
            if (i < cases[c].kept && seen[i] == 0)
                fail_msg("top_p %.2f: token of p=%.2f never drawn", cases[c].top_p, p[i]);
            if (i >= cases[c].kept && seen[i] != 0)
                fail_msg("top_p %.2f: token of p=%.2f drawn %d times", cases[c].top_p, p[i],
                         seen[i]);
        }
    }
    /* Probabilities 0.4, then 0.2 three times (ids 1, 2, 3): top_p 0.6 needs one of the ties,
     * the lowest id; 0.61 needs two. */
    const float tied[4] = {logf(0.4f), logf(0.2f), logf(0.2f), logf(0.2f)};
    const struct {
        float top_p;
        int kept;
    } tie_cases[] = {{0.55f, 2}, {0.61f, 3}};
    for (size_t c = 0; c < 2; c++) {
        SamplerConfig sc = {.temperature = 1.0f, .top_k = 0, .top_p = tie_cases[c].top_p};
        int seen[4] = {0};
        Rng rng;
        rng_seed(&rng, 78);
        for (int draw = 0; draw < 4000; draw++)
            seen[sampler_sample(tied, 4, &sc, &rng, probs, index, NULL)]++;
        for (int i = 0; i < 4; i++)
            if ((i < tie_cases[c].kept) != (seen[i] > 0))
                fail_msg("top_p %.2f over tied tokens: token %d drawn %d times", sc.top_p, i,
                         seen[i]);
    }
}

/* 40,000 draws at temperature 0.7 against softmax(logits / 0.7): chi-square with 7 degrees of
 * freedom stays below 24.32 (p = 0.001). */
static void frequencies_match_softmax(void **state) {
    (void)state;
    const int n = 8, draws = 40000;
    float logits[8], probs[8];
    int index[8], counts[8] = {0};
    random_logits(logits, n, 3);
    for (int i = 0; i < n; i++) logits[i] *= 0.3f;
    float T = 0.7f;
    double expect[8], sum = 0;
    for (int i = 0; i < n; i++) sum += expect[i] = exp(logits[i] / T);
    SamplerConfig sc = {.temperature = T, .top_k = 0, .top_p = 1.0f};
    Rng rng;
    rng_seed(&rng, 2024);
    for (int d = 0; d < draws; d++)
        counts[sampler_sample(logits, n, &sc, &rng, probs, index, NULL)]++;
    double chi2 = 0;
    for (int i = 0; i < n; i++) {
        double e = draws * expect[i] / sum;
        chi2 += (counts[i] - e) * (counts[i] - e) / e;
    }
    printf("  chi-square %.2f (7 dof, bound 24.32)\n", chi2);
    assert_true(chi2 < 24.32);
}

static void logprob_is_of_the_sampled_distribution(void **state) {
    (void)state;
    float logits[V], probs[V], lp;
    int index[V];
    random_logits(logits, V, 9);
    SamplerConfig greedy = {.temperature = 0.0f, .top_k = 0, .top_p = 1.0f};
    Rng rng;
    rng_seed(&rng, 1);
    int t = sampler_sample(logits, V, &greedy, &rng, probs, index, &lp);
    double z = 0;
    for (int i = 0; i < V; i++) z += exp(logits[i]);
    assert_true(fabs(lp - (logits[t] - log(z))) < 1e-5);
}

/* The distribution a config samples from, computed here in double: softmax(logits / T), cut to
 * the top_k most likely, then to the smallest prefix with mass >= top_p, renormalised. dist[i]
 * is 0 for tokens cut. */
static void reference_distribution(const float *logits, int n, const SamplerConfig *c,
                                   double *dist) {
    double z = 0;
    int order[128];
    for (int i = 0; i < n; i++) z += dist[i] = exp((double)logits[i] / c->temperature);
    for (int i = 0; i < n; i++) dist[i] /= z, order[i] = i;
    for (int i = 0; i < n; i++) /* selection sort, descending */
        for (int j = i + 1; j < n; j++)
            if (dist[order[j]] > dist[order[i]]) {
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
    int kept = c->top_k > 0 && c->top_k < n ? c->top_k : n;
    double mass = 0;
    for (int i = 0; i < kept; i++)
        if ((mass += dist[order[i]]) >= c->top_p) kept = i + 1;
    mass = 0;
    for (int i = 0; i < kept; i++) mass += dist[order[i]];
    for (int i = kept; i < n; i++) dist[order[i]] = 0;
    for (int i = 0; i < kept; i++) dist[order[i]] /= mass;
}

/* top_k 2 and 5 over 20 tokens: only the k most likely are ever drawn, in proportion to their
 * renormalised probabilities (chi-square below the p = 0.001 bound for k - 1 dof). */
static void top_k_draws_only_the_k_most_likely(void **state) {
    (void)state;
    const int n = 20, draws = 30000;
    const int ks[2] = {2, 5};
    const double bound[2] = {10.83, 18.47};
    float logits[20], probs[20];
    int index[20];
    random_logits(logits, n, 17);
    for (int i = 0; i < n; i++) logits[i] *= 0.2f; /* flat enough that every token is likely */
    for (int c = 0; c < 2; c++) {
        SamplerConfig sc = {.temperature = 1.0f, .top_k = ks[c], .top_p = 1.0f};
        double dist[20];
        reference_distribution(logits, n, &sc, dist);
        int counts[20] = {0};
        Rng rng;
        rng_seed(&rng, 99);
        for (int d = 0; d < draws; d++) {
            int t = sampler_sample(logits, n, &sc, &rng, probs, index, NULL);
            if (dist[t] == 0)
                fail_msg("top_k %d drew token %d, not among the %d most likely", ks[c], t, ks[c]);
            counts[t]++;
        }
        double chi2 = 0;
        for (int i = 0; i < n; i++)
            if (dist[i] > 0)
                chi2 += (counts[i] - draws * dist[i]) * (counts[i] - draws * dist[i]) /
                        (draws * dist[i]);
        printf("  top_k %d: chi-square %.2f (%d dof, bound %.2f)\n", ks[c], chi2, ks[c] - 1,
               bound[c]);
        assert_true(chi2 < bound[c]);
    }
}

/* The logprob reported for a sampled token is log of its probability in the distribution it was
 * drawn from (softmax(logits / T), cut by top_k and top_p, renormalised), on every path. */
static void logprob_matches_the_renormalised_softmax(void **state) {
    (void)state;
    const SamplerConfig configs[] = {
        {1.0f, 0, 1.0f, 0.0f}, {0.7f, 0, 1.0f, 0.0f}, {1.3f, 5, 1.0f, 0.0f},
        {1.0f, 0, 0.8f, 0.0f}, {0.5f, 3, 0.9f, 0.0f},
    };
    float logits[V], probs[V], lp;
    int index[V];
    for (size_t c = 0; c < sizeof configs / sizeof configs[0]; c++) {
        random_logits(logits, V, 40 + c);
        for (int i = 0; i < V; i++) logits[i] *= 0.3f;
        double dist[V];
        reference_distribution(logits, V, &configs[c], dist);
        Rng rng;
        rng_seed(&rng, 5);
        for (int d = 0; d < 200; d++) {
            int t = sampler_sample(logits, V, &configs[c], &rng, probs, index, &lp);
            assert_true(dist[t] > 0);
            if (fabs(lp - log(dist[t])) > 1e-5)
                fail_msg("config %zu: token %d logprob %.7f, expected %.7f", c, t, lp,
                         log(dist[t]));
        }
    }
}

/* ---- the kept set against a full sort ---- */

/* The sampler's probabilities, computed the same way (softmax(logits / T) in float, summed in
 * double), so the reference below cuts exactly the same numbers. */
static void softmax_as_sampled(const float *logits, int n, float T, float *probs) {
    float maxv = logits[argmax(logits, n)];
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        probs[i] = expf((logits[i] - maxv) / T);
        sum += probs[i];
    }
    for (int i = 0; i < n; i++) probs[i] = (float)(probs[i] / sum);
}

typedef struct {
    float p;
    int id;
} Ranked;

static int by_prob_then_id(const void *a, const void *b) {
    const Ranked *x = a, *y = b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return x->id - y->id;
}

/* The kept set by its definition: every token sorted (probability descending, id ascending),
 * the first top_k, then the shortest prefix of those whose mass (summed in that order, in
 * double) reaches top_p. kept[i] says whether token i is in it; returns its size and mass. */
static int reference_kept(const float *probs, int n, const SamplerConfig *c, Ranked *order,
                          char *kept, double *kept_mass) {
    for (int i = 0; i < n; i++) order[i] = (Ranked){probs[i], i};
    qsort(order, (size_t)n, sizeof *order, by_prob_then_id);
    int k = c->top_k > 0 && c->top_k < n ? c->top_k : n;
    if (c->top_p < 1.0f) {
        double mass = 0.0;
        int keep = 0;
        while (keep < k) {
            mass += order[keep++].p;
            if (mass >= c->top_p) break;
        }
        k = keep;
    }
    memset(kept, 0, (size_t)n);
    *kept_mass = 0.0;
    for (int i = 0; i < k; i++) {
        kept[order[i].id] = 1;
        *kept_mass += order[i].p;
    }
    return k;
}

/* Logits of one of six shapes: continuous, three distinct values, all equal, mostly one value,
 * quantised to halves (ties at every probability), one clear favourite over a flat rest. */
static void shaped_logits(float *logits, int n, int shape, Rng *rng) {
    for (int i = 0; i < n; i++) {
        float z = 3.0f * rng_normal(rng);
        switch (shape) {
            case 0:
                logits[i] = z;
                break;
            case 1:
                logits[i] = (float)rng_below(rng, 3);
                break;
            case 2:
                logits[i] = 0.5f;
                break;
            case 3:
                logits[i] = rng_float(rng) < 0.7f ? 1.0f : z;
                break;
            case 4:
                logits[i] = roundf(2.0f * z) / 2.0f;
                break;
            default:
                logits[i] = i % 97 == 3 ? 12.0f + z : 0.1f * z;
                break;
        }
    }
}

/* Draws `draws` tokens and checks each against the reference kept set: in it, with the
 * logprob of its renormalised probability (which pins the kept mass too). Counts per token. */
static void draw_within(const float *logits, int n, const SamplerConfig *sc, Rng *rng,
                        const float *ref_probs, const char *kept, double kept_mass, int draws,
                        float *probs, int *index, int *counts, const char *what) {
    for (int d = 0; d < draws; d++) {
        float lp;
        int t = sampler_sample(logits, n, sc, rng, probs, index, &lp);
        if (t < 0 || t >= n || !kept[t])
            fail_msg("%s: drew token %d, outside the reference kept set", what, t);
        double want = log(ref_probs[t] / kept_mass);
        if (fabs(lp - want) > 1e-5 * (1.0 + fabs(want)))
            fail_msg("%s: token %d logprob %.8f, the reference's %.8f", what, t, lp, want);
        if (counts) counts[t]++;
    }
}

static SamplerConfig random_cut(int n, Rng *rng) {
    const float temps[3] = {1.0f, 0.7f, 1.5f};
    SamplerConfig sc = {.temperature = temps[rng_below(rng, 3)], .top_k = 0, .top_p = 1.0f};
    int mode = (int)rng_below(rng, 3); /* top_k, top_p, both */
    /* from 2: top_k 1 is greedy, whose logprob is at temperature 1 (tested apart) */
    if (mode != 1) sc.top_k = 2 + (int)rng_below(rng, rng_below(rng, 2) ? 40 : (uint64_t)n + 3);
    if (mode != 0) sc.top_p = 0.02f + 0.97f * rng_float(rng);
    return sc;
}

/* Random vectors of 1 to 70,000 logits in every shape, cut by top_k, top_p or both: every token
 * drawn is in the kept set a full sort gives, with the logprob the reference's mass gives. */
static void kept_set_matches_a_full_sort(void **state) {
    (void)state;
    const int max_n = 70000;
    float *logits = malloc(sizeof(float) * max_n), *probs = malloc(sizeof(float) * max_n);
    float *ref_probs = malloc(sizeof(float) * max_n);
    int *index = malloc(sizeof(int) * max_n);
    Ranked *order = malloc(sizeof(Ranked) * max_n);
    char *kept = malloc((size_t)max_n);
    assert_true(logits && probs && ref_probs && index && order && kept);
    Rng rng;
    rng_seed(&rng, 23);
    for (int trial = 0; trial < 480; trial++) {
        int n = trial < 12 ? (int[]){1, 2, 3, 70000}[trial % 4]
                           : (int)exp(rng_float(&rng) * log((double)max_n));
        if (n < 1) n = 1;
        int shape = trial % 6;
        shaped_logits(logits, n, shape, &rng);
        SamplerConfig sc = random_cut(n, &rng);
        softmax_as_sampled(logits, n, sc.temperature, ref_probs);
        double mass;
        reference_kept(ref_probs, n, &sc, order, kept, &mass);
        char what[96];
        snprintf(what, sizeof what, "trial %d (n %d, shape %d, T %g, top_k %d, top_p %.6f)", trial,
                 n, shape, sc.temperature, sc.top_k, sc.top_p);
        draw_within(logits, n, &sc, &rng, ref_probs, kept, mass, n > 5000 ? 4 : 24, probs, index,
                    NULL, what);
    }
    free(logits), free(probs), free(ref_probs), free(index), free(order), free(kept);
}

/* Over the kept set, sampled frequencies match the renormalised probabilities: chi-square over
 * cells of at least 5 expected draws (the rest pooled), below the Wilson-Hilferty bound at
 * z = 4 (p ~ 3e-5), for random vectors of up to 1,000 logits in every shape. */
static void frequencies_over_the_kept_set(void **state) {
    (void)state;
    enum { MAX_N = 1000, DRAWS = 3000 };
    float logits[MAX_N], probs[MAX_N], ref_probs[MAX_N];
    int index[MAX_N], counts[MAX_N];
    Ranked order[MAX_N];
    char kept[MAX_N];
    Rng rng;
    rng_seed(&rng, 2323);
    for (int trial = 0; trial < 24; trial++) {
        int n = 2 + (int)rng_below(&rng, MAX_N - 1), shape = trial % 6;
        shaped_logits(logits, n, shape, &rng);
        SamplerConfig sc = random_cut(n, &rng);
        if (sc.top_k == 0 || sc.top_k > 60) sc.top_k = 2 + (int)rng_below(&rng, 59);
        softmax_as_sampled(logits, n, sc.temperature, ref_probs);
        double mass;
        int k = reference_kept(ref_probs, n, &sc, order, kept, &mass);
        memset(counts, 0, sizeof counts);
        char what[96];
        snprintf(what, sizeof what, "trial %d (n %d, shape %d, top_k %d, top_p %.6f)", trial, n,
                 shape, sc.top_k, sc.top_p);
        draw_within(logits, n, &sc, &rng, ref_probs, kept, mass, DRAWS, probs, index, counts, what);
        double chi2 = 0.0, pooled_e = 0.0;
        int pooled_o = 0, cells = 0;
        for (int j = 0; j < k; j++) {
            int id = order[j].id;
            double e = DRAWS * ref_probs[id] / mass;
            if (e < 5.0) {
                pooled_e += e, pooled_o += counts[id];
            } else {
                chi2 += (counts[id] - e) * (counts[id] - e) / e, cells++;
            }
        }
        if (pooled_e > 0.0)
            chi2 += (pooled_o - pooled_e) * (pooled_o - pooled_e) / pooled_e, cells++;
        if (cells < 2) continue;
        double dof = cells - 1, h = 2.0 / (9.0 * dof);
        double bound = dof * pow(1.0 - h + 4.0 * sqrt(h), 3);
        if (chi2 > bound)
            fail_msg("%s: chi-square %.2f over %d cells, bound %.2f", what, chi2, cells, bound);
    }
}

/* Ties at the boundary go to the lowest ids, whatever the size: all equal (the cut falls
 * inside one value), a favourite then ties, and 50,000 equal logits cut in half. */
static void boundary_ties_go_to_lower_ids(void **state) {
    (void)state;
    enum { BIG = 50000 };
    float *logits = malloc(sizeof(float) * BIG), *probs = malloc(sizeof(float) * BIG);
    float *ref_probs = malloc(sizeof(float) * BIG);
    int *index = malloc(sizeof(int) * BIG);
    Ranked *order = malloc(sizeof(Ranked) * BIG);
    char *kept = malloc(BIG);
    assert_true(logits && probs && ref_probs && index && order && kept);
    const struct {
        int n, favourite; /* favourite: an id with logit ln 4 (-1: none); the rest 0 */
        int top_k;
        float top_p;
        int expect; /* the kept ids: the favourite and ids 0..expect-1 of the rest */
    } cases[] = {
        {1000, -1, 10, 1.0f, 10},
        {1000, -1, 0, 0.0105f, 11},
        {10, 9, 3, 1.0f, 2},
        {10, 9, 0, 0.5f, 3},
        {10, 9, 4, 0.5f, 3},
        {10, 9, 3, 0.5f, 2},
        {BIG, -1, 0, 0.5f, 25001}, /* 1/50,000 rounds down in float: one tie more */
        {BIG, 777, 25000, 1.0f, 24999},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int n = cases[c].n;
        for (int i = 0; i < n; i++) logits[i] = i == cases[c].favourite ? logf(4.0f) : 0.0f;
        SamplerConfig sc = {.temperature = 1.0f, .top_k = cases[c].top_k, .top_p = cases[c].top_p};
        softmax_as_sampled(logits, n, 1.0f, ref_probs);
        double mass;
        int k = reference_kept(ref_probs, n, &sc, order, kept, &mass);
        /* the reference keeps the favourite and the lowest `expect` of the others: the case is
         * written right (1/n in float may round either way) */
        int fav = cases[c].favourite, others = 0;
        for (int i = 0; i < n; i++) {
            int rank = i - (fav >= 0 && i > fav); /* among the others */
            if (i == fav ? !kept[i] : kept[i] != (rank < cases[c].expect))
                fail_msg("case %zu: the reference %s token %d", c, kept[i] ? "keeps" : "cuts", i);
            others += kept[i] && i != fav;
        }
        assert_int_equal(k, others + (fav >= 0));
        int *counts = calloc((size_t)n, sizeof *counts);
        assert_non_null(counts);
        Rng rng;
        rng_seed(&rng, 31 + c);
        char what[64];
        snprintf(what, sizeof what, "case %zu (n %d, top_k %d, top_p %g)", c, n, sc.top_k,
                 sc.top_p);
        int draws = n > 1000 ? 40 : 2000;
        draw_within(logits, n, &sc, &rng, ref_probs, kept, mass, draws, probs, index, counts, what);
        if (n <= 1000)
            for (int i = 0; i < n; i++)
                if (kept[i] && counts[i] == 0) fail_msg("%s: kept token %d never drawn", what, i);
        free(counts);
    }
    free(logits), free(probs), free(ref_probs), free(index), free(order), free(kept);
}

/* A prefix whose mass equals top_p exactly is enough: probabilities 0.5, 0.25, 0.25 (exact in
 * float) with top_p 0.5 keep the first token alone, with 0.75 the first two. */
static void top_p_reached_exactly_stops_there(void **state) {
    (void)state;
    const float logits[3] = {0.0f, -0.6931472f, -0.6931472f}; /* ln 2 rounded to float */
    float probs[3], ref[3];
    int index[3];
    softmax_as_sampled(logits, 3, 1.0f, ref);
    assert_true(ref[0] == 0.5f && ref[1] == 0.25f && ref[2] == 0.25f);
    const struct {
        float top_p;
        int kept;
    } cases[] = {{0.5f, 1}, {0.75f, 2}, {0.7500001f, 3}};
    for (size_t c = 0; c < 3; c++) {
        SamplerConfig sc = {.temperature = 1.0f, .top_k = 0, .top_p = cases[c].top_p};
        int seen[3] = {0};
        Rng rng;
        rng_seed(&rng, 5 + c);
        for (int d = 0; d < 600; d++)
            seen[sampler_sample(logits, 3, &sc, &rng, probs, index, NULL)]++;
        for (int i = 0; i < 3; i++)
            if ((i < cases[c].kept) != (seen[i] > 0))
                fail_msg("top_p %.7f: token %d drawn %d times", sc.top_p, i, seen[i]);
    }
}

/* Not an assertion: how long one draw takes at GPT-2's vocabulary with top_p 0.9. */
static void timing_at_gpt2_vocabulary(void **state) {
    (void)state;
    enum { N = 50257, REPS = 50 };
    float *logits = malloc(sizeof(float) * N), *probs = malloc(sizeof(float) * N);
    int *index = malloc(sizeof(int) * N);
    assert_true(logits && probs && index);
    random_logits(logits, N, 50257);
    SamplerConfig sc = {.temperature = 1.0f, .top_k = 0, .top_p = 0.9f};
    Rng rng;
    rng_seed(&rng, 1);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int r = 0; r < REPS; r++) sampler_sample(logits, N, &sc, &rng, probs, index, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms =
        ((double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6) / REPS;
    printf("  top_p 0.9 over %d logits: %.3f ms a draw (this build)\n", N, ms);
    free(logits), free(probs), free(index);
}

/* The rule past the context: keep defaults to a quarter of the context (at least 1, as documented),
 * a given keep must lie in 1..block_size, exact keeps the whole context, other rules are refused.
 */
static void context_policy_defaults_and_bounds(void **state) {
    (void)state;
    ContextPolicy p;
    Error err;
    const struct {
        int block_size, keep, kept;
    } ok[] = {{128, 0, 32}, {256, 0, 64}, {7, 0, 1},      {2, 0, 1},
              {1, 0, 1},    {128, 1, 1},  {128, 128, 128}};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        if (context_policy_init(&p, ok[i].block_size, "keep", ok[i].keep, &err))
            fail_msg("keep %d of %d: %s", ok[i].keep, ok[i].block_size, err.message);
        assert_int_equal(p.shift, CONTEXT_KEEP);
        assert_int_equal(context_policy_kept(&p), ok[i].kept);
    }
    assert_int_equal(context_policy_init(&p, 128, "exact", 0, &err), 0);
    assert_int_equal(p.shift, CONTEXT_EXACT);
    assert_int_equal(context_policy_kept(&p), 128);
    assert_int_equal(context_policy_init(&p, 128, "keep", 129, &err), -1);
    assert_non_null(strstr(err.message, "keep 129 is outside 1..128"));
    assert_int_equal(context_policy_init(&p, 128, "keep", -1, &err), -1);
    assert_non_null(strstr(err.message, "outside 1..128"));
    assert_int_equal(context_policy_init(&p, 128, "slide", 0, &err), -1);
    assert_non_null(strstr(err.message, "\"slide\""));
}

static Tokenizer ascii_tokenizer(void) {
    char vocab[96];
    for (int i = 0; i < 95; i++) vocab[i] = (char)(' ' + i);
    vocab[95] = '\0';
    Tokenizer tok;
    Error err;
    assert_int_equal(tokenizer_from_string(&tok, vocab, &err), 0);
    return tok;
}

static GenerationParams params(void) {
    GenerationParams gp = {
        .sampler = {.temperature = 1.0f, .top_k = 0, .top_p = 1.0f}, .seed = 1, .max_tokens = 10};
    return gp;
}

static void bad_values_are_refused(void **state) {
    (void)state;
    Tokenizer tok = ascii_tokenizer();
    Sequence s;
    Error err;
    struct {
        const char *field;
        GenerationParams gp;
    } cases[7];
    for (int i = 0; i < 7; i++) cases[i].gp = params();
    cases[0].field = "temperature", cases[0].gp.sampler.temperature = -1.0f;
    cases[1].field = "temperature", cases[1].gp.sampler.temperature = NAN;
    cases[2].field = "top_k", cases[2].gp.sampler.top_k = -2;
    cases[3].field = "top_p", cases[3].gp.sampler.top_p = 0.0f;
    cases[4].field = "top_p", cases[4].gp.sampler.top_p = 1.5f;
    cases[5].field = "max_tokens", cases[5].gp.max_tokens = -1;
    cases[6].field = "top_k", cases[6].gp.sampler.top_k = -1; /* the boundary itself */
    for (int i = 0; i < 7; i++) {
        assert_int_equal(sequence_init(&s, &tok, ctx16, "hi", 2, &cases[i].gp, &err), -1);
        assert_non_null(strstr(err.message, cases[i].field));
    }
    GenerationParams gp = params();
    gp.n_stop = 1; /* an empty stop string */
    assert_int_equal(sequence_init(&s, &tok, ctx16, "hi", 2, &gp, &err), -1);
    assert_non_null(strstr(err.message, "stop"));
    /* a stop string the model cannot write (no newline in this vocabulary): it could never match */
    gp.n_stop = 2;
    strcpy(gp.stop[0], "END");
    strcpy(gp.stop[1], "\n\n");
    assert_int_equal(sequence_init(&s, &tok, ctx16, "hi", 2, &gp, &err), -1);
    assert_non_null(strstr(err.message, "stop string 1"));
    assert_non_null(strstr(err.message, "vocabulary"));
    tokenizer_free(&tok);
}

static void prompts(void **state) {
    (void)state;
    Tokenizer tok = ascii_tokenizer();
    Sequence s;
    Error err;
    GenerationParams gp = params();
    /* outside the vocabulary: named, with its position in characters */
    assert_int_equal(sequence_init(&s, &tok, ctx16, "caf\xc3\xa9!", 6, &gp, &err), -1);
    assert_non_null(strstr(err.message, "U+00E9"));
    assert_non_null(strstr(err.message, "position 3"));
    /* empty: starts from token 0, as the lecture's script does */
    assert_int_equal(sequence_init(&s, &tok, ctx16, "", 0, &gp, &err), 0);
    assert_int_equal(s.n_prompt, 1);
    assert_int_equal(s.tokens[0], 0);
    sequence_free(&s);
    /* longer than the context: its last block_size tokens are kept, and it says so */
    const char *long_prompt = "abcdefghijklmnopqrstuvwxyz";
    assert_int_equal(sequence_init(&s, &tok, ctx16, long_prompt, 26, &gp, &err), 0);
    assert_int_equal(s.n_prompt, 16);
    assert_int_equal(s.prompt_dropped, 10);
    for (int i = 0; i < 16; i++) assert_int_equal(s.tokens[i], long_prompt[10 + i] - ' ');
    sequence_free(&s);
    tokenizer_free(&tok);
}

/* Feeds the sequence the logits that make `c` certain. */
static void feed(Sequence *s, char c, float *logits, float *probs, int *index) {
    for (int i = 0; i < 95; i++) logits[i] = i == c - ' ' ? 100.0f : 0.0f;
    EngineSegment seg = {.slot = 0, .pos = 0, .n = 1, .logits = logits};
    sequence_advance(s, &seg, probs, index);
}

static void stop_strings_are_held_back_and_cut(void **state) {
    (void)state;
    Tokenizer tok = ascii_tokenizer();
    Sequence s;
    Error err;
    GenerationParams gp = params();
    gp.n_stop = 2;
    strcpy(gp.stop[0], "END");
    strcpy(gp.stop[1], "~~"); /* a second string, never matched */
    assert_int_equal(sequence_init(&s, &tok, ctx16, "x", 1, &gp, &err), 0);
    float logits[95], probs[95];
    int index[95];
    const char *out;
    char streamed[64] = "";
    const char *gen = "abEXEN"; /* "EX" is released when X breaks the match, "EN" held */
    for (const char *c = gen; *c; c++) {
        feed(&s, *c, logits, probs, index);
        size_t n = sequence_take_text(&s, &out);
        strncat(streamed, out, n);
    }
    assert_string_equal(streamed, "abEX");
    feed(&s, 'D', logits, probs, index);
    assert_int_equal(s.finish, FINISH_STOP);
    size_t n = sequence_take_text(&s, &out);
    strncat(streamed, out, n);
    assert_string_equal(streamed, "abEX");
    assert_string_equal(s.text, "abEX");
    sequence_free(&s);
    tokenizer_free(&tok);
}

static void max_tokens_ends_with_length(void **state) {
    (void)state;
    Tokenizer tok = ascii_tokenizer();
    Sequence s;
    Error err;
    GenerationParams gp = params();
    gp.max_tokens = 3;
    assert_int_equal(sequence_init(&s, &tok, ctx16, "x", 1, &gp, &err), 0);
    float logits[95], probs[95];
    int index[95];
    feed(&s, 'a', logits, probs, index);
    feed(&s, 'b', logits, probs, index);
    assert_int_equal(s.finish, FINISH_NONE);
    feed(&s, 'c', logits, probs, index);
    assert_int_equal(s.finish, FINISH_LENGTH);
    assert_string_equal(s.text, "abc");
    sequence_free(&s);
    tokenizer_free(&tok);
}

/* ---- the BPE kind: tokens that hold part of a character, or several ---- */

#define BPE_DIR "tests/reference/fixtures/hf_gpt2_f32" /* 256 bytes, 200 merges, <|endoftext|> */

static int bpe_id(const Tokenizer *tok, const char *bytes) {
    int id = bpe_find(tok->bpe, bytes, strlen(bytes));
    if (id < 0) fail_msg("no token \"%s\"", bytes);
    return id;
}

/* Feeds the sequence the logits that make token id certain; returns the text released. */
static size_t feed_id(Sequence *s, int id, char *streamed) {
    size_t n_vocab = (size_t)s->vocab_size;
    float *logits = malloc(sizeof(float) * n_vocab), *probs = malloc(sizeof(float) * n_vocab);
    int *index = malloc(sizeof(int) * n_vocab);
    for (size_t i = 0; i < n_vocab; i++) logits[i] = (int)i == id ? 100.0f : 0.0f;
    EngineSegment seg = {.slot = 0, .pos = 0, .n = 1, .logits = logits};
    sequence_advance(s, &seg, probs, index);
    const char *out;
    size_t n = sequence_take_text(s, &out);
    strncat(streamed, out, n);
    free(logits);
    free(probs);
    free(index);
    return n;
}

static void bpe_text_is_released_in_whole_characters(void **state) {
    (void)state;
    Tokenizer tok;
    Sequence s;
    Error err;
    if (tokenizer_from_bpe_dir(&tok, BPE_DIR, &err)) fail_msg("%s", err.message);
    GenerationParams gp = params();
    gp.max_tokens = 5;
    assert_int_equal(sequence_init(&s, &tok, ctx16, "", 0, &gp, &err), 0);
    assert_int_equal(s.tokens[0], tok.end_token); /* an empty prompt starts from it */
    char streamed[64] = "";
    feed_id(&s, bpe_id(&tok, "a"), streamed);
    assert_int_equal(feed_id(&s, bpe_id(&tok, "\xc3"), streamed), 0); /* half of "é" waits */
    assert_string_equal(streamed, "a");
    feed_id(&s, bpe_id(&tok, "\xa9"), streamed);
    assert_string_equal(streamed, "a\xc3\xa9");
    feed_id(&s, bpe_id(&tok, "\xe2"), streamed);
    assert_string_equal(streamed, "a\xc3\xa9");
    feed_id(&s, bpe_id(&tok, "x"), streamed); /* breaks the character, and max_tokens ends */
    assert_int_equal(s.finish, FINISH_LENGTH);
    assert_string_equal(streamed, "a\xc3\xa9\xef\xbf\xbdx");
    sequence_free(&s);

    /* cut short by max_tokens inside a character: the bytes become U+FFFD */
    gp.max_tokens = 2;
    assert_int_equal(sequence_init(&s, &tok, ctx16, "hi", 2, &gp, &err), 0);
    streamed[0] = '\0';
    feed_id(&s, bpe_id(&tok, "b"), streamed);
    feed_id(&s, bpe_id(&tok, "\xf0"), streamed);
    assert_string_equal(streamed, "b\xef\xbf\xbd");
    sequence_free(&s);
    tokenizer_free(&tok);
}

static void bpe_stop_strings_and_the_end_token(void **state) {
    (void)state;
    Tokenizer tok;
    Sequence s;
    Error err;
    if (tokenizer_from_bpe_dir(&tok, BPE_DIR, &err)) fail_msg("%s", err.message);
    GenerationParams gp = params();
    gp.n_stop = 1;
    strcpy(gp.stop[0], "xh"); /* ends inside the token "he" */
    assert_int_equal(sequence_init(&s, &tok, ctx16, "hi", 2, &gp, &err), 0);
    char streamed[64] = "";
    feed_id(&s, bpe_id(&tok, "a"), streamed);
    feed_id(&s, bpe_id(&tok, "x"), streamed);
    assert_string_equal(streamed, "a"); /* "x" may begin the stop string */
    feed_id(&s, bpe_id(&tok, "he"), streamed);
    assert_int_equal(s.finish, FINISH_STOP);
    assert_string_equal(streamed, "a");
    assert_string_equal(s.text, "a");
    sequence_free(&s);

    /* <|endoftext|> ends the reply; its text is not shown; waiting bytes become U+FFFD */
    gp.n_stop = 0;
    assert_int_equal(sequence_init(&s, &tok, ctx16, "hi", 2, &gp, &err), 0);
    streamed[0] = '\0';
    feed_id(&s, bpe_id(&tok, "he"), streamed);
    feed_id(&s, bpe_id(&tok, "\xe2\x82" + 1), streamed); /* the lone byte 0x82 */
    feed_id(&s, bpe_id(&tok, "\xc3"), streamed);
    feed_id(&s, tok.end_token, streamed);
    assert_int_equal(s.finish, FINISH_STOP);
    assert_string_equal(streamed, "he\xef\xbf\xbd\xef\xbf\xbd");
    assert_int_equal(s.n_generated, 4);
    sequence_free(&s);
    tokenizer_free(&tok);
}

/* ---- properties over generated cases (issue 26): each case comes from a seeded Rng, and a
 * failure names the seed of its case, so `GPTD_TEST_FILTER=NAME` and the seed reproduce it ---- */

/* The lowest id among the maxima: what greedy must return when logits tie. */
static int first_max(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Logits with ties at the top: 1 to 200 values drawn from 1 to 4 levels, so the maximum is
 * usually shared by several ids (at least two in every case). */
static int tied_logits(float *logits, Rng *rng) {
    int n = 2 + (int)rng_below(rng, 199), levels = 1 + (int)rng_below(rng, 4);
    for (int i = 0; i < n; i++) logits[i] = 0.5f * (float)rng_below(rng, (uint64_t)levels);
    float top = logits[first_max(logits, n)];
    int a = (int)rng_below(rng, (uint64_t)n), b = (int)rng_below(rng, (uint64_t)n);
    logits[a] = logits[b] = top; /* two maxima at least (maybe the same id) */
    return n;
}

/* Greedy equivalences on tied logits: temperature 0, top_k 1 at any temperature and top_p, and a
 * top_p below any probability all give the lowest id among the maxima, every draw; top_k = the
 * number of maxima draws only maxima, and every one of them. */
static void tied_logits_greedy_equivalences(void **state) {
    (void)state;
    float logits[200], probs[200];
    int index[200];
    for (uint64_t seed = 1; seed <= 400; seed++) {
        Rng gen;
        rng_seed(&gen, seed);
        int n = tied_logits(logits, &gen), want = first_max(logits, n), maxima = 0;
        for (int i = 0; i < n; i++) maxima += logits[i] == logits[want];
        const float temps[3] = {0.5f, 1.0f, 2.0f};
        float T = temps[rng_below(&gen, 3)];
        SamplerConfig cases[4] = {
            {.temperature = 0.0f, .top_k = (int)rng_below(&gen, 5), .top_p = 1.0f},
            {.temperature = T, .top_k = 1, .top_p = 1.0f},
            {.temperature = T, .top_k = 1, .top_p = 0.05f + 0.9f * rng_float(&gen)},
            {.temperature = T, .top_k = (int)rng_below(&gen, 3), .top_p = 1e-7f},
        };
        Rng rng;
        rng_seed(&rng, seed * 7);
        for (int c = 0; c < 4; c++)
            for (int d = 0; d < 8; d++) {
                int got = sampler_sample(logits, n, &cases[c], &rng, probs, index, NULL);
                if (got != want)
                    fail_msg("seed %llu, case %d (n %d, %d maxima, T %g, top_k %d, top_p %g): drew "
                             "%d, the lowest id among the maxima is %d",
                             (unsigned long long)seed, c, n, maxima, cases[c].temperature,
                             cases[c].top_k, cases[c].top_p, got, want);
            }
        /* top_k = the number of maxima: exactly the maxima are kept */
        SamplerConfig k = {.temperature = T, .top_k = maxima, .top_p = 1.0f};
        if (maxima < 2 || maxima > 12) continue;
        int seen[200] = {0};
        for (int d = 0; d < 60 * maxima; d++) {
            int got = sampler_sample(logits, n, &k, &rng, probs, index, NULL);
            if (logits[got] != logits[want])
                fail_msg("seed %llu: top_k %d drew %d, not a maximum", (unsigned long long)seed,
                         maxima, got);
            seen[got]++;
        }
        for (int i = 0; i < n; i++)
            if (logits[i] == logits[want] && !seen[i])
                fail_msg("seed %llu: top_k %d never drew the maximum %d", (unsigned long long)seed,
                         maxima, i);
    }
}

/* Ties cut by top_k go to the lowest ids: k equal logits above a flat rest, and top_k k - j,
 * keep ids in ascending order among the tied ones, whatever their positions. */
static void top_k_cuts_ties_by_id(void **state) {
    (void)state;
    float logits[64], probs[64];
    int index[64];
    for (uint64_t seed = 1; seed <= 200; seed++) {
        Rng gen;
        rng_seed(&gen, seed);
        int n = 8 + (int)rng_below(&gen, 57), tied = 2 + (int)rng_below(&gen, 6);
        for (int i = 0; i < n; i++) logits[i] = -1.0f;
        int ids[8], placed = 0;
        while (placed < tied) { /* tied distinct ids at random places */
            int id = (int)rng_below(&gen, (uint64_t)n);
            if (logits[id] == 2.0f) continue;
            logits[id] = 2.0f;
            placed++;
        }
        placed = 0;
        for (int i = 0; i < n; i++)
            if (logits[i] == 2.0f) ids[placed++] = i; /* ascending */
        int k = 1 + (int)rng_below(&gen, (uint64_t)tied - 1);
        SamplerConfig sc = {.temperature = 1.0f, .top_k = k, .top_p = 1.0f};
        Rng rng;
        rng_seed(&rng, seed);
        int seen[64] = {0};
        for (int d = 0; d < 40 * k; d++)
            seen[sampler_sample(logits, n, &sc, &rng, probs, index, NULL)]++;
        for (int j = 0; j < tied; j++)
            if ((j < k) != (seen[ids[j]] > 0))
                fail_msg("seed %llu (n %d, %d tied, top_k %d): tied id %d (rank %d by id) drawn %d "
                         "times",
                         (unsigned long long)seed, n, tied, k, ids[j], j, seen[ids[j]]);
    }
}

/* A request's seed is all 64 bits: seeds 5 and 5 + 2^32 (and 2^53 - 1 and 2^53 - 1 - 2^32) give
 * other text, and the same seed the same text. */
static void seeds_use_all_64_bits(void **state) {
    (void)state;
    Tokenizer tok = ascii_tokenizer();
    const uint64_t pairs[2][2] = {{5, 5 + (1ull << 32)},
                                  {(1ull << 53) - 1, (1ull << 53) - 1 - (1ull << 32)}};
    float logits[95] = {0}, probs[95]; /* uniform: every draw is the RNG's */
    int index[95];
    char text[2][2][41];
    for (int p = 0; p < 2; p++)
        for (int k = 0; k < 2; k++) {
            for (int again = 0; again < 2; again++) {
                GenerationParams gp = params();
                gp.max_tokens = 40;
                gp.seed = pairs[p][k];
                Sequence s;
                Error err;
                assert_int_equal(sequence_init(&s, &tok, ctx16, "x", 1, &gp, &err), 0);
                while (s.finish == FINISH_NONE) {
                    EngineSegment seg = {.slot = 0, .pos = 0, .n = 1, .logits = logits};
                    sequence_advance(&s, &seg, probs, index);
                }
                if (again) assert_string_equal(s.text, text[p][k]);
                snprintf(text[p][k], sizeof text[p][k], "%s", s.text);
                sequence_free(&s);
            }
        }
    for (int p = 0; p < 2; p++)
        if (strcmp(text[p][0], text[p][1]) == 0)
            fail_msg("seeds %llu and %llu give the same text \"%s\"",
                     (unsigned long long)pairs[p][0], (unsigned long long)pairs[p][1], text[p][0]);
    tokenizer_free(&tok);
}

/* The slow reference of a reply with stop strings, one character per token: after token t the
 * text is reply[0..t); it ends at the first t where a stop string occurs in it, cut where the
 * earliest occurrence begins, or at max_tokens. */
static size_t reference_reply(const char *reply, int max_tokens, char stops[][8], int n_stop,
                              size_t *tokens_used, bool *stopped) {
    size_t len = strlen(reply);
    *stopped = false;
    for (size_t t = 1; t <= len; t++) {
        size_t cut = SIZE_MAX;
        for (int i = 0; i < n_stop; i++) {
            size_t sl = strlen(stops[i]);
            for (size_t at = 0; at + sl <= t; at++)
                if (memcmp(reply + at, stops[i], sl) == 0 && at < cut) cut = at;
        }
        if (cut != SIZE_MAX) {
            *tokens_used = t;
            *stopped = true;
            return cut;
        }
        if ((int)t == max_tokens) {
            *tokens_used = t;
            return t;
        }
    }
    *tokens_used = len;
    return len;
}

/* What may be shown of text[0..len) while the reply goes on: all but its longest suffix that is
 * a proper prefix of a stop string (that suffix may still become one). */
static size_t reference_shown(const char *text, size_t len, char stops[][8], int n_stop) {
    size_t held = 0;
    for (int i = 0; i < n_stop; i++)
        for (size_t k = strlen(stops[i]) - 1; k > held; k--)
            if (k <= len && memcmp(text + len - k, stops[i], k) == 0) held = k;
    return len - held;
}

/* Random replies over a four-letter alphabet against random sets of one to four stop strings of
 * one to four letters, a character a token, with max_tokens from 1 to the reply's length: what is
 * streamed after each token is exactly what the reference may show at that point, the whole
 * stream is the reference's reply, and the finish reason is the reference's. */
static void stop_hold_back_matches_a_reference(void **state) {
    (void)state;
    Tokenizer tok = ascii_tokenizer();
    float logits[95], probs[95];
    int index[95];
    const char letters[] = "abcX";
    for (uint64_t seed = 1; seed <= 3000; seed++) {
        Rng gen;
        rng_seed(&gen, seed);
        char reply[24], stops[GENERATION_MAX_STOP][8];
        int len = 1 + (int)rng_below(&gen, 20);
        for (int i = 0; i < len; i++) reply[i] = letters[rng_below(&gen, 4)];
        reply[len] = '\0';
        GenerationParams gp = params();
        gp.n_stop = 1 + (int)rng_below(&gen, GENERATION_MAX_STOP);
        gp.max_tokens = 1 + (int)rng_below(&gen, (uint64_t)len);
        for (int i = 0; i < gp.n_stop; i++) {
            int sl = 1 + (int)rng_below(&gen, 4);
            if (rng_below(&gen, 3) == 0 && sl <= len) { /* often a piece of the reply itself */
                int at = (int)rng_below(&gen, (uint64_t)(len - sl + 1));
                memcpy(stops[i], reply + at, (size_t)sl);
            } else {
                for (int k = 0; k < sl; k++) stops[i][k] = letters[rng_below(&gen, 4)];
            }
            stops[i][sl] = '\0';
            strcpy(gp.stop[i], stops[i]);
        }
        size_t used;
        bool stopped;
        size_t want_len = reference_reply(reply, gp.max_tokens, stops, gp.n_stop, &used, &stopped);
        char what[160];
        snprintf(what, sizeof what,
                 "seed %llu: reply \"%s\", max_tokens %d, stops \"%s\" \"%s\" \"%s\" \"%s\"",
                 (unsigned long long)seed, reply, gp.max_tokens, stops[0],
                 gp.n_stop > 1 ? stops[1] : "", gp.n_stop > 2 ? stops[2] : "",
                 gp.n_stop > 3 ? stops[3] : "");
        Sequence s;
        Error err;
        if (sequence_init(&s, &tok, ctx16, "x", 1, &gp, &err))
            fail_msg("%s: %s", what, err.message);
        char streamed[32] = "";
        size_t n_streamed = 0;
        for (size_t t = 0; t < strlen(reply) && s.finish == FINISH_NONE; t++) {
            feed(&s, reply[t], logits, probs, index);
            const char *out;
            size_t n = sequence_take_text(&s, &out);
            memcpy(streamed + n_streamed, out, n);
            n_streamed += n;
            streamed[n_streamed] = '\0';
            if (s.finish == FINISH_NONE) {
                size_t shown = reference_shown(reply, t + 1, stops, gp.n_stop);
                if (n_streamed != shown || memcmp(streamed, reply, shown) != 0)
                    fail_msg("%s: after %zu tokens \"%s\" was streamed, the reference shows "
                             "\"%.*s\"",
                             what, t + 1, streamed, (int)shown, reply);
            }
        }
        if (s.finish == FINISH_NONE) fail_msg("%s: not finished after the reply", what);
        if (n_streamed != want_len || memcmp(streamed, reply, want_len) != 0)
            fail_msg("%s: streamed \"%s\", the reference's reply is \"%.*s\"", what, streamed,
                     (int)want_len, reply);
        if ((s.finish == FINISH_STOP) != stopped || (size_t)s.n_generated != used)
            fail_msg("%s: finish %d after %d tokens, the reference %s after %zu", what, s.finish,
                     s.n_generated, stopped ? "stop" : "length", used);
        sequence_free(&s);
    }
    tokenizer_free(&tok);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(greedy_equivalences),
        cmocka_unit_test(top_p_keeps_smallest_prefix),
        cmocka_unit_test(frequencies_match_softmax),
        cmocka_unit_test(logprob_is_of_the_sampled_distribution),
        cmocka_unit_test(top_k_draws_only_the_k_most_likely),
        cmocka_unit_test(logprob_matches_the_renormalised_softmax),
        cmocka_unit_test(kept_set_matches_a_full_sort),
        cmocka_unit_test(frequencies_over_the_kept_set),
        cmocka_unit_test(boundary_ties_go_to_lower_ids),
        cmocka_unit_test(top_p_reached_exactly_stops_there),
        cmocka_unit_test(timing_at_gpt2_vocabulary),
        cmocka_unit_test(bad_values_are_refused),
        cmocka_unit_test(prompts),
        cmocka_unit_test(stop_strings_are_held_back_and_cut),
        cmocka_unit_test(max_tokens_ends_with_length),
        cmocka_unit_test(context_policy_defaults_and_bounds),
        cmocka_unit_test(bpe_text_is_released_in_whole_characters),
        cmocka_unit_test(bpe_stop_strings_and_the_end_token),
        cmocka_unit_test(tied_logits_greedy_equivalences),
        cmocka_unit_test(top_k_cuts_ties_by_id),
        cmocka_unit_test(seeds_use_all_64_bits),
        cmocka_unit_test(stop_hold_back_matches_a_reference),
    };
    apply_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
