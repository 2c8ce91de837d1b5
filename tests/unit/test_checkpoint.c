/* Checkpoints and safetensors: a tiny model saved and loaded back bit for bit (with and without
 * AdamW moments), and every kind of damaged or inconsistent file refused with a message that
 * names the problem (and the file). Damaged files are crafted here: raw bytes (8-byte
 * little-endian header length, JSON header, data) or a good checkpoint whose JSON header is
 * edited with cJSON and written back in front of the same data. The tokenizer's own tests are
 * in test_tokenizer.c.
 *
 * Tests named regression_* reproduce defects these tests found in model/; each guards its fix.
 * Run a subset with e.g. GPTD_TEST_FILTER=regression_nul_in_text build/san/test_checkpoint. */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "test_filter.h"

#include "../../common/float16.h"
#include "../../common/rng.h"
#include "../../model/checkpoint.h"
#include "../../model/gpt.h"
#include "../../model/safetensors.h"
#include "../../model/tokenizer.h"
#include "../../train/gpt_backprop.h"

/* ---------------------------------------------------------------------------------------- */
/* Fixture: a fresh temporary directory per test, removed afterwards.                        */

typedef struct {
    char dir[64];
    char path[8][320]; /* scratch paths handed out by path_in */
    int n_paths;
} Tmp;

static int tmp_setup(void **state) {
    Tmp *t = calloc(1, sizeof *t);
    if (!t) return -1;
    snprintf(t->dir, sizeof t->dir, "/tmp/gptd_test_ckpt.XXXXXX");
    if (!mkdtemp(t->dir)) {
        free(t);
        return -1;
    }
    *state = t;
    return 0;
}

static int tmp_teardown(void **state) {
    Tmp *t = *state;
    DIR *d = opendir(t->dir);
    if (d) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            snprintf(p, sizeof p, "%s/%s", t->dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(t->dir);
    free(t);
    return 0;
}

static const char *path_in(Tmp *t, const char *name) {
    char *p = t->path[t->n_paths++ % 8], dir[sizeof t->dir];
    memcpy(dir, t->dir, sizeof dir);
    snprintf(p, sizeof t->path[0], "%s/%s", dir, name);
    return p;
}

/* ---------------------------------------------------------------------------------------- */
/* Files                                                                                    */

static unsigned char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void spit(const char *path, const void *buf, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot create %s", path);
    if (len) assert_int_equal(fwrite(buf, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void put_le64(unsigned char *out, uint64_t v) {
    for (int i = 0; i < 8; i++) out[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le64(const unsigned char *in) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | in[i];
    return v;
}

/* Writes a safetensors file by hand: length field, the JSON exactly as given, then data. */
static void write_raw(const char *path, const char *json, const void *data, size_t data_len) {
    size_t jl = strlen(json), n = 8 + jl + data_len;
    unsigned char *buf = malloc(n);
    assert_non_null(buf);
    put_le64(buf, jl);
    memcpy(buf + 8, json, jl);
    if (data_len) memcpy(buf + 8 + jl, data, data_len);
    spit(path, buf, n);
    free(buf);
}

/* Edits to a checkpoint's JSON header. */
typedef enum {
    SET_META,     /* __metadata__[name] = value (string) */
    DEL_META,     /* delete __metadata__[name] */
    DEL_TENSOR,   /* delete tensor name */
    SET_DTYPE,    /* tensor name: dtype = value */
    SET_SHAPE,    /* tensor name: shape = dims[0..ndim) */
    COPY_OFFSETS, /* tensor name: data_offsets = those of tensor value */
    DUP_METADATA, /* append a second "__metadata__" object holding {name: value} */
} EditKind;

typedef struct {
    EditKind kind;
    const char *name, *value;
    int ndim;
    int dims[4];
} Edit;

static cJSON *tensor_item(cJSON *root, const char *name) {
    cJSON *t = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!t) fail_msg("header has no tensor %s", name);
    return t;
}

static void apply_edit(cJSON *root, const Edit *e) {
    cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
    assert_non_null(meta);
    switch (e->kind) {
        case SET_META:
            if (cJSON_GetObjectItemCaseSensitive(meta, e->name))
                cJSON_ReplaceItemInObjectCaseSensitive(meta, e->name, cJSON_CreateString(e->value));
            else
                cJSON_AddStringToObject(meta, e->name, e->value);
            break;
        case DEL_META:
            assert_non_null(cJSON_GetObjectItemCaseSensitive(meta, e->name));
            cJSON_DeleteItemFromObjectCaseSensitive(meta, e->name);
            break;
        case DEL_TENSOR:
            tensor_item(root, e->name);
            cJSON_DeleteItemFromObjectCaseSensitive(root, e->name);
            break;
        case SET_DTYPE:
            cJSON_ReplaceItemInObjectCaseSensitive(tensor_item(root, e->name), "dtype",
                                                   cJSON_CreateString(e->value));
            break;
        case SET_SHAPE:
            cJSON_ReplaceItemInObjectCaseSensitive(tensor_item(root, e->name), "shape",
                                                   cJSON_CreateIntArray(e->dims, e->ndim));
            break;
        case COPY_OFFSETS: {
            cJSON *src =
                cJSON_GetObjectItemCaseSensitive(tensor_item(root, e->value), "data_offsets");
            cJSON_ReplaceItemInObjectCaseSensitive(tensor_item(root, e->name), "data_offsets",
                                                   cJSON_Duplicate(src, 1));
            break;
        }
        case DUP_METADATA: {
            cJSON *m2 = cJSON_CreateObject();
            cJSON_AddStringToObject(m2, e->name, e->value);
            cJSON_AddItemToObject(root, "__metadata__", m2); /* cJSON keeps duplicate keys */
            break;
        }
    }
}

/* Copies src to dst with its header edited; the data section is kept byte for byte and the
 * header is padded with spaces to a multiple of 8, as our writer does. */
static void rewrite(const char *src, const char *dst, const Edit *edits, int n_edits) {
    size_t len;
    unsigned char *buf = slurp(src, &len);
    assert_true(len >= 8);
    uint64_t hl = get_le64(buf);
    assert_true(hl <= len - 8);
    cJSON *root = cJSON_ParseWithLength((const char *)buf + 8, (size_t)hl);
    assert_non_null(root);
    for (int i = 0; i < n_edits; i++) apply_edit(root, &edits[i]);
    char *json = cJSON_PrintUnformatted(root);
    assert_non_null(json);
    cJSON_Delete(root);
    size_t jl = strlen(json), padded = (jl + 7) / 8 * 8, data_len = len - 8 - (size_t)hl;
    char *hdr = malloc(padded + 1);
    assert_non_null(hdr);
    memcpy(hdr, json, jl);
    memset(hdr + jl, ' ', padded - jl);
    hdr[padded] = '\0';
    write_raw(dst, hdr, buf + 8 + hl, data_len);
    free(hdr);
    free(json);
    free(buf);
}

/* ---------------------------------------------------------------------------------------- */
/* A tiny model                                                                             */

static const char *TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n"
                          "héllo wörld — ✓ 🙂\n";

static void make_tokenizer(Tokenizer *tok, const char *text) {
    Error err;
    if (tokenizer_build(tok, text, strlen(text), &err)) fail_msg("%s", err.message);
}

static void make_model(GPT *m, const Tokenizer *tok, Activation act, bool qkv_bias, bool tied,
                       uint64_t seed) {
    GPTConfig c = {.vocab_size = tok->vocab_size,
                   .n_layer = 1,
                   .n_head = 2,
                   .n_embd = 16,
                   .block_size = 16,
                   .activation = act,
                   .qkv_bias = qkv_bias,
                   .tied_head = tied};
    Error err;
    if (gpt_init(m, &c, &err)) fail_msg("%s", err.message);
    Rng rng;
    rng_seed(&rng, seed);
    gpt_init_weights(m, &rng);
    /* biases start at zero and LayerNorm gains at one: make every parameter distinctive */
    for (size_t i = 0; i < m->n_params; i++) m->param_memory[i] += 1e-3f * rng_normal(&rng);
}

static void make_opt(OptimizerState *opt, const GPT *m, uint64_t seed) {
    Rng rng;
    rng_seed(&rng, seed);
    opt->m = malloc(m->n_params * sizeof(float));
    opt->v = malloc(m->n_params * sizeof(float));
    assert_non_null(opt->m);
    assert_non_null(opt->v);
    for (size_t i = 0; i < m->n_params; i++) {
        opt->m[i] = rng_normal(&rng);
        opt->v[i] = rng_float(&rng);
    }
}

static void free_opt(OptimizerState *opt) {
    free(opt->m);
    free(opt->v);
    memset(opt, 0, sizeof *opt);
}

/* Saves a good checkpoint of the tiny relu model (untied head: lm_head.* tensors exist). */
static void save_good(const char *path, bool with_opt) {
    Tokenizer tok;
    GPT m;
    OptimizerState opt = {0};
    Error err;
    make_tokenizer(&tok, TEXT);
    make_model(&m, &tok, ACT_RELU, false, false, 7);
    if (with_opt) make_opt(&opt, &m, 8);
    if (checkpoint_save(path, &m, &tok, with_opt ? &opt : NULL, NULL, 0, &err))
        fail_msg("%s", err.message);
    free_opt(&opt);
    gpt_free(&m);
    tokenizer_free(&tok);
}

static void assert_same_model(const GPT *a, const GPT *b) {
    assert_int_equal(a->config.vocab_size, b->config.vocab_size);
    assert_int_equal(a->config.n_layer, b->config.n_layer);
    assert_int_equal(a->config.n_head, b->config.n_head);
    assert_int_equal(a->config.n_embd, b->config.n_embd);
    assert_int_equal(a->config.block_size, b->config.block_size);
    assert_int_equal(a->config.activation, b->config.activation);
    assert_int_equal(a->config.qkv_bias, b->config.qkv_bias);
    assert_int_equal(a->config.tied_head, b->config.tied_head);
    assert_int_equal(a->n_tensors, b->n_tensors);
    assert_int_equal(a->n_params, b->n_params);
    for (int i = 0; i < a->n_tensors; i++)
        assert_string_equal(a->tensors[i].name, b->tensors[i].name);
    assert_memory_equal(a->param_memory, b->param_memory, a->n_params * sizeof(float));
}

static void assert_same_tokenizer(const Tokenizer *a, const Tokenizer *b) {
    assert_int_equal(a->vocab_size, b->vocab_size);
    assert_memory_equal(a->chars, b->chars, (size_t)a->vocab_size * sizeof *a->chars);
}

/* GPTD_TEST_VERBOSE=1 prints every refusal message. */
static bool verbose(void) {
    const char *e = getenv("GPTD_TEST_VERBOSE");
    return e && strcmp(e, "1") == 0;
}

/* checkpoint_load(path) must fail, leave nothing allocated, and say so with a message naming
 * the file and containing every one of the given substrings (NULL-terminated list). */
static void expect_refused_opt(const char *path, bool with_opt, ...) {
    GPT m;
    Tokenizer tok;
    OptimizerState opt;
    Error err = {{0}};
    int rc = checkpoint_load(path, &m, &tok, with_opt ? &opt : NULL, NULL, &err);
    if (rc == 0) {
        gpt_free(&m);
        tokenizer_free(&tok);
        if (with_opt) free_opt(&opt);
        fail_msg("%s was accepted", path);
    }
    assert_int_equal(rc, -1);
    if (verbose()) print_message("refused: %s\n", err.message);
    assert_non_null(strstr(err.message, path));
    va_list ap;
    va_start(ap, with_opt);
    for (const char *want; (want = va_arg(ap, const char *));)
        if (!strstr(err.message, want))
            fail_msg("message \"%s\" does not contain \"%s\"", err.message, want);
    va_end(ap);
    assert_null(m.param_memory);
    assert_null(tok.chars);
    if (with_opt) {
        assert_null(opt.m);
        assert_null(opt.v);
    }
}
#define expect_refused(path, ...) expect_refused_opt(path, false, __VA_ARGS__, NULL)
#define expect_refused_with_opt(path, ...) expect_refused_opt(path, true, __VA_ARGS__, NULL)

/* The same for safetensors_open alone. */
static void expect_open_refused_(const char *path, ...) {
    SafeTensors st;
    Error err = {{0}};
    int rc = safetensors_open(&st, path, &err);
    if (rc == 0) {
        safetensors_close(&st);
        fail_msg("%s was accepted", path);
    }
    assert_int_equal(rc, -1);
    if (verbose()) print_message("refused: %s\n", err.message);
    assert_non_null(strstr(err.message, path));
    va_list ap;
    va_start(ap, path);
    for (const char *want; (want = va_arg(ap, const char *));)
        if (!strstr(err.message, want))
            fail_msg("message \"%s\" does not contain \"%s\"", err.message, want);
    va_end(ap);
    assert_null(st.map);
    assert_null(st.tensors);
}
#define expect_open_refused(path, ...) expect_open_refused_(path, __VA_ARGS__, NULL)

/* ---------------------------------------------------------------------------------------- */
/* Round trips                                                                              */

static void round_trip_variant(Tmp *t, Activation act, bool qkv_bias, bool tied) {
    const char *path = path_in(t, "model.safetensors");
    Tokenizer tok, tok2;
    GPT m, m2;
    Error err;
    make_tokenizer(&tok, TEXT);
    make_model(&m, &tok, act, qkv_bias, tied, 42);
    /* keys the loader does not read load and stay; the tokenizer's keys come from the tokenizer
     * (a character one writes none), not from extra */
    StMeta extra[] = {
        {"train.step", "42"}, {"note", "héllo \"quoted\" \\ text"}, {"tokenizer", "char"}};
    if (checkpoint_save(path, &m, &tok, NULL, extra, 3, &err)) fail_msg("%s", err.message);

    SafeTensors st;
    if (checkpoint_load(path, &m2, &tok2, NULL, &st, &err)) fail_msg("%s", err.message);
    assert_same_model(&m, &m2);
    assert_same_tokenizer(&tok, &tok2);
    assert_string_equal(safetensors_meta(&st, "format"), "gptd-gpt");
    assert_string_equal(safetensors_meta(&st, "train.step"), "42");
    assert_string_equal(safetensors_meta(&st, "note"), "héllo \"quoted\" \\ text");
    assert_null(safetensors_meta(&st, "tokenizer"));
    assert_null(safetensors_meta(&st, "no.such.key"));
    assert_null(safetensors_find(&st, "optimizer.m.transformer.wte.weight"));
    assert_int_equal(st.n_tensors, m.n_tensors);
    /* the tensors are where the table says, as F32 with the table's shapes */
    for (int i = 0; i < m.n_tensors; i++) {
        const TensorSpec *s = &m.tensors[i];
        const StTensor *x = safetensors_find(&st, s->name);
        assert_non_null(x);
        assert_int_equal(x->dtype, ST_F32);
        assert_int_equal(x->ndim, s->ndim);
        for (int d = 0; d < s->ndim; d++) assert_int_equal(x->shape[d], s->shape[d]);
        assert_int_equal(x->numel, s->size);
        assert_int_equal((uintptr_t)x->data % 4, 0);
        assert_memory_equal(x->data, m.param_memory + s->offset, s->size * sizeof(float));
    }
    assert_int_equal(safetensors_find(&st, "lm_head.weight") == NULL, tied);
    assert_int_equal(safetensors_find(&st, "transformer.h.0.attn.c_attn.bias") != NULL, qkv_bias);
    safetensors_close(&st);
    gpt_free(&m2);
    tokenizer_free(&tok2);

    /* the file is padded so data starts 8-aligned, and no temp file is left behind */
    size_t len;
    unsigned char *buf = slurp(path, &len);
    assert_int_equal(get_le64(buf) % 8, 0);
    free(buf);
    DIR *d = opendir(t->dir);
    assert_non_null(d);
    int files = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') {
            files++;
            assert_string_equal(e->d_name, "model.safetensors");
        }
    closedir(d);
    assert_int_equal(files, 1);

    gpt_free(&m);
    tokenizer_free(&tok);
}

static void round_trip_relu_untied(void **state) {
    round_trip_variant(*state, ACT_RELU, false, false);
}
static void round_trip_gelu_tied_qkv_bias(void **state) {
    round_trip_variant(*state, ACT_GELU, true, true);
}
static void round_trip_gelu_erf_tied(void **state) {
    round_trip_variant(*state, ACT_GELU_ERF, false, true);
}

/* A float16 checkpoint: F16 tensors of half the size, read back as the rounded floats exactly;
 * a weight beyond float16's range is refused by name rather than written as infinity. */
static void round_trip_float16(void **state) {
    Tmp *t = *state;
    const char *path = path_in(t, "model16.safetensors"), *path32 = path_in(t, "model.safetensors");
    Tokenizer tok, tok2;
    GPT m, m2;
    Error err;
    make_tokenizer(&tok, TEXT);
    make_model(&m, &tok, ACT_GELU, true, false, 9);
    /* a file's own keys passed back in (as gpt-convert does) do not override the model's */
    StMeta extra[] = {{"train.step", "9"}, {"weights", "float32"}, {"n_layer", "99"}};
    if (checkpoint_save_float16(path, &m, &tok, extra, 3, &err)) fail_msg("%s", err.message);
    if (checkpoint_save(path32, &m, &tok, NULL, extra, 3, &err)) fail_msg("%s", err.message);
    SafeTensors st;
    if (checkpoint_load(path, &m2, &tok2, NULL, &st, &err)) fail_msg("%s", err.message);
    assert_string_equal(safetensors_meta(&st, "train.step"), "9");
    assert_string_equal(safetensors_meta(&st, "weights"), "float16");
    assert_string_equal(safetensors_meta(&st, "n_layer"), "1");
    int weights_keys = 0;
    for (int i = 0; i < st.n_meta; i++) weights_keys += strcmp(st.meta[i].key, "weights") == 0;
    assert_int_equal(weights_keys, 1);
    size_t changed = 0;
    for (size_t i = 0; i < m.n_params; i++) {
        float v = m.param_memory[i], rounded = float_from_float16(float16_from_float(v));
        assert_true(m2.param_memory[i] == rounded);
        assert_true(fabsf(rounded - v) <= fabsf(v) * 0x1p-11f + 0x1p-25f);
        changed += rounded != v;
    }
    assert_true(changed > m.n_params / 2); /* random weights do need rounding */
    for (int i = 0; i < m.n_tensors; i++)
        assert_int_equal(safetensors_find(&st, m.tensors[i].name)->dtype, ST_F16);
    safetensors_close(&st);
    size_t len16, len32;
    free(slurp(path, &len16));
    free(slurp(path32, &len32));
    assert_true(len16 < len32 / 2 + 4096);

    m.param_memory[m.tensors[3].offset + 2] = 70000.0f;
    assert_int_equal(checkpoint_save_float16(path, &m, &tok, NULL, 0, &err), -1);
    assert_non_null(strstr(err.message, m.tensors[3].name));
    assert_non_null(strstr(err.message, "beyond float16's range"));
    gpt_free(&m2);
    tokenizer_free(&tok2);
    gpt_free(&m);
    tokenizer_free(&tok);
}

static void round_trip_with_optimizer_state(void **state) {
    Tmp *t = *state;
    const char *path = path_in(t, "model.safetensors.state");
    Tokenizer tok, tok2;
    GPT m, m2;
    OptimizerState opt, opt2;
    Error err;
    make_tokenizer(&tok, TEXT);
    make_model(&m, &tok, ACT_GELU, true, false, 3);
    make_opt(&opt, &m, 4);
    if (checkpoint_save(path, &m, &tok, &opt, NULL, 0, &err)) fail_msg("%s", err.message);

    if (checkpoint_load(path, &m2, &tok2, &opt2, NULL, &err)) fail_msg("%s", err.message);
    assert_same_model(&m, &m2);
    assert_same_tokenizer(&tok, &tok2);
    assert_memory_equal(opt.m, opt2.m, m.n_params * sizeof(float));
    assert_memory_equal(opt.v, opt2.v, m.n_params * sizeof(float));
    free_opt(&opt2);
    gpt_free(&m2);
    tokenizer_free(&tok2);

    /* a state file also loads as a plain model (the moments are ignored) */
    if (checkpoint_load(path, &m2, &tok2, NULL, NULL, &err)) fail_msg("%s", err.message);
    assert_same_model(&m, &m2);
    gpt_free(&m2);
    tokenizer_free(&tok2);

    /* saving again replaces the file atomically with the new contents */
    for (size_t i = 0; i < m.n_params; i++) m.param_memory[i] *= -0.5f;
    if (checkpoint_save(path, &m, &tok, &opt, NULL, 0, &err)) fail_msg("%s", err.message);
    if (checkpoint_load(path, &m2, &tok2, &opt2, NULL, &err)) fail_msg("%s", err.message);
    assert_same_model(&m, &m2);
    assert_memory_equal(opt.v, opt2.v, m.n_params * sizeof(float));
    free_opt(&opt2);
    gpt_free(&m2);
    tokenizer_free(&tok2);

    free_opt(&opt);
    gpt_free(&m);
    tokenizer_free(&tok);
}

static void save_reports_write_failure(void **state) {
    Tmp *t = *state;
    const char *path = path_in(t, "no-such-dir/model.safetensors");
    Tokenizer tok;
    GPT m;
    Error err = {{0}};
    make_tokenizer(&tok, "hello");
    make_model(&m, &tok, ACT_RELU, false, false, 1);
    assert_int_equal(checkpoint_save(path, &m, &tok, NULL, NULL, 0, &err), -1);
    assert_non_null(strstr(err.message, "no-such-dir/model.safetensors"));
    assert_non_null(strstr(err.message, "No such file or directory"));
    gpt_free(&m);
    tokenizer_free(&tok);
}

static void model_file_has_no_optimizer_state(void **state) {
    Tmp *t = *state;
    const char *path = path_in(t, "model.safetensors");
    save_good(path, false);
    expect_refused_with_opt(path, "missing tensor 'optimizer.m.transformer.wte.weight'");
}

/* A file from another writer: header not padded (data off a 4-byte boundary), I32 tensor,
 * no metadata, a scalar. */
static void safetensors_reads_unaligned_foreign_file(void **state) {
    Tmp *t = *state;
    const char *path = path_in(t, "foreign.safetensors");
    float f[3] = {1.5f, -2.25f, 3.0f};
    int32_t i[2] = {-7, 123456789};
    float s = 0.125f;
    unsigned char data[24];
    memcpy(data, f, 12);
    memcpy(data + 12, i, 8);
    memcpy(data + 20, &s, 4);
    const char *json = "{\"f\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
                       "\"i\":{\"dtype\":\"I32\",\"shape\":[1,2],\"data_offsets\":[12,20]},"
                       "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[20,24]}}";
    assert_int_not_equal(strlen(json) % 4, 0);
    write_raw(path, json, data, sizeof data);
    SafeTensors st;
    Error err;
    if (safetensors_open(&st, path, &err)) fail_msg("%s", err.message);
    assert_int_equal(st.n_tensors, 3);
    assert_int_equal(st.n_meta, 0);
    const StTensor *tf = safetensors_find(&st, "f"), *ti = safetensors_find(&st, "i"),
                   *ts = safetensors_find(&st, "s");
    assert_non_null(tf);
    assert_non_null(ti);
    assert_non_null(ts);
    assert_int_equal(ti->dtype, ST_I32);
    assert_int_equal(ti->ndim, 2);
    assert_int_equal(ti->shape[1], 2);
    assert_int_equal(ts->ndim, 0);
    assert_int_equal(ts->numel, 1);
    assert_int_equal((uintptr_t)tf->data % 4, 0);
    assert_int_equal((uintptr_t)ti->data % 4, 0);
    assert_memory_equal(tf->data, f, sizeof f);
    assert_memory_equal(ti->data, i, sizeof i);
    assert_memory_equal(ts->data, &s, sizeof s);
    safetensors_close(&st);
}

/* ---------------------------------------------------------------------------------------- */
/* Damaged files                                                                            */

static void refuses_file_shorter_than_8_bytes(void **state) {
    Tmp *t = *state;
    const char *path = path_in(t, "short.safetensors");
    spit(path, "abc", 3);
    expect_refused(path, "truncated", "3 bytes");
    spit(path, "", 0);
    expect_refused(path, "truncated", "0 bytes");
    expect_open_refused(path, "truncated");
}

static void refuses_missing_file_and_directory(void **state) {
    Tmp *t = *state;
    expect_refused(path_in(t, "does-not-exist.safetensors"), "No such file");
    expect_open_refused(t->dir, "not a regular file");
}

static void refuses_truncated_checkpoint(void **state) {
    Tmp *t = *state;
    const char *good = path_in(t, "good.safetensors"), *bad = path_in(t, "cut.safetensors");
    save_good(good, true);
    size_t len;
    unsigned char *buf = slurp(good, &len);
    uint64_t hl = get_le64(buf);
    /* data cut off at the end, then the whole data section, then into the header */
    size_t cuts[] = {len - 1, len - 4, len - 100, 8 + (size_t)hl};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        spit(bad, buf, cuts[i]);
        expect_refused(bad, "past the end", "truncated");
    }
    spit(bad, buf, 8 + (size_t)hl - 10);
    expect_refused(bad, "header length", "runs past the end");
    spit(bad, buf, 8);
    expect_refused(bad, "header length", "runs past the end");
    free(buf);
}

static void refuses_header_length_beyond_file(void **state) {
    Tmp *t = *state;
    const char *good = path_in(t, "good.safetensors"), *bad = path_in(t, "long.safetensors");
    save_good(good, false);
    size_t len;
    unsigned char *buf = slurp(good, &len);
    uint64_t lengths[] = {len - 7, len, (uint64_t)1 << 40, UINT64_MAX, (uint64_t)1 << 63};
    for (size_t i = 0; i < sizeof lengths / sizeof *lengths; i++) {
        put_le64(buf, lengths[i]);
        spit(bad, buf, len);
        expect_refused(bad, "header length", "runs past the end");
    }
    free(buf);
}

static void refuses_header_that_is_not_json(void **state) {
    Tmp *t = *state;
    const char *path = path_in(t, "bad.safetensors");
    const char *bad[] = {"{not json", "", "{\"a\":", "\xff\xfe{}", "{\"a\": [1, 2}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        write_raw(path, bad[i], "\0\0\0\0", 4);
        expect_refused(path, "not valid JSON");
    }
    write_raw(path, "[1, 2, 3]", NULL, 0);
    expect_refused(path, "not a JSON object");
    write_raw(path, "\"__metadata__\"", NULL, 0);
    expect_open_refused(path, "not a JSON object");
    write_raw(path, "{\"x\": [0, 4]}", "\0\0\0\0", 4);
    expect_open_refused(path, "'x'", "needs \"dtype\"");
    write_raw(path, "{\"x\": {\"dtype\": \"F32\", \"shape\": [1]}}", "\0\0\0\0", 4);
    expect_open_refused(path, "'x'", "data_offsets");
    write_raw(path, "{\"__metadata__\": [\"a\"]}", NULL, 0);
    expect_open_refused(path, "__metadata__ must be an object");
    write_raw(path, "{\"__metadata__\": {\"n_layer\": 1}}", NULL, 0);
    expect_open_refused(path, "'n_layer' is not a string");
}

static void refuses_bad_offsets(void **state) {
    Tmp *t = *state;
    const char *path = path_in(t, "bad.safetensors");
    unsigned char data[16] = {0};

    write_raw(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", data, 16);
    expect_open_refused(path, "'a'", "begin 8 is after end 4");

    write_raw(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", data, 16);
    expect_open_refused(path, "'a'", "end 24 is past the end of the data (16 bytes");

    write_raw(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", data, 16);
    expect_open_refused(path, "'a'", "non-negative integers");

    write_raw(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0.5,4.5]}}", data,
              16);
    expect_open_refused(path, "'a'", "non-negative integers");

    write_raw(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", data, 16);
    expect_open_refused(path, "'a'", "[begin, end]");

    write_raw(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",\"4\"]}}",
              data, 16);
    expect_open_refused(path, "'a'", "non-negative integers");

    /* byte count disagreeing with the shape */
    write_raw(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", data, 16);
    expect_open_refused(path, "'a'", "8 bytes of data for 3 F32 elements");

    /* more bytes than the shape needs, by one element or by a whole extra row (issue 26) */
    write_raw(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,8]}}", data, 16);
    expect_open_refused(path, "'a'", "8 bytes of data for 1 F32 elements");
    write_raw(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,1],\"data_offsets\":[0,16]}}", data,
              16);
    expect_open_refused(path, "'a'", "16 bytes of data for 2 F32 elements");
    write_raw(path, "{\"a\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,8]}}", data, 16);
    expect_open_refused(path, "'a'", "8 bytes of data for 3 F16 elements");

    /* misaligned tensor inside the data */
    write_raw(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[2,6]}}", data, 16);
    expect_open_refused(path, "'a'", "not 4-byte aligned");
}

static void refuses_bad_shapes(void **state) {
    Tmp *t = *state;
    const char *path = path_in(t, "bad.safetensors");
    unsigned char data[8] = {0};
    write_raw(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", data, 8);
    expect_open_refused(path, "'a'", "shape entries must be non-negative integers");
    write_raw(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", data, 8);
    expect_open_refused(path, "'a'", "shape entries must be non-negative integers");
    write_raw(path,
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
              data, 8);
    expect_open_refused(path, "'a'", "9 dimensions, at most 8");
    write_raw(path,
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[2000000,2000000],\"data_offsets\":[0,4]}}",
              data, 8);
    expect_open_refused(path, "'a'", "too large");
}

static void refuses_overlapping_tensors(void **state) {
    Tmp *t = *state;
    const char *path = path_in(t, "overlap.safetensors");
    unsigned char data[16] = {0};
    write_raw(path,
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
              data, 16);
    expect_open_refused(path, "'a' and 'b' overlap");
    /* listed out of order in the header */
    write_raw(path,
              "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]},"
              "\"c\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]},"
              "\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}",
              data, 16);
    expect_open_refused(path, "overlap");
    /* adjacent tensors are fine */
    write_raw(path,
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
              data, 16);
    SafeTensors st;
    Error err;
    if (safetensors_open(&st, path, &err)) fail_msg("%s", err.message);
    safetensors_close(&st);

    /* in a checkpoint: one tensor pointing at another's bytes */
    const char *good = path_in(t, "good.safetensors");
    save_good(good, false);
    Edit e = {COPY_OFFSETS, "transformer.ln_f.bias", "transformer.ln_f.weight", 0, {0}};
    rewrite(good, path, &e, 1);
    expect_refused(path, "'transformer.ln_f.weight' and 'transformer.ln_f.bias' overlap");
}

static void refuses_shape_not_matching_config(void **state) {
    Tmp *t = *state;
    const char *good = path_in(t, "good.safetensors"), *bad = path_in(t, "bad.safetensors");
    save_good(good, true);
    char v[16], want[160];
    {
        Tokenizer tok;
        make_tokenizer(&tok, TEXT);
        snprintf(v, sizeof v, "%d", tok.vocab_size);
        tokenizer_free(&tok);
    }

    /* the config says n_embd 8 (still divisible by n_head 2); the tensors are 16 wide */
    Edit e1 = {SET_META, "n_embd", "8", 0, {0}};
    rewrite(good, bad, &e1, 1);
    snprintf(want, sizeof want,
             "tensor 'transformer.wte.weight' has shape [%s, 16], the config needs [%s, 8]", v, v);
    expect_refused(bad, want);

    /* the config says a longer context than wpe holds */
    Edit e2 = {SET_META, "block_size", "32", 0, {0}};
    rewrite(good, bad, &e2, 1);
    expect_refused(bad, "'transformer.wpe.weight' has shape [16, 16], the config needs [32, 16]");

    /* one tensor written transposed (same byte count, wrong shape) */
    int V = atoi(v);
    Edit e3 = {SET_SHAPE, "lm_head.weight", NULL, 2, {16, V}};
    rewrite(good, bad, &e3, 1);
    snprintf(want, sizeof want,
             "tensor 'lm_head.weight' has shape [16, %d], the config needs [%d, 16]", V, V);
    expect_refused(bad, want);

    /* a vector stored as a matrix, and a matrix flattened */
    Edit e4 = {SET_SHAPE, "transformer.ln_f.weight", NULL, 2, {4, 4}};
    rewrite(good, bad, &e4, 1);
    expect_refused(bad, "'transformer.ln_f.weight' has shape [4, 4], the config needs [16]");
    Edit e5 = {SET_SHAPE, "transformer.h.0.attn.c_proj.weight", NULL, 1, {256}};
    rewrite(good, bad, &e5, 1);
    expect_refused(bad, "has shape [256], the config needs [16, 16]");

    /* an extra trailing dimension of 1 (the same bytes, one more dimension), on a vector and on
     * a matrix (issue 26) */
    Edit e7 = {SET_SHAPE, "transformer.ln_f.weight", NULL, 2, {16, 1}};
    rewrite(good, bad, &e7, 1);
    expect_refused(bad, "'transformer.ln_f.weight' has shape [16, 1], the config needs [16]");
    Edit e8 = {SET_SHAPE, "transformer.h.0.attn.c_proj.weight", NULL, 3, {16, 16, 1}};
    rewrite(good, bad, &e8, 1);
    expect_refused(bad, "has shape [16, 16, 1], the config needs [16, 16]");

    /* and in the optimizer moments */
    Edit e6 = {SET_SHAPE, "optimizer.v.transformer.h.0.mlp.c_fc.weight", NULL, 2, {64, 16}};
    rewrite(good, bad, &e6, 1);
    expect_refused_with_opt(bad,
                            "'optimizer.v.transformer.h.0.mlp.c_fc.weight' has shape [64, 16]");
    /* a plain load does not look at the moments */
    GPT m;
    Tokenizer tok;
    Error err;
    if (checkpoint_load(bad, &m, &tok, NULL, NULL, &err)) fail_msg("%s", err.message);
    gpt_free(&m);
    tokenizer_free(&tok);
}

static void refuses_unknown_dtype(void **state) {
    Tmp *t = *state;
    const char *good = path_in(t, "good.safetensors"), *bad = path_in(t, "bad.safetensors");
    save_good(good, false);
    const char *dtypes[] = {"Q4", "F8_E4M3", "U32", "f32", "bf16", ""};
    for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++) {
        Edit e = {SET_DTYPE, "transformer.wpe.weight", dtypes[i], 0, {0}};
        rewrite(good, bad, &e, 1);
        char want[64];
        snprintf(want, sizeof want, "unsupported dtype '%s'", dtypes[i]);
        expect_refused(bad, "'transformer.wpe.weight'", want);
    }
    /* a dtype safetensors knows but a model cannot use */
    Edit e = {SET_DTYPE, "transformer.wpe.weight", "I32", 0, {0}};
    rewrite(good, bad, &e, 1);
    expect_refused(bad, "tensor 'transformer.wpe.weight' must be F32, F16 or BF16");
}

static void refuses_missing_tensor(void **state) {
    Tmp *t = *state;
    const char *good = path_in(t, "good.safetensors"), *bad = path_in(t, "bad.safetensors");
    save_good(good, true);
    const char *names[] = {"transformer.wte.weight", "transformer.h.0.mlp.c_proj.bias",
                           "lm_head.bias"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        Edit e = {DEL_TENSOR, names[i], NULL, 0, {0}};
        rewrite(good, bad, &e, 1);
        char want[96];
        snprintf(want, sizeof want, "missing tensor '%s'", names[i]);
        expect_refused(bad, want);
    }
    Edit e = {DEL_TENSOR, "optimizer.v.transformer.ln_f.bias", NULL, 0, {0}};
    rewrite(good, bad, &e, 1);
    expect_refused_with_opt(bad, "missing tensor 'optimizer.v.transformer.ln_f.bias'");

    /* a qkv-bias config needs the bias tensor the file does not have */
    Edit e2 = {SET_META, "qkv_bias", "true", 0, {0}};
    rewrite(good, bad, &e2, 1);
    expect_refused(bad, "missing tensor 'transformer.h.0.attn.c_attn.bias'");
}

/* NaN or infinite weights would load and make every logit NaN (greedy then always picks token
 * 0): refused at load, naming the tensor, in float32 and float16 files alike. */
static void refuses_non_finite_values(void **state) {
    Tmp *t = *state;
    const char *bad = path_in(t, "nonfinite.safetensors");
    const float poison[2] = {NAN, INFINITY};
    for (int k = 0; k < 2; k++)
        for (int half = 0; half < 2; half++) {
            Tokenizer tok;
            GPT m;
            Error err;
            make_tokenizer(&tok, TEXT);
            make_model(&m, &tok, ACT_RELU, false, false, 7);
            const TensorSpec *ts = &m.tensors[m.n_tensors / 2];
            m.param_memory[ts->offset + 3] = k == 0 ? poison[0] : -poison[1];
            int rc = half ? checkpoint_save_float16(bad, &m, &tok, NULL, 0, &err)
                          : checkpoint_save(bad, &m, &tok, NULL, NULL, 0, &err);
            if (rc) fail_msg("%s", err.message);
            char want[128];
            snprintf(want, sizeof want, "tensor '%s' element 3 is %s", ts->name,
                     k == 0 ? "nan" : "-inf");
            gpt_free(&m);
            tokenizer_free(&tok);
            expect_refused(bad, want);
        }
}

static void refuses_missing_config_key(void **state) {
    Tmp *t = *state;
    const char *good = path_in(t, "good.safetensors"), *bad = path_in(t, "bad.safetensors");
    save_good(good, false);
    const char *keys[] = {"vocab_size", "n_layer",   "n_head",     "n_embd", "block_size",
                          "qkv_bias",   "tied_head", "activation", "vocab"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        Edit e = {DEL_META, keys[i], NULL, 0, {0}};
        rewrite(good, bad, &e, 1);
        char want[64];
        snprintf(want, sizeof want, "metadata has no \"%s\"", keys[i]);
        expect_refused(bad, want);
    }
    /* a file without any __metadata__ */
    const char *path = path_in(t, "nometa.safetensors");
    write_raw(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "\0\0\0\0",
              4);
    expect_refused(path, "metadata has no");
}

static void refuses_bad_config_values(void **state) {
    Tmp *t = *state;
    const char *good = path_in(t, "good.safetensors"), *bad = path_in(t, "bad.safetensors");
    save_good(good, false);
    static const struct {
        const char *key, *value, *want;
    } cases[] = {
        {"n_layer", "abc", "metadata \"n_layer\" is not an integer: \"abc\""},
        {"n_layer", "1x", "is not an integer"},
        {"n_layer", "", "is not an integer"},
        {"n_layer", "99999999999", "is not an integer"},
        {"n_layer", "0", "n_layer must be in [1, 64], got 0"},
        {"n_layer", "65", "n_layer must be in [1, 64], got 65"},
        {"n_head", "3", "n_embd (16) must be divisible by n_head (3)"},
        {"n_head", "-2", "n_head must be positive"},
        {"n_embd", "0", "n_embd must be in"},
        {"block_size", "-1", "block_size must be in"},
        {"vocab_size", "0", "vocab_size must be in"},
        {"qkv_bias", "yes", "\"qkv_bias\" must be true or false, got \"yes\""},
        {"tied_head", "1", "\"tied_head\" must be true or false"},
        {"activation", "tanh", "\"activation\" must be relu, gelu or gelu_erf, got \"tanh\""},
        {"vocab", "", "vocabulary is empty"},
        {"vocab", "ba", "not sorted and unique at character 1"},
        {"vocab", "aab", "not sorted and unique"},
        {"vocab", "a\xff", "vocabulary: invalid UTF-8 at byte 1"},
        {"vocab", "a\xc3", "vocabulary: invalid UTF-8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        Edit e = {SET_META, cases[i].key, cases[i].value, 0, {0}};
        rewrite(good, bad, &e, 1);
        expect_refused(bad, cases[i].want);
    }
}

static void refuses_vocab_size_disagreeing_with_vocab(void **state) {
    Tmp *t = *state;
    const char *good = path_in(t, "good.safetensors"), *bad = path_in(t, "bad.safetensors");
    save_good(good, false);
    Tokenizer tok;
    make_tokenizer(&tok, TEXT);
    int V = tok.vocab_size;
    tokenizer_free(&tok);
    char v[16], want[160];
    snprintf(v, sizeof v, "%d", V + 1);
    Edit e = {SET_META, "vocab_size", v, 0, {0}};
    rewrite(good, bad, &e, 1);
    snprintf(want, sizeof want, "the tokenizer has %d tokens but the model's vocab_size is %d", V,
             V + 1);
    expect_refused(bad, want);

    /* one character dropped from the vocabulary string */
    make_tokenizer(&tok, TEXT);
    char *s = tokenizer_to_string(&tok);
    tokenizer_free(&tok);
    Edit e2 = {SET_META, "vocab", s + 1, 0, {0}};
    rewrite(good, bad, &e2, 1);
    free(s);
    snprintf(want, sizeof want, "the tokenizer has %d tokens but the model's vocab_size is %d",
             V - 1, V);
    expect_refused(bad, want);
}

/* ---------------------------------------------------------------------------------------- */
/* Regressions: defects found by these tests and fixed */

/* safetensors.c parse_header: a second "__metadata__" object reallocates st->meta without
 * resetting st->n_meta, so its entries are written past the new array (heap overflow under
 * ASan) and the first array leaks. */
static void regression_duplicate_metadata(void **state) {
    Tmp *t = *state;
    const char *good = path_in(t, "good.safetensors"), *bad = path_in(t, "bad.safetensors");
    save_good(good, false);
    Edit e = {DUP_METADATA, "format", "gptd-gpt", 0, {0}};
    rewrite(good, bad, &e, 1);
    expect_open_refused(bad, "__metadata__");
}

/* safetensors.c parse_header: the overlap check compares each tensor only with its
 * predecessor in begin order, so an empty tensor between two overlapping ones hides it. */
static void regression_overlap_hidden_by_empty_tensor(void **state) {
    Tmp *t = *state;
    const char *path = path_in(t, "overlap.safetensors");
    unsigned char data[16] = {0};
    write_raw(path,
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
              "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
              data, 16);
    expect_open_refused(path, "overlap");
}

/* safetensors.c parse_tensor: numel is multiplied before the size check, so the product can
 * wrap: shape [2^32, 2^32] gives numel 0 and is accepted with no data at all. */
static void regression_shape_product_wraps(void **state) {
    Tmp *t = *state;
    const char *path = path_in(t, "wrap.safetensors");
    write_raw(path,
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
              "\"data_offsets\":[0,0]}}",
              NULL, 0);
    expect_open_refused(path, "too large");
}

/* safetensors.c parse_tensor: data_offsets are cast to int64_t before any range check;
 * 1e300 makes the cast undefined (clang's -fsanitize=undefined aborts here; gcc's does not
 * check float-cast-overflow and the file happens to be refused). */
static void regression_huge_offsets_cast(void **state) {
    Tmp *t = *state;
    const char *path = path_in(t, "huge.safetensors");
    unsigned char data[16] = {0};
    write_raw(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[1e300,1e300]}}",
              data, 16);
    expect_open_refused(path, "'a'");
}

/* tokenizer.c / checkpoint.c: a NUL character in the training text enters the vocabulary, but
 * the vocabulary is stored as a C string, so the checkpoint cannot be loaded back. */
static void regression_nul_in_text(void **state) {
    Tmp *t = *state;
    const char *path = path_in(t, "nul.safetensors");
    Tokenizer tok, tok2;
    GPT m, m2;
    Error err;
    const char text[] = "ab\0cd";
    int rc = tokenizer_build(&tok, text, sizeof text - 1, &err);
    if (rc != 0) return; /* refusing NUL up front is a fix */
    make_model(&m, &tok, ACT_RELU, false, false, 1);
    rc = checkpoint_save(path, &m, &tok, NULL, NULL, 0, &err);
    if (rc == 0) rc = checkpoint_load(path, &m2, &tok2, NULL, NULL, &err);
    bool same = rc == 0 && tok.vocab_size == tok2.vocab_size;
    if (rc == 0) {
        gpt_free(&m2);
        tokenizer_free(&tok2);
    }
    gpt_free(&m);
    tokenizer_free(&tok);
    if (rc) fail_msg("saved, then not loadable: %s", err.message);
    assert_true(same);
}

/* ---------------------------------------------------------------------------------------- */

#define T(f) cmocka_unit_test_setup_teardown(f, tmp_setup, tmp_teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(round_trip_relu_untied),
        T(round_trip_gelu_tied_qkv_bias),
        T(round_trip_gelu_erf_tied),
        T(round_trip_float16),
        T(round_trip_with_optimizer_state),
        T(save_reports_write_failure),
        T(model_file_has_no_optimizer_state),
        T(safetensors_reads_unaligned_foreign_file),
        T(refuses_file_shorter_than_8_bytes),
        T(refuses_missing_file_and_directory),
        T(refuses_truncated_checkpoint),
        T(refuses_header_length_beyond_file),
        T(refuses_header_that_is_not_json),
        T(refuses_bad_offsets),
        T(refuses_bad_shapes),
        T(refuses_overlapping_tensors),
        T(refuses_shape_not_matching_config),
        T(refuses_unknown_dtype),
        T(refuses_missing_tensor),
        T(refuses_non_finite_values),
        T(refuses_missing_config_key),
        T(refuses_bad_config_values),
        T(refuses_vocab_size_disagreeing_with_vocab),
        T(regression_duplicate_metadata),
        T(regression_overlap_hidden_by_empty_tensor),
        T(regression_shape_product_wraps),
        T(regression_huge_offsets_cast),
        T(regression_nul_in_text),
    };
    apply_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
