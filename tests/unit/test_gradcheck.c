/* Finite differences against the analytic backward pass, on a few parameters of every kind
 * (embeddings, LayerNorm, q/k/v with bias, projections, MLP, head), for every activation, with
 * and without dropout; and the dropout masks themselves. */
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
#include "../../train/attention.h"
#include "../../train/gpt_backprop.h"
#include "../../train/train_layers.h"

/* The loss with dropout masks drawn from the same seed every time: the same masks, so finite
 * differences see the function the backward pass differentiates. */
static float loss_at(TrainState *ts, const int *x, const int *y, int B, int T, float dropout) {
    Error err;
    float loss;
    Rng masks;
    rng_seed(&masks, 4242);
    assert_int_equal(gpt_forward(ts, x, y, B, T, dropout, &masks, &loss, &err), 0);
    return loss;
}

static void check(Activation act, bool tied, float dropout) {
    GPTConfig c = {.vocab_size = 65,
                   .n_layer = 2,
                   .n_head = 2,
                   .n_embd = 16,
                   .block_size = 8,
                   .activation = act,
                   .qkv_bias = true,
                   .tied_head = tied};
    GPT m;
    Error err;
    assert_int_equal(gpt_init(&m, &c, &err), 0);
    TrainState ts;
    train_state_init(&ts, &m);
    assert_int_equal(gpt_alloc_grads(&ts, &err), 0);
    Rng rng;
    rng_seed(&rng, 99);
    gpt_init_weights(&m, &rng);
    for (size_t i = 0; i < m.n_params; i++) m.param_memory[i] += 0.2f * rng_normal(&rng);
    int B = 2, T = 8, x[16], y[16];
    for (int i = 0; i < B * T; i++)
        x[i] = (int)rng_below(&rng, 65), y[i] = (int)rng_below(&rng, 65);
    loss_at(&ts, x, y, B, T, dropout);
    gpt_zero_grads(&ts);
    gpt_backward(&ts);
    /* relu has a kink at 0: a step of 1e-2 crosses it for some units, so it gets a smaller step
     * and, for float32 round-off in the loss, a looser absolute tolerance. */
    const float eps = act == ACT_RELU ? 1e-3f : 1e-2f, abs_tol = act == ACT_RELU ? 1e-3f : 2e-4f;
    int checked = 0;
    double worst = 0;
    for (int t = 0; t < m.n_tensors; t++) {
        const TensorSpec *s = &m.tensors[t];
        /* the largest-gradient element and two random ones */
        size_t pick[3] = {0, rng_below(&rng, s->size), rng_below(&rng, s->size)};
        for (size_t i = 1; i < s->size; i++)
            if (fabsf(ts.grad_memory[s->offset + i]) > fabsf(ts.grad_memory[s->offset + pick[0]]))
                pick[0] = i;
        for (int k = 0; k < 3; k++) {
            float *w = m.param_memory + s->offset + pick[k];
            float g = ts.grad_memory[s->offset + pick[k]], saved = *w;
            *w = saved + eps;
            float up = loss_at(&ts, x, y, B, T, dropout);
            *w = saved - eps;
            float down = loss_at(&ts, x, y, B, T, dropout);
            *w = saved;
            float fd = (up - down) / (2 * eps);
            float diff = fabsf(fd - g);
            if (diff > abs_tol + 2e-2f * fabsf(g))
                fail_msg("%s[%zu]: finite difference %g, backward %g", s->name, pick[k], fd, g);
            worst = fmax(worst, diff);
            checked++;
        }
    }
    printf("  %s%s, dropout %.1f: %d elements in %d tensors, max |fd - grad| %.2e\n",
           activation_name(act), tied ? " tied" : "", dropout, checked, m.n_tensors, worst);
    train_state_free(&ts);
    gpt_free(&m);
}

static void relu_untied(void **state) {
    (void)state;
    check(ACT_RELU, false, 0.0f);
}
static void gelu_tied(void **state) {
    (void)state;
    check(ACT_GELU, true, 0.0f);
}
/* The exact (erf) form that nanoGPT's models use. */
static void gelu_erf_untied(void **state) {
    (void)state;
    check(ACT_GELU_ERF, false, 0.0f);
}
/* The trainer's default dropout: the backward pass must apply the forward's masks. */
static void gelu_dropout(void **state) {
    (void)state;
    check(ACT_GELU, false, 0.2f);
}

/* Inverted dropout, as the lecture's: every mask value is 0 or exactly 1/(1-p), about p of them 0,
 * so an activation keeps its expectation and the evaluation pass (no dropout) sees activations
 * of the scale training saw. Finite differences cannot tell (the backward pass follows whatever
 * mask the forward drew), so the masks are checked here: the residual branches' (layers.c) and
 * the attention probabilities' (attention.c). */
static void dropout_masks_keep_the_expectation(void **state) {
    (void)state;
    const float p = 0.2f, kept = 1.0f / (1.0f - p);
    const long n = 100000;
    float *inp = malloc(n * sizeof(float)), *out = malloc(n * sizeof(float)),
          *mask = malloc(n * sizeof(float));
    for (long i = 0; i < n; i++) inp[i] = 1.0f + (float)(i % 7);
    Rng rng;
    rng_seed(&rng, 7);
    dropout_forward(out, mask, inp, n, p, &rng);
    long dropped = 0;
    for (long i = 0; i < n; i++) {
        if (mask[i] != 0.0f && mask[i] != kept)
            fail_msg("mask[%ld] = %g, not 0 or %g", i, mask[i], kept);
        assert_true(out[i] == inp[i] * mask[i]);
        dropped += mask[i] == 0.0f;
    }
    printf("  residual dropout %.1f: %ld of %ld dropped\n", p, dropped, n);
    assert_true(dropped > 0.19 * n && dropped < 0.21 * n);
    free(inp);
    free(out);
    free(mask);

    enum { T = 64, HS = 4 };
    AttentionShape s = {.B = 1,
                        .Tq = T,
                        .Tk = T,
                        .n_head = 1,
                        .head_size = HS,
                        .causal = true,
                        .q_stride = HS,
                        .kv_stride = HS,
                        .out_stride = HS};
    float *qkv = malloc(3 * T * HS * sizeof(float)), *o = malloc(T * HS * sizeof(float));
    float *att = malloc(T * T * sizeof(float)), *att_mask = malloc(T * T * sizeof(float));
    float *scratch = malloc(attention_scratch_floats(&s) * sizeof(float));
    for (int i = 0; i < 3 * T * HS; i++) qkv[i] = rng_normal(&rng);
    attention_forward(o, att, att_mask, scratch, qkv, qkv + T * HS, qkv + 2 * T * HS, &s, p, &rng);
    long visible = 0;
    dropped = 0;
    for (int i = 0; i < T; i++)
        for (int j = 0; j < T; j++) {
            float m = att_mask[i * T + j];
            if (j > i) continue; /* a future key: its probability is 0 whatever its mask */
            if (m != 0.0f && m != kept)
                fail_msg("attention mask (%d, %d) = %g, not 0 or %g", i, j, m, kept);
            visible++;
            dropped += m == 0.0f;
        }
    printf("  attention dropout %.1f: %ld of %ld dropped\n", p, dropped, visible);
    assert_true(dropped > 0.17 * visible && dropped < 0.23 * visible);
    free(qkv);
    free(o);
    free(att);
    free(att_mask);
    free(scratch);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(relu_untied), cmocka_unit_test(gelu_tied),
                                       cmocka_unit_test(gelu_erf_untied),
                                       cmocka_unit_test(gelu_dropout),
                                       cmocka_unit_test(dropout_masks_keep_the_expectation)};
    apply_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
