#include "attention.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "../model/kernels.h"
#include "../model/layers.h"
#include "../model/packed_matmul.h"

/* Offsets of head h of batch b inside each tensor. */
static size_t q_at(const AttentionShape *s, int b, int h) {
    return (size_t)b * s->Tq * s->q_stride + (size_t)h * s->head_size;
}
static size_t kv_at(const AttentionShape *s, int b, int h) {
    return (size_t)b * s->Tk * s->kv_stride + (size_t)h * s->head_size;
}
static size_t out_at(const AttentionShape *s, int b, int h) {
    return (size_t)b * s->Tq * s->out_stride + (size_t)h * s->head_size;
}

/* Number of keys query i may see. */
static int visible_keys(const AttentionShape *s, int i) {
    return s->causal ? s->Tk - s->Tq + i + 1 : s->Tk;
}

static float score_scale(const AttentionShape *s) {
    return s->scale != 0.0f ? s->scale : 1.0f / sqrtf((float)s->head_size);
}

static const Kernels *kernels_of(const AttentionShape *s) {
    if (s->kernels) return s->kernels;
    const Kernels *best;
    kernels_available(&best, 1);
    return best;
}

static int max3(int a, int b, int c) { return a > b ? (a > c ? a : c) : (b > c ? b : c); }

/* The scratch after the (Tq, Tk) matrices: the right-hand matrix of a product in panels, then
 * its (zero) bias. */
static size_t pack_floats(const AttentionShape *s, int panel) {
    int hs = s->head_size, T = s->Tq > s->Tk ? s->Tq : s->Tk;
    size_t a = packed_matrix_floats(hs, s->Tk, panel), b = packed_matrix_floats(T, hs, panel);
    return a > b ? a : b;
}

size_t attention_scratch_floats(const AttentionShape *s) {
    int panel = kernels_of(s)->panel;
    return 2 * (size_t)s->Tq * s->Tk + pack_floats(s, panel) +
           packed_matrix_floats(1, max3(s->Tq, s->Tk, s->head_size), panel);
}

/* Which part of a causal product is not known to be zero, for a block of its rows (queries, or
 * keys when the rows are keys): every output (ALL, also whenever the attention is not causal);
 * the columns that are keys the block's queries see (SEEN_KEYS: scores and their gradients);
 * the terms over keys they see (OVER_SEEN_KEYS: probabilities times values or keys); the terms
 * over the queries that see the block's keys (OVER_SEEING_QUERIES: the keys' and values'
 * gradients). The rest is zero or never read: skipping it halves a causal pass's products and
 * changes no bit (matmul_packed_span). */
typedef enum { ALL, SEEN_KEYS, OVER_SEEN_KEYS, OVER_SEEING_QUERIES } Span;

/* Rows a block of a causal product: its columns or terms are those of its last row. */
#define CAUSAL_BLOCK 16

/* out (rows, cols) = a (rows, n) @ b, or out + that when add; a's rows are lda apart and its
 * elements a_step apart (a row-major matrix read transposed: lda 1, a_step its row length); b is
 * (n, cols) or, transposed, (cols, n), rows ldb apart. On the engine's kernels, on the calling
 * thread (the trainer spreads sequences over its pool): each output one chain over n in order. */
static void product(const AttentionShape *s, float *scratch, float *out, size_t ldo, const float *a,
                    size_t lda, size_t a_step, const float *b, size_t ldb, bool transposed,
                    int rows, int n, int cols, bool add, Span span) {
    const Kernels *k = kernels_of(s);
    float *pack = scratch + 2 * (size_t)s->Tq * s->Tk;
    PackedMatrix pm = {.kernels = k, .w = pack, .bias = pack + pack_floats(s, k->panel)};
    packed_matrix_fill(&pm, b, (int)ldb, transposed, NULL, n, cols);
    PackedOutput how = add ? PACKED_ADD : PACKED_STORE;
    if (!s->causal || span == ALL) {
        matmul_packed_span(out, ldo, a, lda, a_step, &pm, rows, how, NULL, 0, n);
        return;
    }
    for (int r0 = 0; r0 < rows; r0 += CAUSAL_BLOCK) {
        int r1 = r0 + CAUSAL_BLOCK < rows ? r0 + CAUSAL_BLOCK : rows;
        PackedMatrix seen = pm;
        int k0 = 0, k1 = n;
        if (span == SEEN_KEYS) {
            seen.M = visible_keys(s, r1 - 1);
            seen.panels = (seen.M + seen.panel - 1) / seen.panel;
        } else if (span == OVER_SEEN_KEYS) {
            k1 = visible_keys(s, r1 - 1);
        } else { /* rows are keys: query i sees key r0 from i = r0 - (Tk - Tq) on */
            k0 = r0 - (s->Tk - s->Tq) > 0 ? r0 - (s->Tk - s->Tq) : 0;
        }
        matmul_packed_span(out + r0 * ldo, ldo, a + r0 * lda, lda, a_step, &seen, r1 - r0, how,
                           NULL, k0, k1);
    }
}

/* scores (Tq, Tk), scaled: every one (ALL), or in each row those of the keys it sees (SEEN_KEYS;
 * the rest of the row is left as it was). */
static void scaled_scores(float *scores, float *scratch, const float *q, const float *k,
                          const AttentionShape *s, int b, int h, Span span) {
    product(s, scratch, scores, s->Tk, q + q_at(s, b, h), s->q_stride, 1, k + kv_at(s, b, h),
            s->kv_stride, true, s->Tq, s->head_size, s->Tk, false, span);
    float scale = score_scale(s);
    for (int i = 0; i < s->Tq; i++) {
        float *row = scores + (size_t)i * s->Tk;
        for (int j = 0, n = span == ALL ? s->Tk : visible_keys(s, i); j < n; j++) row[j] *= scale;
    }
}

void attention_scores(float *scores, float *scratch, const float *q, const float *k,
                      const AttentionShape *s, int b, int h) {
    scaled_scores(scores, scratch, q, k, s, b, h, ALL);
}

void attention_forward(float *out, float *att, float *att_mask, float *scratch, const float *q,
                       const float *k, const float *v, const AttentionShape *s, float dropout,
                       Rng *rng) {
    int Tq = s->Tq, Tk = s->Tk, hs = s->head_size;
    for (int b = 0; b < s->B; b++)
        for (int h = 0; h < s->n_head; h++) {
            float *p = att + ((size_t)b * s->n_head + h) * Tq * Tk; /* (Tq, Tk) */
            scaled_scores(p, scratch, q, k, s, b, h, SEEN_KEYS);
            for (int i = 0; i < Tq; i++) {
                float *row = p + (size_t)i * Tk;
                int n = visible_keys(s, i);
                float maxv = row[0];
                for (int j = 1; j < n; j++)
                    if (row[j] > maxv) maxv = row[j];
                for (int j = 0; j < n; j++) row[j] -= maxv;
                /* the kernels' exp over whole vectors, the same polynomial on the rest */
                int whole = n / 16 * 16;
                kernels_of(s)->exp_nonpositive(row, whole);
                for (int j = whole; j < n; j++) row[j] = expf_nonpositive(row[j]);
                float sum = 0.0f;
                for (int j = 0; j < n; j++) sum += row[j];
                float inv = 1.0f / sum;
                for (int j = 0; j < n; j++) row[j] *= inv;
                for (int j = n; j < Tk; j++) row[j] = 0.0f;
            }
            const float *pv = p;
            if (dropout > 0.0f) {
                float *mask = att_mask + ((size_t)b * s->n_head + h) * Tq * Tk;
                float keep_scale = 1.0f / (1.0f - dropout);
                for (int i = 0; i < Tq; i++) {
                    int n = visible_keys(s, i);
                    for (int j = 0; j < Tk; j++) {
                        size_t ij = (size_t)i * Tk + j;
                        /* Masked-out keys have probability 0: no random draw needed. */
                        mask[ij] = j < n && rng_float(rng) >= dropout ? keep_scale : 0.0f;
                        scratch[ij] = p[ij] * mask[ij];
                    }
                }
                pv = scratch;
            }
            product(s, scratch, out + out_at(s, b, h), s->out_stride, pv, Tk, 1, v + kv_at(s, b, h),
                    s->kv_stride, false, Tq, Tk, hs, false, OVER_SEEN_KEYS);
        }
}

void attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                        const float *att, const float *att_mask, const float *q, const float *k,
                        const float *v, const AttentionShape *s) {
    int Tq = s->Tq, Tk = s->Tk, hs = s->head_size;
    float scale = score_scale(s);
    float *dp = scratch;                   /* (Tq, Tk) */
    float *pd = scratch + (size_t)Tq * Tk; /* (Tq, Tk) dropped probabilities */
    for (int b = 0; b < s->B; b++)
        for (int h = 0; h < s->n_head; h++) {
            size_t bh = ((size_t)b * s->n_head + h) * Tq * Tk;
            const float *p = att + bh;
            const float *mask = att_mask ? att_mask + bh : NULL;
            const float *pv = p;
            if (mask) {
                for (size_t ij = 0; ij < (size_t)Tq * Tk; ij++) pd[ij] = p[ij] * mask[ij];
                pv = pd;
            }
            const float *dout_bh = dout + out_at(s, b, h);
            /* dv (Tk, hs) += pv^T (Tk, Tq) @ dout (Tq, hs) */
            product(s, scratch, dv + kv_at(s, b, h), s->kv_stride, pv, 1, Tk, dout_bh,
                    s->out_stride, false, Tk, Tq, hs, true, OVER_SEEING_QUERIES);
            /* dp (Tq, Tk) = dout (Tq, hs) @ v^T (hs, Tk) */
            product(s, scratch, dp, Tk, dout_bh, s->out_stride, 1, v + kv_at(s, b, h), s->kv_stride,
                    true, Tq, hs, Tk, false, SEEN_KEYS);
            /* Softmax backward, row by row: ds = p * (dp - sum(p * dp)), times the scale. */
            for (int i = 0; i < Tq; i++) {
                float *dpr = dp + (size_t)i * Tk;
                const float *pr = p + (size_t)i * Tk;
                int n = visible_keys(s, i);
                if (mask)
                    for (int j = 0; j < n; j++) dpr[j] *= mask[(size_t)i * Tk + j];
                float dot = 0.0f;
                for (int j = 0; j < n; j++) dot += pr[j] * dpr[j];
                for (int j = 0; j < n; j++) dpr[j] = pr[j] * (dpr[j] - dot) * scale;
                for (int j = n; j < Tk; j++) dpr[j] = 0.0f;
            }
            /* dq (Tq, hs) += ds (Tq, Tk) @ k (Tk, hs); dk (Tk, hs) += ds^T @ q */
            product(s, scratch, dq + q_at(s, b, h), s->q_stride, dp, Tk, 1, k + kv_at(s, b, h),
                    s->kv_stride, false, Tq, Tk, hs, true, OVER_SEEN_KEYS);
            product(s, scratch, dk + kv_at(s, b, h), s->kv_stride, dp, 1, Tk, q + q_at(s, b, h),
                    s->q_stride, false, Tk, Tq, hs, true, OVER_SEEING_QUERIES);
        }
}
