#include "gpt.h"

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
    if (c->activation != ACT_RELU && c->activation != ACT_GELU && c->activation != ACT_GELU_ERF)
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
    memset(m, 0, sizeof *m);
}

void gpt_bind(const GPT *m, float *base, GPTParams *p) {
    TensorSpec scratch[GPT_MAX_TENSORS];
    int n;
    size_t np;
    gpt_layout(&m->config, scratch, &n, &np, base, p);
}

/* Moves the n floats at *field to *dst and points the field there. */
static void keep(float **field, size_t n, float **dst) {
    memcpy(*dst, *field, n * sizeof(float));
    *field = *dst;
    *dst += n;
}

int gpt_keep_unpacked(GPT *m, Error *err) {
    const GPTConfig *c = &m->config;
    size_t C = (size_t)c->n_embd, V = (size_t)c->vocab_size, T = (size_t)c->block_size;
    size_t n = (V + T) * C + (4 * (size_t)c->n_layer + 2) * C;
    float *mem = malloc(n * sizeof(float)), *dst = mem;
    if (!mem) return error_set(err, "out of memory for the embeddings and LayerNorms");
    GPTParams *p = &m->params;
    keep(&p->wte, V * C, &dst);
    keep(&p->wpe, T * C, &dst);
    for (int l = 0; l < c->n_layer; l++) {
        LayerParams *lp = &p->layer[l];
        keep(&lp->ln1_w, C, &dst);
        keep(&lp->ln1_b, C, &dst);
        keep(&lp->ln2_w, C, &dst);
        keep(&lp->ln2_b, C, &dst);
        *lp = (LayerParams){
            .ln1_w = lp->ln1_w, .ln1_b = lp->ln1_b, .ln2_w = lp->ln2_w, .ln2_b = lp->ln2_b};
    }
    keep(&p->lnf_w, C, &dst);
    keep(&p->lnf_b, C, &dst);
    p->head_w = NULL;
    p->head_b = NULL;
    free(m->param_memory);
    m->param_memory = mem;
    m->n_tensors = 0;
    return 0;
}
