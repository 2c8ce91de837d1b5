#include "matmul.h"

#include <stdlib.h>
#include <string.h>

#include "../common/thread_pool.h"
#include "../model/kernels.h"

void matmul_init(Matmul *mm, const Kernels *kernels, ThreadPool *pool) {
    memset(mm, 0, sizeof *mm);
    mm->kernels = kernels;
    mm->pool = pool;
    mm->packed.kernels = kernels;
}

void matmul_free(Matmul *mm) {
    free(mm->packed.w);
    free(mm->packed.bias);
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
    if (grow(&mm->packed.w, &mm->packed_cap, panels) ||
        grow(&mm->packed.bias, &mm->bias_cap, packed_matrix_floats(1, cols, panel)))
        return error_set(err, "out of memory for the products' scratch (%zu MB)",
                         panels * sizeof(float) >> 20);
    return 0;
}

/* out (N, M) = inp (N, K) @ the matrix laid out in mm->packed, through the pool. */
static void run(Matmul *mm, float *out, const float *inp, int N, PackedOutput how) {
    matmul_packed(out, inp, &mm->packed, N, how, mm->pool);
}

void matmul_forward(Matmul *mm, float *out, const float *inp, const float *w, const float *bias,
                    int N, int K, int M, bool w_is_out_in) {
    packed_matrix_fill(&mm->packed, w, w_is_out_in ? K : M, w_is_out_in, bias, K, M);
    run(mm, out, inp, N, PACKED_STORE);
}

void matmul_backward_input(Matmul *mm, float *dinp, const float *dout, const float *w, int N,
                           int K, int M, bool w_is_out_in) {
    /* W^T as a (M, K) matrix: (K, M) read transposed, or (M, K) as it is. */
    packed_matrix_fill(&mm->packed, w, w_is_out_in ? K : M, !w_is_out_in, NULL, M, K);
    run(mm, dinp, dout, N, PACKED_STORE);
}

void matmul_weight_grad(Matmul *mm, float *dw, const float *dout, const float *inp, int T, int K,
                        int M, bool w_is_out_in, bool add) {
    PackedOutput how = add ? PACKED_ADD : PACKED_STORE;
    PackedMatrix *pm = &mm->packed;
    if (w_is_out_in) { /* dW (M, K) = dout^T (M, T) @ inp (T, K): dout read transposed */
        packed_matrix_fill(pm, inp, K, false, NULL, T, K);
        matmul_packed_strided(dw, (size_t)K, dout, 1, (size_t)M, pm, M, how, mm->pool);
    } else { /* dW (K, M) = inp^T (K, T) @ dout (T, M): inp read transposed */
        packed_matrix_fill(pm, dout, M, false, NULL, T, M);
        matmul_packed_strided(dw, (size_t)M, inp, 1, (size_t)K, pm, K, how, mm->pool);
    }
}
