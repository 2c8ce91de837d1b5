/* bin/gpt-convert: rewrites a checkpoint's parameters as float16 (or back to float32), keeping
 * its configuration, vocabulary and notes. A float16 checkpoint is half the size and the engine
 * streams its weights at half the cost, computing with the very same values (see
 * model/float16.h); the rounding changes the model itself a little, so the tool reports how much
 * and the validation loss should be measured again (gpt-train --eval-only). Optimizer state is
 * not carried over: a converted file serves and samples, it does not resume training. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../model/checkpoint.h"
#include "../model/float16.h"
#include "cli.h"

/* Metadata written by checkpoint_save itself; everything else is carried over. */
static bool is_config_key(const char *k) {
    static const char *keys[] = {"format",    "vocab_size", "n_layer",    "n_head",
                                 "n_embd",    "block_size", "activation", "qkv_bias",
                                 "tied_head", "vocab",      "weights"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strcmp(k, keys[i]) == 0) return true;
    return false;
}

int main(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *dtype = "f16";
    CliFlag flags[] = {
        {"model", CLI_STRING, &in, 0, 0, "checkpoint to read (.safetensors)", false, NULL},
        {"out", CLI_STRING, &out, 0, 0, "checkpoint to write", false, NULL},
        {"dtype", CLI_STRING, &dtype, 0, 0, "f16 or f32", false, NULL},
    };
    int rc = cli_parse(flags, 3, argc, argv,
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
    StMeta extra[24];
    int n_extra = 0;
    for (int i = 0; i < st.n_meta && n_extra < 23; i++)
        if (!is_config_key(st.meta[i].key)) extra[n_extra++] = st.meta[i];
    extra[n_extra++] = (StMeta){"weights", half ? "float16" : "float32"};
    double max_err = 0;
    size_t changed = 0;
    for (size_t i = 0; half && i < m.n_params; i++) {
        float v = m.param_memory[i], r = float_from_float16(float16_from_float(v));
        if (r != v) changed++;
        if (fabs((double)r - v) > max_err) max_err = fabs((double)r - v);
    }
    rc = half ? checkpoint_save_float16(out, &m, &tok, extra, n_extra, &err)
              : checkpoint_save(out, &m, &tok, NULL, extra, n_extra, &err);
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
