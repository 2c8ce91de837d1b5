#include "packed_matmul.h"

#include <stdlib.h>
#include <string.h>

#include "../common/float16.h"
#include "kernels.h"
#include "../common/thread_pool.h"

/* Below this many FLOPs, handing half of a product to another thread costs more than it saves
 * (a hand-off is about 2 microseconds here). */
#define MIN_SPLIT_FLOPS 2.5e5

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
    int threads = pool && 2.0 * N * pm->K * pm->M >= MIN_SPLIT_FLOPS ? thread_pool_size(pool) : 1;
    PackedJob j = {.out = out, .inp = inp, .pm = pm, .how = how, .N = N, .chunks = threads};
    if (N < 4) {
        if (threads > 1)
            thread_pool_run(pool, pm->kernels->panels_task, &j, threads);
        else
            pm->kernels->panels_task(&j, 0);
        return;
    }
    j.rows_per_task = N < 32 ? 4 : 16;
    j.row_blocks = (N + j.rows_per_task - 1) / j.rows_per_task;
    int tasks = pm->panels * j.row_blocks;
    if (threads > 1)
        thread_pool_run(pool, pm->kernels->rows_task, &j, tasks);
    else
        for (int t = 0; t < tasks; t++) pm->kernels->rows_task(&j, t);
}
