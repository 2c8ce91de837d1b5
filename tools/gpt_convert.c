/* bin/gpt-convert: rewrites a checkpoint's parameters as float16 (or back to float32), keeping
 * its configuration, vocabulary and notes. A float16 checkpoint is half the size and the engine
 * streams its weights at half the cost, computing with the very same values (see
 * common/float16.h); the rounding changes the model itself a little, so the tool reports how much
 * and the validation loss should be measured again (gpt-train --eval-only). Optimizer state is
 * not carried over: a converted file serves and samples, it does not resume training.
 *
 * --average FILE (repeatable) writes the mean of --model and those checkpoints instead, parameter
 * by parameter: checkpoints of one run taken a little apart average to a model that often
 * generalises better than either (the same configuration and vocabulary are required). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/cli.h"
#include "../common/float16.h"
#include "../model/checkpoint.h"

/* Adds the parameters of checkpoint `path` to sum (m's layout); the config and vocabulary must be
 * m's. */
static int add_checkpoint(double *sum, const GPT *m, const Tokenizer *tok, const char *path,
                          Error *err) {
    GPT other;
    Tokenizer other_tok;
    if (checkpoint_load(path, &other, &other_tok, NULL, NULL, err)) return -1;
    int rc = 0;
    if (memcmp(&other.config, &m->config, sizeof m->config) || other.n_params != m->n_params)
        rc = error_set(err, "%s: another configuration than the first checkpoint's", path);
    else if (other_tok.vocab_size != tok->vocab_size ||
             memcmp(other_tok.chars, tok->chars, sizeof tok->chars[0] * (size_t)tok->vocab_size))
        rc = error_set(err, "%s: another vocabulary than the first checkpoint's", path);
    for (size_t i = 0; rc == 0 && i < m->n_params; i++) sum[i] += other.param_memory[i];
    tokenizer_free(&other_tok);
    gpt_free(&other);
    return rc;
}

/* m's parameters become the mean of its own and those of every checkpoint in paths. */
static int average_into(GPT *m, const Tokenizer *tok, const CliList *paths, Error *err) {
    double *sum = malloc(m->n_params * sizeof *sum);
    if (!sum) return error_set(err, "out of memory");
    for (size_t i = 0; i < m->n_params; i++) sum[i] = m->param_memory[i];
    for (int k = 0; k < paths->n; k++)
        if (add_checkpoint(sum, m, tok, paths->items[k], err)) {
            free(sum);
            return -1;
        }
    for (size_t i = 0; i < m->n_params; i++) m->param_memory[i] = (float)(sum[i] / (paths->n + 1));
    free(sum);
    return 0;
}

int main(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *dtype = "f16";
    CliList average = {0};
    CliFlag flags[] = {
        {"model", CLI_STRING, &in, 0, 0, "checkpoint to read (.safetensors)", false, NULL},
        {"out", CLI_STRING, &out, 0, 0, "checkpoint to write", false, NULL},
        {"dtype", CLI_STRING, &dtype, 0, 0, "f16 or f32", false, NULL},
        {"average", CLI_LIST, &average, 0, 0,
         "also read this checkpoint (repeatable) and write the mean of all", false, NULL},
    };
    int rc =
        cli_parse(flags, sizeof flags / sizeof flags[0], argc, argv,
                  "usage: gpt-convert --model IN --out OUT [--dtype f16|f32] [--average FILE ...]");
    if (rc) return rc == 1 ? 0 : 2;
    if (!in || !out) {
        fprintf(stderr, "gpt-convert: --model and --out are required\n");
        return 2;
    }
    bool half = strcmp(dtype, "f16") == 0;
    if (!half && strcmp(dtype, "f32") != 0) {
        fprintf(stderr, "gpt-convert: --dtype must be f16 or f32, got '%s'\n", dtype);
        return 2;
    }
    GPT m;
    Tokenizer tok;
    SafeTensors st;
    Error err;
    if (checkpoint_load(in, &m, &tok, NULL, &st, &err)) {
        fprintf(stderr, "gpt-convert: %s\n", err.message);
        return 1;
    }
    if (average.n && average_into(&m, &tok, &average, &err)) {
        fprintf(stderr, "gpt-convert: %s\n", err.message);
        safetensors_close(&st);
        tokenizer_free(&tok);
        gpt_free(&m);
        return 1;
    }
    double max_err = 0;
    size_t changed = 0;
    for (size_t i = 0; half && i < m.n_params; i++) {
        float v = m.param_memory[i], r = float_from_float16(float16_from_float(v));
        if (r != v) changed++;
        if (fabs((double)r - v) > max_err) max_err = fabs((double)r - v);
    }
    /* The file's notes are carried over; checkpoint_save rewrites the config and "weights". */
    rc = half ? checkpoint_save_float16(out, &m, &tok, st.meta, st.n_meta, &err)
              : checkpoint_save(out, &m, &tok, NULL, st.meta, st.n_meta, &err);
    if (rc)
        fprintf(stderr, "gpt-convert: %s\n", err.message);
    else if (half)
        printf("%s: %zu parameters as float16; %zu changed by rounding, by at most %.3g\n", out,
               m.n_params, changed, max_err);
    else
        printf("%s: %zu parameters as float32\n", out, m.n_params);
    safetensors_close(&st);
    tokenizer_free(&tok);
    gpt_free(&m);
    return rc ? 1 : 0;
}
