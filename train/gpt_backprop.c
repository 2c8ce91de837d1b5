/* The training pass of the GPT: forward over a batch (B, T) keeping every activation, then
 * backward into the gradients. Matrix products on OpenBLAS (matmul.c), attention in
 * attention.c. Inference does not come here: it uses the engine (engine.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/thread_pool.h"
#include "attention.h"
#include "gpt_backprop.h"
#include "matmul.h"
#include "train_layers.h"

/* Attention of one layer, sequence by sequence: sequences are independent, so they are spread
 * over the pool (OpenBLAS single-threaded meanwhile, so the threads do not oversubscribe the
 * cores). Each sequence draws its dropout masks from its own RNG, seeded from the main one, so
 * the result does not depend on which thread ran it. */
typedef struct {
    TrainState *ts;
    int layer, T;
    float dropout;
    uint64_t seed;
    bool backward;
} AttentionPass;

static void attention_sequence(void *ctx, int b) {
    const AttentionPass *p = ctx;
    TrainState *ts = p->ts;
    Activations *a = &ts->acts;
    const GPTConfig *c = &ts->model->config;
    int T = p->T, C = c->n_embd, NH = c->n_head, B = ts->last_B;
    size_t NC = (size_t)B * T * C, att_size = (size_t)B * NH * T * T;
    size_t row = (size_t)b * T, att_at = p->layer * att_size + (size_t)b * NH * T * T;
    AttentionShape s = {.B = 1,
                        .Tq = T,
                        .Tk = T,
                        .n_head = NH,
                        .head_size = C / NH,
                        .causal = true,
                        .q_stride = 3 * C,
                        .kv_stride = 3 * C,
                        .out_stride = C};
    const float *qkv = a->qkv + p->layer * 3 * NC + row * 3 * C;
    float *scratch = a->att_scratch + (size_t)b * 2 * T * T;
    const float *mask = a->att_mask ? a->att_mask + att_at : NULL;
    if (!p->backward) {
        Rng rng;
        rng_seed(&rng, p->seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(b + 1)));
        attention_forward(a->atty + p->layer * NC + row * C, a->att + att_at, (float *)mask,
                          scratch, qkv, qkv + C, qkv + 2 * C, &s, p->dropout, &rng);
    } else {
        float *dqkv = a->dqkv + row * 3 * C;
        attention_backward(dqkv, dqkv + C, dqkv + 2 * C, scratch, a->datty + row * C,
                           a->att + att_at, p->dropout > 0.0f ? mask : NULL, qkv, qkv + C,
                           qkv + 2 * C, &s);
    }
}

static void attention_layer(TrainState *ts, AttentionPass *p) {
    if (!ts->pool) {
        for (int b = 0; b < ts->last_B; b++) attention_sequence(p, b);
        return;
    }
    matmul_set_threads(1);
    thread_pool_run(ts->pool, attention_sequence, p, ts->last_B);
    matmul_set_threads(thread_pool_size(ts->pool));
}

/* Allocates the activations for (B, T), growing when a bigger batch comes. */
static int alloc_activations(TrainState *ts, int B, int T, bool dropout, Error *err) {
    if (ts->act_memory && B * T <= ts->act_B * ts->act_T && T <= ts->act_T && B <= ts->act_B &&
        (!dropout || ts->act_dropout))
        return 0;
    free(ts->act_memory);
    ts->act_memory = NULL;
    const GPTConfig *c = &ts->model->config;
    size_t L = c->n_layer, C = c->n_embd, V = c->vocab_size, NH = c->n_head;
    size_t BT = (size_t)B * T, att = (size_t)B * NH * T * T;
    struct {
        float **slot;
        size_t n;
    } table[] = {
        {&ts->acts.encoded, BT * C},
        {&ts->acts.ln1, L * BT * C},
        {&ts->acts.ln1_mean, L * BT},
        {&ts->acts.ln1_rstd, L * BT},
        {&ts->acts.qkv, L * BT * 3 * C},
        {&ts->acts.att, L * att},
        {&ts->acts.att_mask, dropout ? L * att : 0},
        {&ts->acts.atty, L * BT * C},
        {&ts->acts.attproj, L * BT * C},
        {&ts->acts.attproj_mask, L * BT * C},
        {&ts->acts.resid1, L * BT * C},
        {&ts->acts.ln2, L * BT * C},
        {&ts->acts.ln2_mean, L * BT},
        {&ts->acts.ln2_rstd, L * BT},
        {&ts->acts.fch, L * BT * 4 * C},
        {&ts->acts.fch_act, L * BT * 4 * C},
        {&ts->acts.fcproj, L * BT * C},
        {&ts->acts.fcproj_mask, L * BT * C},
        {&ts->acts.resid2, L * BT * C},
        {&ts->acts.lnf, BT * C},
        {&ts->acts.lnf_mean, BT},
        {&ts->acts.lnf_rstd, BT},
        {&ts->acts.logits, BT * V},
        {&ts->acts.losses, BT},
        {&ts->acts.dresid, BT * C},
        {&ts->acts.dln, BT * C},
        {&ts->acts.datty, BT * C},
        {&ts->acts.dsmall, BT * C},
        {&ts->acts.dqkv, BT * 3 * C},
        {&ts->acts.dfch, BT * 4 * C},
        {&ts->acts.dfch_act, BT * 4 * C},
        {&ts->acts.dlogits, BT * V},
        {&ts->acts.att_scratch, (size_t)B * 2 * T * T},
    };
    size_t n = sizeof table / sizeof table[0], total = 0;
    for (size_t i = 0; i < n; i++) total += table[i].n;
    ts->act_memory = malloc(total * sizeof(float));
    if (!ts->act_memory)
        return error_set(err, "out of memory for activations (%zu MB) at batch %d x %d",
                         total * sizeof(float) >> 20, B, T);
    float *p = ts->act_memory;
    for (size_t i = 0; i < n; i++) {
        *table[i].slot = table[i].n ? p : NULL;
        p += table[i].n;
    }
    ts->act_B = B;
    ts->act_T = T;
    ts->act_dropout = dropout;
    return 0;
}

int gpt_forward(TrainState *ts, const int *inputs, const int *targets, int B, int T, float dropout,
                Rng *rng, float *loss, Error *err) {
    const GPTConfig *c = &ts->model->config;
    if (B < 1 || T < 1 || T > c->block_size)
        return error_set(err, "batch %d x %d: T must be in [1, block_size=%d]", B, T,
                         c->block_size);
    for (size_t i = 0; i < (size_t)B * T; i++) {
        if (inputs[i] < 0 || inputs[i] >= c->vocab_size)
            return error_set(err, "token %d at index %zu is outside the vocabulary [0, %d)",
                             inputs[i], i, c->vocab_size);
        if (targets && (targets[i] < 0 || targets[i] >= c->vocab_size))
            return error_set(err, "target %d at index %zu is outside the vocabulary [0, %d)",
                             targets[i], i, c->vocab_size);
    }
    if (alloc_activations(ts, B, T, dropout > 0.0f, err)) return -1;
    const GPTParams *p = &ts->model->params;
    Activations *a = &ts->acts;
    int N = B * T, C = c->n_embd, V = c->vocab_size, L = c->n_layer;
    size_t NC = (size_t)N * C;

    ts->last_inputs = inputs;
    ts->last_targets = targets;
    ts->last_B = B;
    ts->last_T = T;
    ts->last_dropout = dropout;
    embedding_forward(a->encoded, inputs, p->wte, p->wpe, B, T, C);
    for (int l = 0; l < L; l++) {
        const LayerParams *lp = &p->layer[l];
        const float *x = l == 0 ? a->encoded : a->resid2 + (l - 1) * NC;
        float *ln1 = a->ln1 + l * NC, *qkv = a->qkv + l * 3 * NC, *atty = a->atty + l * NC;
        float *attproj = a->attproj + l * NC, *resid1 = a->resid1 + l * NC;
        float *ln2 = a->ln2 + l * NC, *fch = a->fch + l * 4 * NC;
        float *fch_act = a->fch_act + l * 4 * NC, *fcproj = a->fcproj + l * NC;
        float *resid2 = a->resid2 + l * NC;

        layernorm_forward(ln1, a->ln1_mean + l * N, a->ln1_rstd + l * N, x, lp->ln1_w, lp->ln1_b, N,
                          C);
        matmul_forward(qkv, ln1, lp->qkv_w, lp->qkv_b, N, C, 3 * C, false);
        AttentionPass pass = {ts, l, T, dropout, dropout > 0.0f ? rng_u64(rng) : 0, false};
        (void)atty;
        attention_layer(ts, &pass);
        matmul_forward(attproj, atty, lp->proj_w, lp->proj_b, N, C, C, false);
        dropout_forward(a->dsmall, a->attproj_mask + l * NC, attproj, NC, dropout, rng);
        residual_forward(resid1, x, a->dsmall, NC);
        layernorm_forward(ln2, a->ln2_mean + l * N, a->ln2_rstd + l * N, resid1, lp->ln2_w,
                          lp->ln2_b, N, C);
        matmul_forward(fch, ln2, lp->fc_w, lp->fc_b, N, C, 4 * C, false);
        activation_forward(fch_act, fch, 4 * NC, c->activation);
        matmul_forward(fcproj, fch_act, lp->fcproj_w, lp->fcproj_b, N, 4 * C, C, false);
        dropout_forward(a->dsmall, a->fcproj_mask + l * NC, fcproj, NC, dropout, rng);
        residual_forward(resid2, resid1, a->dsmall, NC);
    }
    layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, a->resid2 + (L - 1) * NC, p->lnf_w,
                      p->lnf_b, N, C);
    matmul_forward(a->logits, a->lnf, p->head_w, p->head_b, N, C, V, true);

    float mean_loss = 0.0f;
    if (targets)
        mean_loss = crossentropy_forward_backward(a->losses, a->dlogits, a->logits, targets, N, V);
    if (loss) *loss = mean_loss;
    return 0;
}

void gpt_backward(TrainState *ts) {
    const GPTConfig *c = &ts->model->config;
    const GPTParams *p = &ts->model->params;
    GPTParams *g = &ts->grads;
    Activations *a = &ts->acts;
    int B = ts->last_B, T = ts->last_T;
    int N = B * T, C = c->n_embd, V = c->vocab_size, L = c->n_layer;
    size_t NC = (size_t)N * C;

    /* dlogits was filled by the forward pass's cross-entropy. */
    memset(a->dln, 0, NC * sizeof(float));
    matmul_backward(a->dln, g->head_w, g->head_b, a->dlogits, a->lnf, p->head_w, N, C, V, true);
    memset(a->dresid, 0, NC * sizeof(float));
    layernorm_backward(a->dresid, g->lnf_w, g->lnf_b, a->dln, a->resid2 + (L - 1) * NC, p->lnf_w,
                       a->lnf_mean, a->lnf_rstd, N, C);
    for (int l = L - 1; l >= 0; l--) {
        const LayerParams *lp = &p->layer[l];
        LayerParams *lg = &g->layer[l];
        const float *x = l == 0 ? a->encoded : a->resid2 + (l - 1) * NC;

        /* resid2 = resid1 + dropout(fcproj): dresid already is d(resid1) along the identity. */
        memset(a->dsmall, 0, NC * sizeof(float));
        dropout_backward(a->dsmall, a->dresid, a->fcproj_mask + l * NC, NC);
        memset(a->dfch_act, 0, 4 * NC * sizeof(float));
        matmul_backward(a->dfch_act, lg->fcproj_w, lg->fcproj_b, a->dsmall, a->fch_act + l * 4 * NC,
                        lp->fcproj_w, N, 4 * C, C, false);
        memset(a->dfch, 0, 4 * NC * sizeof(float));
        activation_backward(a->dfch, a->fch + l * 4 * NC, a->dfch_act, 4 * NC, c->activation);
        memset(a->dln, 0, NC * sizeof(float));
        matmul_backward(a->dln, lg->fc_w, lg->fc_b, a->dfch, a->ln2 + l * NC, lp->fc_w, N, C, 4 * C,
                        false);
        layernorm_backward(a->dresid, lg->ln2_w, lg->ln2_b, a->dln, a->resid1 + l * NC, lp->ln2_w,
                           a->ln2_mean + l * N, a->ln2_rstd + l * N, N, C);

        /* resid1 = x + dropout(attproj) */
        memset(a->dsmall, 0, NC * sizeof(float));
        dropout_backward(a->dsmall, a->dresid, a->attproj_mask + l * NC, NC);
        memset(a->datty, 0, NC * sizeof(float));
        matmul_backward(a->datty, lg->proj_w, lg->proj_b, a->dsmall, a->atty + l * NC, lp->proj_w,
                        N, C, C, false);
        memset(a->dqkv, 0, 3 * NC * sizeof(float));
        AttentionPass pass = {ts, l, T, ts->last_dropout, 0, true};
        attention_layer(ts, &pass);
        memset(a->dln, 0, NC * sizeof(float));
        matmul_backward(a->dln, lg->qkv_w, lg->qkv_b, a->dqkv, a->ln1 + l * NC, lp->qkv_w, N, C,
                        3 * C, false);
        layernorm_backward(a->dresid, lg->ln1_w, lg->ln1_b, a->dln, x, lp->ln1_w,
                           a->ln1_mean + l * N, a->ln1_rstd + l * N, N, C);
    }
    embedding_backward(g->wte, g->wpe, a->dresid, ts->last_inputs, B, T, C);
}

void train_state_init(TrainState *ts, GPT *model) {
    memset(ts, 0, sizeof *ts);
    ts->model = model;
}

void train_state_free(TrainState *ts) {
    free(ts->grad_memory);
    free(ts->act_memory);
    memset(ts, 0, sizeof *ts);
}

int gpt_alloc_grads(TrainState *ts, Error *err) {
    if (ts->grad_memory) return 0;
    ts->grad_memory = calloc(ts->model->n_params, sizeof(float));
    if (!ts->grad_memory) return error_set(err, "out of memory for gradients");
    gpt_bind(ts->model, ts->grad_memory, &ts->grads);
    return 0;
}

void gpt_zero_grads(TrainState *ts) {
    if (ts->grad_memory) memset(ts->grad_memory, 0, ts->model->n_params * sizeof(float));
}

void gpt_init_weights(GPT *m, Rng *rng) {
    const GPTConfig *c = &m->config;
    float resid_std = 0.02f / sqrtf(2.0f * c->n_layer);
    for (int i = 0; i < m->n_tensors; i++) {
        const TensorSpec *t = &m->tensors[i];
        float *w = m->param_memory + t->offset;
        const char *suffix = strrchr(t->name, '.') + 1;
        bool is_ln = strstr(t->name, "ln_") != NULL;
        if (strcmp(suffix, "bias") == 0) {
            memset(w, 0, t->size * sizeof *w);
        } else if (is_ln) {
            for (size_t j = 0; j < t->size; j++) w[j] = 1.0f;
        } else {
            bool resid = strstr(t->name, "c_proj.weight") != NULL;
            float std = resid ? resid_std : 0.02f;
            for (size_t j = 0; j < t->size; j++) w[j] = std * rng_normal(rng);
        }
    }
}
