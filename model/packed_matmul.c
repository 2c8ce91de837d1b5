#include "packed_matmul.h"

#include <stdlib.h>
#include <string.h>

#include "../common/float16.h"
#include "../common/thread_pool.h"
#include "kernels.h"

#include "../common/clock.h"

/* Rows from which a product is split without measuring: 16 rows take tens of microseconds on any
 * matrix worth splitting, far more than a hand-off. */
#define ALWAYS_SPLIT_ROWS 32

static bool all_float16(const float *w, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!float16_holds(w[i])) return false;
    return true;
}

int packed_matrix_init(PackedMatrix *pm, const float *w, const float *bias, int K, int M,
                       bool allow_half, const Kernels *kernels) {
    const int PANEL = kernels->panel;
    memset(pm, 0, sizeof *pm);
    pm->kernels = kernels;
    pm->panel = PANEL;
    pm->K = K;
    pm->M = M;
    pm->panels = (M + PANEL - 1) / PANEL;
    size_t n = (size_t)pm->panels * K * PANEL;
    bool half = allow_half && all_float16(w, (size_t)K * M);
    if (half)
        pm->w16 = aligned_alloc(64, (n * sizeof(uint16_t) + 63) / 64 * 64);
    else
        pm->w = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    pm->bias = aligned_alloc(64, ((size_t)pm->panels * PANEL * sizeof(float) + 63) / 64 * 64);
    if ((!pm->w && !pm->w16) || !pm->bias) {
        packed_matrix_free(pm);
        return -1;
    }
    for (int p = 0; p < pm->panels; p++)
        for (int k = 0; k < K; k++)
            for (int c = 0; c < PANEL; c++) {
                int col = p * PANEL + c;
                float v = col < M ? w[(size_t)k * M + col] : 0.0f;
                size_t at = ((size_t)p * K + k) * PANEL + c;
                if (half)
                    pm->w16[at] = float16_from_float(v);
                else
                    pm->w[at] = v;
            }
    for (int col = 0; col < pm->panels * PANEL; col++)
        pm->bias[col] = bias && col < M ? bias[col] : 0.0f;
    return 0;
}

size_t packed_matrix_floats(int K, int M, int panel) {
    return (size_t)((M + panel - 1) / panel) * K * panel;
}

void packed_matrix_fill(PackedMatrix *pm, const float *w, int ld, bool transposed,
                        const float *bias, int K, int M) {
    const int PANEL = pm->kernels->panel;
    pm->panel = PANEL;
    pm->K = K;
    pm->M = M;
    pm->panels = (M + PANEL - 1) / PANEL;
    pm->w16 = NULL;
    pm->min_split_rows = 0;
    for (int p = 0; p < pm->panels; p++) {
        int cols = M - p * PANEL < PANEL ? M - p * PANEL : PANEL;
        float *dst = pm->w + (size_t)p * K * PANEL;
        for (int k = 0; k < K; k++, dst += PANEL) {
            int c = 0;
            if (transposed)
                for (; c < cols; c++) dst[c] = w[(size_t)(p * PANEL + c) * ld + k];
            else
                for (; c < cols; c++) dst[c] = w[(size_t)k * ld + p * PANEL + c];
            for (; c < PANEL; c++) dst[c] = 0.0f;
        }
    }
    for (int col = 0; col < pm->panels * PANEL; col++)
        pm->bias[col] = bias && col < M ? bias[col] : 0.0f;
}

/* The fastest of `repeats` products of N rows, on the pool or on the caller alone. */
static double best_seconds(const PackedMatrix *pm, float *out, const float *inp, int N,
                           ThreadPool *pool, int repeats) {
    double best = 1e30;
    for (int i = 0; i < repeats; i++) {
        double t0 = clock_seconds();
        matmul_packed(out, inp, pm, N, PACKED_STORE, pool);
        double dt = clock_seconds() - t0;
        best = dt < best ? dt : best;
    }
    return best;
}

int packed_matrix_calibrate(PackedMatrix *pm, ThreadPool *pool) {
    pm->min_split_rows = ALWAYS_SPLIT_ROWS;
    if (!pool || thread_pool_size(pool) == 1) return 0;
    int max_n = ALWAYS_SPLIT_ROWS / 2;
    float *inp = calloc((size_t)max_n * pm->K, sizeof(float));
    float *out = malloc((size_t)max_n * pm->panels * pm->panel * sizeof(float));
    if (!inp || !out) {
        free(inp);
        free(out);
        return -1;
    }
    int split_rows = pm->min_split_rows;
    pm->min_split_rows = 0; /* measure splitting at every size */
    for (int n = 1; n <= max_n; n *= 2) {
        best_seconds(pm, out, inp, n, pool, 2); /* warm the panels and the workers */
        double alone = best_seconds(pm, out, inp, n, NULL, 7);
        double split = best_seconds(pm, out, inp, n, pool, 7);
        if (split < 0.9 * alone) {
            split_rows = n;
            break;
        }
    }
    pm->min_split_rows = split_rows;
    free(inp);
    free(out);
    return 0;
}

void packed_matrix_free(PackedMatrix *pm) {
    free(pm->w);
    free(pm->w16);
    free(pm->bias);
    pm->w = pm->bias = NULL;
    pm->w16 = NULL;
}

size_t packed_matrix_bytes(const PackedMatrix *pm) {
    return (size_t)pm->panels * pm->K * pm->panel * (pm->w16 ? sizeof(uint16_t) : sizeof(float));
}

void matmul_packed(float *out, const float *inp, const PackedMatrix *pm, int N, PackedOutput how,
                   ThreadPool *pool) {
    matmul_packed_strided(out, (size_t)pm->M, inp, (size_t)pm->K, 1, pm, N, how, pool);
}

void matmul_packed_strided(float *out, size_t out_stride, const float *inp, size_t in_stride,
                           size_t k_stride, const PackedMatrix *pm, int N, PackedOutput how,
                           ThreadPool *pool) {
    matmul_packed_span(out, out_stride, inp, in_stride, k_stride, pm, N, how, pool, 0, pm->K);
}

void matmul_packed_span(float *out, size_t out_stride, const float *inp, size_t in_stride,
                        size_t k_stride, const PackedMatrix *pm, int N, PackedOutput how,
                        ThreadPool *pool, int k_begin, int k_end) {
    int threads = pool && N >= pm->min_split_rows ? thread_pool_size(pool) : 1;
    PackedJob j = {.out = out,
                   .inp = inp,
                   .pm = pm,
                   .how = how,
                   .in_stride = in_stride,
                   .k_stride = k_stride,
                   .out_stride = out_stride,
                   .N = N,
                   .k_begin = k_begin,
                   .k_end = k_end,
                   .chunks = threads};
    if (N < 4) {
        if (threads > 1)
            thread_pool_run(pool, pm->kernels->panels_task, &j, threads);
        else
            pm->kernels->panels_task(&j, 0);
        return;
    }
    j.rows_per_task = N < 32 ? 4 : 16;
    j.row_blocks = (N + j.rows_per_task - 1) / j.rows_per_task;
    /* More rows than columns (the trainer's products over a whole batch): the inputs are the
     * larger operand, so each block of rows goes through every panel while it is in cache. Fewer
     * (the engine's steps): each panel goes through every block of rows, and weights that do not
     * fit in the caches stream from memory once. The outputs are the same either way. */
    j.rows_outer = N > pm->M;
    int tasks = pm->panels * j.row_blocks;
    if (threads > 1)
        thread_pool_run(pool, pm->kernels->rows_task, &j, tasks);
    else
        for (int t = 0; t < tasks; t++) pm->kernels->rows_task(&j, t);
}
