#include "matmul.h"

#include <cblas.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

void matmul_set_threads(int n) { openblas_set_num_threads(n); }

/* OpenBLAS picks different kernels (with different summation orders) for small row counts, so
 * a row's result would depend on how many other rows share the call. Rows therefore go through
 * sgemm in whole blocks of ROW_BLOCK; a ragged tail is padded with zero rows. Then a sequence's
 * outputs are bit-identical whether it runs alone or inside a batch. */
#define ROW_BLOCK 64

static void matmul_forward_block(float *out, const float *inp, const float *w, const float *bias,
                                 int N, int K, int M, bool w_is_out_in);

static void sgemm_rows(float *out, const float *inp, const float *w, int N, int K, int M,
                       bool w_is_out_in, float beta) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, w_is_out_in ? CblasTrans : CblasNoTrans, N, M, K, 1.0f,
                inp, K, w, w_is_out_in ? K : M, beta, out, M);
}

void matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N, int K,
                    int M, bool w_is_out_in) {
    int full = N / ROW_BLOCK * ROW_BLOCK, tail = N - full;
    if (full) matmul_forward_block(out, inp, w, bias, full, K, M, w_is_out_in);
    if (tail == 0) return;
    float *pad_in = calloc((size_t)ROW_BLOCK * K, sizeof(float));
    float *pad_out = malloc((size_t)ROW_BLOCK * M * sizeof(float));
    if (!pad_in || !pad_out) { /* out of memory: still correct, just not batch-invariant */
        matmul_forward_block(out + (size_t)full * M, inp + (size_t)full * K, w, bias, tail, K, M,
                             w_is_out_in);
    } else {
        memcpy(pad_in, inp + (size_t)full * K, (size_t)tail * K * sizeof(float));
        matmul_forward_block(pad_out, pad_in, w, bias, ROW_BLOCK, K, M, w_is_out_in);
        memcpy(out + (size_t)full * M, pad_out, (size_t)tail * M * sizeof(float));
    }
    free(pad_in);
    free(pad_out);
}

static void matmul_forward_block(float *out, const float *inp, const float *w, const float *bias,
                                 int N, int K, int M, bool w_is_out_in) {
    float beta = 0.0f;
    if (bias) {
        /* Seed the output with the bias so the product accumulates onto it. */
        for (int n = 0; n < N; n++)
            for (int m = 0; m < M; m++) out[(size_t)n * M + m] = bias[m];
        beta = 1.0f;
    }
    sgemm_rows(out, inp, w, N, K, M, w_is_out_in, beta);
}

void matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                     const float *w, int N, int K, int M, bool w_is_out_in) {
    if (dinp) /* (N, M) @ W^T -> (N, K) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, w_is_out_in ? CblasNoTrans : CblasTrans, N, K, M,
                    1.0f, dout, M, w, w_is_out_in ? K : M, 1.0f, dinp, K);
    if (dw) {
        if (w_is_out_in) /* dW (M, K) += dout^T (M, N) @ inp (N, K) */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, K, N, 1.0f, dout, M, inp, K,
                        1.0f, dw, K);
        else /* dW (K, M) += inp^T (K, N) @ dout (N, M) */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, M, N, 1.0f, inp, K, dout, M,
                        1.0f, dw, M);
    }
    if (dbias)
        for (int n = 0; n < N; n++)
            for (int m = 0; m < M; m++) dbias[m] += dout[(size_t)n * M + m];
}
