/* The training loop: random batches, AdamW, periodic evaluation with the lecture's log line, and
 * atomic checkpoints that resume exactly (weights, moments, step and RNG state). */
#ifndef GPTD_TRAINER_H
#define GPTD_TRAINER_H

#include <signal.h>
#include <stdio.h>

#include "../common/error.h"
#include "../model/gpt.h"

typedef struct {
    const char *data_path;
    const char *out_path;    /* the model; "<out>.state" holds the resumable training state */
    const char *resume_path; /* a "<out>.state" file, or NULL */
    GPTConfig model;
    int batch_size, max_iters, eval_interval, eval_iters, warmup_iters, threads, log_interval;
    float lr, min_lr, dropout, weight_decay;
    unsigned long long seed;
    const char *command_line;    /* stored in the checkpoint's metadata */
    volatile sig_atomic_t *stop; /* set by a signal handler: save and return */
} TrainOptions;

/* Runs training; the lecture's log line goes to `log`, progress lines to `progress`. */
int trainer_run(const TrainOptions *o, FILE *log, FILE *progress, Error *err);

/* Evaluates the checkpoint at o->resume_path (a model or a state file) over o->eval_iters
 * batches of o->batch_size per split and prints the log line for its step. */
int trainer_evaluate(const TrainOptions *o, FILE *log, Error *err);

#endif
