#include "train_layers.h"

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

void embedding_forward(float *out, const int *tokens, const float *wte, const float *wpe, int B,
                       int T, int C) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float *o = out + ((size_t)b * T + t) * C;
            const float *te = wte + (size_t)tokens[b * T + t] * C;
            const float *pe = wpe + (size_t)t * C;
            for (int c = 0; c < C; c++) o[c] = te[c] + pe[c];
        }
}

/* The gradients of one sequence's rows (a shard, shard_sum.h): each element one chain over the rows
 * in order, stored or added whole to what out holds. */
static void put(float *out, float v, bool add) { *out = add ? *out + v : v; }

void embedding_token_grad(float *dwte, float *tmp, const float *dout, const int *tokens, int T,
                          int C, int V, bool add) {
    float *g = add ? tmp : dwte;
    memset(g, 0, (size_t)V * C * sizeof *g);
    for (int t = 0; t < T; t++) {
        const float *d = dout + (size_t)t * C;
        float *row = g + (size_t)tokens[t] * C;
        for (int c = 0; c < C; c++) row[c] += d[c];
    }
    if (add)
        for (size_t i = 0; i < (size_t)V * C; i++) dwte[i] = dwte[i] + tmp[i];
}

void rows_grad(float *out, const float *dout, long n, bool add) {
    for (long i = 0; i < n; i++) put(out + i, dout[i], add);
}

void bias_grad(float *dbias, float *tmp, const float *dout, int T, int M, int ld, bool add) {
    float *g = add ? tmp : dbias;
    memset(g, 0, (size_t)M * sizeof *g);
    for (int t = 0; t < T; t++)
        for (int m = 0; m < M; m++) g[m] += dout[(size_t)t * ld + m];
    if (add)
        for (int m = 0; m < M; m++) dbias[m] = dbias[m] + tmp[m];
}

void layernorm_weight_grad(float *dweight, float *tmp, const float *dout, const float *inp,
                           const float *mean, const float *rstd, int T, int C, int ld, bool add) {
    float *g = add ? tmp : dweight;
    memset(g, 0, (size_t)C * sizeof *g);
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++)
            g[c] += dout[(size_t)t * ld + c] * ((inp[(size_t)t * ld + c] - mean[t]) * rstd[t]);
    if (add)
        for (int c = 0; c < C; c++) dweight[c] = dweight[c] + tmp[c];
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, int N, int C) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        float m = 0.0f;
        for (int c = 0; c < C; c++) m += x[c];
        m /= C;
        float v = 0.0f;
        for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
        v /= C;
        float s = 1.0f / sqrtf(v + 1e-5f);
        for (int c = 0; c < C; c++) o[c] = (x[c] - m) * s * weight[c] + bias[c];
        if (mean) mean[n] = m;
        if (rstd) rstd[n] = s;
    }
}

void layernorm_backward(float *dinp, const float *dout, const float *inp, const float *weight,
                        const float *mean, const float *rstd, int N, int C) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        const float *d = dout + (size_t)n * C;
        float *dx = dinp + (size_t)n * C;
        float m = mean[n], s = rstd[n];
        /* dx = s * (dnorm - mean(dnorm) - xhat * mean(dnorm * xhat)), dnorm = d * weight. */
        float dnorm_mean = 0.0f, dnorm_xhat_mean = 0.0f;
        for (int c = 0; c < C; c++) {
            float xhat = (x[c] - m) * s;
            float dnorm = d[c] * weight[c];
            dnorm_mean += dnorm;
            dnorm_xhat_mean += dnorm * xhat;
        }
        dnorm_mean /= C;
        dnorm_xhat_mean /= C;
        for (int c = 0; c < C; c++) {
            float xhat = (x[c] - m) * s;
            dx[c] += s * (d[c] * weight[c] - dnorm_mean - xhat * dnorm_xhat_mean);
        }
    }
}

void activation_forward(float *out, const float *inp, long n, Activation act) {
    if (act == ACT_RELU) {
        for (long i = 0; i < n; i++) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
        return;
    }
    if (act == ACT_GELU_ERF) {
        for (long i = 0; i < n; i++) out[i] = gelu_erf(inp[i]);
        return;
    }
    for (long i = 0; i < n; i++) out[i] = gelu(inp[i]);
}

void activation_backward(float *dinp, const float *inp, const float *dout, long n, Activation act) {
    if (act == ACT_RELU) {
        for (long i = 0; i < n; i++) dinp[i] = inp[i] > 0.0f ? dout[i] : 0.0f;
        return;
    }
    if (act == ACT_GELU_ERF) { /* Phi(x) + x phi(x) */
        for (long i = 0; i < n; i++) {
            float x = inp[i];
            float grad = 0.5f * (1.0f + erff(x * GELU_ERF_SCALE)) +
                         x * expf(-0.5f * x * x) * 0.3989422804014327f; /* 1 / sqrt(2 pi) */
            dinp[i] = grad * dout[i];
        }
        return;
    }
    for (long i = 0; i < n; i++) {
        float x = inp[i];
        float u = GELU_SCALE * (x + 0.044715f * x * x * x);
        float th = tanhf(u);
        float sech2 = 1.0f - th * th;
        float grad =
            0.5f * (1.0f + th) + 0.5f * x * sech2 * GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
        dinp[i] = grad * dout[i];
    }
}

void dropout_forward(float *out, float *mask, const float *inp, long n, float p, Rng *rng) {
    if (p <= 0.0f) {
        if (out != inp) memcpy(out, inp, (size_t)n * sizeof *out);
        for (long i = 0; i < n; i++) mask[i] = 1.0f;
        return;
    }
    float keep_scale = 1.0f / (1.0f - p);
    for (long i = 0; i < n; i++) {
        mask[i] = rng_float(rng) < p ? 0.0f : keep_scale;
        out[i] = inp[i] * mask[i];
    }
}

void dropout_backward(float *dinp, const float *dout, const float *mask, long n) {
    for (long i = 0; i < n; i++) dinp[i] = dout[i] * mask[i];
}

void residual_forward(float *out, const float *a, const float *b, long n) {
    for (long i = 0; i < n; i++) out[i] = a[i] + b[i];
}

float crossentropy_forward_backward(float *losses, float *dlogits, const float *logits,
                                    const int *targets, int N, int V, int batch_rows) {
    double total = 0.0;
    for (int n = 0; n < N; n++) {
        const float *z = logits + (size_t)n * V;
        float maxz = z[0];
        for (int v = 1; v < V; v++)
            if (z[v] > maxz) maxz = z[v];
        double sum = 0.0;
        for (int v = 0; v < V; v++) sum += exp((double)(z[v] - maxz));
        double logsum = log(sum) + maxz;
        float loss = (float)(logsum - z[targets[n]]);
        if (losses) losses[n] = loss;
        total += loss;
        if (dlogits) {
            float *d = dlogits + (size_t)n * V;
            for (int v = 0; v < V; v++) d[v] = (float)exp(z[v] - logsum) / batch_rows;
            d[targets[n]] -= 1.0f / batch_rows;
        }
    }
    return (float)(total / N);
}
