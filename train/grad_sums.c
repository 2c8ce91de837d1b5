/* A training pass's parameter gradients, each the sum over the pass's sequences of one
 * sequence's part, added in shard_sum's fixed tree so that the bits do not depend on the threads
 * or on how the batch is split over ranks. Each kind of gradient is a shard_sum partial here:
 * products (weights), rows (position embeddings), column sums (biases, LayerNorm gains, the loss)
 * and token scatters (token embeddings). */
#include "grad_sums.h"

#include "../common/thread_pool.h"
#include "shard_sum.h"
#include "train_layers.h"

/* The partials of shard_sum.h: one sequence's rows of a parameter gradient. */
typedef struct {
    Matmul *mm;
    const float *dout, *inp;
    int T, K, M;
    bool out_in;
} WeightGrad;

static void weight_shard(void *ctx, int s, float *out, bool add) {
    const WeightGrad *w = ctx;
    matmul_weight_grad(w->mm, out, w->dout + (size_t)s * w->T * w->M,
                       w->inp + (size_t)s * w->T * w->K, w->T, w->K, w->M, w->out_in, add);
}

/* Rows of (T, width) per sequence: the position embedding's gradient (the rows themselves). */
typedef struct {
    const float *dout;
    int T, width;
} Rows;

static void rows_shard(void *ctx, int s, float *out, bool add) {
    const Rows *r = ctx;
    rows_grad(out, r->dout + (size_t)s * r->T * r->width, (long)r->T * r->width, add);
}

/* Column sums over a sequence's rows of (T, width): a bias's gradient, a LayerNorm gain's (with
 * inp, mean and rstd: sums of dout * xhat), the loss (width 1). Columns are independent chains,
 * so ranges of them go to the pool. */
typedef struct {
    const float *dout, *inp, *mean, *rstd; /* inp NULL: a bias */
    float *tmp;
    int T, width;
    ThreadPool *pool;
    /* the shard being summed */
    int s;
    float *out;
    bool add;
} ColumnSums;

/* Columns [begin, end) of the shard being summed (a RangeTask). */
static void column_range(void *ctx, size_t begin, size_t end) {
    const ColumnSums *c = ctx;
    int c0 = (int)begin, n = (int)(end - begin);
    size_t rows = (size_t)c->s * c->T;
    const float *dout = c->dout + rows * c->width + c0;
    if (c->inp)
        layernorm_weight_grad(c->out + c0, c->tmp + c0, dout, c->inp + rows * c->width + c0,
                              c->mean + rows, c->rstd + rows, c->T, n, c->width, c->add);
    else
        bias_grad(c->out + c0, c->tmp + c0, dout, c->T, n, c->width, c->add);
}

static void column_shard(void *ctx, int s, float *out, bool add) {
    ColumnSums *c = ctx;
    c->s = s;
    c->out = out;
    c->add = add;
    thread_pool_run_ranges(c->pool, column_range, c, (size_t)c->width, 2, 16);
}

typedef struct {
    const int *tokens;
    const float *dout;
    float *tmp;
    int T, C, V;
} Tokens;

static void token_shard(void *ctx, int s, float *out, bool add) {
    const Tokens *t = ctx;
    size_t at = (size_t)s * t->T;
    embedding_token_grad(out, t->tmp, t->dout + at * t->C, t->tokens + at, t->T, t->C, t->V, add);
}

void grad_sum_weight(TrainState *ts, float *dw, const float *dout, const float *inp, int K, int M,
                     bool out_in) {
    WeightGrad w = {&ts->mm, dout, inp, ts->last_T, K, M, out_in};
    shard_sum(dw, (size_t)K * M, ts->last_B, weight_shard, &w, ts->shard_scratch, ts->pool);
}

void grad_sum_bias(TrainState *ts, float *db, const float *dout, int M) {
    ColumnSums c = {
        .dout = dout, .tmp = ts->token_grad_tmp, .T = ts->last_T, .width = M, .pool = ts->pool};
    shard_sum(db, (size_t)M, ts->last_B, column_shard, &c, ts->shard_scratch, ts->pool);
}

void grad_sum_layernorm(TrainState *ts, float *dw, float *db, const float *dout, const float *inp,
                        const float *mean, const float *rstd) {
    int C = ts->model->config.n_embd;
    ColumnSums c = {.dout = dout,
                    .inp = inp,
                    .mean = mean,
                    .rstd = rstd,
                    .tmp = ts->token_grad_tmp,
                    .T = ts->last_T,
                    .width = C,
                    .pool = ts->pool};
    shard_sum(dw, (size_t)C, ts->last_B, column_shard, &c, ts->shard_scratch, ts->pool);
    grad_sum_bias(ts, db, dout, C);
}

void grad_sum_tokens(TrainState *ts, float *dwte, const float *dout) {
    const GPTConfig *c = &ts->model->config;
    Tokens t = {ts->last_inputs, dout, ts->token_grad_tmp, ts->last_T, c->n_embd, c->vocab_size};
    shard_sum(dwte, (size_t)c->vocab_size * c->n_embd, ts->last_B, token_shard, &t,
              ts->shard_scratch, ts->pool);
}

void grad_sum_positions(TrainState *ts, float *dwpe, const float *dout) {
    Rows r = {.dout = dout, .T = ts->last_T, .width = ts->model->config.n_embd};
    shard_sum(dwpe, (size_t)ts->last_T * r.width, ts->last_B, rows_shard, &r, ts->shard_scratch,
              ts->pool);
}

void grad_sum_losses(TrainState *ts, float *sum, const float *losses) {
    ColumnSums c = {.dout = losses, .tmp = ts->token_grad_tmp, .T = ts->last_T, .width = 1};
    shard_sum(sum, 1, ts->last_B, column_shard, &c, ts->shard_scratch, ts->pool);
}
