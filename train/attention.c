#include "attention.h"

#include <cblas.h>
#include <math.h>
#include <stddef.h>

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

void attention_scores(float *scores, const float *q, const float *k, const AttentionShape *s, int b,
                      int h) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->Tq, s->Tk, s->head_size, score_scale(s),
                q + q_at(s, b, h), s->q_stride, k + kv_at(s, b, h), s->kv_stride, 0.0f, scores,
                s->Tk);
}

void attention_forward(float *out, float *att, float *att_mask, float *scratch, const float *q,
                       const float *k, const float *v, const AttentionShape *s, float dropout,
                       Rng *rng) {
    int Tq = s->Tq, Tk = s->Tk, hs = s->head_size;
    for (int b = 0; b < s->B; b++)
        for (int h = 0; h < s->n_head; h++) {
            float *p = att + ((size_t)b * s->n_head + h) * Tq * Tk; /* (Tq, Tk) */
            attention_scores(p, q, k, s, b, h);
            for (int i = 0; i < Tq; i++) {
                float *row = p + (size_t)i * Tk;
                int n = visible_keys(s, i);
                float maxv = row[0];
                for (int j = 1; j < n; j++)
                    if (row[j] > maxv) maxv = row[j];
                float sum = 0.0f;
                for (int j = 0; j < n; j++) {
                    row[j] = expf(row[j] - maxv);
                    sum += row[j];
                }
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
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Tq, hs, Tk, 1.0f, pv, Tk,
                        v + kv_at(s, b, h), s->kv_stride, 0.0f, out + out_at(s, b, h),
                        s->out_stride);
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
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Tk, hs, Tq, 1.0f, pv, Tk, dout_bh,
                        s->out_stride, 1.0f, dv + kv_at(s, b, h), s->kv_stride);
            /* dp (Tq, Tk) = dout (Tq, hs) @ v^T (hs, Tk) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Tq, Tk, hs, 1.0f, dout_bh,
                        s->out_stride, v + kv_at(s, b, h), s->kv_stride, 0.0f, dp, Tk);
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
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Tq, hs, Tk, 1.0f, dp, Tk,
                        k + kv_at(s, b, h), s->kv_stride, 1.0f, dq + q_at(s, b, h), s->q_stride);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Tk, hs, Tq, 1.0f, dp, Tk,
                        q + q_at(s, b, h), s->q_stride, 1.0f, dk + kv_at(s, b, h), s->kv_stride);
        }
}
