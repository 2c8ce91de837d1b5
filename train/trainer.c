#include "trainer.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "../common/clock.h"
#include "../common/thread_pool.h"
#include "../model/checkpoint.h"
#include "../model/kernels.h"
#include "adamw.h"
#include "data_parallel.h"
#include "dataset.h"
#include "gpt_backprop.h"

/* The pool's runs (products, attention) follow each other closely; between them the trainer's
 * thread does short serial work (layer norms, sums), so workers wait a little for the next. */
#define TRAINER_POOL_SPIN_US 200

/* The settings a training state carries beside the step, seed and RNG, with the bounds of their
 * flags (trainer.h): a fresh run's options and a resumed state's values meet the same checks. */
typedef struct {
    const char *key;  /* in the state's metadata */
    const char *flag; /* gpt-train's */
    size_t offset;    /* of the int or float in TrainOptions */
    bool is_float;
    double min, max;
} Setting;

static const Setting SETTINGS[] = {
    {"train.batch_size", "--batch-size", offsetof(TrainOptions, batch_size), false, 1,
     TRAIN_MAX_BATCH_SIZE},
    {"train.warmup_iters", "--warmup-iters", offsetof(TrainOptions, warmup_iters), false, 0,
     TRAIN_MAX_ITERS},
    {"train.lr", "--lr", offsetof(TrainOptions, lr), true, TRAIN_MIN_LR, TRAIN_MAX_LR},
    {"train.min_lr", "--min-lr", offsetof(TrainOptions, min_lr), true, 0, TRAIN_MAX_LR},
    {"train.dropout", "--dropout", offsetof(TrainOptions, dropout), true, 0, TRAIN_MAX_DROPOUT},
    {"train.weight_decay", "--weight-decay", offsetof(TrainOptions, weight_decay), true, 0,
     TRAIN_MAX_WEIGHT_DECAY},
};
#define N_SETTINGS (int)(sizeof SETTINGS / sizeof SETTINGS[0])

/* The one check of a setting's value, for an option and for a state's value alike: within
 * [min, max], which NaN never is. `name` and `text` (the value as it was written) go into the
 * message, in the style of the flags' own. */
static int check_setting(const char *name, double v, const char *text, double min, double max,
                         Error *err) {
    if (v >= min && v <= max) return 0;
    return error_set(err, "%s must be in [%.10g, %.10g], got %s", name, min, max, text);
}

/* A fresh run's options. gpt-train's flags have the same bounds, so this refuses only what
 * another caller passes. */
static int check_options(const TrainOptions *o, Error *err) {
    for (int i = 0; i < N_SETTINGS; i++) {
        const Setting *s = &SETTINGS[i];
        const char *field = (const char *)o + s->offset;
        double v = s->is_float ? *(const float *)field : *(const int *)field;
        char text[32];
        snprintf(text, sizeof text, "%.9g", v);
        if (check_setting(s->flag, v, text, s->min, s->max, err)) return -1;
    }
    return 0;
}

/* Linear warmup, then cosine decay from lr to min_lr (constant when min_lr == lr, as in the
 * lecture). */
static float learning_rate(const TrainOptions *o, int step) {
    if (step < o->warmup_iters) return o->lr * (step + 1) / o->warmup_iters;
    if (o->min_lr >= o->lr || o->max_iters <= o->warmup_iters) return o->lr;
    float progress = (float)(step - o->warmup_iters) / (o->max_iters - o->warmup_iters);
    return o->min_lr + 0.5f * (o->lr - o->min_lr) * (1.0f + cosf(3.14159265f * progress));
}

/* Mean loss over eval_iters batches of one split, dropout off. The batches come from an RNG
 * seeded by (seed, step, split) so evaluation neither depends on nor disturbs training. */
static int estimate_loss(TrainState *ts, const Dataset *d, const TrainOptions *o, int step,
                         bool val, int *x, int *y, float *out, Error *err) {
    Rng rng;
    rng_seed(&rng, o->seed * 1000003ull + (uint64_t)step * 2 + val);
    double sum = 0.0;
    for (int i = 0; i < o->eval_iters; i++) {
        float loss;
        dataset_batch(d, val, o->batch_size, o->model.block_size, &rng, x, y);
        if (gpt_forward(ts, x, y, o->batch_size, o->model.block_size, 0.0f, NULL, &loss, err))
            return -1;
        sum += loss;
    }
    *out = (float)(sum / o->eval_iters);
    return 0;
}

/* Both splits, then the lecture's log line. */
static int evaluate_and_log(TrainState *ts, const Dataset *d, const TrainOptions *o, int step,
                            int *x, int *y, FILE *log, float *train_loss, float *val_loss,
                            Error *err) {
    if (estimate_loss(ts, d, o, step, false, x, y, train_loss, err) ||
        estimate_loss(ts, d, o, step, true, x, y, val_loss, err))
        return -1;
    fprintf(log, "step: %d, train loss: %.4f, valid loss: %.4f\n", step, *train_loss, *val_loss);
    fflush(log);
    return 0;
}

/* x and y (batch_size, block_size) token buffers. */
static int alloc_batch(const TrainOptions *o, int **x, int **y, Error *err) {
    size_t bt = (size_t)o->batch_size * o->model.block_size;
    *x = malloc(bt * sizeof **x);
    *y = malloc(bt * sizeof **y);
    return *x && *y ? 0 : error_set(err, "out of memory");
}

/* Where a run stands: its step and RNG, saved in the state (with the hyperparameters, see save)
 * so that a resume continues exactly. */
typedef struct {
    int step;
    Rng rng;
} Progress;

/* Weights and moments that are all finite. A NaN or an infinity saved would replace the last
 * good checkpoint, and a resume from it would train on NaN. */
static int check_finite(const GPT *m, const OptimizerState *opt, Error *err) {
    for (size_t i = 0; i < m->n_params; i++)
        if (!isfinite(m->param_memory[i]) || !isfinite(opt->m[i]) || !isfinite(opt->v[i]))
            return error_set(err, "parameter %zu is not finite (weight %g, moments %g and %g)", i,
                             m->param_memory[i], opt->m[i], opt->v[i]);
    return 0;
}

static int save(const TrainOptions *o, const GPT *m, const Tokenizer *tok,
                const OptimizerState *opt, const Progress *p, float train_loss, float val_loss,
                Error *err) {
    if (check_finite(m, opt, err)) return error_wrap(err, "not saving %s", o->out_path);
    char step[24], rng[4][24], tl[24], vl[24], batch[16], lr[24], min_lr[24], warm[16], drop[24],
        wd[24], seed[24], iters[16];
    snprintf(step, sizeof step, "%d", p->step);
    for (int i = 0; i < 4; i++) snprintf(rng[i], sizeof rng[i], "%" PRIu64, p->rng.s[i]);
    snprintf(tl, sizeof tl, "%.4f", train_loss);
    snprintf(vl, sizeof vl, "%.4f", val_loss);
    snprintf(batch, sizeof batch, "%d", o->batch_size);
    snprintf(lr, sizeof lr, "%.9g", o->lr);
    snprintf(min_lr, sizeof min_lr, "%.9g", o->min_lr);
    snprintf(warm, sizeof warm, "%d", o->warmup_iters);
    snprintf(drop, sizeof drop, "%.9g", o->dropout);
    snprintf(wd, sizeof wd, "%.9g", o->weight_decay);
    snprintf(seed, sizeof seed, "%llu", o->seed);
    snprintf(iters, sizeof iters, "%d", o->max_iters);
    StMeta meta[] = {
        {"train.step", step},
        {"train.train_loss", tl},
        {"train.val_loss", vl},
        {"train.batch_size", batch},
        {"train.lr", lr},
        {"train.min_lr", min_lr},
        {"train.warmup_iters", warm},
        {"train.dropout", drop},
        {"train.weight_decay", wd},
        {"train.seed", seed},
        {"train.max_iters", iters},
        {"train.command", (char *)(o->command_line ? o->command_line : "")},
        {"train.rng0", rng[0]},
        {"train.rng1", rng[1]},
        {"train.rng2", rng[2]},
        {"train.rng3", rng[3]},
    };
    int n_meta = (int)(sizeof meta / sizeof meta[0]);
    char state_path[4096];
    snprintf(state_path, sizeof state_path, "%s.state", o->out_path);
    if (checkpoint_save(state_path, m, tok, opt, meta, n_meta, err)) return -1;
    /* The served model: no moments, no RNG. */
    return checkpoint_save(o->out_path, m, tok, NULL, meta, n_meta - 4, err);
}

/* A 64-bit word of the state (the seed, an RNG word): decimal digits that fit, no sign. */
static int meta_u64(const SafeTensors *st, const char *key, uint64_t *v, Error *err) {
    const char *s = safetensors_meta(st, key);
    char *end;
    if (!s) return error_set(err, "training state has no \"%s\"", key);
    errno = 0;
    *v = strtoull(s, &end, 10);
    if (*s < '0' || *s > '9' || errno || *end)
        return error_set(err, "training state \"%s\" must be in [0, %" PRIu64 "], got %s", key,
                         UINT64_MAX, s);
    return 0;
}

/* A setting of the state, read wide (a long long, or a float as the flag's parser reads it) and
 * held to its bounds by check_setting before it is narrowed: 4294967297 is refused, not cut to
 * 1, and so are "nan" and "inf". */
static int meta_setting(const SafeTensors *st, const char *key, bool is_float, double min,
                        double max, double *v, Error *err) {
    const char *s = safetensors_meta(st, key);
    char *end, name[64];
    if (!s) return error_set(err, "training state has no \"%s\"", key);
    /* An overflow gives LLONG_MAX or infinity, which the bounds refuse. */
    *v = is_float ? strtof(s, &end) : (double)strtoll(s, &end, 10);
    if (end == s || *end)
        return error_set(err, "training state \"%s\" is not a %s: '%s'", key,
                         is_float ? "number" : "whole number", s);
    snprintf(name, sizeof name, "training state \"%s\"", key);
    return check_setting(name, *v, s, min, max, err);
}

/* The step a state was saved at: at most the largest --max-iters. */
static int meta_step(const SafeTensors *st, int *step, Error *err) {
    double v;
    if (meta_setting(st, "train.step", false, 0, TRAIN_MAX_ITERS, &v, err)) return -1;
    *step = (int)v;
    return 0;
}

/* The state's step, settings, seed and RNG, each checked before it replaces an option. */
static int restore_progress(const SafeTensors *st, TrainOptions *o, Progress *p, Error *err) {
    if (meta_step(st, &p->step, err)) return -1;
    for (int i = 0; i < N_SETTINGS; i++) {
        const Setting *s = &SETTINGS[i];
        char *field = (char *)o + s->offset;
        double v;
        if (meta_setting(st, s->key, s->is_float, s->min, s->max, &v, err)) return -1;
        if (s->is_float)
            *(float *)field = (float)v;
        else
            *(int *)field = (int)v;
    }
    uint64_t seed = 0;
    if (meta_u64(st, "train.seed", &seed, err)) return -1;
    o->seed = seed;
    uint64_t any = 0;
    for (int i = 0; i < 4; i++) {
        char key[24];
        snprintf(key, sizeof key, "train.rng%d", i);
        if (meta_u64(st, key, &p->rng.s[i], err)) return -1;
        any |= p->rng.s[i];
    }
    /* xoshiro256** never leaves the all-zero state: every draw would be 0. */
    if (!any) return error_set(err, "training state \"train.rng0\" to \"train.rng3\" are all 0");
    return 0;
}

/* Restores model, moments, step, RNG and the run's hyperparameters from a state file. The
 * options that may change on resume (max_iters, eval settings, out, threads) stay as given. */
static int resume(TrainOptions *o, GPT *m, Tokenizer *tok, OptimizerState *opt, Progress *p,
                  Error *err) {
    SafeTensors st;
    if (checkpoint_load(o->resume_path, m, tok, opt, &st, err)) return -1;
    int rc = restore_progress(&st, o, p, err);
    safetensors_close(&st);
    if (rc) return error_wrap(err, "%s", o->resume_path);
    o->model = m->config;
    return 0;
}

int trainer_evaluate(const TrainOptions *opts, FILE *log, Error *err) {
    TrainOptions o = *opts;
    GPT m;
    TrainState ts;
    Tokenizer tok;
    SafeTensors st;
    Dataset data = {0};
    int *x = NULL, *y = NULL, rc = -1, step = 0;
    if (checkpoint_load(o.resume_path, &m, &tok, NULL, &st, err)) return -1;
    bool bad_step = safetensors_meta(&st, "train.step") && meta_step(&st, &step, err);
    safetensors_close(&st);
    o.model = m.config;
    train_state_init(&ts, &m);
    if (bad_step) {
        error_wrap(err, "%s", o.resume_path);
        goto done;
    }
    if (dataset_load(&data, o.data_path, &tok, err) ||
        dataset_check(&data, o.model.block_size, err))
        goto done;
    float train_loss, val_loss;
    if (alloc_batch(&o, &x, &y, err) ||
        evaluate_and_log(&ts, &data, &o, step, x, y, log, &train_loss, &val_loss, err))
        goto done;
    rc = 0;
done:
    free(x);
    free(y);
    dataset_free(&data);
    train_state_free(&ts);
    tokenizer_free(&tok);
    gpt_free(&m);
    return rc;
}

static void format_duration(double s, char *out, size_t cap) {
    long t = (long)s;
    if (t >= 3600)
        snprintf(out, cap, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else
        snprintf(out, cap, "%ldm%02lds", t / 60, t % 60);
}

/* A fresh run (the model initialised from o->seed, zero moments) or a resumed one, and the text it
 * trains on. */
static int start_run(TrainOptions *o, GPT *m, Tokenizer *tok, OptimizerState *opt, Dataset *data,
                     Progress *p, Error *err) {
    if (o->resume_path)
        return resume(o, m, tok, opt, p, err) || dataset_load(data, o->data_path, tok, err) ? -1
                                                                                            : 0;
    if (check_options(o, err)) return -1;
    if (o->tokenizer_path && tokenizer_from_bpe_dir(tok, o->tokenizer_path, err))
        return error_wrap(err, "--tokenizer");
    if (dataset_load(data, o->data_path, tok, err)) return -1;
    o->model.vocab_size = tok->vocab_size;
    if (gpt_init(m, &o->model, err)) return -1;
    rng_seed(&p->rng, o->seed);
    gpt_init_weights(m, &p->rng);
    opt->m = calloc(m->n_params, sizeof(float));
    opt->v = calloc(m->n_params, sizeof(float));
    return opt->m && opt->v ? 0 : error_set(err, "out of memory");
}

/* At an evaluation step, on rank 0: both splits' losses, the log line, and the checkpoint, which
 * is not written when a loss is not finite. Every rank learns the losses and whether it worked. */
static int evaluate_and_save(TrainState *ts, const Dataset *d, const TrainOptions *o,
                             DataParallel *dp, const GPT *m, const Tokenizer *tok,
                             const OptimizerState *opt, const Progress *p, int *x, int *y,
                             FILE *log, float *train_loss, float *val_loss, Error *err) {
    int rc = 0;
    if (dp->rank == 0) {
        rc = evaluate_and_log(ts, d, o, p->step, x, y, log, train_loss, val_loss, err);
        if (!rc && (!isfinite(*train_loss) || !isfinite(*val_loss)))
            rc = error_set(err,
                           "the loss at step %d is not finite (train %g, valid %g): stopped "
                           "without saving",
                           p->step, *train_loss, *val_loss);
        if (!rc) rc = save(o, m, tok, opt, p, *train_loss, *val_loss, err);
    }
    float losses[2] = {*train_loss, *val_loss};
    rc = data_parallel_share(dp, losses, 2, rc);
    *train_loss = losses[0];
    *val_loss = losses[1];
    if (rc && dp->rank != 0) error_set(err, "rank 0 stopped the run at step %d", p->step);
    return rc;
}

/* AdamW over ranges of the parameters on the pool (each parameter's update is its own). */
typedef struct {
    float *params;
    const float *grads;
    float *m, *v;
    int t;
    const AdamWConfig *c;
} AdamWJob;

static void adamw_range(void *ctx, size_t begin, size_t end) {
    const AdamWJob *j = ctx;
    adamw_update(j->params + begin, j->grads + begin, j->m + begin, j->v + begin, end - begin, j->t,
                 j->c);
}

static void adamw_step(TrainState *ts, OptimizerState *opt, int t, const AdamWConfig *c) {
    GPT *m = ts->model;
    AdamWJob j = {m->param_memory, ts->grad_memory, opt->m, opt->v, t, c};
    thread_pool_run_ranges(ts->pool, adamw_range, &j, m->n_params, 4, 1);
}

/* One AdamW step on a random training batch (x, y: its buffers); *loss is the batch's. Every
 * rank draws the whole batch and runs its share, sequences [shard0, shard0 + B / ranks). */
static int train_step(TrainState *ts, const Dataset *d, const TrainOptions *o, int share,
                      OptimizerState *opt, AdamWConfig *adam, Progress *p, int *x, int *y,
                      float *loss, Error *err) {
    int T = o->model.block_size;
    dataset_batch(d, false, o->batch_size, T, &p->rng, x, y);
    size_t at = (size_t)ts->shard0 * T;
    if (gpt_forward(ts, x + at, y + at, share, T, o->dropout, &p->rng, loss, err)) return -1;
    gpt_backward(ts);
    *loss = ts->batch_loss;
    adam->lr = learning_rate(o, p->step);
    adamw_step(ts, opt, p->step + 1, adam);
    p->step++;
    return 0;
}

/* The progress line: loss, learning rate, speed over the steps since t_window, time left. */
static void log_progress(FILE *progress, const TrainOptions *o, int step, float loss, float lr,
                         double t_window, int window_steps) {
    double per_step = (clock_seconds() - t_window) / window_steps;
    size_t bt = (size_t)o->batch_size * o->model.block_size;
    char left[32];
    format_duration(per_step * (o->max_iters - step), left, sizeof left);
    fprintf(progress, "step %d/%d | loss %.4f | lr %.2e | %.0f ms/step | %.0f tok/s | %s left\n",
            step, o->max_iters, loss, lr, per_step * 1e3, bt / per_step, left);
    fflush(progress);
}

/* The kernels and threads a run's state uses, and its share of each batch when it is one rank of
 * several. */
static int set_up_compute(const TrainOptions *o, DataParallel *dp, TrainState *ts,
                          const Kernels **kernels, ThreadPool **pool, Error *err) {
    if (kernels_choose(kernels, err) ||
        (o->threads > 1 && thread_pool_create(pool, o->threads, TRAINER_POOL_SPIN_US, err)))
        return -1;
    /* Training's runs are long (whole products, a sequence's attention per task): waiting for a
     * worker's task is part of the work, not a sign of a shared CPU, so every run is shared. */
    if (*pool) thread_pool_always_share(*pool);
    train_state_use(ts, *kernels, *pool);
    if (data_parallel_check_batch(dp, o->batch_size, err)) return -1;
    ts->shard0 = dp->rank * (o->batch_size / dp->size);
    ts->batch_rows = o->batch_size * o->model.block_size;
    if (dp->size > 1) {
        ts->combine = data_parallel_combine;
        ts->combine_ctx = dp;
    }
    return 0;
}

static void print_start(FILE *progress, const TrainOptions *o, const GPT *m, const Dataset *data,
                        const Tokenizer *tok, const Kernels *kernels, const DataParallel *dp) {
    fprintf(progress,
            "gpt-train: %zu parameters, %d train / %zu val tokens, vocab %d, %s kernels, %d "
            "thread%s",
            m->n_params, (int)data->n_train, data->n - data->n_train, tok->vocab_size,
            kernels->name, o->threads, o->threads == 1 ? "" : "s");
    if (dp->size > 1) fprintf(progress, " a rank, %d ranks", dp->size);
    fputc('\n', progress);
}

/* Pure step time after a short warm-up (first allocations, thread start), for benchmarks. */
#define WARM_STEPS 3
typedef struct {
    double seconds, product_seconds, product_flops;
    int steps;
} StepTimes;

static void report_speed(FILE *progress, const TrainOptions *o, const StepTimes *t,
                         const Kernels *kernels, ThreadPool *pool, const DataParallel *dp) {
    if (t->steps == 0) return;
    size_t bt = (size_t)o->batch_size * o->model.block_size;
    fprintf(progress, "train speed: %.1f ms/step, %.0f tokens/s over %d steps\n",
            t->seconds / t->steps * 1e3, bt * t->steps / t->seconds, t->steps);
    double rate = t->product_flops / t->product_seconds;
    fprintf(progress, "products: %.1f GFLOP/s, %.0f%% of the step time", rate / 1e9,
            100 * t->product_seconds / t->seconds);
    /* Against what this kernel path's FMA loop reaches on the same threads: how much of the
     * machine the bulk of the work uses (a second or more: for benchmarks). */
    if (o->measure_peak && dp->rank == 0) {
        double peak = kernels_peak_gflops(kernels, pool, 5);
        fprintf(progress, "; %s FMA peak %.1f GFLOP/s on %d thread%s: %.0f%% of it", kernels->name,
                peak, o->threads, o->threads == 1 ? "" : "s", 100 * rate / 1e9 / peak);
    }
    fputc('\n', progress);
}

int trainer_run(const TrainOptions *opts, FILE *log, FILE *progress, Error *err) {
    TrainOptions o = *opts;
    GPT m;
    TrainState ts;
    Tokenizer tok = {0};
    OptimizerState opt = {0};
    Dataset data = {0};
    Progress p = {0};
    int *x = NULL, *y = NULL, rc = -1;
    ThreadPool *pool = NULL;
    const Kernels *kernels;
    DataParallel one = {.rank = 0, .size = 1}, *dp = o.ranks ? o.ranks : &one;
    FILE *quiet = NULL;
    if (dp->rank != 0) { /* rank 0 speaks for the run */
        quiet = fopen("/dev/null", "w");
        if (!quiet) return error_set(err, "cannot open /dev/null");
        log = progress = quiet;
    }
    memset(&m, 0, sizeof m);
    train_state_init(&ts, &m);

    if (start_run(&o, &m, &tok, &opt, &data, &p, err) ||
        dataset_check(&data, o.model.block_size, err) || gpt_alloc_grads(&ts, err) ||
        set_up_compute(&o, dp, &ts, &kernels, &pool, err) || alloc_batch(&o, &x, &y, err))
        goto done;
    print_start(progress, &o, &m, &data, &tok, kernels, dp);

    AdamWConfig adam = {o.lr, 0.9f, 0.999f, 1e-8f, o.weight_decay};
    int first_step = p.step, window_steps = 0;
    double t_start = clock_seconds(), t_window = t_start;
    StepTimes timed = {0};
    float train_loss = NAN, val_loss = NAN;
    for (;;) {
        bool at_eval = p.step % o.eval_interval == 0 || p.step == o.max_iters;
        if (at_eval && !(o.resume_path && p.step == first_step)) {
            double t0 = clock_seconds();
            if (evaluate_and_save(&ts, &data, &o, dp, &m, &tok, &opt, &p, x, y, log, &train_loss,
                                  &val_loss, err))
                goto done;
            fprintf(progress, "eval at step %d took %.1f s; saved %s\n", p.step,
                    clock_seconds() - t0, o.out_path);
            t_window = clock_seconds();
            window_steps = 0;
        }
        if (p.step >= o.max_iters) break;
        if (data_parallel_any(dp, o.stop && *o.stop)) {
            int saved = dp->rank == 0 ? save(&o, &m, &tok, &opt, &p, train_loss, val_loss, err) : 0;
            if (data_parallel_share(dp, NULL, 0, saved)) goto done;
            fprintf(progress, "interrupted at step %d; saved %s and %s.state\n", p.step, o.out_path,
                    o.out_path);
            break;
        }
        float loss;
        double t_step = clock_seconds(), product_s = ts.mm.seconds, product_f = ts.mm.flops;
        if (train_step(&ts, &data, &o, o.batch_size / dp->size, &opt, &adam, &p, x, y, &loss, err))
            goto done;
        if (!isfinite(loss)) {
            error_set(err,
                      "the training loss at step %d is not finite (%g): stopped without saving",
                      p.step, loss);
            goto done;
        }
        window_steps++;
        if (p.step - first_step > WARM_STEPS) {
            timed.seconds += clock_seconds() - t_step;
            timed.steps++;
            timed.product_seconds += ts.mm.seconds - product_s;
            timed.product_flops += ts.mm.flops - product_f;
        }
        if (o.log_interval > 0 && p.step % o.log_interval == 0)
            log_progress(progress, &o, p.step, loss, adam.lr, t_window, window_steps);
    }
    report_speed(progress, &o, &timed, kernels, pool, dp);
    fprintf(progress, "done in %.1f s\n", clock_seconds() - t_start);
    rc = 0;
done:
    if (quiet) fclose(quiet);
    thread_pool_destroy(pool);
    free(x);
    free(y);
    free(opt.m);
    free(opt.v);
    dataset_free(&data);
    train_state_free(&ts);
    tokenizer_free(&tok);
    gpt_free(&m);
    return rc;
}
