/* IEEE half precision as storage: weights kept in 16 bits and widened to float for arithmetic.
 * Widening is exact, so a product over float16 weights gives the same bits as the same product
 * over those values stored as float. Plain C, so that it builds for any CPU; the kernels widen
 * whole vectors with their own instructions (F16C, AVX-512, NEON), which give the same values. */
#ifndef GPTD_FLOAT16_H
#define GPTD_FLOAT16_H

#include <stdint.h>
#include <string.h>

/* Round to nearest, ties to even; from 65520 up the result is infinity; NaN stays NaN. */
static inline uint16_t float16_from_float(float v) {
    uint32_t x;
    memcpy(&x, &v, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t a = x & 0x7fffffff;
    if (a > 0x7f800000) return sign | 0x7e00 | (uint16_t)((a >> 13) & 0x3ff); /* NaN */
    if (a >= 0x477ff000) return sign | 0x7c00;                                /* infinity */
    if (a >= 0x38800000) /* a normal half: rebias the exponent, round away 13 bits */
        return sign | (uint16_t)((a + 0xfff + ((a >> 13) & 1) - 0x38000000) >> 13);
    if (a <= 0x33000000) return sign; /* at most half the smallest subnormal: zero */
    uint32_t shift = 126 - (a >> 23), m = (a & 0x7fffff) | 0x800000; /* a subnormal half */
    uint32_t q = m >> shift, rest = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rest > half || (rest == half && (q & 1))) q++;
    return sign | (uint16_t)q;
}

static inline float float_from_float16(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, x;
    if (e == 0x1f)
        x = sign | 0x7f800000 | (m << 13);
    else if (e)
        x = sign | ((e + 112) << 23) | (m << 13);
    else if (!m)
        x = sign;
    else { /* subnormal: normalise */
        e = 113;
        while (!(m & 0x400)) {
            m <<= 1;
            e--;
        }
        x = sign | (e << 23) | ((m & 0x3ff) << 13);
    }
    float v;
    memcpy(&v, &x, sizeof v);
    return v;
}

/* Whether v survives a round trip through float16 unchanged. */
static inline int float16_holds(float v) { return float_from_float16(float16_from_float(v)) == v; }

#endif
