/* The engine's kernels on every path this CPU has (model/kernels.h): each product output is the
 * one fused chain over k the header promises (compared bit for bit with a plain fmaf loop), the
 * float16 conversion matches the CPU's own instructions, exp stays within its error bound, and
 * attention is the softmax it should be, the same bits on every path. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_filter.h"

#include "../../common/float16.h"
#include "../../common/rng.h"
#include "../../common/thread_pool.h"
#include "../../model/kernels.h"
#include "../../model/layers.h"

static const Kernels *paths[4];
static int n_paths;

static float bits_of(uint32_t x) {
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

static void fill(float *x, size_t n, Rng *rng, bool half) {
    for (size_t i = 0; i < n; i++) {
        float v = rng_normal(rng);
        x[i] = half ? float_from_float16(float16_from_float(v)) : v;
    }
}

/* The definition: bias, then x[0] w[0] + x[1] w[1] + ... each fused, in k order. */
static float reference_output(const float *x, const float *w, const float *bias, int K, int M,
                              int col) {
    float acc = bias ? bias[col] : 0.0f;
    for (int k = 0; k < K; k++) acc = fmaf(x[k], w[(size_t)k * M + col], acc);
    return acc;
}

/* Every row count from 1 to 19 (the few-row and the tiled paths and their remainders), widths
 * that end in a partial panel, every output mode, float32 and float16 panels, with and without
 * the pool: each output equals the reference bit for bit. */
static void products_are_one_chain_in_k_order(void **state) {
    (void)state;
    Error err;
    ThreadPool *pool;
    assert_int_equal(thread_pool_create(&pool, 2, 0, &err), 0);
    Rng rng;
    rng_seed(&rng, 3);
    int K = 37, M = 70, maxN = 19;
    float *w = malloc(sizeof(float) * K * M), *bias = malloc(sizeof(float) * M);
    float *x = malloc(sizeof(float) * maxN * K), *out = malloc(sizeof(float) * maxN * M);
    float *init = malloc(sizeof(float) * maxN * M);
    for (int p = 0; p < n_paths; p++)
        for (int half = 0; half < 2; half++) {
            fill(w, (size_t)K * M, &rng, half);
            fill(bias, M, &rng, false);
            PackedMatrix pm;
            assert_int_equal(packed_matrix_init(&pm, w, bias, K, M, half, paths[p]), 0);
            assert_int_equal(pm.w16 != NULL, half);
            for (int N = 1; N <= maxN; N++)
                for (int how = PACKED_STORE; how <= PACKED_GELU_ERF; how++) {
                    fill(x, (size_t)N * K, &rng, false);
                    fill(init, (size_t)N * M, &rng, false);
                    memcpy(out, init, sizeof(float) * N * M);
                    matmul_packed(out, x, &pm, N, (PackedOutput)how, N % 2 ? pool : NULL);
                    for (int r = 0; r < N; r++)
                        for (int c = 0; c < M; c++) {
                            float v = reference_output(x + (size_t)r * K, w, bias, K, M, c);
                            if (how == PACKED_ADD) v = init[(size_t)r * M + c] + v;
                            if (how == PACKED_RELU) v = v > 0.0f ? v : 0.0f;
                            if (how == PACKED_GELU) v = gelu(v);
                            if (how == PACKED_GELU_ERF) v = gelu_erf(v);
                            float got = out[(size_t)r * M + c];
                            if (memcmp(&got, &v, sizeof v))
                                fail_msg("%s, %s panels, %d rows, mode %d: out[%d][%d] = %.9g, "
                                         "the chain gives %.9g",
                                         paths[p]->name, half ? "float16" : "float32", N, how, r, c,
                                         got, v);
                        }
                }
            packed_matrix_free(&pm);
        }
    free(w);
    free(bias);
    free(x);
    free(out);
    free(init);
    thread_pool_destroy(pool);
}

/* A span of terms: each output is the chain over k in [k0, k1) alone (bit for bit with the plain
 * loop), and equals the whole chain of a row that is zero outside the span, the promise the
 * trainer's causal attention relies on to skip the masked part (packed_matmul.h). */
static void a_span_is_the_chain_over_its_terms(void **state) {
    (void)state;
    Rng rng;
    rng_seed(&rng, 4);
    int K = 41, M = 53, spans[][2] = {{0, 41}, {0, 17}, {9, 41}, {5, 30}, {12, 12}};
    int rows[] = {1, 3, 5, 18};
    float *w = malloc(sizeof(float) * K * M), *bias = malloc(sizeof(float) * M);
    float *x = malloc(sizeof(float) * 18 * K), *zeroed = malloc(sizeof(float) * 18 * K);
    float *span = malloc(sizeof(float) * 18 * M), *whole = malloc(sizeof(float) * 18 * M);
    for (int p = 0; p < n_paths; p++)
        for (int si = 0; si < 5; si++)
            for (int ni = 0; ni < 4; ni++) {
                int k0 = spans[si][0], k1 = spans[si][1], N = rows[ni];
                fill(w, (size_t)K * M, &rng, false);
                fill(bias, M, &rng, false);
                fill(x, (size_t)N * K, &rng, false);
                for (int i = 0; i < N * K; i++) zeroed[i] = i % K >= k0 && i % K < k1 ? x[i] : 0;
                PackedMatrix pm;
                assert_int_equal(packed_matrix_init(&pm, w, bias, K, M, false, paths[p]), 0);
                matmul_packed_span(span, M, x, K, 1, &pm, N, PACKED_STORE, NULL, k0, k1);
                matmul_packed(whole, zeroed, &pm, N, PACKED_STORE, NULL);
                for (int r = 0; r < N; r++)
                    for (int c = 0; c < M; c++) {
                        float acc = bias[c];
                        for (int k = k0; k < k1; k++)
                            acc = fmaf(x[r * K + k], w[(size_t)k * M + c], acc);
                        float got = span[r * M + c], all = whole[r * M + c];
                        if (memcmp(&got, &acc, sizeof acc) || memcmp(&all, &acc, sizeof acc))
                            fail_msg("%s, terms [%d, %d), %d rows: out[%d][%d] = %.9g, the whole "
                                     "chain of the zeroed row %.9g, the chain over the span %.9g",
                                     paths[p]->name, k0, k1, N, r, c, got, all, acc);
                    }
                packed_matrix_free(&pm);
            }
    free(w);
    free(bias);
    free(x);
    free(zeroed);
    free(span);
    free(whole);
}

/* Our float16 conversion in plain C is the IEEE one: every half widens to the value the CPU's
 * own instruction gives, and floats round to nearest even as it does (ties, subnormals,
 * overflow to infinity, NaN). */
#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
__attribute__((target("f16c"))) static uint16_t cpu_to_half(float v) {
    return (uint16_t)_cvtss_sh(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
__attribute__((target("f16c"))) static float cpu_from_half(uint16_t h) { return _cvtsh_ss(h); }
static bool cpu_converts(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}
#elif defined(__aarch64__)
static uint16_t cpu_to_half(float v) {
    __fp16 h = (__fp16)v;
    uint16_t u;
    memcpy(&u, &h, sizeof u);
    return u;
}
static float cpu_from_half(uint16_t u) {
    __fp16 h;
    memcpy(&h, &u, sizeof h);
    return (float)h;
}
static bool cpu_converts(void) { return true; }
#endif

static void float16_matches_the_cpu(void **state) {
    (void)state;
    if (!cpu_converts()) { /* an x86-64 CPU without F16C: only what needs no reference */
        printf("  no F16C on this CPU: checking the round trip of every half only\n");
        for (uint32_t h = 0; h < 65536; h++) {
            float v = float_from_float16((uint16_t)h);
            if (!isnan(v)) assert_int_equal(float16_from_float(v), h);
        }
        return;
    }
    for (uint32_t h = 0; h < 65536; h++) {
        float ours = float_from_float16((uint16_t)h), cpu = cpu_from_half((uint16_t)h);
        if (isnan(cpu)) {
            assert_true(isnan(ours));
            continue;
        }
        if (memcmp(&ours, &cpu, sizeof ours)) fail_msg("half 0x%04x: %g vs %g", h, ours, cpu);
        assert_int_equal(float16_from_float(ours), h); /* and back */
    }
    /* floats near every half: the halfway points and their neighbours, then random bits */
    for (uint32_t h = 0; h < 0x7c00; h++) {
        uint32_t lo;
        float a = float_from_float16((uint16_t)h), b = float_from_float16((uint16_t)(h + 1));
        float mid = (float)(((double)a + (double)b) / 2);
        memcpy(&lo, &mid, sizeof lo);
        for (uint32_t x = lo - 1; x <= lo + 1; x++)
            for (uint32_t sign = 0; sign < 2; sign++) {
                float v = bits_of(x | sign << 31);
                if (float16_from_float(v) != cpu_to_half(v))
                    fail_msg("%.9g: 0x%04x vs the CPU's 0x%04x", v, float16_from_float(v),
                             cpu_to_half(v));
            }
    }
    Rng rng;
    rng_seed(&rng, 9);
    for (int i = 0; i < 1000000; i++) {
        float v = bits_of((uint32_t)rng_u64(&rng));
        if (isnan(v)) continue;
        if (float16_from_float(v) != cpu_to_half(v))
            fail_msg("%.9g: 0x%04x vs the CPU's 0x%04x", v, float16_from_float(v), cpu_to_half(v));
    }
}

/* exp over [-87, 0]: within 3e-7 relative of expf (about 2 ulp), the same bits on every path. */
static void exp_is_accurate_and_the_same_everywhere(void **state) {
    (void)state;
    enum { N = 1 << 14 };
    static float x[N], first[N], y[N];
    for (int i = 0; i < N; i++) x[i] = -87.0f * (float)i / (N - 1);
    x[1] = -0.0f;
    x[2] = -1e-30f;
    for (int p = 0; p < n_paths; p++) {
        memcpy(y, x, sizeof x);
        paths[p]->exp_nonpositive(y, N);
        for (int i = 0; i < N; i++) {
            float want = expf(x[i]);
            if (fabsf(y[i] - want) > 3e-7f * want)
                fail_msg("%s: exp(%.9g) = %.9g, expf says %.9g", paths[p]->name, x[i], y[i], want);
        }
        if (p == 0)
            memcpy(first, y, sizeof y);
        else if (memcmp(first, y, sizeof y))
            fail_msg("exp on %s differs from %s", paths[p]->name, paths[0]->name);
    }
}

/* GELU's tanh form without libm (layers.h gelu, which the kernels run on vectors): within
 * 2.5e-7 (1 + |x|) of 0.5 x (1 + tanh(u)) computed in double, over [-30, 30] and at the edges;
 * scalar and vector bits are compared by products_are_one_chain_in_k_order. */
static void gelu_matches_the_tanh_form(void **state) {
    (void)state;
    double worst = 0;
    for (int i = -300000; i <= 300000; i++) {
        float x = (float)i * 1e-4f;
        double xd = x,
               want = 0.5 * xd * (1.0 + tanh(0.7978845608028654 * (xd + 0.044715 * xd * xd * xd)));
        double err = fabs((double)gelu(x) - want) / (1.0 + fabs(xd));
        if (err > worst) worst = err;
    }
    printf("  gelu: max |error| / (1 + |x|) = %.2e\n", worst);
    assert_true(worst < 2.5e-7);
    assert_true(gelu(0.0f) == 0.0f);
    assert_true(gelu(1e30f) == 1e30f);
    assert_true(gelu(-1e30f) == 0.0f);
    assert_true(isnan(gelu(NAN)));
}

/* One query against T cached keys (in blocks, kernels.h key_index): the normalised softmax row
 * and the output, within 1e-5 of a float64 computation, bit-identical across paths, for head
 * widths that are and are not whole vectors and for every visible count (including counts that
 * end inside a vector and inside a block). */
static void attention_is_softmax_and_the_same_everywhere(void **state) {
    (void)state;
    int widths[] = {32, 8, 6, 64};
    enum { T = 48 };
    Rng rng;
    rng_seed(&rng, 4);
    for (int wi = 0; wi < 4; wi++) {
        int hs = widths[wi];
        float *q = malloc(sizeof(float) * hs), *kt = malloc(sizeof(float) * hs * T);
        float *v = malloc(sizeof(float) * T * hs), *out = malloc(sizeof(float) * hs);
        float *first_out = malloc(sizeof(float) * hs), scores[T], first_scores[T];
        fill(q, hs, &rng, false);
        fill(kt, (size_t)hs * T, &rng, false);
        fill(v, (size_t)T * hs, &rng, false);
        for (int visible = 1; visible <= T; visible++)
            for (int p = 0; p < n_paths; p++) {
                paths[p]->attend(out, scores, 0, q, kt, v, hs, T, visible, 1);
                double ref_p[T], maxs = -1e30, sum = 0;
                for (int t = 0; t < visible; t++) {
                    double s = 0;
                    for (int d = 0; d < hs; d++) s += (double)q[d] * kt[key_index(hs, d, t)];
                    ref_p[t] = s / sqrt(hs);
                    maxs = ref_p[t] > maxs ? ref_p[t] : maxs;
                }
                for (int t = 0; t < visible; t++) sum += ref_p[t] = exp(ref_p[t] - maxs);
                for (int t = 0; t < visible; t++)
                    if (fabs(scores[t] - ref_p[t] / sum) > 1e-5)
                        fail_msg("%s hs %d visible %d: p[%d] = %g, want %g", paths[p]->name, hs,
                                 visible, t, scores[t], ref_p[t] / sum);
                for (int d = 0; d < hs; d++) {
                    double o = 0;
                    for (int t = 0; t < visible; t++) o += ref_p[t] / sum * v[t * hs + d];
                    if (fabs(out[d] - o) > 1e-5)
                        fail_msg("%s hs %d visible %d: out[%d] = %g, want %g", paths[p]->name, hs,
                                 visible, d, out[d], o);
                }
                if (p == 0) {
                    memcpy(first_out, out, sizeof(float) * hs);
                    memcpy(first_scores, scores, sizeof(float) * visible);
                } else if (memcmp(first_out, out, sizeof(float) * hs) ||
                           memcmp(first_scores, scores, sizeof(float) * visible))
                    fail_msg("attention on %s differs from %s (hs %d, visible %d)", paths[p]->name,
                             paths[0]->name, hs, visible);
            }
        free(q);
        free(kt);
        free(v);
        free(out);
        free(first_out);
    }
}

/* Heads run side by side (the engine's groups of ATTEND_MAX_HEADS) give each head the same bits
 * as that head alone, on every path: the chains interleave, none is reordered. */
static void attention_heads_side_by_side_match_one_by_one(void **state) {
    (void)state;
    int widths[] = {32, 16, 8, 6, 64};
    enum { T = 48, STRIDE = 48 };
    Rng rng;
    rng_seed(&rng, 5);
    for (int wi = 0; wi < 5; wi++)
        for (int heads = 2; heads <= ATTEND_MAX_HEADS; heads++) {
            int hs = widths[wi];
            float *q = malloc(sizeof(float) * heads * hs);
            float *kt = malloc(sizeof(float) * heads * hs * T);
            float *v = malloc(sizeof(float) * heads * T * hs);
            float *out = malloc(sizeof(float) * heads * hs), *alone = malloc(sizeof(float) * hs);
            float scores[ATTEND_MAX_HEADS * STRIDE], one[STRIDE];
            fill(q, (size_t)heads * hs, &rng, false);
            fill(kt, (size_t)heads * hs * T, &rng, false);
            fill(v, (size_t)heads * T * hs, &rng, false);
            for (int p = 0; p < n_paths; p++)
                for (int visible = 1; visible <= T; visible += 3) {
                    paths[p]->attend(out, scores, STRIDE, q, kt, v, hs, T, visible, heads);
                    for (int g = 0; g < heads; g++) {
                        paths[p]->attend(alone, one, STRIDE, q + g * hs, kt + (size_t)g * hs * T,
                                         v + (size_t)g * T * hs, hs, T, visible, 1);
                        if (memcmp(alone, out + g * hs, sizeof(float) * hs) ||
                            memcmp(one, scores + g * STRIDE, sizeof(float) * visible))
                            fail_msg("%s hs %d, %d heads, visible %d: head %d differs from the "
                                     "same head alone",
                                     paths[p]->name, hs, heads, visible, g);
                    }
                }
            free(q);
            free(kt);
            free(v);
            free(out);
            free(alone);
        }
}

/* A score far above the rest (by 100, past where exp overflows) in the last vector of keys: the
 * maximum subtracted before exp must be taken over every vector, or exp of a large positive number
 * overflows. Every visible count from 1 to T puts the large score in the last vector. */
static void attention_takes_a_far_larger_last_score(void **state) {
    (void)state;
    int widths[] = {32, 8, 64};
    enum { T = 48 };
    Rng rng;
    rng_seed(&rng, 6);
    for (int wi = 0; wi < 3; wi++) {
        int hs = widths[wi];
        float *q = malloc(sizeof(float) * hs), *kt = malloc(sizeof(float) * hs * T);
        float *v = malloc(sizeof(float) * T * hs), *out = malloc(sizeof(float) * hs);
        float *kept = malloc(sizeof(float) * hs), scores[T];
        fill(q, hs, &rng, false);
        fill(kt, (size_t)hs * T, &rng, false);
        fill(v, (size_t)T * hs, &rng, false);
        double qq = 0;
        for (int d = 0; d < hs; d++) qq += (double)q[d] * q[d];
        float a = (float)(100.0 * sqrt(hs) / qq); /* the last key a * q: its score is 100 */
        for (int visible = 1; visible <= T; visible++) {
            int last = visible - 1;
            for (int d = 0; d < hs; d++) {
                kept[d] = kt[key_index(hs, d, last)];
                kt[key_index(hs, d, last)] = a * q[d];
            }
            for (int p = 0; p < n_paths; p++) {
                paths[p]->attend(out, scores, 0, q, kt, v, hs, T, visible, 1);
                for (int t = 0; t < visible; t++)
                    if (!(fabsf(scores[t] - (t == last ? 1.0f : 0.0f)) <= 1e-6f))
                        fail_msg("%s hs %d visible %d: p[%d] = %g", paths[p]->name, hs, visible, t,
                                 scores[t]);
                for (int d = 0; d < hs; d++)
                    if (!(fabsf(out[d] - v[last * hs + d]) <= 1e-5f))
                        fail_msg("%s hs %d visible %d: out[%d] = %g, want %g", paths[p]->name, hs,
                                 visible, d, out[d], v[last * hs + d]);
            }
            for (int d = 0; d < hs; d++) kt[key_index(hs, d, last)] = kept[d];
        }
        free(q);
        free(kt);
        free(v);
        free(out);
        free(kept);
    }
}

/* GPTD_KERNELS picks a path; an unknown name or one this CPU lacks is an error naming the paths
 * it has. */
static void choosing_a_path(void **state) {
    (void)state;
    Error err;
    const Kernels *k;
    setenv("GPTD_KERNELS", "portable", 1);
    assert_int_equal(kernels_choose(&k, &err), 0);
    assert_string_equal(k->name, "portable");
    setenv("GPTD_KERNELS", "sse9", 1);
    assert_int_equal(kernels_choose(&k, &err), -1);
    assert_non_null(strstr(err.message, "sse9"));
    assert_non_null(strstr(err.message, "portable"));
    unsetenv("GPTD_KERNELS");
    assert_int_equal(kernels_choose(&k, &err), 0);
    assert_ptr_equal(k, paths[0]); /* the best */
}

int main(void) {
    n_paths = kernels_available(paths, 4);
    printf("kernel paths on this CPU:");
    for (int i = 0; i < n_paths; i++) printf(" %s", paths[i]->name);
    printf("\n");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(products_are_one_chain_in_k_order),
        cmocka_unit_test(a_span_is_the_chain_over_its_terms),
        cmocka_unit_test(float16_matches_the_cpu),
        cmocka_unit_test(exp_is_accurate_and_the_same_everywhere),
        cmocka_unit_test(gelu_matches_the_tanh_form),
        cmocka_unit_test(attention_is_softmax_and_the_same_everywhere),
        cmocka_unit_test(attention_heads_side_by_side_match_one_by_one),
        cmocka_unit_test(attention_takes_a_far_larger_last_score),
        cmocka_unit_test(choosing_a_path),
    };
    apply_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
