#include "checkpoint.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/float16.h"

#define META_MAX 32

/* The parameters as float16, or NULL with err set when one does not fit (a finite weight past
 * the largest half would become infinite). */
static uint16_t *params_to_float16(const GPT *model, Error *err) {
    uint16_t *h = malloc(model->n_params * sizeof *h);
    if (!h) {
        error_set(err, "out of memory");
        return NULL;
    }
    for (int i = 0; i < model->n_tensors; i++) {
        const TensorSpec *t = &model->tensors[i];
        for (size_t k = 0; k < t->size; k++) {
            float v = model->param_memory[t->offset + k];
            h[t->offset + k] = float16_from_float(v);
            if (isfinite(v) && !isfinite(float_from_float16(h[t->offset + k]))) {
                error_set(err, "tensor '%s' element %zu is %g, beyond float16's range", t->name, k,
                          v);
                free(h);
                return NULL;
            }
        }
    }
    return h;
}

static int save(const char *path, const GPT *model, const Tokenizer *tok, const OptimizerState *opt,
                const StMeta *extra, int n_extra, StDtype param_dtype, Error *err) {
    const GPTConfig *c = &model->config;
    char nums[5][16];
    snprintf(nums[0], 16, "%d", c->vocab_size);
    snprintf(nums[1], 16, "%d", c->n_layer);
    snprintf(nums[2], 16, "%d", c->n_head);
    snprintf(nums[3], 16, "%d", c->n_embd);
    snprintf(nums[4], 16, "%d", c->block_size);
    char *vocab = NULL;
    const char *bpe_vocab = NULL, *bpe_merges = NULL;
    if (tok->kind == TOKENIZER_BPE)
        bpe_source(tok->bpe, &bpe_vocab, &bpe_merges);
    else if (!(vocab = tokenizer_to_string(tok)))
        return error_set(err, "out of memory");
    StMeta meta[META_MAX] = {
        {"format", "gptd-gpt"},
        {"vocab_size", nums[0]},
        {"n_layer", nums[1]},
        {"n_head", nums[2]},
        {"n_embd", nums[3]},
        {"block_size", nums[4]},
        {"activation", (char *)activation_name(c->activation)},
        {"qkv_bias", c->qkv_bias ? "true" : "false"},
        {"tied_head", c->tied_head ? "true" : "false"},
        /* absent means char: files written before BPE stay byte for byte what they were */
        {"tokenizer", tok->kind == TOKENIZER_BPE ? (char *)tokenizer_kind_name(tok) : NULL},
        {"vocab", vocab},
        {"tokenizer.vocab", (char *)bpe_vocab},
        {"tokenizer.merges", (char *)bpe_merges},
    };
    int n_own = 13, n_meta = 0;
    for (int k = 0; k < n_own; k++) /* the tokenizer's keys of the other kind stay out */
        if (meta[k].value) meta[n_meta++] = meta[k];
    /* Extra keys that this function writes itself (a file's own metadata passed back in, as
     * gpt-convert does) are left out: the values from the model win. */
    for (int i = 0; i < n_extra && n_meta < META_MAX - 1; i++) {
        bool own = strcmp(extra[i].key, "weights") == 0;
        own =
            own || strcmp(extra[i].key, "vocab") == 0 || strncmp(extra[i].key, "tokenizer", 9) == 0;
        for (int k = 0; k < n_meta && !own; k++) own = strcmp(extra[i].key, meta[k].key) == 0;
        if (!own) meta[n_meta++] = extra[i];
    }
    meta[n_meta++] = (StMeta){"weights", param_dtype == ST_F16 ? "float16" : "float32"};

    int n = model->n_tensors * (opt ? 3 : 1);
    StWriteTensor *ts = calloc((size_t)n, sizeof *ts);
    char(*names)[80] = calloc((size_t)n, sizeof *names);
    uint16_t *half = NULL;
    if (!ts || !names || (param_dtype == ST_F16 && !(half = params_to_float16(model, err)))) {
        free(ts);
        free(names);
        free(vocab);
        return ts && names ? -1 : error_set(err, "out of memory");
    }
    for (int copy = 0; copy < (opt ? 3 : 1); copy++) {
        const float *base = copy == 0 ? model->param_memory : copy == 1 ? opt->m : opt->v;
        const char *prefix = copy == 0 ? "" : copy == 1 ? "optimizer.m." : "optimizer.v.";
        for (int i = 0; i < model->n_tensors; i++) {
            const TensorSpec *t = &model->tensors[i];
            int k = copy * model->n_tensors + i;
            snprintf(names[k], sizeof names[k], "%s%s", prefix, t->name);
            ts[k].name = names[k];
            ts[k].dtype = copy == 0 ? param_dtype : ST_F32;
            ts[k].ndim = t->ndim;
            ts[k].shape[0] = t->shape[0];
            ts[k].shape[1] = t->shape[1];
            ts[k].data = copy == 0 && half ? (const void *)(half + t->offset)
                                           : (const void *)(base + t->offset);
        }
    }
    int rc = safetensors_write(path, ts, n, meta, n_meta, err);
    free(ts);
    free(names);
    free(vocab);
    free(half);
    return rc;
}

int checkpoint_save(const char *path, const GPT *model, const Tokenizer *tok,
                    const OptimizerState *opt, const StMeta *extra, int n_extra, Error *err) {
    return save(path, model, tok, opt, extra, n_extra, ST_F32, err);
}

int checkpoint_save_float16(const char *path, const GPT *model, const Tokenizer *tok,
                            const StMeta *extra, int n_extra, Error *err) {
    return save(path, model, tok, NULL, extra, n_extra, ST_F16, err);
}

static int meta_int(const SafeTensors *st, const char *key, int *out, Error *err) {
    const char *s = safetensors_meta(st, key);
    if (!s) return error_set(err, "metadata has no \"%s\"", key);
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < -2147483647 || v > 2147483647)
        return error_set(err, "metadata \"%s\" is not an integer: \"%s\"", key, s);
    *out = (int)v;
    return 0;
}

static int meta_bool(const SafeTensors *st, const char *key, bool *out, Error *err) {
    const char *s = safetensors_meta(st, key);
    if (!s) return error_set(err, "metadata has no \"%s\"", key);
    if (strcmp(s, "true") == 0)
        *out = true;
    else if (strcmp(s, "false") == 0)
        *out = false;
    else
        return error_set(err, "metadata \"%s\" must be true or false, got \"%s\"", key, s);
    return 0;
}

static int config_from_meta(const SafeTensors *st, GPTConfig *c, Error *err) {
    memset(c, 0, sizeof *c);
    if (meta_int(st, "vocab_size", &c->vocab_size, err) ||
        meta_int(st, "n_layer", &c->n_layer, err) || meta_int(st, "n_head", &c->n_head, err) ||
        meta_int(st, "n_embd", &c->n_embd, err) ||
        meta_int(st, "block_size", &c->block_size, err) ||
        meta_bool(st, "qkv_bias", &c->qkv_bias, err) ||
        meta_bool(st, "tied_head", &c->tied_head, err))
        return -1;
    const char *act = safetensors_meta(st, "activation");
    if (!act) return error_set(err, "metadata has no \"activation\"");
    if (activation_parse(act, &c->activation))
        return error_set(err, "metadata \"activation\" must be relu, gelu or gelu_erf, got \"%s\"",
                         act);
    return gpt_config_validate(c, err);
}

/* Copies tensor t into dst as float after checking dtype and shape against spec. Parameters may
 * be F16 or BF16 (widened exactly); optimizer moments must be F32. */
static int load_tensor(const StTensor *t, const char *name, const TensorSpec *spec, float *dst,
                       bool allow_half, Error *err) {
    if (!t) return error_set(err, "missing tensor '%s'", name);
    if (t->dtype != ST_F32 && !(allow_half && (t->dtype == ST_F16 || t->dtype == ST_BF16)))
        return error_set(err, "tensor '%s' must be F32%s", name, allow_half ? ", F16 or BF16" : "");
    bool ok = t->ndim == spec->ndim;
    for (int d = 0; ok && d < spec->ndim; d++) ok = t->shape[d] == spec->shape[d];
    if (!ok) {
        char want[48], got[96] = "";
        if (spec->ndim == 1)
            snprintf(want, sizeof want, "[%d]", spec->shape[0]);
        else
            snprintf(want, sizeof want, "[%d, %d]", spec->shape[0], spec->shape[1]);
        size_t n = 0;
        for (int d = 0; d < t->ndim && n < sizeof got - 24; d++)
            n += (size_t)snprintf(got + n, sizeof got - n, "%s%lld", d ? ", " : "",
                                  (long long)t->shape[d]);
        return error_set(err, "tensor '%s' has shape [%s], the config needs %s", name, got, want);
    }
    if (t->dtype == ST_F16) {
        const uint16_t *h = t->data;
        for (size_t k = 0; k < spec->size; k++) dst[k] = float_from_float16(h[k]);
    } else if (t->dtype == ST_BF16) {
        const uint16_t *h = t->data;
        for (size_t k = 0; k < spec->size; k++) {
            uint32_t bits = (uint32_t)h[k] << 16; /* bfloat16 is float32's upper half */
            memcpy(&dst[k], &bits, sizeof bits);
        }
    } else
        memcpy(dst, t->data, spec->size * sizeof(float));
    /* A NaN or infinity would load and then turn every logit into NaN. */
    for (size_t k = 0; k < spec->size; k++)
        if (!isfinite(dst[k]))
            return error_set(err, "tensor '%s' element %zu is %g: weights must be finite", name, k,
                             dst[k]);
    return 0;
}

/* The tokenizer stored in the metadata: "tokenizer" names the kind (absent: char). */
static int tokenizer_from_meta(const SafeTensors *st, Tokenizer *tok, Error *err) {
    const char *kind = safetensors_meta(st, "tokenizer");
    if (kind && strcmp(kind, "gpt2-bpe") == 0) {
        const char *vocab = safetensors_meta(st, "tokenizer.vocab");
        const char *merges = safetensors_meta(st, "tokenizer.merges");
        if (!vocab || !merges)
            return error_set(err, "metadata \"tokenizer\" is gpt2-bpe but \"%s\" is missing",
                             vocab ? "tokenizer.merges" : "tokenizer.vocab");
        if (tokenizer_from_bpe(tok, vocab, strlen(vocab), merges, strlen(merges), err))
            return error_wrap(err, "metadata \"tokenizer.vocab\" and \"tokenizer.merges\"");
        return 0;
    }
    if (kind && strcmp(kind, "char") != 0)
        return error_set(err, "metadata \"tokenizer\" must be char or gpt2-bpe, got \"%s\"", kind);
    const char *vocab = safetensors_meta(st, "vocab");
    if (!vocab) return error_set(err, "metadata has no \"vocab\"");
    return tokenizer_from_string(tok, vocab, err);
}

const StTensor *checkpoint_find_tensor(const SafeTensors *st, const char *name) {
    const StTensor *t = safetensors_find(st, name);
    /* Hugging Face files name GPT-2's tensors with or without "transformer." */
    static const char PREFIX[] = "transformer.";
    if (!t && strncmp(name, PREFIX, sizeof PREFIX - 1) == 0)
        t = safetensors_find(st, name + sizeof PREFIX - 1);
    return t;
}

int checkpoint_read_tensor(const SafeTensors *st, const char *name, const TensorSpec *spec,
                           float *dst, Error *err) {
    const StTensor *t = checkpoint_find_tensor(st, name);
    return load_tensor(t, t ? t->name : name, spec, dst, true, err); /* named as in the file */
}

int checkpoint_check_vocab(const Tokenizer *tok, int vocab_size, Error *err) {
    /* BPE models may pad their vocabulary (nanoGPT's 50,304): the extra rows are never sampled. */
    if (tok->vocab_size == vocab_size ||
        (tok->kind == TOKENIZER_BPE && tok->vocab_size < vocab_size))
        return 0;
    return error_set(err, "the tokenizer has %d tokens but the model's vocab_size is %d",
                     tok->vocab_size, vocab_size);
}

int checkpoint_load(const char *path, GPT *model, Tokenizer *tok, OptimizerState *opt,
                    SafeTensors *st_out, Error *err) {
    SafeTensors st;
    memset(model, 0, sizeof *model);
    memset(tok, 0, sizeof *tok);
    if (opt) memset(opt, 0, sizeof *opt);
    if (safetensors_open(&st, path, err)) return -1;
    GPTConfig c;
    if (config_from_meta(&st, &c, err) || tokenizer_from_meta(&st, tok, err) ||
        checkpoint_check_vocab(tok, c.vocab_size, err) || gpt_init(model, &c, err))
        goto fail;
    for (int i = 0; i < model->n_tensors; i++) {
        const TensorSpec *t = &model->tensors[i];
        if (checkpoint_read_tensor(&st, t->name, t, model->param_memory + t->offset, err))
            goto fail;
    }
    if (opt) {
        opt->m = calloc(model->n_params, sizeof(float));
        opt->v = calloc(model->n_params, sizeof(float));
        if (!opt->m || !opt->v) {
            error_set(err, "out of memory");
            goto fail;
        }
        char name[80];
        for (int i = 0; i < model->n_tensors; i++) {
            const TensorSpec *t = &model->tensors[i];
            snprintf(name, sizeof name, "optimizer.m.%s", t->name);
            if (load_tensor(safetensors_find(&st, name), name, t, opt->m + t->offset, false, err))
                goto fail;
            snprintf(name, sizeof name, "optimizer.v.%s", t->name);
            if (load_tensor(safetensors_find(&st, name), name, t, opt->v + t->offset, false, err))
                goto fail;
        }
    }
    if (st_out)
        *st_out = st;
    else
        safetensors_close(&st);
    return 0;
fail:
    error_wrap(err, "%s", path);
    safetensors_close(&st);
    gpt_free(model);
    tokenizer_free(tok);
    if (opt) {
        free(opt->m);
        free(opt->v);
        memset(opt, 0, sizeof *opt);
    }
    return -1;
}
