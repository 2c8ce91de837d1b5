#include "packed_matmul.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "thread_pool.h"

#define PANEL 24 /* columns per panel: 3 AVX vectors */

int packed_matrix_init(PackedMatrix *pm, const float *w, const float *bias, int K, int M) {
    pm->K = K;
    pm->M = M;
    pm->panels = (M + PANEL - 1) / PANEL;
    size_t n = (size_t)pm->panels * K * PANEL;
    pm->w = aligned_alloc(32, n * sizeof(float));
    pm->bias = aligned_alloc(32, (size_t)pm->panels * PANEL * sizeof(float));
    if (!pm->w || !pm->bias) {
        packed_matrix_free(pm);
        return -1;
    }
    for (int p = 0; p < pm->panels; p++)
        for (int k = 0; k < K; k++)
            for (int c = 0; c < PANEL; c++) {
                int col = p * PANEL + c;
                pm->w[((size_t)p * K + k) * PANEL + c] = col < M ? w[(size_t)k * M + col] : 0.0f;
            }
    for (int col = 0; col < pm->panels * PANEL; col++)
        pm->bias[col] = bias && col < M ? bias[col] : 0.0f;
    return 0;
}

void packed_matrix_free(PackedMatrix *pm) {
    free(pm->w);
    free(pm->bias);
    pm->w = pm->bias = NULL;
}

typedef struct {
    float *out;
    const float *inp;
    const PackedMatrix *pm;
    int N;
} PackedJob;

/* R rows (1..4, a constant after inlining) of one panel. Each output is the bias plus
 * x[0] w[0] + x[1] w[1] + ... fused in k order: the same arithmetic whatever R is, so a row's
 * result does not depend on which other rows share its tile. */
static inline __attribute__((always_inline)) void panel_rows(const PackedJob *j, int p, int r0,
                                                             const int R) {
    const PackedMatrix *pm = j->pm;
    const int K = pm->K;
    const float *wp = pm->w + (size_t)p * K * PANEL;
    const float *x = j->inp + (size_t)r0 * K;
    __m256 acc[4][3];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < 3; v++) acc[r][v] = _mm256_load_ps(pm->bias + p * PANEL + 8 * v);
    for (int k = 0; k < K; k++, wp += PANEL) {
        __m256 w0 = _mm256_load_ps(wp), w1 = _mm256_load_ps(wp + 8), w2 = _mm256_load_ps(wp + 16);
        for (int r = 0; r < R; r++) {
            __m256 xr = _mm256_broadcast_ss(x + (size_t)r * K + k);
            acc[r][0] = _mm256_fmadd_ps(xr, w0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(xr, w1, acc[r][1]);
            acc[r][2] = _mm256_fmadd_ps(xr, w2, acc[r][2]);
        }
    }
    int cols = pm->M - p * PANEL < PANEL ? pm->M - p * PANEL : PANEL;
    for (int r = 0; r < R; r++) {
        float *o = j->out + (size_t)(r0 + r) * pm->M + p * PANEL;
        if (cols == PANEL) {
            for (int v = 0; v < 3; v++) _mm256_storeu_ps(o + 8 * v, acc[r][v]);
        } else { /* the last, padded panel */
            float tmp[PANEL];
            for (int v = 0; v < 3; v++) _mm256_storeu_ps(tmp + 8 * v, acc[r][v]);
            memcpy(o, tmp, (size_t)cols * sizeof(float));
        }
    }
}

static void packed_panel(void *ctx, int p) {
    const PackedJob *j = ctx;
    int r = 0;
    for (; r + 4 <= j->N; r += 4) panel_rows(j, p, r, 4);
    switch (j->N - r) {
        case 3:
            panel_rows(j, p, r, 3);
            break;
        case 2:
            panel_rows(j, p, r, 2);
            break;
        case 1:
            panel_rows(j, p, r, 1);
            break;
        default:
            break;
    }
}

void matmul_packed(float *out, const float *inp, const PackedMatrix *pm, int N, ThreadPool *pool) {
    PackedJob j = {out, inp, pm, N};
    /* Below ~1 MFLOP waking a worker costs more than it saves. The split never changes a
     * result, only who computes it. */
    if (pool && 2.0 * N * pm->K * pm->M > 1e6)
        thread_pool_run(pool, packed_panel, &j, pm->panels);
    else
        for (int p = 0; p < pm->panels; p++) packed_panel(&j, p);
}
