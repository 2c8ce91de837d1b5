/* The training pass's matrix products, all on OpenBLAS, so thread and BLAS choices live here
 * (the engine has its own, model/packed_matmul.h). Row-major throughout. Weights are either GPT-2
 * "Conv1D" layout (in, out) or, for the language-model head, nn.Linear layout (out, in):
 * `w_is_out_in` picks which.
 */
#ifndef GPTD_MATMUL_H
#define GPTD_MATMUL_H

#include <stdbool.h>

/* out (N, M) = inp (N, K) @ W + bias, W (K, M) or, if w_is_out_in, (M, K) used transposed.
 * bias (M) may be NULL. */
void matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N, int K,
                    int M, bool w_is_out_in);

/* Accumulates gradients: dinp (N, K) += dout @ W^T; dw += inp^T @ dout (in W's layout);
 * dbias (M) += column sums of dout. Any of dinp, dw, dbias may be NULL to skip it. */
void matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                     const float *w, int N, int K, int M, bool w_is_out_in);

/* Threads OpenBLAS may use (the trainer gives it all cores, and one while its pool runs
 * attention). */
void matmul_set_threads(int n);

#endif
