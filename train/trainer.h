/* The training loop: random batches, AdamW, periodic evaluation with the lecture's log line, and
 * atomic checkpoints that resume exactly (weights, moments, step and RNG state). */
#ifndef GPTD_TRAINER_H
#define GPTD_TRAINER_H

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

#include "../common/error.h"
#include "../model/gpt.h"

typedef struct {
    const char *data_path;
    const char *out_path;    /* the model; "<out>.state" holds the resumable training state */
    const char *resume_path; /* a "<out>.state" file, or NULL */
    const char
        *tokenizer_path; /* GPT-2's BPE files (a directory), or NULL: the text's characters */
    GPTConfig model;
    int batch_size, max_iters, eval_interval, eval_iters, warmup_iters, threads, log_interval;
    float lr, min_lr, dropout, weight_decay;
    unsigned long long seed;
    bool measure_peak;           /* after training, the products' share of the kernels' FMA peak */
    const char *command_line;    /* stored in the checkpoint's metadata */
    struct DataParallel *ranks;  /* the ranks of a data-parallel run, or NULL: one process */
    volatile sig_atomic_t *stop; /* set by a signal handler: save and return */
} TrainOptions;

/* The bounds of the settings a training state carries, the same as gpt-train's flags
 * (tools/gpt_train.c): trainer_run holds both a fresh run's options and a resumed state's values to
 * them. Steps (train.step, --warmup-iters) are at most TRAIN_MAX_ITERS. */
#define TRAIN_MAX_BATCH_SIZE (1 << 20)
#define TRAIN_MAX_ITERS (1 << 30)
#define TRAIN_MIN_LR 1e-9
#define TRAIN_MAX_LR 10.0
#define TRAIN_MAX_WEIGHT_DECAY 10.0
#define TRAIN_MAX_DROPOUT 0.95

/* Runs training; the lecture's log line goes to `log`, progress lines to `progress`. Refuses
 * options or a resumed state outside the bounds above, and stops with an error, saving nothing,
 * when the loss or the weights stop being finite. */
int trainer_run(const TrainOptions *o, FILE *log, FILE *progress, Error *err);

/* Evaluates the checkpoint at o->resume_path (a model or a state file) over o->eval_iters
 * batches of o->batch_size per split and prints the log line for its step. */
int trainer_evaluate(const TrainOptions *o, FILE *log, Error *err);

#endif
