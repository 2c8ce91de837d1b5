#include "matmul.h"

#include <stdlib.h>
#include <string.h>

#include "../common/clock.h"
#include "../common/thread_pool.h"
#include "../model/kernels.h"

void matmul_init(Matmul *mm, const Kernels *kernels, ThreadPool *pool) {
    memset(mm, 0, sizeof *mm);
    mm->kernels = kernels;
    mm->pool = pool;
}

void matmul_free(Matmul *mm) {
    free(mm->panels);
    free(mm->panel_bias);
    memset(mm, 0, sizeof *mm);
}

/* Grows *p to at least n floats, 64-byte aligned (what the kernels stream). */
static int grow(float **p, size_t *cap, size_t n) {
    if (n <= *cap) return 0;
    float *q = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    if (!q) return -1;
    free(*p);
    *p = q;
    *cap = n;
    return 0;
}

int matmul_reserve(Matmul *mm, const int (*shapes)[2], int n, Error *err) {
    int panel = mm->kernels->panel, cols = 0;
    size_t panels = 0;
    for (int i = 0; i < n; i++) {
        size_t f = packed_matrix_floats(shapes[i][0], shapes[i][1], panel);
        panels = f > panels ? f : panels;
        cols = shapes[i][1] > cols ? shapes[i][1] : cols;
    }
    size_t bias = packed_matrix_floats(1, cols, panel);
    if (grow(&mm->panels, &mm->panels_cap, panels) || grow(&mm->panel_bias, &mm->bias_cap, bias))
        return error_set(err, "out of memory for the products' scratch (%zu MB)",
                         panels * sizeof(float) >> 20);
    return 0;
}

/* The right-hand matrix of the next product, (K, M) with rows ld apart or, transposed, (M, K),
 * laid out into panels. (Reading a row-major matrix in place as panels, rows ld apart, was
 * measured slower: a panel's rows then sit a page apart.) */
static void right_hand(Matmul *mm, const float *w, int ld, bool transposed, const float *bias,
                       int K, int M) {
    mm->packed.kernels = mm->kernels;
    mm->packed.w = mm->panels;
    mm->packed.bias = mm->panel_bias;
    packed_matrix_fill(&mm->packed, w, ld, transposed, bias, K, M);
}

/* out (N, M) = inp (N, K) @ the matrix laid out in mm->packed, through the pool; inp's rows are
 * in_stride apart and their elements k_stride apart. */
static void run(Matmul *mm, float *out, const float *inp, size_t in_stride, size_t k_stride, int N,
                PackedOutput how) {
    const PackedMatrix *pm = &mm->packed;
    matmul_packed_strided(out, (size_t)pm->M, inp, in_stride, k_stride, pm, N, how, mm->pool);
}

/* Times a product, laying out included. */
static double start(void) { return clock_seconds(); }
static void count(Matmul *mm, double t0, int N, int K, int M) {
    mm->seconds += clock_seconds() - t0;
    mm->flops += 2.0 * N * K * M;
}

void matmul_forward(Matmul *mm, float *out, const float *inp, const float *w, const float *bias,
                    int N, int K, int M, bool w_is_out_in, PackedOutput how) {
    double t0 = start();
    right_hand(mm, w, w_is_out_in ? K : M, w_is_out_in, bias, K, M);
    run(mm, out, inp, (size_t)K, 1, N, how);
    count(mm, t0, N, K, M);
}

void matmul_backward_input(Matmul *mm, float *dinp, const float *dout, const float *w, int N, int K,
                           int M, bool w_is_out_in) {
    double t0 = start();
    /* W^T as a (M, K) matrix: (K, M) read transposed, or (M, K) as it is. */
    right_hand(mm, w, w_is_out_in ? K : M, !w_is_out_in, NULL, M, K);
    run(mm, dinp, dout, (size_t)M, 1, N, PACKED_STORE);
    count(mm, t0, N, K, M);
}

void matmul_weight_grad(Matmul *mm, float *dw, const float *dout, const float *inp, int T, int K,
                        int M, bool w_is_out_in, bool add) {
    PackedOutput how = add ? PACKED_ADD : PACKED_STORE;
    double t0 = start();
    if (w_is_out_in) { /* dW (M, K) = dout^T (M, T) @ inp (T, K): dout read transposed */
        right_hand(mm, inp, K, false, NULL, T, K);
        run(mm, dw, dout, 1, (size_t)M, M, how);
    } else { /* dW (K, M) = inp^T (K, T) @ dout (T, M): inp read transposed */
        right_hand(mm, dout, M, false, NULL, T, M);
        run(mm, dw, inp, 1, (size_t)K, K, how);
    }
    count(mm, t0, T, K, M);
}
