/* Finite differences against the analytic backward pass, on a few parameters of every kind
 * (embeddings, LayerNorm, q/k/v with bias, projections, MLP, head), for both activations. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../model/gpt.h"

/* The loss with dropout masks drawn from the same seed every time: the same masks, so finite
 * differences see the function the backward pass differentiates. */
static float loss_at(GPT *m, const int *x, const int *y, int B, int T, float dropout) {
    Error err;
    float loss;
    Rng masks;
    rng_seed(&masks, 4242);
    assert_int_equal(gpt_forward(m, x, y, B, T, dropout, &masks, &loss, &err), 0);
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
    assert_int_equal(gpt_alloc_grads(&m, &err), 0);
    Rng rng;
    rng_seed(&rng, 99);
    gpt_init_weights(&m, &rng);
    for (size_t i = 0; i < m.n_params; i++) m.param_memory[i] += 0.2f * rng_normal(&rng);
    int B = 2, T = 8, x[16], y[16];
    for (int i = 0; i < B * T; i++)
        x[i] = (int)rng_below(&rng, 65), y[i] = (int)rng_below(&rng, 65);
    loss_at(&m, x, y, B, T, dropout);
    gpt_zero_grads(&m);
    gpt_backward(&m);
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
            if (fabsf(m.grad_memory[s->offset + i]) > fabsf(m.grad_memory[s->offset + pick[0]]))
                pick[0] = i;
        for (int k = 0; k < 3; k++) {
            float *w = m.param_memory + s->offset + pick[k];
            float g = m.grad_memory[s->offset + pick[k]], saved = *w;
            *w = saved + eps;
            float up = loss_at(&m, x, y, B, T, dropout);
            *w = saved - eps;
            float down = loss_at(&m, x, y, B, T, dropout);
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
           act == ACT_GELU ? "gelu" : "relu", tied ? " tied" : "", dropout, checked, m.n_tensors,
           worst);
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
/* The trainer's default dropout: the backward pass must apply the forward's masks. */
static void gelu_dropout(void **state) {
    (void)state;
    check(ACT_GELU, false, 0.2f);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(relu_untied), cmocka_unit_test(gelu_tied),
                                       cmocka_unit_test(gelu_dropout)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
