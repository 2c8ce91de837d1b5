/* The kernels, written once over a small vector layer. Each kernels_<path>.c defines the layer
 * and includes this file, which defines the Kernels object KERNELS_OBJECT. The layer:
 *
 *   VF, VW                 a vector of VW floats
 *   PANEL_VECS             vectors per packed panel (a panel is PANEL_VECS * VW columns)
 *   TILE_ROWS              rows a tile runs together when a product has 4 or more (<= 8)
 *   FEW_PANELS             panels a tile runs together for a single row (<= 8)
 *   vf_loadu(p), vf_storeu(p, v), vf_set1(x), vf_zero()
 *   vf_load_half(p)        VW float16 values widened (exact)
 *   vf_fma(a, b, c)        a * b + c, rounded once
 *   vf_fnma(a, b, c)       c - a * b, rounded once
 *   vf_add, vf_sub, vf_mul, vf_max
 *   vf_round(x)            to the nearest integer, ties to even
 *   vf_pow2(n)             2^n for integral n in [-126, 127]
 *
 * Every operation is the IEEE one, lane by lane, so a result never depends on VW or on its
 * neighbours: see kernels.h for the chains that make every path give the same bits. */
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "layers.h"

#define PANEL (PANEL_VECS * VW)

/* Row k of a panel as PANEL_VECS vectors. */
static inline __attribute__((always_inline)) void load_weights(const PackedMatrix *pm, size_t at,
                                                               VF w[PANEL_VECS]) {
    if (pm->w16)
        for (int v = 0; v < PANEL_VECS; v++) w[v] = vf_load_half(pm->w16 + at + VW * v);
    else
        for (int v = 0; v < PANEL_VECS; v++) w[v] = vf_loadu(pm->w + at + VW * v);
}

/* Writes one row of a panel's results (cols of them: fewer in the last, padded panel): stored,
 * added to what is there (a residual), or through relu. GELU is applied by the task afterwards
 * (calls to tanhf or erff here would make the compiler keep the accumulators in memory). */
static inline __attribute__((always_inline)) void write_out(const PackedJob *j, float *o,
                                                            VF r[PANEL_VECS], int cols) {
    float buf[PANEL];
    int full = cols == PANEL;
    float *dst = full ? o : buf;
    if (j->how == PACKED_ADD) {
        if (!full) memcpy(buf, o, (size_t)cols * sizeof(float));
        for (int v = 0; v < PANEL_VECS; v++) r[v] = vf_add(vf_loadu(dst + VW * v), r[v]);
    } else if (j->how == PACKED_RELU)
        for (int v = 0; v < PANEL_VECS; v++) r[v] = vf_max(r[v], vf_zero());
    for (int v = 0; v < PANEL_VECS; v++) vf_storeu(dst + VW * v, r[v]);
    if (!full) memcpy(o, buf, (size_t)cols * sizeof(float));
}

/* exp(x) for x <= 0 (softmax after subtracting the maximum, GELU): range reduction to 2^n e^r and
 * a degree-6 polynomial; about 2 ulp, far cheaper than expf. layers.h expf_nonpositive is the same
 * operations on one value. */
static inline VF vexp_nonpositive(VF x) {
    x = vf_max(x, vf_set1(-87.0f));
    VF n = vf_round(vf_mul(x, vf_set1(1.44269504f)));
    VF r = vf_fnma(n, vf_set1(0.693359375f), x);
    r = vf_fnma(n, vf_set1(-2.12194440e-4f), r);
    VF p = vf_set1(1.9875691500e-4f);
    p = vf_fma(p, r, vf_set1(1.3981999507e-3f));
    p = vf_fma(p, r, vf_set1(8.3334519073e-3f));
    p = vf_fma(p, r, vf_set1(4.1665795894e-2f));
    p = vf_fma(p, r, vf_set1(1.6666665459e-1f));
    p = vf_fma(p, r, vf_set1(5.0000001201e-1f));
    p = vf_fma(p, vf_mul(r, r), vf_add(r, vf_set1(1.0f)));
    return vf_mul(p, vf_pow2(n));
}

/* GELU's tanh form on a vector: the operations of layers.h gelu, so the same bits. */
static inline VF vgelu(VF x) {
    VF ax = vf_max(x, vf_sub(vf_zero(), x)), one = vf_set1(1.0f);
    VF u = vf_mul(vf_mul(vf_set1(GELU_SCALE), ax),
                  vf_add(one, vf_mul(vf_mul(vf_set1(0.044715f), x), x)));
    VF e = vexp_nonpositive(vf_mul(vf_set1(-2.0f), u));
    VF t = vf_div(vf_sub(one, e), vf_add(one, e));
    return vf_mul(vf_set1(0.5f), vf_add(x, vf_mul(ax, t)));
}

/* GELU over rows [r0, r1) and panels [p0, p1) of the output, after their products: the tanh form
 * on whole vectors and the rest one by one, the same bits on every path; the erf form one libm
 * call per value in plain C. */
static void gelu_block(const PackedJob *j, int r0, int r1, int p0, int p1) {
    int c0 = p0 * PANEL, c1 = p1 * PANEL < j->pm->M ? p1 * PANEL : j->pm->M;
    for (int r = r0; r < r1; r++) {
        float *o = j->out + (size_t)r * j->out_stride;
        if (j->how == PACKED_GELU_ERF) {
            for (int c = c0; c < c1; c++) o[c] = gelu_erf(o[c]);
            continue;
        }
        int c = c0;
        for (; c + VW <= c1; c += VW) vf_storeu(o + c, vgelu(vf_loadu(o + c)));
        for (; c < c1; c++) o[c] = gelu(o[c]);
    }
}

/* R rows times G panels (R * G <= 8, constants after inlining). Each output is the bias plus
 * x[0] w[0] + x[1] w[1] + ... fused in k order (the job's span of k), whatever R and G are. UNIT: a
 * row's elements are known to be adjacent (k_stride 1), so the compiler steps through them without
 * a multiply. */
static inline __attribute__((always_inline)) void tile(const PackedJob *j, int p0, const int G,
                                                       int r0, const int R, const bool UNIT) {
    const PackedMatrix *pm = j->pm;
    const int K = pm->K;
    const size_t ks = UNIT ? 1 : j->k_stride;
    const float *x = j->inp + r0 * j->in_stride;
    VF acc[8][PANEL_VECS];
    for (int g = 0; g < G; g++)
        for (int r = 0; r < R; r++)
            for (int v = 0; v < PANEL_VECS; v++)
                acc[g * R + r][v] = vf_loadu(pm->bias + (p0 + g) * PANEL + VW * v);
    for (int k = j->k_begin; k < j->k_end; k++)
        for (int g = 0; g < G; g++) {
            VF w[PANEL_VECS];
            load_weights(pm, ((size_t)(p0 + g) * K + k) * PANEL, w);
            for (int r = 0; r < R; r++) {
                VF xr = vf_set1(x[r * j->in_stride + k * ks]);
                for (int v = 0; v < PANEL_VECS; v++)
                    acc[g * R + r][v] = vf_fma(xr, w[v], acc[g * R + r][v]);
            }
        }
    for (int g = 0; g < G; g++) {
        int p = p0 + g, cols = pm->M - p * PANEL < PANEL ? pm->M - p * PANEL : PANEL;
        for (int r = 0; r < R; r++)
            write_out(j, j->out + (r0 + r) * j->out_stride + p * PANEL, acc[g * R + r], cols);
    }
}

/* Fewer than TILE_ROWS rows of one panel. */
static void tile_rest(const PackedJob *j, int p, int r, int rows) {
#define REST(n)                                                                                    \
    case n:                                                                                        \
        if (TILE_ROWS > n) tile(j, p, 1, r, TILE_ROWS > n ? n : 1, false);                         \
        break;
    switch (rows) {
        REST(1)
        REST(2)
        REST(3)
        REST(4)
        REST(5)
        REST(6)
        REST(7)
        default:
            break;
    }
#undef REST
}

/* Four or more rows: one panel for a block of rows, TILE_ROWS at a time (the panel stays in
 * cache). Blocks of rows let narrow matrices still spread evenly. */
static void rows_task(void *ctx, int task) {
    const PackedJob *j = ctx;
    int p, r;
    if (j->rows_outer) /* a block of rows through every panel: its inputs stay in cache */
        p = task % j->pm->panels, r = task / j->pm->panels * j->rows_per_task;
    else /* a panel through every block of rows: its weights stay in cache */
        p = task / j->row_blocks, r = task % j->row_blocks * j->rows_per_task;
    int first = r, end = r + j->rows_per_task < j->N ? r + j->rows_per_task : j->N;
    if (j->k_stride == 1)
        for (; r + TILE_ROWS <= end; r += TILE_ROWS) tile(j, p, 1, r, TILE_ROWS, true);
    else
        for (; r + TILE_ROWS <= end; r += TILE_ROWS) tile(j, p, 1, r, TILE_ROWS, false);
    tile_rest(j, p, r, end - r);
    if (j->how == PACKED_GELU || j->how == PACKED_GELU_ERF) gelu_block(j, first, end, p, p + 1);
}

/* One to three rows: a contiguous range of panels, several panels per pass so that there are
 * enough independent chains to hide the latency of the fused multiply-adds. */
static void panels_task(void *ctx, int chunk) {
    const PackedJob *j = ctx;
    int first = (int)((long)j->pm->panels * chunk / j->chunks), p = first;
    int end = (int)((long)j->pm->panels * (chunk + 1) / j->chunks);
    for (; j->N <= 2 && p + FEW_PANELS <= end; p += FEW_PANELS)
        for (int r = 0; r < j->N; r++) tile(j, p, FEW_PANELS, r, 1, false); /* row by row */
    for (; p < end; p++) switch (j->N) {
            case 3:
                tile(j, p, 1, 0, 3, false);
                break;
            case 2:
                tile(j, p, 1, 0, 2, false);
                break;
            default:
                tile(j, p, 1, 0, 1, false);
                break;
        }
    if (j->how == PACKED_GELU || j->how == PACKED_GELU_ERF) gelu_block(j, 0, j->N, first, end);
}

static void exp_nonpositive(float *x, int n) {
    for (int i = 0; i < n; i += VW) vf_storeu(x + i, vexp_nonpositive(vf_loadu(x + i)));
}

/* score[t] = (q . k_t) * scale for t in [t0, t0 + BLOCKS * VW): BLOCKS independent chains, each
 * over the channels in order. Keys in blocks (key_index); VW divides KEY_BLOCK. */
static inline __attribute__((always_inline)) void scores_block(float *scores, const float *q,
                                                               const float *kt, int hs, int t0,
                                                               const int BLOCKS, float scale) {
    VF a[4];
    const float *k[4];
    for (int b = 0; b < BLOCKS; b++) {
        a[b] = vf_zero();
        k[b] = kt + key_index(hs, 0, t0 + VW * b);
    }
    for (int d = 0; d < hs; d++) {
        VF qd = vf_set1(q[d]);
        for (int b = 0; b < BLOCKS; b++)
            a[b] = vf_fma(qd, vf_loadu(k[b] + (size_t)d * KEY_BLOCK), a[b]);
    }
    for (int b = 0; b < BLOCKS; b++) vf_storeu(scores + t0 + VW * b, vf_mul(a[b], vf_set1(scale)));
}

/* One head's scores, scaled, then exp(score - max) in place over whole vectors (the positions
 * past `visible` up to the next vector hold finite values nobody reads). */
static void scores_exp(float *scores, const float *q, const float *kt, int hs, int T, int visible) {
    float scale = 1.0f / sqrtf((float)hs);
    /* Whole vectors of keys; T is a multiple of KEY_BLOCK and so of VW, so a vector may run past
     * `visible` into positions not filled yet (finite, and overwritten below) but not past T. */
    int t = 0;
    for (; t < visible && t + 4 * VW <= T; t += 4 * VW)
        scores_block(scores, q, kt, hs, t, 4, scale);
    for (; t < visible; t += VW) scores_block(scores, q, kt, hs, t, 1, scale);
    /* The maximum is the same whatever the order, so vectors may take it. */
    int padded = (visible + VW - 1) / VW * VW;
    for (t = visible; t < padded; t++) scores[t] = scores[0];
    VF m = vf_loadu(scores);
    for (t = VW; t < padded; t += VW) m = vf_max(m, vf_loadu(scores + t));
    float lanes[VW], maxv = -INFINITY;
    vf_storeu(lanes, m);
    for (int i = 0; i < VW; i++) maxv = lanes[i] > maxv ? lanes[i] : maxv;
    for (t = 0; t < padded; t += VW)
        vf_storeu(scores + t, vexp_nonpositive(vf_sub(vf_loadu(scores + t), vf_set1(maxv))));
}

/* out[g][d] = sum over t of p_g[t] v_g[t][d] for G heads of NV vectors each: G * NV independent
 * chains side by side (one chain alone waits out the latency of every fused multiply-add), each
 * over the keys in order. */
static inline __attribute__((always_inline)) void weigh_values(float *out, const float *scores,
                                                               size_t stride, const float *vc,
                                                               int hs, int T, int visible,
                                                               const int G, const int NV) {
    VF a[8];
    for (int i = 0; i < G * NV; i++) a[i] = vf_zero();
    for (int t = 0; t < visible; t++)
        for (int g = 0; g < G; g++) {
            VF pt = vf_set1(scores[g * stride + t]);
            const float *v = vc + ((size_t)g * T + t) * hs;
            for (int b = 0; b < NV; b++)
                a[g * NV + b] = vf_fma(pt, vf_loadu(v + VW * b), a[g * NV + b]);
        }
    for (int g = 0; g < G; g++)
        for (int b = 0; b < NV; b++) vf_storeu(out + g * hs + VW * b, a[g * NV + b]);
}

/* The same chains one channel at a time: heads whose size is not a whole number of vectors. */
static void weigh_values_scalar(float *out, const float *scores, size_t stride, const float *vc,
                                int hs, int T, int visible, int heads) {
    for (int g = 0; g < heads; g++)
        for (int d = 0; d < hs; d++) {
            float a = 0.0f;
            for (int t = 0; t < visible; t++)
                a = fmaf(scores[g * stride + t], vc[((size_t)g * T + t) * hs + d], a);
            out[g * hs + d] = a;
        }
}

static void attend(float *out, float *scores, size_t stride, const float *q, const float *kt,
                   const float *vc, int hs, int T, int visible, int heads) {
    for (int g = 0; g < heads; g++)
        scores_exp(scores + g * stride, q + g * hs, kt + (size_t)g * hs * T, hs, T, visible);
    /* Each head's sum in order, the heads side by side. */
    float sum[ATTEND_MAX_HEADS] = {0};
    for (int t = 0; t < visible; t++)
        for (int g = 0; g < heads; g++) sum[g] += scores[g * stride + t];
    int padded = (visible + VW - 1) / VW * VW;
    for (int g = 0; g < heads; g++) {
        VF inv = vf_set1(1.0f / sum[g]);
        for (int t = 0; t < padded; t += VW)
            vf_storeu(scores + g * stride + t, vf_mul(vf_loadu(scores + g * stride + t), inv));
    }
    int nv = hs / VW;
    if (hs % VW || nv > 8 || (nv & (nv - 1))) {
        weigh_values_scalar(out, scores, stride, vc, hs, T, visible, heads);
        return;
    }
    /* As many heads a pass as keep the chains within 8 (the registers hold them). */
    int per_pass = 8 / nv < heads ? 8 / nv : heads;
    for (int g = 0; g < heads; g += per_pass) {
        int n = heads - g < per_pass ? heads - g : per_pass;
        float *o = out + g * hs;
        const float *sc = scores + g * stride, *v = vc + (size_t)g * T * hs;
#define WEIGH(G, NV)                                                                               \
    case G * 16 + NV:                                                                              \
        weigh_values(o, sc, stride, v, hs, T, visible, G, NV);                                     \
        break
        switch (n * 16 + nv) {
            WEIGH(1, 1);
            WEIGH(2, 1);
            WEIGH(3, 1);
            WEIGH(4, 1);
            WEIGH(1, 2);
            WEIGH(2, 2);
            WEIGH(3, 2);
            WEIGH(4, 2);
            WEIGH(1, 4);
            WEIGH(2, 4);
            WEIGH(1, 8);
            default:
                weigh_values_scalar(o, sc, stride, v, hs, T, visible, n);
                break;
        }
#undef WEIGH
    }
}

static double peak_loop(long iterations) {
    VF a[12], m = vf_set1(0.999999f), c = vf_set1(1e-7f);
    for (int i = 0; i < 12; i++) a[i] = vf_set1(1.0f + (float)i);
    for (long n = 0; n < iterations; n++)
        for (int i = 0; i < 12; i++) a[i] = vf_fma(a[i], m, c);
    float sink[VW];
    for (int i = 1; i < 12; i++) a[0] = vf_add(a[0], a[i]);
    vf_storeu(sink, a[0]);
    volatile float keep = sink[0]; /* the loop must not be optimised away */
    (void)keep;
    return 2.0 * 12 * VW * (double)iterations;
}

const Kernels KERNELS_OBJECT = {
    .name = KERNELS_NAME,
    .panel = PANEL,
    .rows_task = rows_task,
    .panels_task = panels_task,
    .attend = attend,
    .exp_nonpositive = exp_nonpositive,
    .peak_loop = peak_loop,
};
