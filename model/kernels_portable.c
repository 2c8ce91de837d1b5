/* The portable path: plain C for any CPU, 8 floats a "vector" handled lane by lane, fmaf for
 * every fused multiply-add (in hardware where the CPU has FMA, else in software: slow, but the
 * same bits as every other path). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../common/float16.h"

typedef struct {
    float v[8];
} VF;
#define VW 8
#define PANEL_VECS 3
#define TILE_ROWS 4
#define FEW_PANELS 4

#define LANES(expr)                                                                                \
    VF r_;                                                                                         \
    for (int i = 0; i < VW; i++) r_.v[i] = (expr);                                                 \
    return r_

static inline VF vf_loadu(const float *p) { LANES(p[i]); }
static inline void vf_storeu(float *p, VF a) {
    for (int i = 0; i < VW; i++) p[i] = a.v[i];
}
static inline VF vf_set1(float x) { LANES(x); }
static inline VF vf_zero(void) { LANES(0.0f); }
static inline VF vf_load_half(const uint16_t *p) { LANES(float_from_float16(p[i])); }
static inline VF vf_fma(VF a, VF b, VF c) { LANES(fmaf(a.v[i], b.v[i], c.v[i])); }
static inline VF vf_fnma(VF a, VF b, VF c) { LANES(fmaf(-a.v[i], b.v[i], c.v[i])); }
static inline VF vf_add(VF a, VF b) { LANES(a.v[i] + b.v[i]); }
static inline VF vf_sub(VF a, VF b) { LANES(a.v[i] - b.v[i]); }
static inline VF vf_div(VF a, VF b) { LANES(a.v[i] / b.v[i]); }
static inline VF vf_mul(VF a, VF b) { LANES(a.v[i] * b.v[i]); }
/* As the vector instructions: the second operand when either is NaN. */
static inline VF vf_max(VF a, VF b) { LANES(a.v[i] > b.v[i] ? a.v[i] : b.v[i]); }
static inline VF vf_round(VF a) { LANES(rintf(a.v[i])); } /* the default mode: ties to even */
static inline VF vf_pow2(VF n) {
    VF r;
    for (int i = 0; i < VW; i++) {
        uint32_t bits = (uint32_t)((int32_t)n.v[i] + 127) << 23;
        memcpy(&r.v[i], &bits, sizeof bits);
    }
    return r;
}
#undef LANES

#define KERNELS_NAME "portable"
#define KERNELS_OBJECT kernels_portable

#include "kernels_impl.h"
