#include "packed_matmul.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "float16.h"
#include "layers.h"
#include "thread_pool.h"

#define PANEL 24 /* columns per panel: 3 AVX vectors */
/* Below this many FLOPs, handing half of a product to another thread costs more than it saves
 * (a hand-off is about 2 microseconds here). */
#define MIN_SPLIT_FLOPS 2.5e5

static bool all_float16(const float *w, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!float16_holds(w[i])) return false;
    return true;
}

int packed_matrix_init(PackedMatrix *pm, const float *w, const float *bias, int K, int M,
                       bool allow_half) {
    memset(pm, 0, sizeof *pm);
    pm->K = K;
    pm->M = M;
    pm->panels = (M + PANEL - 1) / PANEL;
    size_t n = (size_t)pm->panels * K * PANEL;
    bool half = allow_half && all_float16(w, (size_t)K * M);
    if (half)
        pm->w16 = aligned_alloc(32, (n * sizeof(uint16_t) + 31) / 32 * 32);
    else
        pm->w = aligned_alloc(32, n * sizeof(float));
    pm->bias = aligned_alloc(32, (size_t)pm->panels * PANEL * sizeof(float));
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
    return (size_t)pm->panels * pm->K * PANEL * (pm->w16 ? sizeof(uint16_t) : sizeof(float));
}

typedef struct {
    float *out;
    const float *inp;
    const PackedMatrix *pm;
    PackedOutput how;
    int N;
    int chunks;        /* fewer than 4 rows: tasks are ranges of panels */
    int rows_per_task; /* 4 or more rows: tasks are (panel, block of rows) */
    int row_blocks;
} PackedJob;

/* Row k of a panel (24 weights) as three float vectors. */
static inline __attribute__((always_inline)) void load_weights(const PackedMatrix *pm, size_t at,
                                                               __m256 w[3]) {
    if (pm->w16)
        for (int v = 0; v < 3; v++)
            w[v] = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(pm->w16 + at + 8 * v)));
    else
        for (int v = 0; v < 3; v++) w[v] = _mm256_load_ps(pm->w + at + 8 * v);
}

/* Writes one row of a panel's results (cols of them: fewer in the last, padded panel): stored,
 * added to what is there, or through relu; GELU is applied by the caller afterwards (calls to
 * tanhf here would make the compiler keep the accumulators in memory). The residual add and the
 * relu are the same operations as the separate layers'. */
static inline __attribute__((always_inline)) void write_out(const PackedJob *j, float *o,
                                                            __m256 r[3], int cols) {
    float buf[PANEL];
    bool full = cols == PANEL;
    float *dst = full ? o : buf;
    if (j->how == PACKED_ADD) {
        if (!full) memcpy(buf, o, (size_t)cols * sizeof(float));
        for (int v = 0; v < 3; v++) r[v] = _mm256_add_ps(_mm256_loadu_ps(dst + 8 * v), r[v]);
    } else if (j->how == PACKED_RELU)
        for (int v = 0; v < 3; v++) r[v] = _mm256_max_ps(r[v], _mm256_setzero_ps());
    for (int v = 0; v < 3; v++) _mm256_storeu_ps(dst + 8 * v, r[v]);
    if (!full) memcpy(o, buf, (size_t)cols * sizeof(float));
}

/* GELU over rows [r0, r1) and panels [p0, p1) of the output, after their products. */
static void gelu_block(const PackedJob *j, int r0, int r1, int p0, int p1) {
    int c0 = p0 * PANEL, c1 = p1 * PANEL < j->pm->M ? p1 * PANEL : j->pm->M;
    for (int r = r0; r < r1; r++) {
        float *o = j->out + (size_t)r * j->pm->M;
        for (int c = c0; c < c1; c++) o[c] = gelu(o[c]);
    }
}

/* R rows times G panels (R * G <= 4, constants after inlining: twelve accumulators at most).
 * Each output is the bias plus x[0] w[0] + x[1] w[1] + ... fused in k order: the same arithmetic
 * whatever R and G are, so a row's result does not depend on which other rows share its tile. */
static inline __attribute__((always_inline)) void tile(const PackedJob *j, int p0, const int G,
                                                       int r0, const int R) {
    const PackedMatrix *pm = j->pm;
    const int K = pm->K;
    const float *x = j->inp + (size_t)r0 * K;
    __m256 acc[4][3];
    for (int g = 0; g < G; g++)
        for (int r = 0; r < R; r++)
            for (int v = 0; v < 3; v++)
                acc[g * R + r][v] = _mm256_load_ps(pm->bias + (p0 + g) * PANEL + 8 * v);
    for (int k = 0; k < K; k++)
        for (int g = 0; g < G; g++) {
            __m256 w[3];
            load_weights(pm, ((size_t)(p0 + g) * K + k) * PANEL, w);
            for (int r = 0; r < R; r++) {
                __m256 xr = _mm256_broadcast_ss(x + (size_t)r * K + k);
                for (int v = 0; v < 3; v++)
                    acc[g * R + r][v] = _mm256_fmadd_ps(xr, w[v], acc[g * R + r][v]);
            }
        }
    for (int g = 0; g < G; g++) {
        int p = p0 + g, cols = pm->M - p * PANEL < PANEL ? pm->M - p * PANEL : PANEL;
        for (int r = 0; r < R; r++)
            write_out(j, j->out + (size_t)(r0 + r) * pm->M + p * PANEL, acc[g * R + r], cols);
    }
}

/* Four or more rows: one panel for a block of rows, four rows at a time (the panel stays in
 * cache). Blocks of rows let narrow matrices (11 panels) still spread evenly. */
static void rows_task(void *ctx, int task) {
    const PackedJob *j = ctx;
    int p = task / j->row_blocks, r = task % j->row_blocks * j->rows_per_task;
    int first = r, end = r + j->rows_per_task < j->N ? r + j->rows_per_task : j->N;
    for (; r + 4 <= end; r += 4) tile(j, p, 1, r, 4);
    switch (end - r) {
        case 3:
            tile(j, p, 1, r, 3);
            break;
        case 2:
            tile(j, p, 1, r, 2);
            break;
        case 1:
            tile(j, p, 1, r, 1);
            break;
        default:
            break;
    }
    if (j->how == PACKED_GELU) gelu_block(j, first, end, p, p + 1);
}

/* One to three rows: a contiguous range of panels, several panels per pass so that there are
 * enough independent chains to hide the latency of the fused multiply-adds. */
static void panels_task(void *ctx, int chunk) {
    const PackedJob *j = ctx;
    int first = (int)((long)j->pm->panels * chunk / j->chunks), p = first;
    int end = (int)((long)j->pm->panels * (chunk + 1) / j->chunks);
    if (j->N == 1)
        for (; p + 4 <= end; p += 4) tile(j, p, 4, 0, 1);
    if (j->N == 2)
        for (; p + 4 <= end; p += 4) { /* row by row: 2 x 2 tiles spill registers */
            tile(j, p, 4, 0, 1);
            tile(j, p, 4, 1, 1);
        }
    for (; p < end; p++) switch (j->N) {
            case 3:
                tile(j, p, 1, 0, 3);
                break;
            case 2:
                tile(j, p, 1, 0, 2);
                break;
            default:
                tile(j, p, 1, 0, 1);
                break;
        }
    if (j->how == PACKED_GELU) gelu_block(j, 0, j->N, first, end);
}

void matmul_packed(float *out, const float *inp, const PackedMatrix *pm, int N, PackedOutput how,
                   ThreadPool *pool) {
    int threads = pool && 2.0 * N * pm->K * pm->M >= MIN_SPLIT_FLOPS ? thread_pool_size(pool) : 1;
    PackedJob j = {.out = out, .inp = inp, .pm = pm, .how = how, .N = N, .chunks = threads};
    if (N < 4) {
        if (threads > 1)
            thread_pool_run(pool, panels_task, &j, threads);
        else
            panels_task(&j, 0);
        return;
    }
    j.rows_per_task = N < 32 ? 4 : 16;
    j.row_blocks = (N + j.rows_per_task - 1) / j.rows_per_task;
    int tasks = pm->panels * j.row_blocks;
    if (threads > 1)
        thread_pool_run(pool, rows_task, &j, tasks);
    else
        for (int t = 0; t < tasks; t++) rows_task(&j, t);
}
