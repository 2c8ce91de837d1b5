#include "gpt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int gpt_config_validate(const GPTConfig *c, Error *err) {
    if (c->vocab_size < 1 || c->vocab_size > (1 << 24))
        return error_set(err, "vocab_size must be in [1, 16777216], got %d", c->vocab_size);
    if (c->n_layer < 1 || c->n_layer > GPT_MAX_LAYERS)
        return error_set(err, "n_layer must be in [1, %d], got %d", GPT_MAX_LAYERS, c->n_layer);
    if (c->n_head < 1) return error_set(err, "n_head must be positive, got %d", c->n_head);
    if (c->n_embd < 1 || c->n_embd > 16384)
        return error_set(err, "n_embd must be in [1, 16384], got %d", c->n_embd);
    if (c->n_embd % c->n_head != 0)
        return error_set(err, "n_embd (%d) must be divisible by n_head (%d)", c->n_embd, c->n_head);
    if (c->block_size < 1 || c->block_size > 65536)
        return error_set(err, "block_size must be in [1, 65536], got %d", c->block_size);
    if (c->activation != ACT_RELU && c->activation != ACT_GELU)
        return error_set(err, "unknown activation %d", (int)c->activation);
    return 0;
}

/* Walks the tensors in checkpoint order; records each in the table and points the matching
 * field of `bind` into `base`. One walk serves parameters and gradients alike. */
typedef struct {
    TensorSpec *specs;
    int n;
    size_t offset;
    float *base;
} Layout;

static float *layout_add(Layout *lo, const char *name, int d0, int d1) {
    TensorSpec *t = &lo->specs[lo->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = d1 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->size = (size_t)d0 * (d1 ? (size_t)d1 : 1);
    t->offset = lo->offset;
    lo->offset += t->size;
    return lo->base ? lo->base + t->offset : NULL;
}

static void gpt_layout(const GPTConfig *c, TensorSpec *specs, int *n_specs, size_t *n_params,
                       float *base, GPTParams *p) {
    Layout lo = {specs, 0, 0, base};
    int C = c->n_embd, V = c->vocab_size;
    char name[64];
    memset(p, 0, sizeof *p);
    p->wte = layout_add(&lo, "transformer.wte.weight", V, C);
    p->wpe = layout_add(&lo, "transformer.wpe.weight", c->block_size, C);
    for (int l = 0; l < c->n_layer; l++) {
        LayerParams *lp = &p->layer[l];
#define ADD(field, suffix, d0, d1)                                                                 \
    snprintf(name, sizeof name, "transformer.h.%d.%s", l, suffix);                                 \
    lp->field = layout_add(&lo, name, d0, d1)
        ADD(ln1_w, "ln_1.weight", C, 0);
        ADD(ln1_b, "ln_1.bias", C, 0);
        ADD(qkv_w, "attn.c_attn.weight", C, 3 * C);
        if (c->qkv_bias) {
            ADD(qkv_b, "attn.c_attn.bias", 3 * C, 0);
        }
        ADD(proj_w, "attn.c_proj.weight", C, C);
        ADD(proj_b, "attn.c_proj.bias", C, 0);
        ADD(ln2_w, "ln_2.weight", C, 0);
        ADD(ln2_b, "ln_2.bias", C, 0);
        ADD(fc_w, "mlp.c_fc.weight", C, 4 * C);
        ADD(fc_b, "mlp.c_fc.bias", 4 * C, 0);
        ADD(fcproj_w, "mlp.c_proj.weight", 4 * C, C);
        ADD(fcproj_b, "mlp.c_proj.bias", C, 0);
#undef ADD
    }
    p->lnf_w = layout_add(&lo, "transformer.ln_f.weight", C, 0);
    p->lnf_b = layout_add(&lo, "transformer.ln_f.bias", C, 0);
    if (c->tied_head) {
        p->head_w = p->wte;
        p->head_b = NULL;
    } else {
        p->head_w = layout_add(&lo, "lm_head.weight", V, C);
        p->head_b = layout_add(&lo, "lm_head.bias", V, 0);
    }
    *n_specs = lo.n;
    *n_params = lo.offset;
}

int gpt_init(GPT *m, const GPTConfig *c, Error *err) {
    memset(m, 0, sizeof *m);
    if (gpt_config_validate(c, err)) return -1;
    m->config = *c;
    gpt_layout(c, m->tensors, &m->n_tensors, &m->n_params, NULL, &m->params);
    m->param_memory = calloc(m->n_params, sizeof(float));
    if (!m->param_memory) return error_set(err, "out of memory for %zu parameters", m->n_params);
    gpt_layout(c, m->tensors, &m->n_tensors, &m->n_params, m->param_memory, &m->params);
    return 0;
}

void gpt_free(GPT *m) {
    free(m->param_memory);
    free(m->grad_memory);
    free(m->act_memory);
    memset(m, 0, sizeof *m);
}

void gpt_init_weights(GPT *m, Rng *rng) {
    const GPTConfig *c = &m->config;
    float resid_std = 0.02f / sqrtf(2.0f * c->n_layer);
    for (int i = 0; i < m->n_tensors; i++) {
        const TensorSpec *t = &m->tensors[i];
        float *w = m->param_memory + t->offset;
        const char *suffix = strrchr(t->name, '.') + 1;
        bool is_ln = strstr(t->name, "ln_") != NULL;
        if (strcmp(suffix, "bias") == 0) {
            memset(w, 0, t->size * sizeof *w);
        } else if (is_ln) {
            for (size_t j = 0; j < t->size; j++) w[j] = 1.0f;
        } else {
            bool resid = strstr(t->name, "c_proj.weight") != NULL;
            float std = resid ? resid_std : 0.02f;
            for (size_t j = 0; j < t->size; j++) w[j] = std * rng_normal(rng);
        }
    }
}

int gpt_alloc_grads(GPT *m, Error *err) {
    if (m->grad_memory) return 0;
    m->grad_memory = calloc(m->n_params, sizeof(float));
    if (!m->grad_memory) return error_set(err, "out of memory for gradients");
    TensorSpec scratch[GPT_MAX_TENSORS];
    int n;
    size_t np;
    gpt_layout(&m->config, scratch, &n, &np, m->grad_memory, &m->grads);
    return 0;
}

void gpt_zero_grads(GPT *m) {
    if (m->grad_memory) memset(m->grad_memory, 0, m->n_params * sizeof(float));
}
