#include "matmul.h"

#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "thread_pool.h"

void matmul_set_threads(int n) { openblas_set_num_threads(n); }

/* OpenBLAS picks different kernels (with different summation orders) for small row counts, so
 * a row's result would depend on how many other rows share the call. Rows therefore go through
 * sgemm in whole blocks of ROW_BLOCK; a ragged tail is padded with zero rows. Then a sequence's
 * outputs are bit-identical whether it runs alone or inside a batch. */
#define ROW_BLOCK 64

static void matmul_forward_block(float *out, const float *inp, const float *w, const float *bias,
                                 int N, int K, int M, bool w_is_out_in);

static void sgemm_rows(float *out, const float *inp, const float *w, int N, int K, int M,
                       bool w_is_out_in, float beta) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, w_is_out_in ? CblasTrans : CblasNoTrans, N, M, K,
                1.0f, inp, K, w, w_is_out_in ? K : M, beta, out, M);
}

void matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N, int K,
                    int M, bool w_is_out_in) {
    int full = N / ROW_BLOCK * ROW_BLOCK, tail = N - full;
    if (full) matmul_forward_block(out, inp, w, bias, full, K, M, w_is_out_in);
    if (tail == 0) return;
    float *pad_in = calloc((size_t)ROW_BLOCK * K, sizeof(float));
    float *pad_out = malloc((size_t)ROW_BLOCK * M * sizeof(float));
    if (!pad_in || !pad_out) { /* out of memory: still correct, just not batch-invariant */
        matmul_forward_block(out + (size_t)full * M, inp + (size_t)full * K, w, bias, tail, K, M,
                             w_is_out_in);
    } else {
        memcpy(pad_in, inp + (size_t)full * K, (size_t)tail * K * sizeof(float));
        matmul_forward_block(pad_out, pad_in, w, bias, ROW_BLOCK, K, M, w_is_out_in);
        memcpy(out + (size_t)full * M, pad_out, (size_t)tail * M * sizeof(float));
    }
    free(pad_in);
    free(pad_out);
}

static void matmul_forward_block(float *out, const float *inp, const float *w, const float *bias,
                                 int N, int K, int M, bool w_is_out_in) {
    float beta = 0.0f;
    if (bias) {
        /* Seed the output with the bias so the product accumulates onto it. */
        for (int n = 0; n < N; n++)
            for (int m = 0; m < M; m++) out[(size_t)n * M + m] = bias[m];
        beta = 1.0f;
    }
    sgemm_rows(out, inp, w, N, K, M, w_is_out_in, beta);
}

void matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                     const float *w, int N, int K, int M, bool w_is_out_in) {
    if (dinp) /* (N, M) @ W^T -> (N, K) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, w_is_out_in ? CblasNoTrans : CblasTrans, N, K, M,
                    1.0f, dout, M, w, w_is_out_in ? K : M, 1.0f, dinp, K);
    if (dw) {
        if (w_is_out_in) /* dW (M, K) += dout^T (M, N) @ inp (N, K) */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, K, N, 1.0f, dout, M, inp, K,
                        1.0f, dw, K);
        else /* dW (K, M) += inp^T (K, N) @ dout (N, M) */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, M, N, 1.0f, inp, K, dout, M,
                        1.0f, dw, M);
    }
    if (dbias)
        for (int n = 0; n < N; n++)
            for (int m = 0; m < M; m++) dbias[m] += dout[(size_t)n * M + m];
}

/* ---- batch-invariant inference product ---------------------------------------------------- */

#define PANEL 48 /* columns per task: 6 vectors of 8 */

typedef struct {
    float *out;
    const float *inp, *w, *bias;
    int N, K, M;
} InvariantJob;

/* R rows (1..4, a compile-time constant after inlining) by 24 columns (3 vectors): the
 * register tile. Each output is bias + x[0] w[0] + x[1] w[1] + ... fused in k order. */
static inline __attribute__((always_inline)) void tile_rx24(const InvariantJob *j, int r0,
                                                            const int R, int c0) {
    __m256 acc[4][3];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < 3; v++)
            acc[r][v] = j->bias ? _mm256_loadu_ps(j->bias + c0 + 8 * v) : _mm256_setzero_ps();
    const float *x = j->inp + (size_t)r0 * j->K;
    for (int k = 0; k < j->K; k++) {
        const float *wk = j->w + (size_t)k * j->M + c0;
        __m256 w0 = _mm256_loadu_ps(wk), w1 = _mm256_loadu_ps(wk + 8), w2 = _mm256_loadu_ps(wk + 16);
        for (int r = 0; r < R; r++) {
            __m256 xr = _mm256_broadcast_ss(x + (size_t)r * j->K + k);
            acc[r][0] = _mm256_fmadd_ps(xr, w0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(xr, w1, acc[r][1]);
            acc[r][2] = _mm256_fmadd_ps(xr, w2, acc[r][2]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < 3; v++)
            _mm256_storeu_ps(j->out + (size_t)(r0 + r) * j->M + c0 + 8 * v, acc[r][v]);
}

static void tile_rows_x24(const InvariantJob *j, int r0, int R, int c0) {
    switch (R) {
        case 1: tile_rx24(j, r0, 1, c0); break;
        case 2: tile_rx24(j, r0, 2, c0); break;
        case 3: tile_rx24(j, r0, 3, c0); break;
        default: tile_rx24(j, r0, 4, c0); break;
    }
}

/* One row by one 8-column vector (used for column remainders that are whole vectors). */
static inline void tile_1x8(const InvariantJob *j, int r, int c0) {
    __m256 acc = j->bias ? _mm256_loadu_ps(j->bias + c0) : _mm256_setzero_ps();
    const float *x = j->inp + (size_t)r * j->K;
    for (int k = 0; k < j->K; k++)
        acc = _mm256_fmadd_ps(_mm256_broadcast_ss(x + k), _mm256_loadu_ps(j->w + (size_t)k * j->M + c0), acc);
    _mm256_storeu_ps(j->out + (size_t)r * j->M + c0, acc);
}

/* Scalar column: fmaf rounds exactly like one lane of the vector FMA. */
static inline void tile_1x1(const InvariantJob *j, int r, int c) {
    float acc = j->bias ? j->bias[c] : 0.0f;
    const float *x = j->inp + (size_t)r * j->K;
    for (int k = 0; k < j->K; k++) acc = fmaf(x[k], j->w[(size_t)k * j->M + c], acc);
    j->out[(size_t)r * j->M + c] = acc;
}

static void invariant_panel(void *ctx, int task) {
    const InvariantJob *j = ctx;
    int c_begin = task * PANEL, c_end = c_begin + PANEL < j->M ? c_begin + PANEL : j->M;
    int c = c_begin;
    for (; c + 24 <= c_end; c += 24)
        for (int r = 0; r < j->N; r += 4) tile_rows_x24(j, r, j->N - r < 4 ? j->N - r : 4, c);
    for (; c + 8 <= c_end; c += 8)
        for (int r = 0; r < j->N; r++) tile_1x8(j, r, c);
    for (; c < c_end; c++)
        for (int r = 0; r < j->N; r++) tile_1x1(j, r, c);
}

void matmul_forward_invariant(float *out, const float *inp, const float *w, const float *bias,
                              int N, int K, int M, ThreadPool *pool) {
    InvariantJob j = {out, inp, w, bias, N, K, M};
    int panels = (M + PANEL - 1) / PANEL;
    /* Below ~1 MFLOP waking a worker costs more than it saves. The split never changes a
     * result, only who computes it. */
    if (pool && 2.0 * N * K * M > 1e6) thread_pool_run(pool, invariant_panel, &j, panels);
    else
        for (int t = 0; t < panels; t++) invariant_panel(&j, t);
}
