/* Hugging Face GPT-2 directories (model/load_hf_gpt2.c) against a reference GPT-2 written from
 * its definition in PyTorch (tests/reference/make_hf_fixtures.py, float64): F32 with the mask
 * buffers, F16 with "transformer." names, BF16 with an untied lm_head. The engine's logits at
 * every prompt position within 1e-4 and the same greedy ids; the same through a gptd checkpoint
 * saved from the loaded model (the tokenizer travels inside it); and each kind of bad directory
 * refused with the file and the field named. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_filter.h"

#include "../../common/buf.h"
#include "../../model/checkpoint.h"
#include "../../model/engine.h"
#include "../../model/load.h"
#include "../../model/sampler.h"

#define FIXTURES "tests/reference/fixtures/"

static const StTensor *expected(const SafeTensors *st, const char *name) {
    const StTensor *t = safetensors_find(st, name);
    if (!t) fail_msg("expected.safetensors has no %s", name);
    return t;
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* The engine on model m: logits at every prompt position, then greedy ids, against dir's
 * expected.safetensors. */
static void check_against_reference(const GPT *m, const char *dir) {
    char path[256];
    snprintf(path, sizeof path, "%s/expected.safetensors", dir);
    SafeTensors ex;
    Error err;
    if (safetensors_open(&ex, path, &err)) fail_msg("%s", err.message);
    const StTensor *tokens = expected(&ex, "tokens"), *logits = expected(&ex, "logits");
    const StTensor *greedy = expected(&ex, "greedy");
    int n = (int)tokens->numel, n_greedy = (int)greedy->numel, V = m->config.vocab_size;
    assert_int_equal(logits->numel, (size_t)n * V);
    Engine *e;
    EngineConfig ec = {.max_slots = 1, .max_rows = 8, .threads = 2};
    if (engine_create(&e, m, &ec, &err)) fail_msg("%s", err.message);
    int *ids = malloc(sizeof(int) * (size_t)(n + n_greedy));
    memcpy(ids, tokens->data, sizeof(int) * (size_t)n);
    float *out = malloc(sizeof(float) * (size_t)V), worst = 0.0f;
    for (int t = 0; t < n + n_greedy - 1; t++) {
        EngineSegment seg = {.slot = 0, .pos = t, .n = 1, .tokens = ids + t, .logits = out};
        if (engine_forward(e, &seg, 1, &err)) fail_msg("%s", err.message);
        if (t < n) {
            const float *ref = (const float *)logits->data + (size_t)t * V;
            for (int v = 0; v < V; v++) worst = fmaxf(worst, fabsf(out[v] - ref[v]));
        }
        if (t >= n - 1) ids[t + 1] = argmax(out, V);
    }
    printf("  %s: max |logit - reference| = %.2e over %d positions\n", dir, worst, n);
    assert_true(worst < 1e-4f);
    assert_memory_equal(ids + n, greedy->data, sizeof(int) * (size_t)n_greedy);
    free(out);
    free(ids);
    engine_destroy(e);
    safetensors_close(&ex);
}

static void load_and_check(const char *dir, bool tied) {
    GPT m;
    Tokenizer tok;
    Error err;
    if (model_load(dir, &m, &tok, &err)) fail_msg("%s", err.message);
    assert_int_equal(tok.kind, TOKENIZER_BPE);
    assert_int_equal(tok.vocab_size, 457);
    assert_int_equal(tok.end_token, 456); /* <|endoftext|> */
    assert_int_equal(m.config.tied_head, tied);
    assert_int_equal(m.config.activation, ACT_GELU);
    check_against_reference(&m, dir);
    tokenizer_free(&tok);
    gpt_free(&m);
}

static void f32_with_mask_buffers(void **state) {
    (void)state;
    load_and_check(FIXTURES "hf_gpt2_f32", true);
}

static void f16_with_transformer_prefix(void **state) {
    (void)state;
    load_and_check(FIXTURES "hf_gpt2_f16", true);
}

static void bf16_with_untied_head(void **state) {
    (void)state;
    load_and_check(FIXTURES "hf_gpt2_bf16", false);
}

/* Saved as a gptd checkpoint, the model and its BPE tokenizer come back whole from one file. */
static void gptd_checkpoint_keeps_the_tokenizer(void **state) {
    (void)state;
    const char *dir = FIXTURES "hf_gpt2_bf16";
    GPT m, back;
    Tokenizer tok, tok_back;
    Error err;
    if (model_load(dir, &m, &tok, &err)) fail_msg("%s", err.message);
    char path[] = "/tmp/gptd_hf_ckptXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    if (checkpoint_save(path, &m, &tok, NULL, NULL, 0, &err)) fail_msg("%s", err.message);
    if (model_load(path, &back, &tok_back, &err)) fail_msg("%s", err.message);
    assert_int_equal(tok_back.kind, TOKENIZER_BPE);
    assert_int_equal(tok_back.vocab_size, tok.vocab_size);
    const char *text = "Thou art the thing itself: unaccommodated man.";
    int a[64], b[64];
    size_t na, nb;
    assert_int_equal(tokenizer_encode(&tok, text, strlen(text), a, 64, &na, &err), 0);
    assert_int_equal(tokenizer_encode(&tok_back, text, strlen(text), b, 64, &nb, &err), 0);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na * sizeof(int));
    assert_int_equal(back.n_params, m.n_params);
    assert_memory_equal(back.param_memory, m.param_memory, m.n_params * sizeof(float));
    check_against_reference(&back, dir);
    unlink(path);
    tokenizer_free(&tok);
    tokenizer_free(&tok_back);
    gpt_free(&m);
    gpt_free(&back);
}

/* ---- bad directories: a copy of a fixture with one thing changed ---- */

static void copy_file(const char *from, const char *to) {
    size_t len;
    char *data = read_file(from, &len);
    if (!data) fail_msg("cannot read %s", from);
    FILE *f = fopen(to, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
    free(data);
}

/* A copy of the f32 fixture in a fresh directory, with `old` replaced by `new` in config.json
 * (NULL: unchanged) and `drop` (a file name, or NULL) left out. */
static void bad_copy(char *dir, const char *old, const char *new, const char *drop) {
    strcpy(dir, "/tmp/gptd_hfXXXXXX");
    assert_non_null(mkdtemp(dir));
    static const char *const files[] = {"config.json", "model.safetensors", "vocab.json",
                                        "merges.txt"};
    for (size_t i = 0; i < 4; i++) {
        if (drop && strcmp(files[i], drop) == 0) continue;
        char from[256], to[256];
        snprintf(from, sizeof from, FIXTURES "hf_gpt2_f32/%s", files[i]);
        snprintf(to, sizeof to, "%s/%s", dir, files[i]);
        copy_file(from, to);
    }
    if (!old) return;
    char path[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    size_t len;
    char *text = read_file(path, &len);
    char *at = strstr(text, old);
    if (!at) fail_msg("config.json has no %s", old);
    FILE *f = fopen(path, "wb");
    fwrite(text, 1, (size_t)(at - text), f);
    fputs(new, f);
    fputs(at + strlen(old), f);
    fclose(f);
    free(text);
}

static void remove_copy(const char *dir) {
    static const char *const files[] = {"config.json", "model.safetensors", "vocab.json",
                                        "merges.txt"};
    for (size_t i = 0; i < 4; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

/* Loading the changed copy fails with a message holding each of the words given. */
static void refused(const char *old, const char *new, const char *drop, const char *word1,
                    const char *word2) {
    char dir[64];
    bad_copy(dir, old, new, drop);
    GPT m;
    Tokenizer tok;
    Error err;
    int rc = model_load(dir, &m, &tok, &err);
    remove_copy(dir);
    if (rc == 0) fail_msg("loaded with %s -> %s, drop %s", old, new, drop ? drop : "-");
    printf("  refused: %s\n", err.message);
    if (!strstr(err.message, word1) || !strstr(err.message, word2))
        fail_msg("\"%s\" does not name %s and %s", err.message, word1, word2);
}

static void bad_directories_are_refused(void **state) {
    (void)state;
    refused("\"gpt2\"", "\"llama\"", NULL, "config.json", "model_type");
    refused("\"gelu_new\"", "\"gelu\"", NULL, "config.json", "activation_function");
    refused("1e-05", "1e-06", NULL, "config.json", "layer_norm_epsilon");
    refused("\"n_embd\": 32", "\"n_embd\": 64", NULL, "model.safetensors", "shape");
    refused("\"n_layer\": 2", "\"n_layer\": 1", NULL, "model.safetensors", "h.1.");
    refused("\"vocab_size\": 457", "\"vocab_size\": 400", NULL, "457", "vocab_size");
    refused("\"n_head\": 4", "\"n_head\": \"4\"", NULL, "config.json", "n_head");
    refused("{", "[", NULL, "config.json", "JSON");
    refused(NULL, NULL, "merges.txt", "merges.txt", "cannot read");
    refused(NULL, NULL, "vocab.json", "vocab.json", "merges.txt");
    refused(NULL, NULL, "model.safetensors", "model.safetensors", "");
    refused(NULL, NULL, "config.json", "config.json", "cannot read");
}

int main(void) {
    apply_test_filter();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(f32_with_mask_buffers),
        cmocka_unit_test(f16_with_transformer_prefix),
        cmocka_unit_test(bf16_with_untied_head),
        cmocka_unit_test(gptd_checkpoint_keeps_the_tokenizer),
        cmocka_unit_test(bad_directories_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
