/* The training pass's matrix products, on the engine's kernels (model/kernels.h): the path chosen
 * at start-up (AVX-512, AVX2, NEON or portable C), spread over the trainer's pool. Every output
 * is one fused multiply-add chain in order over the reduced dimension, and the pool splits
 * outputs, never a chain, so a product gives the same bits on every path and at any thread
 * count. The right-hand matrix is laid out into panels at each call (the weights change every
 * step): one pass over a matrix the product reads N times.
 *
 * Row-major throughout. Weights are GPT-2 "Conv1D" (in, out) or, for the language-model head,
 * nn.Linear (out, in): `w_is_out_in` picks which. */
#ifndef GPTD_MATMUL_H
#define GPTD_MATMUL_H

#include <stdbool.h>
#include <stddef.h>

#include "../common/error.h"
#include "../model/packed_matmul.h"

struct Kernels;
struct ThreadPool;

/* The kernels, the pool and the scratch of the products. Used by one thread at a time (the
 * trainer's), which hands work to the pool. */
typedef struct {
    const struct Kernels *kernels;
    struct ThreadPool *pool; /* NULL: the calling thread alone */
    PackedMatrix packed;     /* the current right-hand matrix: a view, or laid out in `panels` */
    float *panels, *panel_bias, *zeros;
    size_t panels_cap, bias_cap, zeros_cap;
    double seconds, flops; /* spent in the products so far, and their multiply-adds times 2 */
} Matmul;

void matmul_init(Matmul *mm, const struct Kernels *kernels, struct ThreadPool *pool);
void matmul_free(Matmul *mm);

/* Makes room for products with right-hand matrices of the n shapes (rows: the reduced
 * dimension, columns). */
int matmul_reserve(Matmul *mm, const int (*shapes)[2], int n, Error *err);

/* out (N, M) = inp (N, K) @ W + bias, stored or through relu (how: PACKED_STORE or
 * PACKED_RELU); W (K, M), or (M, K) used transposed when w_is_out_in. bias (M) may be NULL. */
void matmul_forward(Matmul *mm, float *out, const float *inp, const float *w, const float *bias,
                    int N, int K, int M, bool w_is_out_in, PackedOutput how);

/* dinp (N, K) = dout (N, M) @ W^T: the gradient of the product's input. */
void matmul_backward_input(Matmul *mm, float *dinp, const float *dout, const float *w, int N, int K,
                           int M, bool w_is_out_in);

/* The weight gradient of T rows (one sequence): inp^T @ dout in W's layout, (K, M) or (M, K),
 * each element one chain over the T rows in order. Stored in dw, or added to what dw holds when
 * `add` (the sum of two chains, each rounded, as shard_sum needs). */
void matmul_weight_grad(Matmul *mm, float *dw, const float *dout, const float *inp, int T, int K,
                        int M, bool w_is_out_in, bool add);

#endif
