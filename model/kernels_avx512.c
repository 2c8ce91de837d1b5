/* The AVX-512 path: 16 floats a vector, panels of 32 columns, tiles of 8 rows (16 accumulators
 * of the 32 registers). Needs AVX-512F; compiled with that flag alone (Makefile). */
#if defined(__x86_64__)
#include <immintrin.h>

typedef __m512 VF;
#define VW 16
#define PANEL_VECS 2
#define TILE_ROWS 8
#define FEW_PANELS 6
#define vf_loadu(p) _mm512_loadu_ps(p)
#define vf_storeu(p, v) _mm512_storeu_ps(p, v)
#define vf_set1(x) _mm512_set1_ps(x)
#define vf_zero() _mm512_setzero_ps()
#define vf_load_half(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
#define vf_fma(a, b, c) _mm512_fmadd_ps(a, b, c)
#define vf_fnma(a, b, c) _mm512_fnmadd_ps(a, b, c)
#define vf_add(a, b) _mm512_add_ps(a, b)
#define vf_sub(a, b) _mm512_sub_ps(a, b)
#define vf_div(a, b) _mm512_div_ps(a, b)
#define vf_mul(a, b) _mm512_mul_ps(a, b)
#define vf_max(a, b) _mm512_max_ps(a, b)
#define vf_round(x) _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define vf_pow2(n)                                                                                 \
    _mm512_castsi512_ps(                                                                           \
        _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23))
#define KERNELS_NAME "avx512"
#define KERNELS_OBJECT kernels_avx512

#include "kernels_impl.h"
#endif
