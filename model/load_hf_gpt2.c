#include "load_hf_gpt2.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/buf.h"
#include "checkpoint.h"

/* An integer field of config.json; `alt` is an older name for it (or NULL). */
static int config_int(const cJSON *cfg, const char *key, const char *alt, int *out, Error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!v && alt) v = cJSON_GetObjectItemCaseSensitive(cfg, alt);
    if (!v) return error_set(err, "\"%s\" is missing", key);
    if (!cJSON_IsNumber(v) || v->valuedouble != (int)v->valuedouble)
        return error_set(err, "\"%s\" must be an integer", key);
    *out = (int)v->valuedouble;
    return 0;
}

/* Fails when a field gptd does not implement has a value other than GPT-2's. */
static int config_is(const cJSON *cfg, const char *key, bool want, Error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (v && !cJSON_IsNull(v) && (!cJSON_IsBool(v) || cJSON_IsTrue(v) != want))
        return error_set(err, "\"%s\" must be %s: gptd runs GPT-2's attention only", key,
                         want ? "true" : "false");
    return 0;
}

static int config_from_json(const cJSON *cfg, GPTConfig *c, Error *err) {
    *c = (GPTConfig){.qkv_bias = true, .tied_head = true};
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(cfg, "model_type");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "gpt2") != 0)
        return error_set(err, "\"model_type\" is %s%s%s: gptd loads \"gpt2\" models",
                         cJSON_IsString(type) ? "\"" : "",
                         cJSON_IsString(type) ? type->valuestring : "missing",
                         cJSON_IsString(type) ? "\"" : "");
    if (config_int(cfg, "vocab_size", NULL, &c->vocab_size, err) ||
        config_int(cfg, "n_layer", NULL, &c->n_layer, err) ||
        config_int(cfg, "n_head", NULL, &c->n_head, err) ||
        config_int(cfg, "n_embd", NULL, &c->n_embd, err) ||
        config_int(cfg, "n_positions", "n_ctx", &c->block_size, err))
        return -1;
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(cfg, "activation_function");
    const char *name = cJSON_IsString(act) ? act->valuestring : "gelu_new"; /* GPT-2's default */
    if (strcmp(name, "gelu_new") == 0 || strcmp(name, "gelu_pytorch_tanh") == 0)
        c->activation = ACT_GELU; /* both the tanh form */
    else if (strcmp(name, "relu") == 0)
        c->activation = ACT_RELU;
    else
        return error_set(err,
                         "\"activation_function\" is \"%s\": gptd has gelu_new (GPT-2's tanh "
                         "form) and relu",
                         name);
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(cfg, "layer_norm_epsilon");
    if (eps && (!cJSON_IsNumber(eps) || fabs(eps->valuedouble - 1e-5) > 1e-12))
        return error_set(err, "\"layer_norm_epsilon\" must be 1e-05 (GPT-2's, and gptd's)");
    const cJSON *inner = cJSON_GetObjectItemCaseSensitive(cfg, "n_inner");
    if (inner && !cJSON_IsNull(inner) &&
        (!cJSON_IsNumber(inner) || inner->valuedouble != 4.0 * c->n_embd))
        return error_set(err, "\"n_inner\" must be null or 4 * n_embd");
    if (config_is(cfg, "scale_attn_weights", true, err) ||
        config_is(cfg, "scale_attn_by_inverse_layer_idx", false, err) ||
        config_is(cfg, "reorder_and_upcast_attn", false, err) ||
        config_is(cfg, "add_cross_attention", false, err))
        return -1;
    return gpt_config_validate(c, err);
}

/* name without GPT-2's "transformer." prefix. */
static const char *bare(const char *name) {
    static const char PREFIX[] = "transformer.";
    return strncmp(name, PREFIX, sizeof PREFIX - 1) == 0 ? name + sizeof PREFIX - 1 : name;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Every tensor of the file is one the model reads, lm_head, or a causal-mask buffer: a tensor of
 * another architecture is refused rather than ignored. */
static int check_names(const SafeTensors *st, const GPT *m, Error *err) {
    for (int i = 0; i < st->n_tensors; i++) {
        const char *name = bare(st->tensors[i].name);
        bool known = strcmp(name, "lm_head.weight") == 0 || ends_with(name, ".attn.bias") ||
                     ends_with(name, ".attn.masked_bias");
        for (int k = 0; k < m->n_tensors && !known; k++)
            known = strcmp(name, bare(m->tensors[k].name)) == 0;
        if (!known)
            return error_set(err, "tensor '%s' is not part of a GPT-2 model of this config",
                             st->tensors[i].name);
    }
    return 0;
}

/* A stored lm_head that differs from wte makes the head untied (with a zero bias: GPT-2's head
 * has none). */
static bool head_is_tied(const SafeTensors *st) {
    const StTensor *head = safetensors_find(st, "lm_head.weight");
    const StTensor *wte = checkpoint_find_tensor(st, "transformer.wte.weight");
    if (!head || !wte) return true;
    return head->dtype == wte->dtype && head->numel == wte->numel &&
           memcmp(head->data, wte->data, head->end - head->begin) == 0;
}

static int load_weights(const char *path, const GPTConfig *config, GPT *m, Error *err) {
    SafeTensors st;
    if (safetensors_open(&st, path, err)) return -1;
    GPTConfig c = *config;
    c.tied_head = head_is_tied(&st);
    int rc = gpt_init(m, &c, err);
    if (!rc) rc = check_names(&st, m, err);
    for (int i = 0; !rc && i < m->n_tensors; i++) {
        const TensorSpec *t = &m->tensors[i];
        if (strcmp(t->name, "lm_head.bias") == 0 && !safetensors_find(&st, "lm_head.bias"))
            continue; /* GPT-2's head has none: zero, as gpt_init left it */
        rc = checkpoint_read_tensor(&st, t->name, t, m->param_memory + t->offset, err);
    }
    safetensors_close(&st);
    if (rc) {
        gpt_free(m);
        return error_wrap(err, "%s", path);
    }
    return 0;
}

int hf_gpt2_load(const char *dir, GPT *model, Tokenizer *tok, Error *err) {
    memset(model, 0, sizeof *model);
    memset(tok, 0, sizeof *tok);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    size_t len;
    char *text = read_file(path, &len);
    if (!text)
        return error_set(err, "%s: cannot read it (a Hugging Face model directory has one)", path);
    cJSON *cfg = cJSON_ParseWithLength(text, len);
    free(text);
    GPTConfig c;
    int rc =
        cJSON_IsObject(cfg) ? config_from_json(cfg, &c, err) : error_set(err, "not a JSON object");
    cJSON_Delete(cfg);
    if (rc) return error_wrap(err, "%s", path);
    if (tokenizer_from_bpe_dir(tok, dir, err)) return -1;
    if (checkpoint_check_vocab(tok, c.vocab_size, err)) {
        tokenizer_free(tok);
        return error_wrap(err, "%s: config.json and the tokenizer's files", dir);
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (load_weights(path, &c, model, err)) {
        tokenizer_free(tok);
        return -1;
    }
    return 0;
}
