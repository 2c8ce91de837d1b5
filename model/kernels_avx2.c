/* The AVX2 path: 8 floats a vector, panels of 24 columns, tiles of 4 rows (12 accumulators of
 * the 16 registers). Needs AVX2, FMA and F16C; compiled with those flags alone (Makefile). */
#if defined(__x86_64__)
#include <immintrin.h>

typedef __m256 VF;
#define VW 8
#define PANEL_VECS 3
#define TILE_ROWS 4
#define FEW_PANELS 4
#define vf_loadu(p) _mm256_loadu_ps(p)
#define vf_storeu(p, v) _mm256_storeu_ps(p, v)
#define vf_set1(x) _mm256_set1_ps(x)
#define vf_zero() _mm256_setzero_ps()
#define vf_load_half(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#define vf_fma(a, b, c) _mm256_fmadd_ps(a, b, c)
#define vf_fnma(a, b, c) _mm256_fnmadd_ps(a, b, c)
#define vf_add(a, b) _mm256_add_ps(a, b)
#define vf_sub(a, b) _mm256_sub_ps(a, b)
#define vf_div(a, b) _mm256_div_ps(a, b)
#define vf_mul(a, b) _mm256_mul_ps(a, b)
#define vf_max(a, b) _mm256_max_ps(a, b)
#define vf_round(x) _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define vf_pow2(n)                                                                                 \
    _mm256_castsi256_ps(                                                                           \
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23))
#define KERNELS_NAME "avx2"
#define KERNELS_OBJECT kernels_avx2

#include "kernels_impl.h"
#endif
