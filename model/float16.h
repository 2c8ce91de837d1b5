/* IEEE half precision as storage: weights kept in 16 bits and widened to float for arithmetic.
 * Widening is exact, so a product over float16 weights gives the same bits as the same product
 * over those values stored as float. Uses the F16C instructions (part of x86-64-v3). */
#ifndef GPTD_FLOAT16_H
#define GPTD_FLOAT16_H

#include <immintrin.h>
#include <stdint.h>

/* Round to nearest even; beyond the largest half (65504) the result is infinity. */
static inline uint16_t float16_from_float(float v) {
    return (uint16_t)_cvtss_sh(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

static inline float float_from_float16(uint16_t h) { return _cvtsh_ss(h); }

/* Whether v survives a round trip through float16 unchanged. */
static inline int float16_holds(float v) { return float_from_float16(float16_from_float(v)) == v; }

#endif
