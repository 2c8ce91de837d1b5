/* The training pass of the GPT: forward over a batch (B, T) keeping every activation, then
 * backward into the gradients. Matrix products on the engine's kernels (matmul.c), attention in
 * attention.c, parameter gradients summed over the batch's sequences in grad_sums.c.
 * Inference does not come here: it uses the engine (engine.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/thread_pool.h"
#include "../model/kernels.h"
#include "attention.h"
#include "gpt_backprop.h"
#include "grad_sums.h"
#include "matmul.h"
#include "shard_sum.h"
#include "train_layers.h"

/* A row-wise layer call (rows are independent), run over ranges of its rows by the pool. */
typedef enum {
    OP_LAYERNORM,           /* out, mean, rstd <- in (weight, bias) */
    OP_LAYERNORM_BACKWARD,  /* out += d input <- in (dout), in2 (input), weight, mean, rstd */
    OP_ACTIVATION,          /* out <- act(in) */
    OP_ACTIVATION_BACKWARD, /* out <- act'(in) in2 */
    OP_RESIDUAL,            /* out <- in + in2 */
    OP_DROPOUT_BACKWARD,    /* out <- in * in2 (the mask) */
    OP_CROSSENTROPY,        /* mean (losses), out (dlogits) <- in (logits), targets */
} RowOpKind;

typedef struct {
    RowOpKind kind;
    float *out, *mean, *rstd;
    const float *in, *in2, *weight, *bias;
    const int *targets;
    int width, batch_rows;
    Activation act;
} RowOp;

/* A RowOp over rows [begin, end) (a RangeTask). */
static void row_op_range(void *ctx, size_t begin, size_t end) {
    const RowOp *op = ctx;
    int r0 = (int)begin, r1 = (int)end;
    size_t at = (size_t)r0 * op->width;
    int rows = r1 - r0;
    long n = (long)rows * op->width;
    switch (op->kind) {
        case OP_LAYERNORM:
            layernorm_forward(op->out + at, op->mean + r0, op->rstd + r0, op->in + at, op->weight,
                              op->bias, rows, op->width);
            break;
        case OP_LAYERNORM_BACKWARD:
            layernorm_backward(op->out + at, op->in + at, op->in2 + at, op->weight, op->mean + r0,
                               op->rstd + r0, rows, op->width);
            break;
        case OP_ACTIVATION:
            activation_forward(op->out + at, op->in + at, n, op->act);
            break;
        case OP_ACTIVATION_BACKWARD:
            activation_backward(op->out + at, op->in + at, op->in2 + at, n, op->act);
            break;
        case OP_RESIDUAL:
            residual_forward(op->out + at, op->in + at, op->in2 + at, n);
            break;
        case OP_DROPOUT_BACKWARD:
            dropout_backward(op->out + at, op->in + at, op->in2 + at, n);
            break;
        case OP_CROSSENTROPY:
            crossentropy_forward_backward(op->mean + r0, op->out + at, op->in + at,
                                          op->targets + r0, rows, op->width, op->batch_rows);
            break;
    }
}

/* Runs op over rows [0, rows): a few ranges per thread, whole rows each, so the results do not
 * depend on the split. */
static void run_rows(TrainState *ts, RowOp op, int rows) {
    thread_pool_run_ranges(ts->pool, row_op_range, &op, (size_t)rows, 4, 1);
}

/* Dropout's masks: one stream per (layer, site, sequence of the whole batch), derived from one
 * draw of the run's RNG per step, so a sequence's masks do not depend on which thread or rank
 * runs it, nor on how many sequences it shares a pass with. */
enum { SITE_ATTENTION, SITE_ATTENTION_PROJ, SITE_MLP_PROJ };

static void dropout_rng(Rng *rng, uint64_t base, int layer, int site, int sequence) {
    uint64_t x = base ^ ((uint64_t)layer << 40 | (uint64_t)site << 32 | (uint32_t)sequence);
    rng_seed(rng, rng_splitmix64(&x));
}

/* Attention of one layer, sequence by sequence: sequences are independent, so they are spread
 * over the pool. */
typedef struct {
    TrainState *ts;
    int layer, T;
    float dropout;
    bool backward;
} AttentionPass;

/* One sequence's causal self-attention over the (B, T, 3C) qkv rows. */
static AttentionShape attention_shape(const TrainState *ts, int T) {
    const GPTConfig *c = &ts->model->config;
    int C = c->n_embd;
    return (AttentionShape){.B = 1,
                            .Tq = T,
                            .Tk = T,
                            .n_head = c->n_head,
                            .head_size = C / c->n_head,
                            .causal = true,
                            .q_stride = 3 * C,
                            .kv_stride = 3 * C,
                            .out_stride = C,
                            .kernels = ts->mm.kernels};
}

static void attention_sequence(void *ctx, int b) {
    const AttentionPass *p = ctx;
    TrainState *ts = p->ts;
    Activations *a = &ts->acts;
    const GPTConfig *c = &ts->model->config;
    int T = p->T, C = c->n_embd, NH = c->n_head, B = ts->last_B;
    size_t NC = (size_t)B * T * C, att_size = (size_t)B * NH * T * T;
    size_t row = (size_t)b * T, att_at = p->layer * att_size + (size_t)b * NH * T * T;
    AttentionShape s = attention_shape(ts, T);
    const float *qkv = a->qkv + p->layer * 3 * NC + row * 3 * C;
    float *scratch = a->att_scratch + b * attention_scratch_floats(&s);
    const float *mask = a->att_mask ? a->att_mask + att_at : NULL;
    if (!p->backward) {
        Rng rng;
        dropout_rng(&rng, ts->dropout_base, p->layer, SITE_ATTENTION, ts->shard0 + b);
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
    thread_pool_run(ts->pool, attention_sequence, p, ts->last_B);
}

/* Dropout after a projection, sequence by sequence, each on its own stream, over the pool. */
typedef struct {
    TrainState *ts;
    float *out, *mask;
    const float *inp;
    int layer, site, T;
    float p;
} DropoutPass;

static void dropout_sequence(void *ctx, int b) {
    const DropoutPass *d = ctx;
    size_t TC = (size_t)d->T * d->ts->model->config.n_embd;
    Rng rng;
    dropout_rng(&rng, d->ts->dropout_base, d->layer, d->site, d->ts->shard0 + b);
    dropout_forward(d->out + b * TC, d->mask + b * TC, d->inp + b * TC, (long)TC, d->p, &rng);
}

static void dropout_layer(TrainState *ts, float *out, float *mask, const float *inp, int layer,
                          int site, int B, int T, float p) {
    DropoutPass d = {ts, out, mask, inp, layer, site, T, p};
    if (ts->pool)
        thread_pool_run(ts->pool, dropout_sequence, &d, B);
    else
        for (int b = 0; b < B; b++) dropout_sequence(&d, b);
}

/* Room for every product of a pass over (B, T) rows, and for shard_sum's scratch. */
static int reserve_products(TrainState *ts, int B, int T, Error *err) {
    const GPTConfig *c = &ts->model->config;
    int C = c->n_embd, V = c->vocab_size;
    /* (rows, cols) of every right-hand matrix: forward, input gradients, weight gradients. */
    const int shapes[][2] = {{C, 3 * C}, {C, C},     {C, 4 * C}, {4 * C, C}, {C, V}, {3 * C, C},
                             {V, C},     {T, 3 * C}, {T, C},     {T, 4 * C}, {T, V}};
    if (matmul_reserve(&ts->mm, shapes, (int)(sizeof shapes / sizeof shapes[0]), err)) return -1;
    size_t largest = (size_t)T * C;
    for (int i = 0; i < ts->model->n_tensors; i++)
        if (ts->model->tensors[i].size > largest) largest = ts->model->tensors[i].size;
    free(ts->shard_scratch);
    free(ts->token_grad_tmp);
    ts->shard_scratch = malloc((shard_sum_scratch(largest, B) + 1) * sizeof(float));
    /* the token embedding's partial, and any bias's (4C, or V for the head's) */
    size_t tmp = (size_t)V * C > (size_t)4 * C ? (size_t)V * C : (size_t)4 * C;
    ts->token_grad_tmp = malloc((tmp > (size_t)V ? tmp : (size_t)V) * sizeof(float));
    if (!ts->shard_scratch || !ts->token_grad_tmp)
        return error_set(err, "out of memory for the gradients' scratch");
    return 0;
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
    AttentionShape shape = attention_shape(ts, T);
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
        {&ts->acts.fch, c->activation == ACT_RELU ? 0 : L * BT * 4 * C}, /* relu: fch_act only */
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
        {&ts->acts.att_scratch, (size_t)B * attention_scratch_floats(&shape)},
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
    return reserve_products(ts, B, T, err);
}

/* dinp += the gradient of a LayerNorm's input, over the pool. */
static void layernorm_back(TrainState *ts, float *dinp, const float *dout, const float *inp,
                           const float *weight, const float *mean, const float *rstd) {
    run_rows(ts,
             (RowOp){.kind = OP_LAYERNORM_BACKWARD,
                     .out = dinp,
                     .in = dout,
                     .in2 = inp,
                     .weight = weight,
                     .mean = (float *)mean,
                     .rstd = (float *)rstd,
                     .width = ts->model->config.n_embd},
             ts->last_B * ts->last_T);
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
    ts->dropout_base = dropout > 0.0f ? rng_u64(rng) : 0;
    embedding_forward(a->encoded, inputs, p->wte, p->wpe, B, T, C);
    for (int l = 0; l < L; l++) {
        const LayerParams *lp = &p->layer[l];
        const float *x = l == 0 ? a->encoded : a->resid2 + (l - 1) * NC;
        float *ln1 = a->ln1 + l * NC, *qkv = a->qkv + l * 3 * NC, *atty = a->atty + l * NC;
        float *attproj = a->attproj + l * NC, *resid1 = a->resid1 + l * NC;
        float *ln2 = a->ln2 + l * NC, *fch = a->fch ? a->fch + l * 4 * NC : NULL;
        float *fch_act = a->fch_act + l * 4 * NC, *fcproj = a->fcproj + l * NC;
        float *resid2 = a->resid2 + l * NC;

        run_rows(ts,
                 (RowOp){.kind = OP_LAYERNORM,
                         .out = ln1,
                         .mean = a->ln1_mean + l * N,
                         .rstd = a->ln1_rstd + l * N,
                         .in = x,
                         .weight = lp->ln1_w,
                         .bias = lp->ln1_b,
                         .width = C},
                 N);
        matmul_forward(&ts->mm, qkv, ln1, lp->qkv_w, lp->qkv_b, N, C, 3 * C, false, PACKED_STORE);
        AttentionPass pass = {ts, l, T, dropout, false};
        attention_layer(ts, &pass);
        matmul_forward(&ts->mm, attproj, atty, lp->proj_w, lp->proj_b, N, C, C, false,
                       PACKED_STORE);
        dropout_layer(ts, a->dsmall, a->attproj_mask + l * NC, attproj, l, SITE_ATTENTION_PROJ, B,
                      T, dropout);
        run_rows(ts,
                 (RowOp){.kind = OP_RESIDUAL, .out = resid1, .in = x, .in2 = a->dsmall, .width = C},
                 N);
        run_rows(ts,
                 (RowOp){.kind = OP_LAYERNORM,
                         .out = ln2,
                         .mean = a->ln2_mean + l * N,
                         .rstd = a->ln2_rstd + l * N,
                         .in = resid1,
                         .weight = lp->ln2_w,
                         .bias = lp->ln2_b,
                         .width = C},
                 N);
        if (c->activation == ACT_RELU) { /* relu in the product; its gradient needs only fch_act */
            matmul_forward(&ts->mm, fch_act, ln2, lp->fc_w, lp->fc_b, N, C, 4 * C, false,
                           PACKED_RELU);
        } else {
            matmul_forward(&ts->mm, fch, ln2, lp->fc_w, lp->fc_b, N, C, 4 * C, false, PACKED_STORE);
            run_rows(ts,
                     (RowOp){.kind = OP_ACTIVATION,
                             .out = fch_act,
                             .in = fch,
                             .width = 4 * C,
                             .act = c->activation},
                     N);
        }
        matmul_forward(&ts->mm, fcproj, fch_act, lp->fcproj_w, lp->fcproj_b, N, 4 * C, C, false,
                       PACKED_STORE);
        dropout_layer(ts, a->dsmall, a->fcproj_mask + l * NC, fcproj, l, SITE_MLP_PROJ, B, T,
                      dropout);
        run_rows(
            ts,
            (RowOp){.kind = OP_RESIDUAL, .out = resid2, .in = resid1, .in2 = a->dsmall, .width = C},
            N);
    }
    run_rows(ts,
             (RowOp){.kind = OP_LAYERNORM,
                     .out = a->lnf,
                     .mean = a->lnf_mean,
                     .rstd = a->lnf_rstd,
                     .in = a->resid2 + (L - 1) * NC,
                     .weight = p->lnf_w,
                     .bias = p->lnf_b,
                     .width = C},
             N);
    matmul_forward(&ts->mm, a->logits, a->lnf, p->head_w, p->head_b, N, C, V, true, PACKED_STORE);

    ts->loss_sum = 0.0f;
    if (targets) {
        int rows = ts->batch_rows > 0 ? ts->batch_rows : N;
        run_rows(ts,
                 (RowOp){.kind = OP_CROSSENTROPY,
                         .out = a->dlogits,
                         .mean = a->losses,
                         .in = a->logits,
                         .targets = targets,
                         .width = V,
                         .batch_rows = rows},
                 N);
        grad_sum_losses(ts, &ts->loss_sum, a->losses);
    }
    if (loss) *loss = ts->loss_sum / N;
    return 0;
}

void gpt_backward(TrainState *ts) {
    const GPTConfig *c = &ts->model->config;
    const GPTParams *p = &ts->model->params;
    GPTParams *g = &ts->grads;
    Activations *a = &ts->acts;
    Matmul *mm = &ts->mm;
    int B = ts->last_B, T = ts->last_T;
    int N = B * T, C = c->n_embd, V = c->vocab_size, L = c->n_layer;
    size_t NC = (size_t)N * C;

    /* dlogits was filled by the forward pass's cross-entropy. */
    matmul_backward_input(mm, a->dln, a->dlogits, p->head_w, N, C, V, true);
    grad_sum_weight(ts, c->tied_head ? ts->head_grad : g->head_w, a->dlogits, a->lnf, C, V, true);
    if (g->head_b) grad_sum_bias(ts, g->head_b, a->dlogits, V);
    memset(a->dresid, 0, NC * sizeof(float));
    const float *last = a->resid2 + (L - 1) * NC;
    layernorm_back(ts, a->dresid, a->dln, last, p->lnf_w, a->lnf_mean, a->lnf_rstd);
    grad_sum_layernorm(ts, g->lnf_w, g->lnf_b, a->dln, last, a->lnf_mean, a->lnf_rstd);
    for (int l = L - 1; l >= 0; l--) {
        const LayerParams *lp = &p->layer[l];
        LayerParams *lg = &g->layer[l];
        const float *x = l == 0 ? a->encoded : a->resid2 + (l - 1) * NC;
        const float *ln1 = a->ln1 + l * NC, *ln2 = a->ln2 + l * NC, *resid1 = a->resid1 + l * NC;
        const float *fch_act = a->fch_act + l * 4 * NC, *atty = a->atty + l * NC;
        /* relu's gradient from its output (positive where its input is: fch is not kept), the
         * others' from their input */
        const float *fch_in = a->fch ? a->fch + l * 4 * NC : fch_act;

        /* resid2 = resid1 + dropout(fcproj): dresid already is d(resid1) along the identity. */
        run_rows(ts,
                 (RowOp){.kind = OP_DROPOUT_BACKWARD,
                         .out = a->dsmall,
                         .in = a->dresid,
                         .in2 = a->fcproj_mask + l * NC,
                         .width = C},
                 N);
        matmul_backward_input(mm, a->dfch_act, a->dsmall, lp->fcproj_w, N, 4 * C, C, false);
        grad_sum_weight(ts, lg->fcproj_w, a->dsmall, fch_act, 4 * C, C, false);
        grad_sum_bias(ts, lg->fcproj_b, a->dsmall, C);
        run_rows(ts,
                 (RowOp){.kind = OP_ACTIVATION_BACKWARD,
                         .out = a->dfch,
                         .in = fch_in,
                         .in2 = a->dfch_act,
                         .width = 4 * C,
                         .act = c->activation},
                 N);
        matmul_backward_input(mm, a->dln, a->dfch, lp->fc_w, N, C, 4 * C, false);
        grad_sum_weight(ts, lg->fc_w, a->dfch, ln2, C, 4 * C, false);
        grad_sum_bias(ts, lg->fc_b, a->dfch, 4 * C);
        layernorm_back(ts, a->dresid, a->dln, resid1, lp->ln2_w, a->ln2_mean + l * N,
                       a->ln2_rstd + l * N);
        grad_sum_layernorm(ts, lg->ln2_w, lg->ln2_b, a->dln, resid1, a->ln2_mean + l * N,
                           a->ln2_rstd + l * N);

        /* resid1 = x + dropout(attproj) */
        run_rows(ts,
                 (RowOp){.kind = OP_DROPOUT_BACKWARD,
                         .out = a->dsmall,
                         .in = a->dresid,
                         .in2 = a->attproj_mask + l * NC,
                         .width = C},
                 N);
        matmul_backward_input(mm, a->datty, a->dsmall, lp->proj_w, N, C, C, false);
        grad_sum_weight(ts, lg->proj_w, a->dsmall, atty, C, C, false);
        grad_sum_bias(ts, lg->proj_b, a->dsmall, C);
        memset(a->dqkv, 0, 3 * NC * sizeof(float));
        AttentionPass pass = {ts, l, T, ts->last_dropout, true};
        attention_layer(ts, &pass);
        matmul_backward_input(mm, a->dln, a->dqkv, lp->qkv_w, N, C, 3 * C, false);
        grad_sum_weight(ts, lg->qkv_w, a->dqkv, ln1, C, 3 * C, false);
        if (lg->qkv_b) grad_sum_bias(ts, lg->qkv_b, a->dqkv, 3 * C);
        layernorm_back(ts, a->dresid, a->dln, x, lp->ln1_w, a->ln1_mean + l * N,
                       a->ln1_rstd + l * N);
        grad_sum_layernorm(ts, lg->ln1_w, lg->ln1_b, a->dln, x, a->ln1_mean + l * N,
                           a->ln1_rstd + l * N);
    }
    grad_sum_tokens(ts, g->wte, a->dresid);
    grad_sum_positions(ts, g->wpe, a->dresid);
    memset(g->wpe + (size_t)T * C, 0, (size_t)(c->block_size - T) * C * sizeof(float));
    ts->grad_memory[ts->model->n_params + ts->head_grad_size] = ts->loss_sum;

    if (ts->combine) ts->combine(ts->combine_ctx, ts->grad_memory, train_grad_floats(ts));
    /* A tied head's gradient is the embedding's plus the head's, each summed on its own over the
     * batch (and over the ranks), so the sum is the same however the batch was split. */
    for (size_t i = 0; i < ts->head_grad_size; i++) g->wte[i] = g->wte[i] + ts->head_grad[i];
    int rows = ts->batch_rows > 0 ? ts->batch_rows : N;
    ts->batch_loss = ts->grad_memory[ts->model->n_params + ts->head_grad_size] / rows;
}

void train_state_init(TrainState *ts, GPT *model) {
    memset(ts, 0, sizeof *ts);
    ts->model = model;
    const Kernels *best;
    kernels_available(&best, 1);
    matmul_init(&ts->mm, best, NULL);
}

void train_state_use(TrainState *ts, const Kernels *kernels, ThreadPool *pool) {
    ts->pool = pool;
    matmul_free(&ts->mm);
    matmul_init(&ts->mm, kernels, pool);
    /* the products' scratch is laid out for the kernels' panels: size it again */
    free(ts->act_memory);
    ts->act_memory = NULL;
}

void train_state_free(TrainState *ts) {
    free(ts->grad_memory);
    free(ts->act_memory);
    free(ts->shard_scratch);
    free(ts->token_grad_tmp);
    matmul_free(&ts->mm);
    memset(ts, 0, sizeof *ts);
}

size_t train_grad_floats(const TrainState *ts) {
    return ts->model->n_params + ts->head_grad_size + 1;
}

int gpt_alloc_grads(TrainState *ts, Error *err) {
    if (ts->grad_memory) return 0;
    const GPTConfig *c = &ts->model->config;
    ts->head_grad_size = c->tied_head ? (size_t)c->vocab_size * c->n_embd : 0;
    ts->grad_memory = calloc(train_grad_floats(ts), sizeof(float));
    if (!ts->grad_memory) return error_set(err, "out of memory for gradients");
    gpt_bind(ts->model, ts->grad_memory, &ts->grads);
    ts->head_grad = ts->grad_memory + ts->model->n_params;
    return 0;
}

void gpt_zero_grads(TrainState *ts) {
    if (ts->grad_memory) memset(ts->grad_memory, 0, train_grad_floats(ts) * sizeof(float));
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
