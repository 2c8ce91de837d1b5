#include "engine.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../common/clock.h"
#include "../common/thread_pool.h"
#include "kernels.h"
#include "layers.h"
#include "packed_matmul.h"

/* A decode step is a chain of short products; between steps the caller samples. Workers keep
 * looking for work this long before sleeping. */
#define ENGINE_POOL_SPIN_US 200

struct Engine {
    const GPT *model;
    EngineConfig config;
    ThreadPool *pool;
    PackedMatrix *packed; /* (L, 4): qkv, proj, fc, fcproj of each layer, repacked at start-up */
    PackedMatrix head;    /* (C, V): the head transposed to (in, out), then packed */
    const Kernels *kernels;
    float *kv;     /* (slots, L, 2, Tc * C), Tc the context rounded up to KEY_BLOCK: keys as NH
                    * heads transposed in blocks (kernels.h key_index), so that a score is one
                    * chain over channels with vectors over keys; values as (NH, Tc, hs). A head's
                    * cache is contiguous for its attention task. */
    int *slot_len; /* (slots) positions of each slot's cache that are filled */
    /* per-call scratch, sized for max_rows */
    float *x, *ln, *qkv, *atty, *fch; /* (R, C|3C|4C) */
    float *last;                      /* (max_slots, C) final rows */
    float *logits;                    /* (max_slots, V) */
    float *scores;                    /* (max_slots * NH, SCORES_STRIDE(T)) attention */
    int *row_of;                      /* (max_slots) first row of segment */
    long attention_split_work;        /* from this many (query, key) pairs in all, attention is
                                       * spread over the pool (measured at start-up) */
    int group_split_segments;         /* from this many segments, each thread takes a group of
                                       * them through the whole step (measured at start-up) */
    int *group_first;                 /* (threads + 1) scratch: where each group starts */
};

/* Positions a slot's cache holds: the context, rounded up to whole blocks of keys. */
static int cache_len(const GPTConfig *c) {
    return (c->block_size + KEY_BLOCK - 1) / KEY_BLOCK * KEY_BLOCK;
}

size_t engine_slot_bytes(const GPTConfig *c) {
    return (size_t)2 * c->n_layer * cache_len(c) * c->n_embd * sizeof(float);
}

int engine_slots_for_memory(const GPTConfig *c, size_t n_params, size_t memory_bytes, int asked,
                            int *slots, Error *err) {
    size_t slot = engine_slot_bytes(c), weights = n_params * sizeof(float);
    size_t left = memory_bytes > weights ? memory_bytes - weights : 0;
    if (asked > 0) {
        if (memory_bytes && (size_t)asked > left / slot)
            return error_set(err,
                             "%d KV slots of %.1f MB need %zu MB, but the %zu MB of weights leave "
                             "%zu MB: ask for at most %zu",
                             asked, (double)slot / 1048576.0, (size_t)asked * slot >> 20,
                             weights >> 20, left >> 20, left / slot);
        *slots = asked;
        return 0;
    }
    size_t fit = memory_bytes ? left / 2 / slot : 64;
    *slots = fit < 1 ? 1 : fit > 64 ? 64 : (int)fit;
    return 0;
}

static float *kv_at(const Engine *e, int slot, int layer, int which) {
    const GPTConfig *c = &e->model->config;
    size_t per_layer = (size_t)2 * cache_len(c) * c->n_embd;
    return e->kv + ((size_t)slot * c->n_layer + layer) * per_layer +
           (size_t)which * cache_len(c) * c->n_embd;
}

/* The KV cache is large and read all over each step: back it with huge pages where the kernel
 * offers them (fewer TLB misses). Zeroed, like calloc. */
static float *alloc_cache(size_t bytes) {
    size_t huge = (size_t)2 << 20, rounded = (bytes + huge - 1) / huge * huge;
    float *p = aligned_alloc(huge, rounded);
    if (!p) return NULL;
    madvise(p, rounded, MADV_HUGEPAGE);
    memset(p, 0, rounded);
    return p;
}

/* Scratch rows start on cache lines, so that threads writing neighbouring heads' outputs or
 * scores never share a line. */
static float *alloc_floats(size_t n) {
    return aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
}
#define SCORES_STRIDE(T) (((size_t)(T) + 8 + 15) / 16 * 16) /* T + 8 scores, whole lines */

void engine_destroy(Engine *e) {
    if (!e) return;
    thread_pool_destroy(e->pool);
    if (e->packed)
        for (int i = 0; i < 4 * e->model->config.n_layer; i++) packed_matrix_free(&e->packed[i]);
    free(e->packed);
    packed_matrix_free(&e->head);
    free(e->kv);
    free(e->slot_len);
    free(e->x);
    free(e->ln);
    free(e->qkv);
    free(e->atty);
    free(e->fch);
    free(e->last);
    free(e->logits);
    free(e->scores);
    free(e->row_of);
    free(e->group_first);
    free(e);
}

static int calibrate(Engine *e);

int engine_create(Engine **out, const GPT *model, const EngineConfig *cfg, Error *err) {
    const GPTConfig *c = &model->config;
    if (cfg->max_slots < 1 || cfg->max_slots > 4096)
        return error_set(err, "max_slots must be in [1, 4096], got %d", cfg->max_slots);
    if (cfg->max_rows < cfg->max_slots)
        return error_set(err, "max_rows (%d) must be at least max_slots (%d)", cfg->max_rows,
                         cfg->max_slots);
    if (cfg->threads < 1 || cfg->threads > 256)
        return error_set(err, "threads must be in [1, 256], got %d", cfg->threads);
    const Kernels *kernels = cfg->kernels;
    if (!kernels && kernels_choose(&kernels, err)) return -1;
    Engine *e = calloc(1, sizeof *e);
    if (!e) return error_set(err, "out of memory");
    e->kernels = kernels;
    e->model = model;
    e->config = *cfg;
    size_t R = (size_t)cfg->max_rows, S = (size_t)cfg->max_slots, C = (size_t)c->n_embd;
    size_t V = (size_t)c->vocab_size, T = (size_t)c->block_size;
    e->packed = calloc((size_t)c->n_layer * 4, sizeof *e->packed);
    e->kv = alloc_cache(S * engine_slot_bytes(c));
    e->slot_len = calloc(S, sizeof(int));
    e->x = alloc_floats(R * C);
    e->ln = alloc_floats(R * C);
    e->qkv = alloc_floats(R * 3 * C);
    e->atty = alloc_floats(R * C);
    e->fch = alloc_floats(R * 4 * C);
    e->last = alloc_floats(S * C);
    e->logits = alloc_floats(S * V);
    e->scores = alloc_floats(S * (size_t)c->n_head * SCORES_STRIDE(T));
    e->row_of = malloc(S * sizeof(int));
    e->group_first = malloc((size_t)(cfg->threads + 1) * sizeof(int));
    if (!e->packed || !e->kv || !e->slot_len || !e->x || !e->ln || !e->qkv || !e->atty || !e->fch ||
        !e->last || !e->logits || !e->scores || !e->row_of || !e->group_first) {
        engine_destroy(e);
        return error_set(err, "out of memory for the engine (%zu slots of %zu MB)", S,
                         engine_slot_bytes(c) >> 20);
    }
    int packing_failed = 0;
    bool half = !cfg->float32_weights;
    for (int l = 0; l < c->n_layer; l++) {
        const LayerParams *lp = &model->params.layer[l];
        PackedMatrix *pm = e->packed + 4 * l;
        int n = (int)C;
        packing_failed |=
            packed_matrix_init(&pm[0], lp->qkv_w, lp->qkv_b, n, 3 * n, half, kernels) |
            packed_matrix_init(&pm[1], lp->proj_w, lp->proj_b, n, n, half, kernels) |
            packed_matrix_init(&pm[2], lp->fc_w, lp->fc_b, n, 4 * n, half, kernels) |
            packed_matrix_init(&pm[3], lp->fcproj_w, lp->fcproj_b, 4 * n, n, half, kernels);
    }
    float *head_t = malloc(C * V * sizeof(float));
    if (head_t) {
        for (size_t v = 0; v < V; v++)
            for (size_t k = 0; k < C; k++) head_t[k * V + v] = model->params.head_w[v * C + k];
        packing_failed |= packed_matrix_init(&e->head, head_t, model->params.head_b, (int)C, (int)V,
                                             half, kernels);
        free(head_t);
    }
    if (!head_t || packing_failed) {
        engine_destroy(e);
        return error_set(err, "out of memory for the engine's packed weights");
    }
    if (thread_pool_create(&e->pool, cfg->threads, ENGINE_POOL_SPIN_US, err)) {
        e->pool = NULL;
        engine_destroy(e);
        return -1;
    }
    if (calibrate(e)) {
        engine_destroy(e);
        return error_set(err, "out of memory while measuring the engine's products");
    }
    *out = e;
    return 0;
}

size_t engine_weight_bytes(const Engine *e, bool *all_half) {
    size_t bytes = packed_matrix_bytes(&e->head);
    *all_half = e->head.w16 != NULL;
    for (int i = 0; i < 4 * e->model->config.n_layer; i++) {
        bytes += packed_matrix_bytes(&e->packed[i]);
        *all_half = *all_half && e->packed[i].w16;
    }
    return bytes;
}

static int validate(const Engine *e, const EngineSegment *segs, int n_segs, Error *err) {
    const GPTConfig *c = &e->model->config;
    if (n_segs < 0 || n_segs > e->config.max_slots)
        return error_set(err, "%d segments, at most %d", n_segs, e->config.max_slots);
    long rows = 0;
    for (int s = 0; s < n_segs; s++) {
        const EngineSegment *g = &segs[s];
        if (g->slot < 0 || g->slot >= e->config.max_slots)
            return error_set(err, "slot %d outside [0, %d)", g->slot, e->config.max_slots);
        for (int t = 0; t < s; t++)
            if (segs[t].slot == g->slot) return error_set(err, "slot %d appears twice", g->slot);
        if (g->n < 1 || g->pos < 0 || g->pos + g->n > c->block_size)
            return error_set(err, "slot %d: positions [%d, %d) outside the context of %d", g->slot,
                             g->pos, g->pos + g->n, c->block_size);
        if (g->pos > e->slot_len[g->slot])
            return error_set(err, "slot %d: position %d but only %d cached", g->slot, g->pos,
                             e->slot_len[g->slot]);
        if (g->attention && (g->attention_layer < 0 || g->attention_layer >= c->n_layer))
            return error_set(err, "slot %d: attention of layer %d, the model has %d", g->slot,
                             g->attention_layer, c->n_layer);
        for (int i = 0; i < g->n; i++)
            if (g->tokens[i] < 0 || g->tokens[i] >= c->vocab_size)
                return error_set(err, "slot %d: token %d outside the vocabulary", g->slot,
                                 g->tokens[i]);
        rows += g->n;
    }
    if (rows > e->config.max_rows)
        return error_set(err, "%ld rows, at most %d per call", rows, e->config.max_rows);
    return 0;
}

typedef struct {
    Engine *e;
    const EngineSegment *segs;
    int first; /* the segment of task 0 */
    int layer;
} AttentionJob;

/* Heads in groups of up to ATTEND_MAX_HEADS, which the kernel runs side by side. */
static int head_groups(const GPTConfig *c) {
    return (c->n_head + ATTEND_MAX_HEADS - 1) / ATTEND_MAX_HEADS;
}

/* One (segment, group of heads): the segment's keys and values of these heads join its slot's
 * cache (here rather than in a pass of their own: the writes are spread over the threads, and
 * the lines they touch are the ones this task reads next), then causal attention of its queries
 * against the cache. */
static void attention_task(void *ctx, int task) {
    const AttentionJob *j = ctx;
    const Engine *e = j->e;
    const GPTConfig *c = &e->model->config;
    int NH = c->n_head, C = c->n_embd, T = c->block_size, Tc = cache_len(c), hs = C / NH;
    int s = j->first + task / head_groups(c), h = task % head_groups(c) * ATTEND_MAX_HEADS;
    int heads = NH - h < ATTEND_MAX_HEADS ? NH - h : ATTEND_MAX_HEADS;
    const EngineSegment *g = &j->segs[s];
    float *kt = kv_at(e, g->slot, j->layer, 0) + (size_t)h * hs * Tc; /* blocks, a head */
    float *vc = kv_at(e, g->slot, j->layer, 1) + (size_t)h * Tc * hs; /* (Tc, hs) a head */
    float *scores = e->scores + ((size_t)s * NH + h) * SCORES_STRIDE(T);
    for (int i = 0; i < g->n; i++) {
        const float *row = e->qkv + (size_t)(e->row_of[s] + i) * 3 * C;
        int pos = g->pos + i;
        for (int k = 0; k < heads; k++) {
            float *kh = kt + (size_t)k * hs * Tc;
            for (int d = 0; d < hs; d++) kh[key_index(hs, d, pos)] = row[C + (h + k) * hs + d];
            memcpy(vc + ((size_t)k * Tc + pos) * hs, row + 2 * C + (h + k) * hs,
                   hs * sizeof(float));
        }
    }
    for (int i = 0; i < g->n; i++) {
        int row = e->row_of[s] + i;
        e->kernels->attend(e->atty + (size_t)row * C + h * hs, scores, SCORES_STRIDE(T),
                           e->qkv + (size_t)row * 3 * C + h * hs, kt, vc, hs, Tc, g->pos + i + 1,
                           heads);
    }
    if (g->attention && g->attention_layer == j->layer) /* the last row's weights, as used */
        for (int k = 0; k < heads; k++)
            memcpy(g->attention + (size_t)(h + k) * T, scores + k * SCORES_STRIDE(T),
                   (size_t)(g->pos + g->n) * sizeof(float));
}

/* The fastest of `repeats` attentions of one query over `visible` keys of slot 0, at layer 0, on
 * the pool or on the caller alone. */
static double attention_seconds(Engine *e, int visible, bool split, int repeats) {
    EngineSegment seg = {.slot = 0, .pos = visible - 1, .n = 1};
    AttentionJob job = {e, &seg, 0, 0};
    int tasks = head_groups(&e->model->config);
    e->row_of[0] = 0;
    double best = 1e30;
    for (int i = 0; i < repeats; i++) {
        double t0 = clock_seconds();
        if (split)
            thread_pool_run(e->pool, attention_task, &job, tasks);
        else
            for (int t = 0; t < tasks; t++) attention_task(&job, t);
        double dt = clock_seconds() - t0;
        best = dt < best ? dt : best;
    }
    return best;
}

/* The fastest of `repeats` decode steps of n sequences half way through the context of slots
 * [0, n) (their caches hold nothing of value; slot_len goes back to 0). segs: room for n. */
static double decode_step_seconds(Engine *e, EngineSegment *segs, int n, int repeats) {
    static const int token = 0;
    int pos = e->model->config.block_size / 2;
    for (int s = 0; s < n; s++) {
        segs[s] = (EngineSegment){.slot = s, .pos = pos, .n = 1, .tokens = &token};
        e->slot_len[s] = pos;
    }
    Error err;
    double best = 1e30;
    for (int i = -2; i < repeats; i++) { /* two to warm up */
        double t0 = clock_seconds();
        if (engine_forward(e, segs, n, &err)) break;
        double dt = clock_seconds() - t0;
        if (i >= 0 && dt < best) best = dt;
    }
    for (int s = 0; s < n; s++) e->slot_len[s] = 0;
    return best;
}

/* From how many sequences a decode step goes faster as groups of them a thread than as pieces
 * split over the threads: measured from as many as the engine holds (at most 64) down, halving
 * while the groups still win. */
#define GROUP_CALIBRATE_MAX 64
static void calibrate_groups(Engine *e, EngineSegment *segs, int most) {
    int threads = thread_pool_size(e->pool), won = INT_MAX;
    for (int n = most; n >= 2 * threads; n /= 2) {
        e->group_split_segments = INT_MAX;
        double pieces = decode_step_seconds(e, segs, n, 5);
        e->group_split_segments = n;
        if (decode_step_seconds(e, segs, n, 5) >= pieces) break;
        won = n;
    }
    e->group_split_segments = won;
}

/* Every product's min_split_rows: at least `at_least`, or rows[shape] (qkv, proj, fc, fcproj,
 * head) when rows is given. */
static void set_min_split_rows(Engine *e, int at_least, const int rows[5]) {
    for (int i = 0; i < 4 * e->model->config.n_layer; i++) {
        int *m = &e->packed[i].min_split_rows;
        *m = rows ? rows[i % 4] : (*m > at_least ? *m : at_least);
    }
    int *m = &e->head.min_split_rows;
    *m = rows ? rows[4] : (*m > at_least ? *m : at_least);
}

/* Where threads pay, measured on this machine: each product's rows from which it is split (the
 * four shapes of a block, measured on layer 0, and the head), and the attention work from which
 * attention is (one query over more and more keys; beyond the context, always); then whether a
 * whole decode step of one sequence gains from those splits at all. Slot 0's cache is scribbled
 * on; it holds nothing yet. */
static int calibrate(Engine *e) {
    const GPTConfig *c = &e->model->config;
    for (int i = 0; i < 4; i++)
        if (packed_matrix_calibrate(&e->packed[i], e->pool)) return -1;
    for (int i = 4; i < 4 * c->n_layer; i++)
        e->packed[i].min_split_rows = e->packed[i % 4].min_split_rows;
    if (packed_matrix_calibrate(&e->head, e->pool)) return -1;
    e->attention_split_work = 2L * c->block_size;
    e->group_split_segments = e->config.group_segments > 0 ? e->config.group_segments : INT_MAX;
    if (thread_pool_size(e->pool) == 1) return 0;
    memset(e->qkv, 0, (size_t)3 * c->n_embd * sizeof(float));
    for (int visible = 8; visible <= c->block_size; visible *= 2) {
        attention_seconds(e, visible, true, 2); /* warm up */
        if (attention_seconds(e, visible, true, 7) <
            0.9 * attention_seconds(e, visible, false, 7)) {
            e->attention_split_work = visible;
            break;
        }
    }
    /* The pieces measured apart can each gain from a split that the whole step loses (each
     * hand-off also moves the activations between the cores' caches): a decode step of one
     * sequence, as measured, against the same step with nothing split. */
    int min_rows[5];
    for (int i = 0; i < 4; i++) min_rows[i] = e->packed[i].min_split_rows;
    min_rows[4] = e->head.min_split_rows;
    long attention_work = e->attention_split_work;
    int most =
        e->config.max_slots < GROUP_CALIBRATE_MAX ? e->config.max_slots : GROUP_CALIBRATE_MAX;
    EngineSegment *segs = malloc((size_t)most * sizeof *segs);
    if (!segs) return -1;
    double split = decode_step_seconds(e, segs, 1, 9);
    set_min_split_rows(e, 2, NULL);
    e->attention_split_work = 2L * c->block_size;
    if (split < decode_step_seconds(e, segs, 1, 9)) { /* the measured splits pay: keep them */
        set_min_split_rows(e, 0, min_rows);
        e->attention_split_work = attention_work;
    }
    if (e->config.group_segments == 0) calibrate_groups(e, segs, most);
    free(segs);
    return 0;
}

/* LayerNorm of many rows in ranges over the pool: at batch 64 it is a few percent of a step, all
 * of it on one thread otherwise. Below NORM_SPLIT_ROWS rows a hand-off costs more than it saves. */
#define NORM_SPLIT_ROWS 32
typedef struct {
    float *out;
    const float *inp, *weight, *bias;
    int C;
} NormJob;

static void norm_range(void *ctx, size_t begin, size_t end) {
    const NormJob *j = ctx;
    layernorm_inference(j->out + begin * j->C, j->inp + begin * j->C, j->weight, j->bias,
                        (int)(end - begin), j->C);
}

static void layernorm_rows(ThreadPool *pool, float *out, const float *inp, const float *weight,
                           const float *bias, int N, int C) {
    NormJob j = {out, inp, weight, bias, C};
    thread_pool_run_ranges(N < NORM_SPLIT_ROWS ? NULL : pool, norm_range, &j, (size_t)N, 4,
                           NORM_SPLIT_ROWS / 4);
}

/* The MLP's activation, fused into its first product. */
static PackedOutput mlp_output(Activation a) {
    return a == ACT_GELU ? PACKED_GELU : a == ACT_GELU_ERF ? PACKED_GELU_ERF : PACKED_RELU;
}

/* Segments [s0, s1) through the whole model: their rows (from e->row_of[s0] on) through every
 * layer, their last rows through the head. Each piece is spread over `pool`; NULL: all on the
 * calling thread. */
static void forward_segments(Engine *e, const EngineSegment *segs, int s0, int s1,
                             ThreadPool *pool) {
    const GPTConfig *c = &e->model->config;
    const GPTParams *p = &e->model->params;
    int C = c->n_embd, V = c->vocab_size, R0 = e->row_of[s0];
    int N = e->row_of[s1 - 1] + segs[s1 - 1].n - R0;
    float *x = e->x + (size_t)R0 * C, *ln = e->ln + (size_t)R0 * C;
    float *qkv = e->qkv + (size_t)R0 * 3 * C, *atty = e->atty + (size_t)R0 * C;
    float *fch = e->fch + (size_t)R0 * 4 * C;
    for (int s = s0; s < s1; s++)
        for (int i = 0; i < segs[s].n; i++) {
            float *row = e->x + (size_t)(e->row_of[s] + i) * C;
            const float *te = p->wte + (size_t)segs[s].tokens[i] * C;
            const float *pe = p->wpe + (size_t)(segs[s].pos + i) * C;
            for (int k = 0; k < C; k++) row[k] = te[k] + pe[k];
        }
    long att_work = 0;
    for (int s = s0; s < s1; s++) att_work += (long)segs[s].n * (segs[s].pos + segs[s].n);
    int att_tasks = (s1 - s0) * head_groups(c);
    for (int l = 0; l < c->n_layer; l++) {
        const LayerParams *lp = &p->layer[l];
        const PackedMatrix *pm = e->packed + 4 * l;
        layernorm_rows(pool, ln, x, lp->ln1_w, lp->ln1_b, N, C);
        matmul_packed(qkv, ln, &pm[0], N, PACKED_STORE, pool);
        AttentionJob job = {e, segs, s0, l};
        if (pool && att_work >= e->attention_split_work)
            thread_pool_run(pool, attention_task, &job, att_tasks);
        else
            for (int t = 0; t < att_tasks; t++) attention_task(&job, t);
        matmul_packed(x, atty, &pm[1], N, PACKED_ADD, pool); /* x += proj(y) */
        layernorm_rows(pool, ln, x, lp->ln2_w, lp->ln2_b, N, C);
        matmul_packed(fch, ln, &pm[2], N, mlp_output(c->activation), pool);
        matmul_packed(x, fch, &pm[3], N, PACKED_ADD, pool); /* x += mlp(x) */
    }
    for (int s = s0; s < s1; s++) { /* each segment's last row goes on to the head */
        e->slot_len[segs[s].slot] = segs[s].pos + segs[s].n;
        const float *last = e->x + (size_t)(e->row_of[s] + segs[s].n - 1) * C;
        memcpy(e->last + (size_t)s * C, last, C * sizeof(float));
    }
    float *last = e->last + (size_t)s0 * C, *logits = e->logits + (size_t)s0 * V;
    layernorm_rows(pool, last, last, p->lnf_w, p->lnf_b, s1 - s0, C);
    matmul_packed(logits, last, &e->head, s1 - s0, PACKED_STORE, pool);
    for (int s = s0; s < s1; s++)
        if (segs[s].logits) memcpy(segs[s].logits, e->logits + (size_t)s * V, V * sizeof(float));
}

/* Splitting every piece of a step over the threads hands work (and the activations it reads)
 * from core to core some thirty times a step. With many sequences, a group of them a thread, each
 * through the whole step on its own core, does the same sums without those hand-offs: each
 * segment's rows go through the same kernels, so the bits do not change. The groups are
 * contiguous runs of segments of about equal work (products by rows, attention by rows times
 * keys); when no such split exists (one long prompt among short ones) the step is not grouped. */
typedef struct {
    Engine *e;
    const EngineSegment *segs;
    const int *first; /* group g is segments [first[g], first[g + 1]) */
} GroupJob;

static void group_task(void *ctx, int g) {
    const GroupJob *j = ctx;
    forward_segments(j->e, j->segs, j->first[g], j->first[g + 1], NULL);
}

#define GROUP_IMBALANCE 1.125 /* the largest group's work at most this much above the mean */

/* A row's products are 24 C^2 FLOPs a layer, at ~200 GFLOP/s a core; its attention reads 2 C
 * floats a key from memory, at ~30 GB/s: a row costs about as much as C / 2 keys. */
static long segment_work(const GPTConfig *c, const EngineSegment *g) {
    return (long)g->n * (c->n_embd / 2 + g->pos + g->n);
}

static bool group_segments(const Engine *e, const EngineSegment *segs, int n_segs, int groups,
                           int *first) {
    const GPTConfig *c = &e->model->config;
    long total = 0, done = 0, most = 0;
    for (int s = 0; s < n_segs; s++) total += segment_work(c, &segs[s]);
    first[0] = 0;
    for (int g = 1, s = 0; g <= groups; g++) {
        long start = done, target = total * g / groups;
        while (s < n_segs && done + segment_work(c, &segs[s]) / 2 <= target) /* last: all */
            done += segment_work(c, &segs[s++]);
        first[g] = s;
        if (first[g] == first[g - 1]) return false;
        most = done - start > most ? done - start : most;
    }
    return most * groups <= GROUP_IMBALANCE * total;
}

int engine_forward(Engine *e, const EngineSegment *segs, int n_segs, Error *err) {
    if (validate(e, segs, n_segs, err)) return -1;
    if (n_segs == 0) return 0;
    for (int s = 0, R = 0; s < n_segs; R += segs[s++].n) e->row_of[s] = R;
    int groups = thread_pool_size(e->pool);
    if (n_segs >= e->group_split_segments &&
        group_segments(e, segs, n_segs, groups, e->group_first)) {
        GroupJob job = {e, segs, e->group_first};
        thread_pool_run(e->pool, group_task, &job, groups);
    } else {
        forward_segments(e, segs, 0, n_segs, e->pool);
    }
    return 0;
}

int engine_copy_slot(Engine *e, int from, int to, int rows, Error *err) {
    const GPTConfig *c = &e->model->config;
    int S = e->config.max_slots, Tc = cache_len(c), NH = c->n_head, hs = c->n_embd / c->n_head;
    if (from < 0 || from >= S || to < 0 || to >= S || from == to)
        return error_set(err, "cannot copy slot %d to slot %d of %d", from, to, S);
    if (rows < 0 || rows > e->slot_len[from])
        return error_set(err, "slot %d holds %d positions, not %d", from, e->slot_len[from], rows);
    for (int l = 0; l < c->n_layer; l++) {
        const float *k = kv_at(e, from, l, 0), *v = kv_at(e, from, l, 1);
        float *kd = kv_at(e, to, l, 0), *vd = kv_at(e, to, l, 1);
        size_t blocks = ((size_t)rows + KEY_BLOCK - 1) / KEY_BLOCK;
        for (int h = 0; h < NH; h++) {
            size_t at = (size_t)h * hs * Tc; /* keys: the blocks that hold the rows */
            memcpy(kd + at, k + at, blocks * hs * KEY_BLOCK * sizeof(float));
            memcpy(vd + at, v + at, (size_t)rows * hs * sizeof(float)); /* values (NH, Tc, hs) */
        }
    }
    e->slot_len[to] = rows;
    return 0;
}

const char *engine_kernels_name(const Engine *e) { return e->kernels->name; }

ThreadPool *engine_pool(Engine *e) { return e->pool; }
