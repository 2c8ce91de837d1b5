/* The engine's compute kernels, one set per instruction set, chosen once at start-up from what the
 * CPU offers (as OpenBLAS's DYNAMIC_ARCH does): avx512, avx2 (with FMA and F16C), neon (arm64)
 * and portable C. Everything else is compiled for the baseline ISA, so one binary runs on any
 * CPU of its architecture.
 *
 * Every path computes the same bits. Each product output is one fused multiply-add chain over k
 * in order, starting from the bias; each attention score is one chain over the head's channels
 * in order (keys are cached transposed, so vectors spread over keys, never over channels); each
 * attention output is one chain over the keys in order; exp is the same polynomial with the same
 * operations. The vector width only decides how many of these chains run side by side.
 * The portable path uses fmaf, which is that same fused operation one lane at a time.
 * A change to any kernel's results, by one bit, raises GPTD_NUMERICS_VERSION (fingerprint.h). */
#ifndef GPTD_KERNELS_H
#define GPTD_KERNELS_H

#include <stdbool.h>

#include "../common/error.h"
#include "packed_matmul.h"

/* Heads one attend call runs side by side. */
#define ATTEND_MAX_HEADS 4

/* A head's cached keys, transposed in blocks of KEY_BLOCK positions: (T / KEY_BLOCK, hs,
 * KEY_BLOCK), T a multiple of KEY_BLOCK. A score is still one chain over channels with vectors
 * over keys (a vector of every path lies inside one block), and a query over n keys reads n / 16
 * runs of hs * 64 contiguous bytes, not a piece of each of hs rows a whole context long (at batch
 * 64 the cache does not fit in the CPU's caches, and those scattered pieces were most of the
 * time attention took). */
#define KEY_BLOCK 16
static inline size_t key_index(int hs, int d, int t) {
    return ((size_t)(t / KEY_BLOCK) * hs + d) * KEY_BLOCK + t % KEY_BLOCK;
}

/* One product as the kernels see it; packed_matmul.c splits it into tasks. */
typedef struct {
    float *out;
    const float *inp;
    const PackedMatrix *pm;
    PackedOutput how;
    /* floats from one row of inp (of out) to the next, and from one element of an inp row to
     * the next (1, or a row of a matrix read transposed) */
    size_t in_stride, out_stride, k_stride;
    int N;
    int k_begin, k_end; /* the terms of every chain: k in [k_begin, k_end) of pm->K */
    int chunks;         /* fewer than 4 rows: tasks are ranges of panels */
    int rows_per_task;  /* 4 or more rows: tasks are (panel, block of rows) */
    int row_blocks;
    bool rows_outer; /* consecutive tasks: the panels of one block of rows (else the reverse) */
} PackedJob;

typedef struct Kernels {
    const char *name;
    int panel; /* columns of a packed panel (a few vectors) */
    /* Tasks of a product (PackedJob): 4+ rows by (panel, block of rows), else ranges of panels. */
    void (*rows_task)(void *job, int task);
    void (*panels_task)(void *job, int chunk);
    /* One query row of causal attention for `heads` consecutive heads (1..ATTEND_MAX_HEADS), run
     * side by side so that their chains overlap. Head g: query q + g hs; keys keys_t + g hs T,
     * in blocks (key_index); values values + g T hs, (T, hs); T a multiple of KEY_BLOCK. Leaves
     * head g's softmax row, normalised, in scores + g stride, [0, visible) (stride at least the
     * visible count rounded up to 16), and its output in out + g hs (hs). */
    void (*attend)(float *out, float *scores, size_t stride, const float *q, const float *keys_t,
                   const float *values, int hs, int T, int visible, int heads);
    /* exp(x) of x <= 0 in place, n a multiple of 16 (the softmax's exp, for tests). */
    void (*exp_nonpositive)(float *x, int n);
    /* A register-only loop of independent fused multiply-adds: returns the FLOPs it did, to
     * measure the peak of this path (bench-engine). */
    double (*peak_loop)(long iterations);
} Kernels;

/* The paths this CPU can run, best first; returns how many (at most max). */
int kernels_available(const Kernels **out, int max);

/* The path named by GPTD_KERNELS if set, else the best this CPU has. An unknown name, or a path
 * this CPU lacks, is an error that lists the paths it has. */
int kernels_choose(const Kernels **out, Error *err);

struct ThreadPool;
/* The FMA peak of path k in GFLOP/s: its register-only loop (peak_loop) on the pool's threads at
 * once (NULL: the caller alone), the fastest of `repeats` runs. A fraction of a second. */
double kernels_peak_gflops(const Kernels *k, struct ThreadPool *pool, int repeats);

/* The path called name, if this CPU has it. */
int kernels_find(const Kernels **out, const char *name, Error *err);

#endif
