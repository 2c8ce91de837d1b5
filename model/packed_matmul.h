#ifndef GPTD_PACKED_MATMUL_H
#define GPTD_PACKED_MATMUL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Inference products use weights repacked once at load: column panels (a few vectors of the
 * chosen kernels, kernels.h), each stored k-major and contiguous (the last panel padded with
 * zeros), so the kernel streams memory in order. out (N, M) = inp (N, K) @ W (K, M) + bias, spread
 * over the pool. Every output is one fused multiply-add chain over k in order, starting from the
 * bias, whatever the tiling: a row's result never depends on how many rows share the call or how
 * the work is split. That makes generation batch-invariant (OpenBLAS switches kernels with the row
 * count).
 *
 * When every weight of the matrix is exactly a float16 (a float16 checkpoint), the panels hold
 * float16: half the bytes to stream per token, and the same results bit for bit, since widening
 * is exact. */
struct Kernels;
typedef struct {
    int K, M, panels, panel;       /* panel: columns per panel */
    const struct Kernels *kernels; /* the kernels the panels are laid out for */
    float *w;                      /* (panels, K, panel) as float, or NULL when w16 holds them */
    uint16_t *w16;                 /* (panels, K, panel) as float16, or NULL */
    float *bias;                   /* (panels * panel), zeros where there is no bias */
    int min_split_rows; /* products of fewer rows run on the caller alone (packed_matrix_calibrate)
                         */
} PackedMatrix;

/* What a product does with each result: store it, add it to out (a residual connection), or
 * store its relu or GELU, tanh or erf form (the MLP's activation), saving a pass over the
 * output. */
typedef enum { PACKED_STORE, PACKED_ADD, PACKED_RELU, PACKED_GELU, PACKED_GELU_ERF } PackedOutput;

struct ThreadPool;
/* w (K, M) in (in, out) layout; bias (M) or NULL; laid out for kernels. allow_half: store
 * float16 panels when that is exact. Returns -1 when out of memory. */
int packed_matrix_init(PackedMatrix *pm, const float *w, const float *bias, int K, int M,
                       bool allow_half, const struct Kernels *kernels);
void packed_matrix_free(PackedMatrix *pm);

/* For products whose right-hand matrix changes every call (training): the floats of panels that
 * hold a (K, M) matrix, and packed_matrix_fill, which lays a matrix out into buffers the caller
 * owns (pm->w with packed_matrix_floats(K, M, panel) floats, pm->bias with M rounded up to the
 * panel), float32 only. w is (K, M) with rows ld apart or, when transposed, (M, K) with rows ld
 * apart, read as its transpose. bias (M) may be NULL. */
size_t packed_matrix_floats(int K, int M, int panel);

void packed_matrix_fill(PackedMatrix *pm, const float *w, int ld, bool transposed,
                        const float *bias, int K, int M);
/* Bytes of packed weights (what a product streams). */
size_t packed_matrix_bytes(const PackedMatrix *pm);
/* Measures, on this machine and pool, from how many rows splitting a product of this matrix over
 * the pool is faster than running it on the caller alone (1, 2, 4, 8 or 16; larger products are
 * always split), and keeps the answer in min_split_rows. A few milliseconds. Until it is called,
 * every product is split. */
int packed_matrix_calibrate(PackedMatrix *pm, struct ThreadPool *pool);
void matmul_packed(float *out, const float *inp, const PackedMatrix *pm, int N, PackedOutput how,
                   struct ThreadPool *pool);
/* The same with rows of inp in_stride floats apart, the elements of a row k_stride apart, and
 * rows of out out_stride apart: a head's channels inside wider rows, or with in_stride 1 and
 * k_stride its row length, a row-major matrix read transposed. */
void matmul_packed_strided(float *out, size_t out_stride, const float *inp, size_t in_stride,
                           size_t k_stride, const PackedMatrix *pm, int N, PackedOutput how,
                           struct ThreadPool *pool);

/* The same over the terms [k_begin, k_end) of every chain, when the caller knows the others are
 * zero (the masked part of a causal product). Leaving them out changes no bit as long as the sum
 * they would have been added to is not -0 (x + 0 and x + -0 are x for every other x): always so
 * for zeros before the span from a bias other than -0; for zeros after it, unless the chain
 * underflowed to exactly -0, where the whole product would have turned it into +0.
 * 0 <= k_begin <= k_end <= pm->K. */
void matmul_packed_span(float *out, size_t out_stride, const float *inp, size_t in_stride,
                        size_t k_stride, const PackedMatrix *pm, int N, PackedOutput how,
                        struct ThreadPool *pool, int k_begin, int k_end);

#endif
