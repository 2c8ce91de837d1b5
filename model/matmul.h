/* The one place that multiplies matrices (all on OpenBLAS), so thread and BLAS choices live
 * here. Row-major throughout. Weights are either GPT-2 "Conv1D" layout (in, out) or, for the
 * language-model head, nn.Linear layout (out, in): `w_is_out_in` picks which. */
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

/* Inference products use weights repacked once at load: column panels of 24, each stored
 * k-major and contiguous (the last panel padded with zeros), so the kernel streams memory in
 * order. out (N, M) = inp (N, K) @ W (K, M) + bias, spread over the pool by panels. Every output
 * is one fused multiply-add chain over k in order, starting from the bias, whatever the tiling:
 * a row's result never depends on how many rows share the call or how the work is split. That
 * makes generation batch-invariant (OpenBLAS switches kernels with the row count). */
typedef struct {
    int K, M, panels;
    float *w;    /* (panels, K, 24) */
    float *bias; /* (panels * 24), zeros where there is no bias */
} PackedMatrix;

struct ThreadPool;
/* w (K, M) in (in, out) layout; bias (M) or NULL. Returns -1 when out of memory. */
int packed_matrix_init(PackedMatrix *pm, const float *w, const float *bias, int K, int M);
void packed_matrix_free(PackedMatrix *pm);
void matmul_packed(float *out, const float *inp, const PackedMatrix *pm, int N,
                   struct ThreadPool *pool);

/* Threads OpenBLAS may use (the trainer gives it all cores; the engine decides per phase). */
void matmul_set_threads(int n);

#endif
