/* The logit adjustments (penalties, logit_bias), min_p, and the top log-probabilities, each
 * against its definition computed here: exact values where the definition is arithmetic, the
 * kept set where it is a cut. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "test_filter.h"

#include "../../common/rng.h"
#include "../../model/logit_adjust.h"
#include "../../model/sampler.h"

#define V 8

static void penalties_and_bias_follow_their_definitions(void **state) {
    (void)state;
    const float raw[V] = {2.0f, -1.0f, 0.5f, -3.0f, 1.0f, 0.0f, 4.0f, -0.5f};
    const int count[V] = {0, 2, 1, 0, 3, 0, 0, 1};    /* generated so far */
    const uint8_t seen[V] = {1, 1, 1, 0, 1, 0, 0, 1}; /* prompt or reply */
    LogitAdjust a = {.repetition = 2.0f, .presence = 0.25f, .frequency = 0.5f, .n_bias = 2};
    a.bias[0] = (LogitBias){3, 10.0f};
    a.bias[1] = (LogitBias){6, -100.0f};
    float x[V];
    memcpy(x, raw, sizeof x);
    logit_adjust_apply(&a, x, V, count, seen);
    for (int t = 0; t < V; t++) {
        float want = raw[t];
        if (seen[t]) want = want > 0 ? want / 2.0f : want * 2.0f;
        if (count[t] > 0) want -= 0.5f * (float)count[t] + 0.25f;
        if (t == 3) want += 10.0f;
        if (t == 6) want -= 100.0f;
        if (x[t] != want) fail_msg("token %d: %g, want %g", t, x[t], want);
    }
    /* off: nothing changes, and no counts are needed */
    LogitAdjust off = {.repetition = 1.0f};
    assert_false(logit_adjust_active(&off));
    assert_false(logit_adjust_needs_counts(&off));
    memcpy(x, raw, sizeof x);
    logit_adjust_apply(&off, x, V, NULL, NULL);
    assert_memory_equal(x, raw, sizeof x);
}

static void adjustments_are_bounded(void **state) {
    (void)state;
    Error err;
    LogitAdjust a = {.repetition = 10.0f, .presence = -2.0f, .frequency = 2.0f, .n_bias = 1};
    a.bias[0] = (LogitBias){V - 1, -100.0f};
    assert_int_equal(logit_adjust_validate(&a, V, &err), 0); /* every bound itself */
    LogitAdjust bad[] = {a, a, a, a, a};
    bad[0].repetition = 10.01f;
    bad[1].presence = -2.01f;
    bad[2].frequency = 2.01f;
    bad[3].bias[0].token = V;
    bad[4].bias[0].bias = 100.01f;
    const char *names[] = {"repetition_penalty", "presence_penalty", "frequency_penalty",
                           "outside the vocabulary", "logit_bias"};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(logit_adjust_validate(&bad[i], V, &err), -1);
        if (!strstr(err.message, names[i])) fail_msg("'%s' lacks '%s'", err.message, names[i]);
    }
}

/* Most likely first, equal logits by ascending id, clipped to the vocabulary; the values are the
 * log-softmax. */
static void top_logprobs_are_ordered_with_ties_by_id(void **state) {
    (void)state;
    const float x[V] = {1.0f, 3.0f, 1.0f, 3.0f, -2.0f, 1.0f, 0.0f, 3.0f};
    int ids[V + 2];
    float lp[V + 2];
    assert_int_equal(sampler_top_logprobs(x, V, 5, ids, lp), 5);
    const int want[5] = {1, 3, 7, 0, 2};
    assert_memory_equal(ids, want, sizeof want);
    double sum = 0;
    for (int t = 0; t < V; t++) sum += exp((double)x[t]);
    for (int i = 0; i < 5; i++) assert_float_equal(lp[i], x[ids[i]] - log(sum), 1e-6);
    assert_int_equal(sampler_top_logprobs(x, V, V + 2, ids, lp), V);
    assert_int_equal(ids[V - 1], 4);
}

/* min_p keeps exactly the tokens at least min_p times as likely as the likeliest (after
 * temperature): over many draws every kept token appears and no other does. */
static void min_p_keeps_exactly_the_tokens_above_its_floor(void **state) {
    (void)state;
    const float x[V] = {2.0f, 1.0f, 0.2f, -1.0f, 1.9f, -3.0f, 0.9f, 0.0f};
    const float cases[][2] = {{0.3f, 1.0f}, {0.5f, 0.7f}, {0.05f, 1.5f}, {1.0f, 1.0f}};
    float probs[V];
    int index[V];
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        float min_p = cases[c][0], T = cases[c][1];
        SamplerConfig sc = {.temperature = T, .top_k = 0, .top_p = 1.0f, .min_p = min_p};
        bool kept[V];
        for (int t = 0; t < V; t++) /* p_t / p_max = exp((x_t - x_max) / T) */
            kept[t] = exp((x[t] - 2.0f) / T) >= min_p;
        int hits[V] = {0};
        Rng rng;
        rng_seed(&rng, 7 + c);
        for (int i = 0; i < 20000; i++) {
            float lp;
            hits[sampler_sample(x, V, &sc, &rng, probs, index, &lp)]++;
        }
        for (int t = 0; t < V; t++)
            if (kept[t] != (hits[t] > 0))
                fail_msg("min_p %g, T %g: token %d drawn %d times, kept %d", min_p, T, t, hits[t],
                         kept[t]);
    }
}

int main(void) {
    apply_test_filter();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(penalties_and_bias_follow_their_definitions),
        cmocka_unit_test(adjustments_are_bounded),
        cmocka_unit_test(top_logprobs_are_ordered_with_ties_by_id),
        cmocka_unit_test(min_p_keeps_exactly_the_tokens_above_its_floor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
