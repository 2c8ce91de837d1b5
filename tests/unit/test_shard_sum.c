/* shard_sum (train/shard_sum.h): the gradients of a batch are the sum of one partial per shard
 * (sequence) in a fixed binary tree, [lo, hi) = [lo, mid) + [mid, hi), mid = lo + (hi - lo) / 2,
 * so that however the batch is split (threads, ranks) the sum has the same bits:
 *   - the tree over all shards equals, bit for bit, shard_sum_vectors over the sums of each rank's
 *     contiguous share (2, 4 and 8 ranks; 8 and 12 shards; values from 2^-20 to 2^20);
 *   - the tree is exactly the hand-written one (shards 6 and 7 spelled out; 1 to 33 by a
 *     recursive reference), and a split rounded up, or a plain left-to-right loop, gives other
 *     bits on the same data, so a change of order fails here;
 *   - `add`: a node added to a buffer is computed whole, rounded, then added; the trainer's
 *     partials (matmul_weight_grad on every kernel path, bias_grad, layernorm_weight_grad,
 *     embedding_token_grad, rows_grad) honour the same: added into a buffer, they give that
 *     buffer + the partial computed alone;
 *   - the nodes' sums over a thread pool give the caller's bits;
 *   - every shard's partial is asked for once, and shard_sum_scratch's room is enough (ASan). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_filter.h"

#include "../../common/rng.h"
#include "../../common/thread_pool.h"
#include "../../model/kernels.h"
#include "../../train/matmul.h"
#include "../../train/shard_sum.h"
#include "../../train/train_layers.h"

#define MAX_SHARDS 33

/* A value of random sign and size from 2^-20 to 2^20: sums of these round differently in
 * different orders. */
static float varied(Rng *r) {
    float v = ldexpf(0.5f + rng_float(r), (int)rng_below(r, 41) - 20);
    return rng_below(r, 2) ? -v : v;
}

static void fill_varied(float *x, size_t n, Rng *r) {
    for (size_t i = 0; i < n; i++) x[i] = varied(r);
}

/* Partials of `rows` rows each: shard s's partial is the chain rows[s][0] + rows[s][1] + ...
 * computed whole; with add it is computed alone, then added. Counts the calls per shard. */
typedef struct {
    const float *rows; /* (shards, rows, n) */
    int n_rows, first; /* first: the shard that is this context's shard 0 (a rank's share) */
    size_t n;
    int calls[MAX_SHARDS];
} Chains;

static void chain_alone(const Chains *c, int shard, float *out) {
    const float *x = c->rows + (size_t)shard * c->n_rows * c->n;
    memcpy(out, x, c->n * sizeof *out);
    for (int r = 1; r < c->n_rows; r++)
        for (size_t i = 0; i < c->n; i++) out[i] = out[i] + x[(size_t)r * c->n + i];
}

static void chain_partial(void *ctx, int shard, float *out, bool add) {
    Chains *c = ctx;
    int s = c->first + shard;
    assert_true(s >= 0 && s < MAX_SHARDS);
    c->calls[s]++;
    if (!add) {
        chain_alone(c, s, out);
        return;
    }
    float *alone = malloc(c->n * sizeof *alone);
    assert_non_null(alone);
    chain_alone(c, s, alone);
    for (size_t i = 0; i < c->n; i++) out[i] = out[i] + alone[i];
    free(alone);
}

typedef struct {
    float *rows;
    float *partials; /* (shards, n): each shard's chain computed alone */
    Chains chains;
} Batch;

static void batch_make(Batch *b, int shards, int n_rows, size_t n, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    b->rows = malloc((size_t)shards * n_rows * n * sizeof(float));
    b->partials = malloc((size_t)shards * n * sizeof(float));
    assert_non_null(b->rows);
    assert_non_null(b->partials);
    fill_varied(b->rows, (size_t)shards * n_rows * n, &r);
    b->chains = (Chains){.rows = b->rows, .n_rows = n_rows, .n = n};
    for (int s = 0; s < shards; s++) chain_alone(&b->chains, s, b->partials + (size_t)s * n);
}

static void batch_free(Batch *b) {
    free(b->rows);
    free(b->partials);
}

/* shard_sum over `shards` shards from the context's first, with exactly the scratch it asks for
 * (so ASan sees any use past it), on the pool (NULL: the caller alone). */
static void tree_sum_on(float *out, size_t n, int shards, Chains *c, ThreadPool *pool) {
    size_t floats = shard_sum_scratch(n, shards);
    float *scratch = floats ? malloc(floats * sizeof *scratch) : NULL;
    assert_true(floats == 0 || scratch != NULL);
    shard_sum(out, n, shards, chain_partial, c, scratch, pool);
    free(scratch);
}

static void tree_sum(float *out, size_t n, int shards, Chains *c) {
    tree_sum_on(out, n, shards, c, NULL);
}

/* The reference: the tree written as its definition, over partials (shards, n). */
static float ref_tree(const float *partials, size_t n, size_t i, int lo, int hi, bool round_up) {
    if (hi - lo == 1) return partials[(size_t)lo * n + i];
    int mid = lo + (hi - lo + (round_up ? 1 : 0)) / 2;
    return ref_tree(partials, n, i, lo, mid, round_up) +
           ref_tree(partials, n, i, mid, hi, round_up);
}

static float left_to_right(const float *partials, size_t n, size_t i, int shards) {
    float s = partials[i];
    for (int k = 1; k < shards; k++) s = s + partials[(size_t)k * n + i];
    return s;
}

static bool same_bits(const float *a, const float *b, size_t n) {
    return memcmp(a, b, n * sizeof *a) == 0;
}

/* ---- ranks: each rank's share of the tree, then the top of the tree over the ranks ---------- */

static void check_ranks(int shards, int ranks, size_t n, uint64_t seed) {
    Batch b;
    batch_make(&b, shards, 3, n, seed);
    float *whole = malloc(n * sizeof *whole);
    size_t stride = n + 5; /* vectors apart by more than their length */
    float *vectors = malloc((size_t)ranks * stride * sizeof *vectors);
    assert_non_null(whole);
    assert_non_null(vectors);
    tree_sum(whole, n, shards, &b.chains);

    int share = shards / ranks;
    for (int r = 0; r < ranks; r++) {
        Chains mine = b.chains;
        mine.first = r * share;
        memset(mine.calls, 0, sizeof mine.calls);
        tree_sum(vectors + (size_t)r * stride, n, share, &mine);
        for (int s = 0; s < MAX_SHARDS; s++)
            assert_int_equal(mine.calls[s], s >= r * share && s < (r + 1) * share);
        for (size_t i = n; i < stride && r + 1 < ranks; i++) vectors[(size_t)r * stride + i] = NAN;
    }
    shard_sum_vectors(vectors, n, stride, ranks);
    assert_true(same_bits(vectors, whole, n));

    /* The same data has other sums in other orders, so the equality above is no accident. */
    size_t other = 0;
    for (size_t i = 0; i < n; i++)
        if (left_to_right(b.partials, n, i, shards) != whole[i]) other++;
    assert_true(other > 0);
    free(vectors);
    free(whole);
    batch_free(&b);
}

static void ranks_sum_like_one_process(void **state) {
    (void)state;
    const int shard_counts[] = {8, 12};
    for (size_t k = 0; k < 2; k++)
        for (int ranks = 2; ranks <= 8; ranks *= 2) {
            if (shard_counts[k] % ranks) continue;
            for (uint64_t seed = 1; seed <= 4; seed++)
                check_ranks(shard_counts[k], ranks, 97, seed * 31 + (uint64_t)ranks);
        }
}

static void one_rank_is_the_sum_itself(void **state) {
    (void)state;
    float v[3] = {1.0f, 2.0f, 3.0f}, want[3] = {1.0f, 2.0f, 3.0f};
    shard_sum_vectors(v, 3, 3, 1);
    assert_true(same_bits(v, want, 3));
}

/* ---- the tree's shape --------------------------------------------------------------------- */

/* Shards 6 and 7 spelled out: 6 = (0 + (1 + 2)) + (3 + (4 + 5)); 7 = (0 + (1 + 2)) + ((3 + 4)
 * + (5 + 6)). A split rounded up (6: ((0 + 1) + 2) + ...) gives other bits on this data. */
static void tree_is_the_hand_written_one(void **state) {
    (void)state;
    const size_t n = 257;
    for (int shards = 6; shards <= 7; shards++) {
        Batch b;
        batch_make(&b, shards, 1, n, 100 + (uint64_t)shards);
        float *got = malloc(n * sizeof *got), *want = malloc(n * sizeof *want);
        assert_non_null(got);
        assert_non_null(want);
        const float *p = b.partials;
#define P(s) p[(size_t)(s)*n + i]
        size_t rounded_up_differs = 0;
        for (size_t i = 0; i < n; i++) {
            if (shards == 6)
                want[i] = (P(0) + (P(1) + P(2))) + (P(3) + (P(4) + P(5)));
            else
                want[i] = (P(0) + (P(1) + P(2))) + ((P(3) + P(4)) + (P(5) + P(6)));
            if (ref_tree(p, n, i, 0, shards, true) != want[i]) rounded_up_differs++;
        }
#undef P
        tree_sum(got, n, shards, &b.chains);
        assert_true(same_bits(got, want, n));
        assert_true(rounded_up_differs > 0);
        free(got);
        free(want);
        batch_free(&b);
    }
}

static void tree_matches_the_reference_for_1_to_33_shards(void **state) {
    (void)state;
    const size_t n = 19;
    for (int shards = 1; shards <= MAX_SHARDS; shards++) {
        Batch b;
        batch_make(&b, shards, 2, n, 7 * (uint64_t)shards);
        float *got = malloc(n * sizeof *got), *want = malloc(n * sizeof *want);
        assert_non_null(got);
        assert_non_null(want);
        tree_sum(got, n, shards, &b.chains);
        for (int s = 0; s < MAX_SHARDS; s++) assert_int_equal(b.chains.calls[s], s < shards);
        for (size_t i = 0; i < n; i++) want[i] = ref_tree(b.partials, n, i, 0, shards, false);
        assert_true(same_bits(got, want, n));
        free(got);
        free(want);
        batch_free(&b);
    }
}

/* The nodes' sums spread over a pool (in ranges of elements, for long vectors) give the same bits
 * as the caller alone, and the reference. */
static void pool_gives_the_same_bits(void **state) {
    (void)state;
    const size_t n = 40009; /* long enough to be split over the pool, not a multiple of it */
    const int shard_counts[] = {3, 8, 12};
    float *alone = malloc(n * sizeof *alone), *got = malloc(n * sizeof *got);
    assert_non_null(alone);
    assert_non_null(got);
    for (int threads = 2; threads <= 3; threads++) {
        ThreadPool *pool;
        Error err;
        assert_int_equal(thread_pool_create(&pool, threads, 0, &err), 0);
        for (size_t k = 0; k < 3; k++) {
            int shards = shard_counts[k];
            Batch b;
            batch_make(&b, shards, 2, n, 300 + (uint64_t)shards);
            tree_sum(alone, n, shards, &b.chains);
            tree_sum_on(got, n, shards, &b.chains, pool);
            assert_true(same_bits(got, alone, n));
            for (size_t i = 0; i < n; i++)
                assert_true(alone[i] == ref_tree(b.partials, n, i, 0, shards, false));
            batch_free(&b);
        }
        thread_pool_destroy(pool);
    }
    free(alone);
    free(got);
}

/* With 1e8 + 1 == 1e8 in float: left to right ((1e8 + 1) - 1e8) + 1 = 1, the tree
 * (1e8 + 1) + (-1e8 + 1) = 0. */
static void order_matters(void **state) {
    (void)state;
    float rows[4] = {1e8f, 1.0f, -1e8f, 1.0f}, got;
    Chains c = {.rows = rows, .n_rows = 1, .n = 1};
    float partials[4];
    memcpy(partials, rows, sizeof rows);
    assert_true(left_to_right(partials, 1, 0, 4) == 1.0f);
    tree_sum(&got, 1, 4, &c);
    assert_true(got == 0.0f);
}

static void scratch_is_enough_for_wide_partials(void **state) {
    (void)state;
    for (int shards = 1; shards <= MAX_SHARDS; shards++) {
        Batch b;
        batch_make(&b, shards, 1, 1000, (uint64_t)shards);
        float *got = malloc(1000 * sizeof *got);
        assert_non_null(got);
        tree_sum(got, 1000, shards, &b.chains); /* ASan: no use past the scratch */
        free(got);
        batch_free(&b);
    }
}

/* ---- add: computed whole, rounded, then added ------------------------------------------------ */

/* A partial that honours `add` (its chain computed alone, then added) gives the reference tree;
 * one that adds its rows one by one into the buffer gives other bits on the same data: the tree's
 * bits rest on the contract that the trainer's partials are held to below. */
static void row_by_row(void *ctx, int shard, float *out, bool add) {
    Chains *c = ctx;
    const float *x = c->rows + (size_t)(c->first + shard) * c->n_rows * c->n;
    for (int row = 0; row < c->n_rows; row++)
        for (size_t i = 0; i < c->n; i++)
            out[i] = row == 0 && !add ? x[i] : out[i] + x[(size_t)row * c->n + i];
}

static void add_is_alone_then_added(void **state) {
    (void)state;
    const size_t n = 64;
    const int shards = 5;
    Batch b;
    batch_make(&b, shards, 4, n, 55);
    float got[64], want[64], scratch[3 * 64];
    assert_true(shard_sum_scratch(n, shards) <= sizeof scratch / sizeof scratch[0]);
    for (size_t i = 0; i < n; i++) want[i] = ref_tree(b.partials, n, i, 0, shards, false);
    tree_sum(got, n, shards, &b.chains);
    assert_true(same_bits(got, want, n));
    shard_sum(got, n, shards, row_by_row, &b.chains, scratch, NULL);
    assert_false(same_bits(got, want, n));
    batch_free(&b);
}

/* add_check: `got` (buffer + the partial, added by the function under test) against `base` +
 * `alone`, bit for bit. */
static void assert_added(const float *got, const float *base, const float *alone, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float want = base[i] + alone[i];
        if (memcmp(&got[i], &want, sizeof want) != 0)
            fail_msg("element %zu: %.9g, expected %.9g + %.9g = %.9g", i, got[i], base[i], alone[i],
                     want);
    }
}

static float *varied_array(size_t n, Rng *r) {
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    fill_varied(x, n, r);
    return x;
}

static void matmul_weight_grad_adds_alone_then_added(void **state) {
    (void)state;
    const Kernels *paths[4];
    int n_paths = kernels_available(paths, 4);
    assert_true(n_paths >= 1);
    const int T = 7, K = 13, M = 19;
    Rng r;
    rng_seed(&r, 9);
    float *dout = varied_array((size_t)T * M, &r), *inp = varied_array((size_t)T * K, &r);
    float *base = varied_array((size_t)K * M, &r);
    float *alone = malloc((size_t)K * M * sizeof(float)),
          *got = malloc((size_t)K * M * sizeof(float));
    assert_non_null(alone);
    assert_non_null(got);
    for (int p = 0; p < n_paths; p++) {
        for (int out_in = 0; out_in <= 1; out_in++) {
            Matmul mm;
            Error err;
            matmul_init(&mm, paths[p], NULL);
            const int shapes[][2] = {{T, M}, {T, K}};
            assert_int_equal(matmul_reserve(&mm, shapes, 2, &err), 0);
            matmul_weight_grad(&mm, alone, dout, inp, T, K, M, out_in, false);
            memcpy(got, base, (size_t)K * M * sizeof(float));
            matmul_weight_grad(&mm, got, dout, inp, T, K, M, out_in, true);
            assert_added(got, base, alone, (size_t)K * M);
            matmul_free(&mm);
        }
    }
    free(dout);
    free(inp);
    free(base);
    free(alone);
    free(got);
}

static void layer_grads_add_alone_then_added(void **state) {
    (void)state;
    const int T = 9, C = 24, ld = 30, V = 11;
    Rng r;
    rng_seed(&r, 12);
    float *dout = varied_array((size_t)T * ld, &r), *inp = varied_array((size_t)T * ld, &r);
    float *base = varied_array((size_t)V * C, &r), *alone = malloc((size_t)V * C * sizeof(float));
    float *got = malloc((size_t)V * C * sizeof(float)),
          *tmp = malloc((size_t)V * C * sizeof(float));
    float mean[9], rstd[9];
    int tokens[9];
    assert_non_null(alone);
    assert_non_null(got);
    assert_non_null(tmp);
    for (int t = 0; t < T; t++) {
        mean[t] = varied(&r);
        rstd[t] = fabsf(varied(&r));
        tokens[t] = (int)rng_below(&r, 3); /* repeated tokens: chains of several rows */
    }

    bias_grad(alone, tmp, dout, T, C, ld, false);
    memcpy(got, base, (size_t)C * sizeof(float));
    bias_grad(got, tmp, dout, T, C, ld, true);
    assert_added(got, base, alone, (size_t)C);
    /* Here the rows added one by one into the buffer give other bits. */
    size_t differs = 0;
    for (int c = 0; c < C; c++) {
        float s = base[c];
        for (int t = 0; t < T; t++) s += dout[(size_t)t * ld + c];
        differs += s != got[c];
    }
    assert_true(differs > 0);

    layernorm_weight_grad(alone, tmp, dout, inp, mean, rstd, T, C, ld, false);
    memcpy(got, base, (size_t)C * sizeof(float));
    layernorm_weight_grad(got, tmp, dout, inp, mean, rstd, T, C, ld, true);
    assert_added(got, base, alone, (size_t)C);

    /* The token embedding: dout rows (T, C) packed, so ld == C. */
    float *drows = varied_array((size_t)T * C, &r);
    embedding_token_grad(alone, tmp, drows, tokens, T, C, V, false);
    memcpy(got, base, (size_t)V * C * sizeof(float));
    embedding_token_grad(got, tmp, drows, tokens, T, C, V, true);
    assert_added(got, base, alone, (size_t)V * C);

    rows_grad(alone, drows, (long)T * C, false);
    assert_true(same_bits(alone, drows, (size_t)T * C));
    memcpy(got, base, (size_t)T * C * sizeof(float));
    rows_grad(got, drows, (long)T * C, true);
    assert_added(got, base, drows, (size_t)T * C);

    free(drows);
    free(dout);
    free(inp);
    free(base);
    free(alone);
    free(got);
    free(tmp);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ranks_sum_like_one_process),
        cmocka_unit_test(one_rank_is_the_sum_itself),
        cmocka_unit_test(tree_is_the_hand_written_one),
        cmocka_unit_test(tree_matches_the_reference_for_1_to_33_shards),
        cmocka_unit_test(pool_gives_the_same_bits),
        cmocka_unit_test(order_matters),
        cmocka_unit_test(scratch_is_enough_for_wide_partials),
        cmocka_unit_test(add_is_alone_then_added),
        cmocka_unit_test(matmul_weight_grad_adds_alone_then_added),
        cmocka_unit_test(layer_grads_add_alone_then_added),
    };
    apply_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
