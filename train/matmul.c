#include "matmul.h"

#include <cblas.h>
#include <stddef.h>

void matmul_set_threads(int n) { openblas_set_num_threads(n); }

void matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N, int K,
                    int M, bool w_is_out_in) {
    float beta = 0.0f;
    if (bias) {
        /* Seed the output with the bias so the product accumulates onto it. */
        for (int n = 0; n < N; n++)
            for (int m = 0; m < M; m++) out[(size_t)n * M + m] = bias[m];
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, w_is_out_in ? CblasTrans : CblasNoTrans, N, M, K, 1.0f,
                inp, K, w, w_is_out_in ? K : M, beta, out, M);
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
