#ifndef GPTD_PACKED_MATMUL_H
#define GPTD_PACKED_MATMUL_H

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

#endif
