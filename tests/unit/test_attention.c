/* The lecture's facts about attention, as tests: the decoder never lets the future talk to
 * the past, an encoder does; sequences in a batch do not communicate; cross-attention has the
 * right shapes and numbers; scaling by 1/sqrt(head_size) keeps score variance near 1. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_filter.h"

#include "../../model/gpt.h"
#include "../../model/safetensors.h"
#include "../../train/attention.h"
#include "../../train/gpt_backprop.h"

static GPT tiny_model(void) {
    GPTConfig c = {.vocab_size = 65,
                   .n_layer = 2,
                   .n_head = 4,
                   .n_embd = 32,
                   .block_size = 16,
                   .activation = ACT_GELU};
    GPT m;
    Error err;
    assert_int_equal(gpt_init(&m, &c, &err), 0);
    Rng rng;
    rng_seed(&rng, 7);
    gpt_init_weights(&m, &rng);
    /* Larger weights than GPT-2's init so every position matters visibly. */
    for (size_t i = 0; i < m.n_params; i++) m.param_memory[i] += 0.1f * rng_normal(&rng);
    return m;
}

static void random_tokens(int *t, int n, uint64_t seed) {
    Rng rng;
    rng_seed(&rng, seed);
    for (int i = 0; i < n; i++) t[i] = (int)rng_below(&rng, 65);
}

/* Changing token j leaves every output before j bit-identical in the decoder. */
static void decoder_future_does_not_reach_past(void **state) {
    (void)state;
    GPT m = tiny_model();
    TrainState ts;
    train_state_init(&ts, &m);
    Error err;
    int T = 16, V = 65, a[16], b[16];
    random_tokens(a, T, 1);
    float *before = malloc(sizeof(float) * T * V);
    for (int j = 1; j < T; j += 5) {
        memcpy(b, a, sizeof a);
        b[j] = (a[j] + 1) % V;
        assert_int_equal(gpt_forward(&ts, a, NULL, 1, T, 0.0f, NULL, NULL, &err), 0);
        memcpy(before, ts.acts.logits, sizeof(float) * T * V);
        assert_int_equal(gpt_forward(&ts, b, NULL, 1, T, 0.0f, NULL, NULL, &err), 0);
        assert_memory_equal(before, ts.acts.logits, sizeof(float) * j * V);
        assert_memory_not_equal(before + j * V, ts.acts.logits + j * V, sizeof(float) * V);
    }
    free(before);
    train_state_free(&ts);
    gpt_free(&m);
}

/* Random q, k, v for one sequence of T rows with C channels (row stride C). */
static float *randn(size_t n, uint64_t seed) {
    Rng rng;
    rng_seed(&rng, seed);
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = rng_normal(&rng);
    return x;
}

static AttentionShape shape(int B, int Tq, int Tk, int NH, int hs, bool causal) {
    AttentionShape s = {.B = B,
                        .Tq = Tq,
                        .Tk = Tk,
                        .n_head = NH,
                        .head_size = hs,
                        .causal = causal,
                        .q_stride = NH * hs,
                        .kv_stride = NH * hs,
                        .out_stride = NH * hs};
    return s;
}

/* Without the mask (encoder) a change at position j does reach the outputs before j. */
static void encoder_sees_the_future(void **state) {
    (void)state;
    int T = 8, NH = 2, hs = 8, C = NH * hs, j = 5;
    float *q = randn(T * C, 1), *k = randn(T * C, 2), *v = randn(T * C, 3);
    float out1[8 * 16], out2[8 * 16], att[2 * 8 * 8];
    for (int causal = 0; causal < 2; causal++) {
        AttentionShape s = shape(1, T, T, NH, hs, causal);
        float *scratch = malloc(attention_scratch_floats(&s) * sizeof(float));
        attention_forward(out1, att, NULL, scratch, q, k, v, &s, 0.0f, NULL);
        for (int c = 0; c < C; c++) k[j * C + c] += 1.0f, v[j * C + c] += 1.0f;
        attention_forward(out2, att, NULL, scratch, q, k, v, &s, 0.0f, NULL);
        for (int c = 0; c < C; c++) k[j * C + c] -= 1.0f, v[j * C + c] -= 1.0f;
        if (causal)
            assert_memory_equal(out1, out2, sizeof(float) * j * C);
        else
            for (int t = 0; t < j; t++)
                assert_memory_not_equal(out1 + t * C, out2 + t * C, sizeof(float) * C);
        free(scratch);
    }
    free(q);
    free(k);
    free(v);
}

/* Largest |a - b| over n floats. */
static float max_abs_diff(const float *a, const float *b, size_t n) {
    float d = 0.0f;
    for (size_t i = 0; i < n; i++) d = fmaxf(d, fabsf(a[i] - b[i]));
    return d;
}

/* Sequences in a batch do not communicate: a sequence's logits are the same alone or among
 * others, and changing its neighbours does not move them. The trainer's products go through
 * OpenBLAS, whose summation order may depend on the row count (it does on Zen 5), so equality
 * holds within rounding, not bitwise; the engine's own products are bitwise batch-invariant
 * (test_engine). A leak between sequences moves logits by far more than the tolerance. */
static void batch_does_not_communicate(void **state) {
    (void)state;
    GPT m = tiny_model();
    TrainState ts;
    train_state_init(&ts, &m);
    Error err;
    int T = 16, V = 65, B = 4, tokens[4 * 16], other[4 * 16];
    const float tol = 1e-4f;
    random_tokens(tokens, B * T, 3);
    float *alone = malloc(sizeof(float) * T * V), *batch = malloc(sizeof(float) * T * V);
    for (int b = 0; b < B; b++) {
        assert_int_equal(gpt_forward(&ts, tokens + b * T, NULL, 1, T, 0.0f, NULL, NULL, &err), 0);
        memcpy(alone, ts.acts.logits, sizeof(float) * T * V);
        assert_int_equal(gpt_forward(&ts, tokens, NULL, B, T, 0.0f, NULL, NULL, &err), 0);
        memcpy(batch, ts.acts.logits + (size_t)b * T * V, sizeof(float) * T * V);
        float d = max_abs_diff(alone, batch, (size_t)T * V);
        if (d > tol)
            fail_msg("sequence %d alone vs in a batch of %d: logits differ by %g", b, B, d);
        /* Same rows, other neighbours: new tokens everywhere but in sequence b. */
        random_tokens(other, B * T, 100 + (uint64_t)b);
        memcpy(other + b * T, tokens + b * T, sizeof(int) * T);
        assert_int_equal(gpt_forward(&ts, other, NULL, B, T, 0.0f, NULL, NULL, &err), 0);
        d = max_abs_diff(batch, ts.acts.logits + (size_t)b * T * V, (size_t)T * V);
        if (d > tol) fail_msg("sequence %d moved by %g when its neighbours changed", b, d);
    }
    free(alone);
    free(batch);
    train_state_free(&ts);
    gpt_free(&m);
}

static const float *fixture(const SafeTensors *st, const char *name) {
    const StTensor *t = safetensors_find(st, name);
    if (!t) fail_msg("no tensor %s", name);
    return t->data;
}

static void assert_close(const float *a, const float *b, size_t n, float tol, const char *what) {
    for (size_t i = 0; i < n; i++)
        if (fabsf(a[i] - b[i]) > tol) fail_msg("%s[%zu]: %g vs %g", what, i, a[i], b[i]);
}

/* Cross-attention (Tq = 5 queries against Tk = 7 keys), causal and full self-attention, and the
 * cross-attention gradients, against the naive float64 reference of make_fixtures.py. */
static void matches_naive_reference(void **state) {
    (void)state;
    SafeTensors st;
    Error err;
    if (safetensors_open(&st, "tests/reference/fixtures/attention_cross.safetensors", &err))
        fail_msg("%s", err.message);
    int B = 2, NH = 2, hs = 8, C = 16, Tq = 5, Tk = 7, T = 6;
    float out[2 * 7 * 16], att[2 * 2 * 7 * 7];
    AttentionShape cross = shape(B, Tq, Tk, NH, hs, false);
    AttentionShape largest = shape(B, Tk, Tk, NH, hs, false); /* for every shape below */
    float *scratch = malloc(attention_scratch_floats(&largest) * sizeof(float));
    attention_forward(out, att, NULL, scratch, fixture(&st, "q"), fixture(&st, "k"),
                      fixture(&st, "v"), &cross, 0.0f, NULL);
    assert_close(out, fixture(&st, "out_cross"), (size_t)B * Tq * C, 1e-5f, "out_cross");

    float dq[2 * 5 * 16] = {0}, dk[2 * 7 * 16] = {0}, dv[2 * 7 * 16] = {0};
    attention_backward(dq, dk, dv, scratch, fixture(&st, "dout_cross"), att, NULL,
                       fixture(&st, "q"), fixture(&st, "k"), fixture(&st, "v"), &cross);
    assert_close(dq, fixture(&st, "dq_cross"), (size_t)B * Tq * C, 1e-5f, "dq");
    assert_close(dk, fixture(&st, "dk_cross"), (size_t)B * Tk * C, 1e-5f, "dk");
    assert_close(dv, fixture(&st, "dv_cross"), (size_t)B * Tk * C, 1e-5f, "dv");

    const char *names[2] = {"out_full", "out_causal"};
    for (int causal = 0; causal < 2; causal++) {
        AttentionShape s = shape(B, T, T, NH, hs, causal);
        attention_forward(out, att, NULL, scratch, fixture(&st, "qs"), fixture(&st, "ks"),
                          fixture(&st, "vs"), &s, 0.0f, NULL);
        assert_close(out, fixture(&st, names[causal]), (size_t)B * T * C, 1e-5f, names[causal]);
    }
    free(scratch);
    safetensors_close(&st);
}

/* Causal attention over many rows (the products run in blocks of rows, each over the keys its
 * queries see, and for keys over the queries that see them): forward and gradients against a
 * float64 loop over the visible keys alone, self-attention (T = 40) and the last Tq = 21 queries
 * of Tk = 45 keys. A key left out, or one too many, moves a result far past the tolerance. */
static void causal_blocks_match_the_visible_keys(void **state) {
    (void)state;
    int shapes[2][2] = {{40, 40}, {21, 45}}, NH = 2, hs = 8, C = NH * hs;
    for (int si = 0; si < 2; si++) {
        int Tq = shapes[si][0], Tk = shapes[si][1];
        AttentionShape s = shape(1, Tq, Tk, NH, hs, true);
        float *q = randn((size_t)Tq * C, 30), *k = randn((size_t)Tk * C, 31);
        float *v = randn((size_t)Tk * C, 32), *dout = randn((size_t)Tq * C, 33);
        float *out = malloc(sizeof(float) * Tq * C), *att = malloc(sizeof(float) * NH * Tq * Tk);
        float *dq = calloc((size_t)Tq * C, sizeof(float)),
              *dk = calloc((size_t)Tk * C, sizeof(float));
        float *dv = calloc((size_t)Tk * C, sizeof(float));
        float *scratch = malloc(attention_scratch_floats(&s) * sizeof(float));
        /* NaN wherever nothing was written: a score or gradient read but not computed shows */
        for (size_t i = 0; i < attention_scratch_floats(&s); i++) scratch[i] = NAN;
        for (int i = 0; i < NH * Tq * Tk; i++) att[i] = NAN;
        attention_forward(out, att, NULL, scratch, q, k, v, &s, 0.0f, NULL);
        attention_backward(dq, dk, dv, scratch, dout, att, NULL, q, k, v, &s);
        double *p = malloc(sizeof(double) * Tk), *dp = malloc(sizeof(double) * Tk);
        double *rq = calloc((size_t)Tq * C, sizeof(double)),
               *rk = calloc((size_t)Tk * C, sizeof(double));
        double *rv = calloc((size_t)Tk * C, sizeof(double));
        for (int h = 0; h < NH; h++)
            for (int i = 0; i < Tq; i++) {
                int n = Tk - Tq + i + 1, o = h * hs;
                double maxs = -INFINITY, sum = 0, dot = 0;
                for (int j = 0; j < n; j++) {
                    p[j] = 0;
                    for (int d = 0; d < hs; d++)
                        p[j] += (double)q[i * C + o + d] * k[j * C + o + d];
                    p[j] /= sqrt(hs);
                    maxs = fmax(maxs, p[j]);
                }
                for (int j = 0; j < n; j++) sum += p[j] = exp(p[j] - maxs);
                for (int d = 0; d < hs; d++) {
                    double y = 0;
                    for (int j = 0; j < n; j++) y += p[j] / sum * v[j * C + o + d];
                    if (fabs(y - out[i * C + o + d]) > 1e-5)
                        fail_msg("T %d/%d: out[%d][%d] = %g, want %g", Tq, Tk, i, o + d,
                                 out[i * C + o + d], y);
                }
                for (int j = 0; j < n; j++) {
                    p[j] /= sum;
                    dp[j] = 0;
                    for (int d = 0; d < hs; d++) {
                        dp[j] += (double)dout[i * C + o + d] * v[j * C + o + d];
                        rv[j * C + o + d] += p[j] * dout[i * C + o + d];
                    }
                    dot += p[j] * dp[j];
                }
                for (int j = 0; j < n; j++) {
                    double ds = p[j] * (dp[j] - dot) / sqrt(hs);
                    for (int d = 0; d < hs; d++) {
                        rq[i * C + o + d] += ds * k[j * C + o + d];
                        rk[j * C + o + d] += ds * q[i * C + o + d];
                    }
                }
            }
        for (int i = 0; i < Tq * C; i++)
            if (fabs(rq[i] - dq[i]) > 1e-5)
                fail_msg("T %d/%d: dq[%d] = %g, want %g", Tq, Tk, i, dq[i], rq[i]);
        for (int i = 0; i < Tk * C; i++) {
            if (fabs(rk[i] - dk[i]) > 1e-5)
                fail_msg("T %d/%d: dk[%d] = %g, want %g", Tq, Tk, i, dk[i], rk[i]);
            if (fabs(rv[i] - dv[i]) > 1e-5)
                fail_msg("T %d/%d: dv[%d] = %g, want %g", Tq, Tk, i, dv[i], rv[i]);
        }
        float *fs[] = {q, k, v, dout, out, att, dq, dk, dv, scratch};
        for (int i = 0; i < 10; i++) free(fs[i]);
        free(p);
        free(dp);
        free(rq);
        free(rk);
        free(rv);
    }
}

/* For unit-Gaussian q and k, q.k has variance head_size; 1/sqrt(head_size) brings it to 1, so
 * the softmax stays diffuse at initialisation instead of collapsing onto one key. */
static void scaling_keeps_variance_near_one(void **state) {
    (void)state;
    int sizes[] = {16, 64, 256}, T = 128;
    float *scores = malloc(sizeof(float) * T * T);
    AttentionShape widest = shape(1, T, T, 1, sizes[2], false);
    float *scratch = malloc(attention_scratch_floats(&widest) * sizeof(float));
    for (int i = 0; i < 3; i++) {
        int hs = sizes[i];
        float *q = randn((size_t)T * hs, 10 + i), *k = randn((size_t)T * hs, 20 + i);
        for (int scaled = 0; scaled < 2; scaled++) {
            AttentionShape s = shape(1, T, T, 1, hs, false);
            s.scale = scaled ? 0.0f : 1.0f;
            attention_scores(scores, scratch, q, k, &s, 0, 0);
            double sum = 0, sum2 = 0;
            for (int j = 0; j < T * T; j++) sum += scores[j], sum2 += (double)scores[j] * scores[j];
            double mean = sum / (T * T), var = sum2 / (T * T) - mean * mean;
            double want = scaled ? 1.0 : hs;
            printf("  head_size %3d %s: variance %.3f (expect %.0f)\n", hs,
                   scaled ? "scaled  " : "unscaled", var, want);
            assert_true(fabs(var / want - 1.0) < 0.10);
        }
        free(q);
        free(k);
    }
    free(scratch);
    free(scores);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(decoder_future_does_not_reach_past),
        cmocka_unit_test(encoder_sees_the_future),
        cmocka_unit_test(batch_does_not_communicate),
        cmocka_unit_test(matches_naive_reference),
        cmocka_unit_test(causal_blocks_match_the_visible_keys),
        cmocka_unit_test(scaling_keeps_variance_near_one),
    };
    apply_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
