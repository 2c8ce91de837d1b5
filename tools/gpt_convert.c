/* bin/gpt-convert: rewrites a checkpoint's parameters as float16 (or back to float32), keeping
 * its configuration, vocabulary and notes. A float16 checkpoint is half the size and the engine
 * streams its weights at half the cost, computing with the very same values (see
 * model/float16.h); the rounding changes the model itself a little, so the tool reports how much
 * and the validation loss should be measured again (gpt-train --eval-only). Optimizer state is
 * not carried over: a converted file serves and samples, it does not resume training. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../common/cli.h"
#include "../model/checkpoint.h"
#include "../model/float16.h"

int main(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *dtype = "f16";
    CliFlag flags[] = {
        {"model", CLI_STRING, &in, 0, 0, "checkpoint to read (.safetensors)", false, NULL},
        {"out", CLI_STRING, &out, 0, 0, "checkpoint to write", false, NULL},
        {"dtype", CLI_STRING, &dtype, 0, 0, "f16 or f32", false, NULL},
    };
    int rc = cli_parse(flags, sizeof flags / sizeof flags[0], argc, argv,
                       "usage: gpt-convert --model IN --out OUT [--dtype f16|f32]");
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
