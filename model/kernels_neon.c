/* The arm64 path: NEON (always there on arm64), 4 floats a vector, panels of 16 columns, tiles
 * of 4 rows (16 accumulators of the 32 registers). */
#if defined(__aarch64__)
#include <arm_neon.h>

typedef float32x4_t VF;
#define VW 4
#define PANEL_VECS 4
#define TILE_ROWS 4
#define FEW_PANELS 4
#define vf_loadu(p) vld1q_f32(p)
#define vf_storeu(p, v) vst1q_f32(p, v)
#define vf_set1(x) vdupq_n_f32(x)
#define vf_zero() vdupq_n_f32(0.0f)
#define vf_load_half(p) vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)))
#define vf_fma(a, b, c) vfmaq_f32(c, a, b)
#define vf_fnma(a, b, c) vfmsq_f32(c, a, b)
#define vf_add(a, b) vaddq_f32(a, b)
#define vf_sub(a, b) vsubq_f32(a, b)
#define vf_div(a, b) vdivq_f32(a, b)
#define vf_mul(a, b) vmulq_f32(a, b)
#define vf_max(a, b) vmaxq_f32(a, b)
#define vf_round(x) vrndnq_f32(x)
#define vf_pow2(n)                                                                                 \
    vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(vcvtnq_s32_f32(n), vdupq_n_s32(127)), 23))
#define KERNELS_NAME "neon"
#define KERNELS_OBJECT kernels_neon

#include "kernels_impl.h"
#endif
